#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
for c in 128,1,16,1,4096 128,1,16,1,16384 128,1,64,1,4096; do
  ncu --metrics gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,dram__bytes_read.sum,launch__grid_size $B/mla-bench --no-ceilings --no-graph --iters 1 --warmup 0 --case $c > $L/ncu_durations_$c.log 2>&1; pack
done
timeout 60 $B/mla-bench --no-ceilings --iters 20 --case 128,1,16,1,4096 --case 128,1,64,1,4096 --case 128,1,16,1,4096,64,fixed --reuse-schedule > $L/bench-reuse.log 2>&1
timeout 60 $B/mla-bench --no-ceilings --iters 20 --case 128,1,16,1,4096 --case 128,1,64,1,4096 --case 128,1,16,1,4096,64,fixed > $L/bench.log 2>&1; pack
