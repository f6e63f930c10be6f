#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
MLA_GPU_KERNEL=4 timeout 100 $B/test_gpu-flow --quick > $L/quick4-flow.log 2>&1; echo "rc=$?" >> $L/quick4-flow.log; pack
grep -q "^rc=0" $L/quick4-flow.log || exit 0
C="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,16,1,16384 --case 128,2,128,1,4096,64,causal --case 128,1,64,1,16384 --case 128,1,16,1,4096 --case 64,1,128,1,8192"
for round in 1 2 3; do
  timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/r${round}-def.log 2>&1
  timeout 60 $B/mla-bench-flow --no-ceilings --iters 20 $C > $L/r${round}-flow.log 2>&1; pack
done
MLA_GPU_KERNEL=4 timeout 100 compute-sanitizer --tool synccheck --error-exitcode 99 $B/test_gpu-flow --quick > $L/synccheck4-flow.log 2>&1; echo "rc=$?" >> $L/synccheck4-flow.log; pack
MLA_GPU_KERNEL=4 timeout 150 compute-sanitizer --tool racecheck $B/test_gpu-flow --quick > $L/racecheck4-flow.log 2>&1; echo "rc=$?" >> $L/racecheck4-flow.log; pack
timeout 320 $B/test_gpu-flow > $L/test_gpu-flow.log 2>&1; echo "rc=$?" >> $L/test_gpu-flow.log; pack
