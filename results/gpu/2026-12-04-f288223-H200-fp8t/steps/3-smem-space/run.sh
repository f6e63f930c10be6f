#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; } > $L/info.log 2>&1; cat $L/info.log
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc $(( $(date +%s) - t0 )) s"; tail -1 $L/quick.log; grep -m8 FAIL $L/quick.log | cut -c1-300; pack
[ $rc = 0 ] || exit 0
F="--case 128,1,16,1,4096 --case 128,1,16,1,16384 --case 128,1,32,1,4096 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --no-ceilings --kv-dtype fp8"
D="--case 128,1,16,1,16384 --case 128,1,64,1,8192 --case 128,1,128,1,8192 --case 128,2,128,1,16384,64,causal --case 1,1,128,1,8192,64,0,0 --case 8,1,128,1,8192,64,0,0 --no-ceilings"
show() { grep -E "varlen|fixed|b=1 |b=8 " $1 | grep -v "\.\.\." | cut -c1-100; }
for v in new old; do
  X=$B/mla-bench; [ $v = old ] && X=$B/mla-bench-old
  timeout 60 $X $F > $L/fp8t-$v.log 2>&1; echo "== $v fp8 default"; show $L/fp8t-$v.log
  MLA_GPU_FP8T=0 timeout 60 $X $F > $L/fp8n-$v.log 2>&1; echo "== $v fp8 narrow"; show $L/fp8n-$v.log
  timeout 60 $X $D > $L/bf16-$v.log 2>&1; echo "== $v bf16"; show $L/bf16-$v.log
  timeout 90 $X --sparse-decode --quick > $L/spd-$v.log 2>&1; echo "== $v sparse decode rc=$?"; grep "sparse decode" $L/spd-$v.log | cut -c1-110 | head -6
  timeout 90 $X --sparse-prefill --quick > $L/spp-$v.log 2>&1; echo "== $v sparse prefill rc=$?"; grep "sparse prefill" $L/spp-$v.log | cut -c1-110 | head -6
  pack
done
timeout 120 compute-sanitizer --tool racecheck --error-exitcode 99 $B/test_gpu --quick > $L/san-racecheck.log 2>&1; echo "racecheck rc=$?: $(tail -1 $L/san-racecheck.log)"; grep -A1 "Race reported" $L/san-racecheck.log | grep -o "[a-z_0-9]*\.cu[h]*:[0-9]*" | paste - - | sort | uniq -c; pack
