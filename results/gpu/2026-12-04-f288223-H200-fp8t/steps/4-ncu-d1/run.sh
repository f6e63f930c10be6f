#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc $(( $(date +%s) - t0 )) s"; tail -1 $L/quick.log; grep -m8 FAIL $L/quick.log | cut -c1-300; pack
[ $rc = 0 ] || exit 0
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 99 $B/test_gpu --quick > $L/san-racecheck.log 2>&1; echo "racecheck rc=$?: $(tail -1 $L/san-racecheck.log)"; grep -A1 "Race reported" $L/san-racecheck.log | grep -o "[a-z_0-9]*\.cu[h]*:[0-9]*" | paste - - | sort | uniq -c; pack
KREGEX=mla_decode_sm90ft OUT=$L BENCH=$B/mla-bench-d1 timeout 150 bash tests/gpu/ncu_stalls.sh d1ft32 --case 128,1,32,1,16384 --kv-dtype fp8 ; echo "ncu $?"; pack
grep -E "Duration|Issued Ipc|Warp Cycles Per Issued|Stall Long|Stall Wait|Stall Barrier|Stall Short|Stall GMMA|Stall Math|Pipe Shared" $L/ncu_d1ft32.log | head -12
awk 'NR>300' $L/ncu_d1ft32.log | grep "%  0x" | head -25 | cut -c1-150
