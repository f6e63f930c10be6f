#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
C="--case 1,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 16,1,128,1,4096 --case 32,1,16,1,8192 --case 64,1,16,1,4096 --case 64,2,128,1,2048,64,causal"
for round in 1 2 3; do
  for v in ng4 ng1; do
    X=$B/mla-bench-$v; [ $v = ng4 ] && X=$B/mla-bench
    for k in def 3 4; do
      if [ $k = def ]; then timeout 60 $X --no-ceilings --iters 20 $C > $L/r${round}-$v-k$k.log 2>&1
      else MLA_GPU_KERNEL=$k timeout 60 $X --no-ceilings --iters 20 $C > $L/r${round}-$v-k$k.log 2>&1; fi
    done
  done; pack
done
