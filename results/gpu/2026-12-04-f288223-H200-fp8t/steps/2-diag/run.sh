#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; } > $L/info.log 2>&1; cat $L/info.log
C="--case 128,1,16,1,4096 --case 128,1,16,1,16384 --case 128,1,32,1,16384 --no-ceilings --kv-dtype fp8"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
timeout 60 $B/mla-bench $C > $L/b-base.log 2>&1; echo "base"; show $L/b-base.log
MLA_FP8_L2_PREFETCH=0 timeout 60 $B/mla-bench $C > $L/b-nopf.log 2>&1; echo "no prefetch"; show $L/b-nopf.log
timeout 60 $B/mla-bench-d1 $C > $L/b-d1.log 2>&1; echo "d1 (no cache reads)"; show $L/b-d1.log
timeout 60 $B/mla-bench-d2 $C > $L/b-d2.log 2>&1; echo "d2 (no consumer work)"; show $L/b-d2.log
MLA_GPU_FP8T=0 MLA_FP8_L2_PREFETCH=0 timeout 60 $B/mla-bench $C > $L/b-narrow.log 2>&1; echo "narrow"; show $L/b-narrow.log
pack
KREGEX=mla_decode_sm90ft OUT=$L BENCH=$B/mla-bench timeout 150 bash tests/gpu/ncu_stalls.sh ft16 --case 128,1,16,1,16384 --kv-dtype fp8 ; echo "ncu16 $?"; pack
KREGEX=mla_decode_sm90ft OUT=$L BENCH=$B/mla-bench timeout 150 bash tests/gpu/ncu_stalls.sh ft32 --case 128,1,32,1,16384 --kv-dtype fp8 ; echo "ncu32 $?"; pack
grep -E "Duration|DRAM Throughput|Memory Throughput|Issued Ipc|Executed Ipc A|No Eligible|Registers Per" $L/ncu_ft16.log | head -12
