#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
timeout 60 $B/cvt_rate > $L/cvt_rate.log 2>&1; echo "cvt rc=$?"; cat $L/cvt_rate.log; pack
OUT=$L BENCH=$B/mla-bench KREGEX=mla_decode_sm90ft32 timeout 240 bash tests/gpu/ncu_stalls.sh ft32 --case 128,1,32,1,16384 --kv-dtype fp8; echo "ncu rc=$?"; pack
grep -E "Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Issued Ipc|Warp Cycles Per Issued|Executed Ipc" $L/ncu_ft32.log | head -12
grep -A45 "== top SASS" $L/ncu_ft32.log | cut -c1-230
