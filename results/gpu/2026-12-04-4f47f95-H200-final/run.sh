#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1
timeout 130 $B/mla-bench > $L/grid.log 2>&1; echo "rc=$?" >> $L/grid.log; pack
C="--case 1,1,128,1,8192,64,fixed --case 2,1,128,1,8192,64,fixed --case 4,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 16,1,128,1,4096 --case 32,1,128,1,2048 --case 8,1,16,1,8192 --case 16,1,16,1,8192 --case 32,1,16,1,8192 --case 128,1,16,1,4096 --case 128,1,64,1,4096 --case 128,2,128,1,16384,64,causal --case 128,1,16,1,16384"
for rd in 1 2; do
  timeout 60 $B/mla-bench-5d6a74d --no-ceilings --iters 20 $C > $L/ab-5d6a74d-$rd.log 2>&1
  timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/ab-final-$rd.log 2>&1; pack
done
timeout 260 $B/test_gpu > $L/test_gpu.log 2>&1; echo "rc=$?" >> $L/test_gpu.log; pack
timeout 45 compute-sanitizer --tool memcheck $B/test_gpu --quick > $L/memcheck.log 2>&1; echo "rc=$?" >> $L/memcheck.log; pack
timeout 45 compute-sanitizer --tool synccheck $B/test_gpu --quick > $L/synccheck.log 2>&1; echo "rc=$?" >> $L/synccheck.log; pack
timeout 45 compute-sanitizer --tool racecheck $B/test_gpu --quick > $L/racecheck.log 2>&1; echo "rc=$?" >> $L/racecheck.log; pack
