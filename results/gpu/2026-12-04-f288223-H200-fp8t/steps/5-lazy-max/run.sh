#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc $(( $(date +%s) - t0 )) s"; tail -1 $L/quick.log; grep -m8 FAIL $L/quick.log | cut -c1-300; pack
[ $rc = 0 ] || exit 0
F="--case 128,1,16,1,4096 --case 128,1,16,1,8192 --case 128,1,16,1,16384 --case 128,1,32,1,4096 --case 128,1,32,1,8192 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --no-ceilings"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/fp8-default.log 2>&1; echo "== fp8 default"; show $L/fp8-default.log
MLA_GPU_FP8T=1 timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/fp8-ft.log 2>&1; echo "== fp8 FP8T=1"; show $L/fp8-ft.log
MLA_GPU_FP8T=0 timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/fp8-narrow.log 2>&1; echo "== fp8 FP8T=0"; show $L/fp8-narrow.log
timeout 60 $B/mla-bench $F > $L/bf16.log 2>&1; echo "== bf16"; show $L/bf16.log
pack
for v in 0 1 2 3; do timeout 60 compute-sanitizer --tool racecheck $B/rcn $v > $L/rcn-$v.log 2>&1; echo "rcn $v rc=$?: $(grep variant $L/rcn-$v.log) | $(tail -1 $L/rcn-$v.log)"; done; pack
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 99 $B/test_gpu --quick > $L/san-racecheck.log 2>&1; echo "racecheck rc=$?: $(tail -1 $L/san-racecheck.log)"; grep -A1 "Race reported" $L/san-racecheck.log | grep -o "[a-z_0-9]*\.cu[h]*:[0-9]*" | paste - - | sort | uniq -c; pack
