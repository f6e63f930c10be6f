#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/info.log 2>&1
C="--case 128,1,32,1,4096 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --case 128,1,16,1,16384"
for round in 1 2; do
  timeout 60 $B/mla-bench-old --no-ceilings --kv-dtype fp8 --iters 20 $C > $L/fp8-old-$round.log 2>&1; pack
  timeout 60 $B/mla-bench --no-ceilings --kv-dtype fp8 --iters 20 $C > $L/fp8-new-$round.log 2>&1; pack
done
MLA_GPU_FP8T=1 timeout 60 $B/mla-bench-old --no-ceilings --kv-dtype fp8 --iters 20 --case 128,1,32,1,16384 > $L/fp8t-old.log 2>&1
MLA_GPU_FP8T=1 timeout 60 $B/mla-bench --no-ceilings --kv-dtype fp8 --iters 20 --case 128,1,32,1,16384 > $L/fp8t-new.log 2>&1; pack
timeout 300 $B/test_gpu --fp8 > $L/test_gpu_fp8.log 2>&1; echo "rc=$?" >> $L/test_gpu_fp8.log; pack
