#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
for v in 10 11; do timeout 60 compute-sanitizer --tool racecheck $B/rcn $v > $L/rcn$v.log 2>&1; echo "rc=$?" >> $L/rcn$v.log; done; pack
S="--case 1,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 128,1,128,1,16384"
MLA_BENCH_TIMELINE=1 timeout 60 $B/mla-bench-d7 --no-ceilings --iters 5 $S > $L/tl-default.log 2>&1
MLA_BENCH_TIMELINE=1 MLA_GPU_KERNEL=4 timeout 60 $B/mla-bench-d7 --no-ceilings --iters 5 $S > $L/tl-k4.log 2>&1; pack
C="--case 1,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 16,1,128,1,4096 --case 32,1,16,1,8192 --case 64,1,16,1,4096 --case 64,1,128,1,8192"
for rd in 1 2; do
  timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/small-default-$rd.log 2>&1
  MLA_GPU_KERNEL=4 timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/small-k4-$rd.log 2>&1; pack
done
BIG="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,16,1,16384 --case 128,2,128,1,4096,64,causal --case 128,1,16,1,4096"
for rd in 1 2 3; do
  timeout 60 $B/mla-bench --no-ceilings --iters 20 $BIG > $L/big-base-$rd.log 2>&1
  timeout 60 $B/mla-bench-pfl --no-ceilings --iters 20 $BIG > $L/big-pfl-$rd.log 2>&1; pack
done
MLA_GPU_KERNEL=4 timeout 90 compute-sanitizer --tool memcheck $B/test_gpu --quick > $L/memcheck4.log 2>&1; echo "rc=$?" >> $L/memcheck4.log; pack
