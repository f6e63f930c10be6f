#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
C="--case 128,2,128,1,16384,64,causal --case 128,2,128,1,8192,64,causal --case 128,2,128,1,4096,64,causal --case 128,1,128,1,16384 --case 128,1,128,1,4096 --case 128,2,64,1,16384,64,causal --case 128,2,64,1,4096,64,causal --case 128,1,64,1,16384 --case 128,1,16,1,16384 --case 128,2,32,1,16384,64,causal"
for round in 1 2 3; do
  for e in 0 1; do MLA_GPU_K_EVICT_FIRST=$e timeout 60 $B/mla-bench --no-ceilings --iters 20 $C > $L/r${round}-ef$e.log 2>&1; done; pack
done
MLA_GPU_K_EVICT_FIRST=1 MLA_GPU_KERNEL=4 timeout 100 $B/test_gpu --quick > $L/quick4-ef1.log 2>&1; echo "rc=$?" >> $L/quick4-ef1.log; pack
