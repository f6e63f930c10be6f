#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
C="--case 128,1,16,1,4096 --case 128,1,32,1,4096 --case 128,1,64,1,4096 --case 128,2,16,1,4096,64,causal --case 128,2,32,1,4096,64,causal --case 128,2,64,1,4096,64,causal --case 128,1,16,1,8192 --case 128,1,64,1,8192 --case 128,1,128,1,4096 --case 64,1,16,1,4096 --case 64,1,64,1,8192"
for round in 1 2 3; do
  for k in def 3; do
    if [ $k = def ]; then timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/r${round}-k$k.log 2>&1
    else MLA_GPU_KERNEL=$k timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/r${round}-k$k.log 2>&1; fi
  done; pack
done
