#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/info.log 2>&1
C="--case 128,1,16,1,8192 --case 128,1,16,1,16384 --case 128,1,32,1,16384 --case 128,1,64,1,8192 --case 128,1,64,1,16384 --case 128,2,16,1,16384,64,causal --case 128,2,64,1,8192,64,causal --case 128,1,128,1,16384 --case 128,2,128,1,16384,64,causal"
for round in 1 2; do
  timeout 100 $B/mla-bench-old --no-ceilings --iters 20 $C > $L/ab-old-$round.log 2>&1; pack
  timeout 100 $B/mla-bench --no-ceilings --iters 20 $C > $L/ab-new-$round.log 2>&1; pack
done
timeout 240 $B/mla-bench --grid > $L/grid.log 2>&1; echo "grid rc=$?" >> $L/grid.log; pack
