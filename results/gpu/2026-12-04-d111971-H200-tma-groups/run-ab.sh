#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
C="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,16,1,16384"
timeout 40 $B/mla-bench-old --no-ceilings --iters 15 $C > $L/ab-old-1.log 2>&1; pack
timeout 40 $B/mla-bench --no-ceilings --iters 15 $C > $L/ab-new-1.log 2>&1; pack
timeout 40 $B/mla-bench-old --no-ceilings --iters 15 $C > $L/ab-old-2.log 2>&1; pack
timeout 40 $B/mla-bench --no-ceilings --iters 15 $C > $L/ab-new-2.log 2>&1; pack
MLA_GPU_KERNEL=4 timeout 40 $B/test_gpu --quick > $L/quick-tma.log 2>&1; echo "rc=$?" >> $L/quick-tma.log; pack
MLA_GPU_KERNEL=4 timeout 70 compute-sanitizer --tool synccheck --error-exitcode 99 $B/test_gpu --quick > $L/synccheck-tma.log 2>&1; echo "rc=$?" >> $L/synccheck-tma.log; pack
