#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/info.log 2>&1
CASES="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,64,1,16384 --case 128,2,128,1,4096,64,causal --case 128,1,16,1,16384 --case 8,1,128,1,8192,64,fixed"
for k in def 4 6 7 8; do
  if [ $k = def ]; then timeout 100 $B/mla-bench --no-ceilings --iters 20 $CASES > $L/bench-$k.log 2>&1
  else MLA_GPU_KERNEL=$k timeout 100 $B/mla-bench --no-ceilings --iters 20 $CASES > $L/bench-$k.log 2>&1; fi; pack
done
