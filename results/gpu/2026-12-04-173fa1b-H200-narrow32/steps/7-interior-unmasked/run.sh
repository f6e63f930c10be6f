#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; echo "quick rc=$?: $(tail -1 $L/quick.log)"; grep -m5 FAIL $L/quick.log | cut -c1-250; pack
timeout 90 $B/test_gpu --fp8 > $L/test_gpu_fp8.log 2>&1; echo "fp8 rc=$?: $(tail -1 $L/test_gpu_fp8.log)"; grep -m8 FAIL $L/test_gpu_fp8.log | cut -c1-250; pack
F="--case 128,1,16,1,4096 --case 128,1,16,1,16384 --case 128,1,32,1,4096 --case 128,1,32,1,8192 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --no-ceilings"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
for rep in 1 2; do
timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/bench-new-$rep.log 2>&1; echo "== new (interior tiles unmasked) $rep"; show $L/bench-new-$rep.log
timeout 60 $B/mla-bench-old $F --kv-dtype fp8 > $L/bench-old-$rep.log 2>&1; echo "== e77f861 $rep"; show $L/bench-old-$rep.log; pack
done
