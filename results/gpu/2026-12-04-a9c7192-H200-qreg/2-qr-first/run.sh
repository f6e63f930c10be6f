#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
CASES="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,64,1,16384 --case 128,2,128,1,4096,64,causal --case 128,1,128,1,8192 --case 128,1,16,1,16384 --case 128,2,64,1,8192,64,causal"
MLA_GPU_KERNEL=8 timeout 150 $B/test_gpu --quick > $L/quick8.log 2>&1; echo "quick8 rc=$?" >> $L/quick8.log; tail -3 $L/quick8.log; pack
if grep -q ' 0 failed' $L/quick8.log || grep -q 'failed: 0' $L/quick8.log; then :; fi
MLA_GPU_KERNEL=8 timeout 150 $B/mla-bench --no-ceilings --iters 20 $CASES > $L/bench8.log 2>&1; echo "bench8 rc=$?" >> $L/bench8.log; pack
timeout 150 $B/mla-bench --no-ceilings --iters 20 $CASES > $L/bench-def.log 2>&1; echo "benchdef rc=$?" >> $L/bench-def.log; pack
MLA_GPU_KERNEL=8 timeout 120 compute-sanitizer --tool memcheck --error-exitcode 99 $B/test_gpu --quick > $L/memcheck8.log 2>&1; echo "memcheck rc=$?" >> $L/memcheck8.log; pack
MLA_GPU_KERNEL=8 timeout 120 compute-sanitizer --tool synccheck --error-exitcode 99 $B/test_gpu --quick > $L/synccheck8.log 2>&1; echo "synccheck rc=$?" >> $L/synccheck8.log; pack
