#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
MLA_GPU_KERNEL=8 OUT=$L BENCH=$B/mla-bench KREGEX=mla_decode_sm90qr timeout 240 bash tests/gpu/ncu_stalls.sh qr --case 128,2,128,1,4096,64,causal; pack
