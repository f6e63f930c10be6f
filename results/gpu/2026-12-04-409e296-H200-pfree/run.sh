#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
C="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,16,1,16384 --case 128,2,128,1,4096,64,causal"
timeout 20 $B/mla-bench-old --no-ceilings --iters 20 $C > $L/ab-old.log 2>&1
timeout 20 $B/mla-bench --no-ceilings --iters 20 $C > $L/ab-new.log 2>&1; pack
MLA_GPU_KERNEL=4 timeout 25 $B/test_gpu --quick > $L/quick4.log 2>&1; echo "rc=$?" >> $L/quick4.log; pack
timeout 215 $B/test_gpu > $L/test_gpu.log 2>&1; echo "rc=$?" >> $L/test_gpu.log; pack
MLA_GPU_KERNEL=4 timeout 40 compute-sanitizer --tool racecheck $B/test_gpu --quick > $L/racecheck4.log 2>&1; echo "rc=$?" >> $L/racecheck4.log; pack
