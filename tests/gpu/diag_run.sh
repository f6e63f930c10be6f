#!/usr/bin/env bash
# diag_run.sh — timing experiments on the GPU machine: the normal build against builds made with
# MLA_DEFS=-DMLA_DIAG=N (kernels/decode_sm90.cu: 1 no K loads after a request's first tile, 2 no
# wgmma, 3 neither), on the cases that matter for issue 4. Results of the diag builds are wrong by
# design; only their times mean something. Output under $OUT (default ./device-out). The switches act
# in sm90_body, the cp.async kernel (b < 64, MLA_GPU_KERNEL=3); the TMA kernel (tma_body) has none.
# Env: DIAGS (default "1 2 3"), CASES (mla-bench --case list), ITERS (default 20).
# (MLA_DIAG=7 is different: results stay correct, and `MLA_BENCH_TIMELINE=1 build-diag7/mla-bench --case ...`
# prints each case's per-CTA timeline of sm90_body / tma_body, combine and scheduler; docs/performance.md §13.)
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
JOBS=${JOBS:-16}
ITERS=${ITERS:-20}
CASES=${CASES:-"1,1,128,1,8192,64,0,0 8,1,128,1,8192,64,0,0 32,1,128,1,2048,64,0,1 128,1,16,1,16384,64,0,1 128,1,128,1,16384,64,0,1 128,2,128,1,16384,64,1,1"}
args=""
for c in $CASES; do args="$args --case $c"; done
for d in ${DIAGS:-1 2 3}; do
  t0=$(date +%s)
  { make -j"$JOBS" BUILD=build-diag$d MLA_DEFS=-DMLA_DIAG=$d build-diag$d/mla-bench 2>&1; echo "make rc=$?"; } \
    > "$OUT/build-diag$d.log"
  tail -1 "$OUT/build-diag$d.log"
  echo "diag$d build: $(( $(date +%s) - t0 )) s"
  MLA_GIT_COMMIT="${MLA_COMMIT:-unknown}+diag$d" timeout 120 ./build-diag$d/mla-bench --no-ceilings --iters "$ITERS" $args \
    2>&1 | tee "$OUT/bench-diag$d.log" | grep -E "^b=" || true
done
