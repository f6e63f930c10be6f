#!/usr/bin/env bash
# pages_run.sh — issue #4's page-size target (pages 16 and 128 within 5% of page 64, h_kv = 1) on four
# spec §7 rows: b=128 s_q=1 h_q=16 s_k=16384 (memory-bound), s_q=1 h_q=128 s_k=8192, s_q=2 h_q=128
# s_k=16384 causal (compute-bound), b=8 h_q=128 s_k=8192 fixed; pages 16 / 64 / 128, ROUNDS rounds
# (default 2) in one call. Page 16 runs the cp.async kernel (TMA needs pages of 64k tokens: four
# 16-row boxes per chunk measured 1.6x slower, src/gpu.cu), so its gap is that loader's.
# Env: MLA_BENCH (default build/mla-bench), OUT (default ./device-out), MLA_COMMIT (printed).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-out}; mkdir -p "$OUT"
BENCH=${MLA_BENCH:-build/mla-bench}
args=""
for row in "128,1,16,1,16384" "128,1,128,1,8192" "128,2,128,1,16384" "8,1,128,1,8192"; do
  for pg in 16 64 128; do
    causal=0; case $row in 128,2,*) causal=1 ;; esac
    varlen=1; case $row in 8,*) varlen=0 ;; esac
    args="$args --case $row,$pg,$causal,$varlen"
  done
done
rc=0
for rnd in $(seq 1 "${ROUNDS:-2}"); do
  MLA_GIT_COMMIT=${MLA_COMMIT:-} timeout 120 "$BENCH" $args --no-ceilings > "$OUT/pages-r$rnd.log" 2>&1 || rc=1
  grep -E "^b=|^device" "$OUT/pages-r$rnd.log"
done
exit $rc
