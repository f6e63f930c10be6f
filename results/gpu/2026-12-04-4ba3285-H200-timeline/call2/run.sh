#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
for k in default 4 3; do
  if [ $k = default ]; then E=""; else E="MLA_GPU_KERNEL=$k"; fi
  env $E timeout 40 $B/test_gpu-epi --quick > $L/quick-epi-$k.log 2>&1; echo "rc=$?" >> $L/quick-epi-$k.log
done
timeout 60 $B/test_gpu-epi --fp8 > $L/fp8-epi.log 2>&1; echo "rc=$?" >> $L/fp8-epi.log; pack
S="--case 1,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 128,1,128,1,4096"
for bin in d7 epid7; do for k in default 4; do
  if [ $k = default ]; then E=""; else E="MLA_GPU_KERNEL=$k"; fi
  env $E MLA_BENCH_TIMELINE=1 timeout 60 $B/mla-bench-$bin --no-ceilings --iters 5 $S > $L/tl-$bin-$k.log 2>&1
done; done; pack
C="--case 1,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,16,1,16384 --case 128,2,128,1,4096,64,causal --case 128,1,16,1,4096 --case 128,1,64,1,4096"
for rd in 1 2; do
  timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/ab-base-$rd.log 2>&1
  timeout 60 $B/mla-bench-epi --no-ceilings --iters 20 $C > $L/ab-epi-$rd.log 2>&1; pack
done
timeout 300 $B/test_gpu-epi > $L/suite-epi.log 2>&1; echo "rc=$?" >> $L/suite-epi.log; pack
