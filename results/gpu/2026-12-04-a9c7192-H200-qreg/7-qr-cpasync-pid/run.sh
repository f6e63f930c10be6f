#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
CASES="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,64,1,16384 --case 128,2,128,1,4096,64,causal --case 128,1,16,1,16384"
MLA_GPU_KERNEL=8 timeout 150 $B/test_gpu --quick > $L/quick8.log 2>&1; echo "quick8 rc=$?" >> $L/quick8.log; pack
MLA_GPU_KERNEL=8 timeout 100 $B/mla-bench --no-ceilings --iters 20 $CASES > $L/bench8.log 2>&1; pack
timeout 100 $B/mla-bench --no-ceilings --iters 20 $CASES > $L/bench-def.log 2>&1; pack
