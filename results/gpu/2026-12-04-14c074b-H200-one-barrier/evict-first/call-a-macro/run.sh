#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
C="--case 128,1,16,1,16384 --case 128,1,16,1,4096 --case 128,1,32,1,16384 --case 128,1,64,1,16384 --case 128,2,16,1,16384,64,causal --case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,64,1,4096"
for round in 1 2 3; do
  for v in def ef; do X=$B/mla-bench-$v; [ $v = def ] && X=$B/mla-bench
    timeout 60 $X --no-ceilings --iters 20 $C > $L/r${round}-$v.log 2>&1
  done; pack
done
