#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
C="--case 2,1,128,1,8192,64,fixed --case 4,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 8,1,16,1,8192 --case 8,1,64,1,4096 --case 16,1,128,1,4096 --case 16,1,16,1,8192 --case 32,1,128,1,2048 --case 32,1,16,1,8192 --case 32,1,64,1,4096 --case 32,2,128,1,2048,64,causal --case 48,1,16,1,4096 --case 48,1,128,1,4096 --case 64,1,16,1,4096"
for rd in 1 2; do
  timeout 80 $B/mla-bench --no-ceilings --iters 20 $C > $L/kc-default-$rd.log 2>&1
  MLA_GPU_KERNEL=4 timeout 80 $B/mla-bench --no-ceilings --iters 20 $C > $L/kc-k4-$rd.log 2>&1
  MLA_GPU_KERNEL=3 timeout 80 $B/mla-bench --no-ceilings --iters 20 $C > $L/kc-k3-$rd.log 2>&1; pack
done
for s in 2 4 8 16; do
  MLA_GPU_KERNEL=4 MLA_GPU_COMBINE_SLICES=$s timeout 40 $B/mla-bench --no-ceilings --iters 20 --case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 16,1,16,1,8192 > $L/slices-$s.log 2>&1
done; pack
