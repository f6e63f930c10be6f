#!/usr/bin/env bash
# Twenty-eighth session, call 3 (H100): e5a20e0's default build. ncu stall samples (SASS page, kept
# whole for tests/gpu/ncu_lines.py) of the dense TMA kernel on s_q=2 h_q=128 s_k=16384 causal and of
# the SSF prefill on V3.2 s_kv 8K (FlashMLA's indices); clocks left alone (--clock-control none).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c3; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
OUT=$L BENCH=$B/mla-bench-new KREGEX=mla_decode_sm90tma_bf16_576 BENCH_FLAGS="--no-ceilings --no-graph --iters 1 --warmup 0 --case 128,2,128,1,16384,64,causal,varlen" timeout 200 bash tests/gpu/ncu_stalls.sh tma_s2h128
(cd "$OUT" && tar -czf c3.tgz c3)
grep -E "Duration|ncu rc" $L/ncu_tma_s2h128.log | head -3
OUT=$L BENCH=$B/mla-bench-new KREGEX=mla_sp_prefill_576_ssf BENCH_FLAGS="--prefill-case 4096,8192,128,2048,576,flashmla --iters 1" timeout 200 bash tests/gpu/ncu_stalls.sh ssf8k
(cd "$OUT" && tar -czf c3.tgz c3)
grep -E "Duration|ncu rc" $L/ncu_ssf8k.log | head -3
