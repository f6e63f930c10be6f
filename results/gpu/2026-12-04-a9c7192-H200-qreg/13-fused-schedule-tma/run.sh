#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
C="--case 128,1,16,1,4096 --case 128,1,32,1,4096 --case 128,1,64,1,4096 --case 128,1,128,1,4096 --case 128,2,16,1,4096,64,causal --case 128,2,128,1,4096,64,causal --case 128,1,16,1,16384 --case 128,2,128,1,16384,64,causal --case 64,1,64,2,2000"
for round in 1 2; do
  timeout 100 $B/mla-bench --no-ceilings --iters 20 $C > $L/sched-kernel-$round.log 2>&1; pack
  MLA_GPU_FUSED_SCHED=1 timeout 100 $B/mla-bench --no-ceilings --iters 20 $C > $L/fused-$round.log 2>&1; pack
done
