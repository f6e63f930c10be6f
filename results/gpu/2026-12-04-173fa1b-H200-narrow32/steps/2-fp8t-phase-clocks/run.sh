#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
timeout 60 $B/fence_cost > $L/fence_cost.log 2>&1; echo "fence rc=$?"; cat $L/fence_cost.log; pack
for c in 128,1,32,1,16384 128,1,16,1,16384 128,1,32,1,4096; do
MLA_GPU_FP8T=1 timeout 60 $B/mla-bench-d3 --case $c --no-ceilings --kv-dtype fp8 > $L/d3-$c.log 2>&1; echo "== $c"; grep -E "varlen|FTDIAG" $L/d3-$c.log | grep -v "\.\.\." | cut -c1-140; pack
done
