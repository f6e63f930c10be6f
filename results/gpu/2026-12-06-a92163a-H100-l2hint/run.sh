#!/usr/bin/env bash
# Twenty-seventh session, call 1 (H100): a92163a. The bf16 prefill with L2 hints (build option
# MLA_SP_L2HINT: 1 K gather evict-last, 2 K gather L2::256B, 4 Q evict-first, 8 output st.global.cs),
# variants 0 (HEAD) / 1 / 3 / 13 / 15 alternating, three rounds of `mla-bench --sparse-prefill`; then
# ncu stall samples per CUDA source line of the default SSF kernel (V3.2 s_kv 8K, FlashMLA's indices).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c1; mkdir -p "$L"
export MLA_GIT_COMMIT=a92163a
call_info "$L"
for rnd in 1 2 3; do
  for v in l0 l1 l3 l13 l15; do
    bb=$B/mla-bench; [ $v != l0 ] && bb=$B/mla-bench-$v
    call_step "$L" c1.tgz pf-$v-r$rnd 60 "$bb" --sparse-prefill
  done
done
for v in l0 l1 l3 l13 l15; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
t0=$(date +%s)
OUT=$L BENCH=$B/mla-bench BENCH_FLAGS="--prefill-case 4096,8192,128,2048,576,flashmla --iters 1" KREGEX=mla_sp_prefill_576_ssf NCU_SOURCE=cuda timeout 200 bash tests/gpu/ncu_stalls.sh ssf-src
echo "ncu $(( $(date +%s) - t0 )) s"
gzip -f "$L/ncu_src_ssf-src.csv" 2>/dev/null
(cd "$OUT" && tar -czf c1.tgz c1)
grep -E "Duration|Compute \(SM\) Th|L2 Hit" $L/ncu_ssf-src.log | head -5
grep -A25 "== top" $L/ncu_ssf-src.log | cut -c1-200
