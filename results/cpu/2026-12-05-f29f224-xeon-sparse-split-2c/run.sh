#!/bin/bash
# Sparse decode key splits (f29f224): the same binary with the split (default) and without
# (MLA_CPU_SPLIT_CHUNKS=4096: ranges of 4096 chunks never split a 2048-entry list), alternating,
# round by round, per CPU kernel; 2 threads (all cores of the VM).
# Usage: [ROUNDS="1 2 3"] bash results/cpu/<this folder>/run.sh OUTDIR
set -u
OUT=${1:?outdir}
mkdir -p "$OUT"
ROOT=$(git rev-parse --show-toplevel)
rm -rf /tmp/rb/f29f224; mkdir -p /tmp/rb/f29f224
git -C "$ROOT" archive f29f224 | tar -x -C /tmp/rb/f29f224
make -C /tmp/rb/f29f224 -j2 MLA_CUDA=0 BUILD=b MLA_GIT_COMMIT=f29f224 b/mla-bench >/dev/null 2>&1 || { echo build failed; exit 1; }
for r in ${ROUNDS:-1 2 3}; do
  for k in amx avx512 avx2; do
    for mode in split unsplit; do
      sc=8; [ $mode = unsplit ] && sc=4096
      MLA_CPU_KERNEL=$k MLA_CPU_SPLIT_CHUNKS=$sc /tmp/rb/f29f224/b/mla-bench --device cpu --sparse-decode \
        > "$OUT/sparse-decode-$k-$mode-r$r.log" 2>&1
    done
  done
done
