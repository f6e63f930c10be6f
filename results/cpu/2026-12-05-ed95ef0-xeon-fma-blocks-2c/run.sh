#!/bin/bash
# Builds 329ccdc (before), 145bfb5 (AVX-512 FMA blocking) and ed95ef0 (+ no dense software
# prefetch) from git and times them alternating, round by round, on the CPU path (2 threads).
# Usage: [ROUNDS="1 2"] bash results/cpu/<this folder>/run.sh OUTDIR
set -u
OUT=${1:?outdir}
mkdir -p "$OUT"
ROOT=$(git rev-parse --show-toplevel)
for c in 329ccdc 145bfb5 ed95ef0; do
  rm -rf /tmp/rb/$c; mkdir -p /tmp/rb/$c
  git -C "$ROOT" archive $c | tar -x -C /tmp/rb/$c
  make -C /tmp/rb/$c -j2 MLA_CUDA=0 BUILD=b MLA_GIT_COMMIT=$c b/mla-bench >/dev/null 2>&1 || { echo "build $c failed"; exit 1; }
done
CASES="--case 1,1,16,1,4096 --case 1,1,16,1,16384 --case 16,1,16,1,4096 --case 16,1,16,1,4096,16
       --case 2,1,128,1,2048 --case 8,1,128,1,8192 --case 4,2,64,1,4096,64,1 --case 4,1,64,1,4096"
for r in ${ROUNDS:-1 2}; do  # ROUNDS="3": a further round into the same folder
  for k in avx512 amx avx2; do
    for c in 329ccdc 145bfb5 ed95ef0; do
      [ $k != avx512 ] && [ $c = 145bfb5 ] && continue  # 145bfb5 changed the AVX-512 FMA build only
      MLA_CPU_KERNEL=$k /tmp/rb/$c/b/mla-bench --device cpu $CASES --iters 5 --no-ceilings \
        > "$OUT/dense-$k-$c-r$r.log" 2>&1
      MLA_CPU_KERNEL=$k /tmp/rb/$c/b/mla-bench --device cpu --sparse --quick \
        > "$OUT/sparse-$k-$c-r$r.log" 2>&1
    done
  done
done
gcc -O2 -o /tmp/rb/cpu_dp_rate "$ROOT/bench/micro/cpu_dp_rate.c" && /tmp/rb/cpu_dp_rate > "$OUT/cpu_dp_rate.log"
(cd /tmp/rb/ed95ef0 && make -j2 MLA_CUDA=0 BUILD=b b/libmla.a >/dev/null 2>&1 &&
 gcc -O2 -std=gnu11 -Iinclude -Isrc -Iref -pthread bench/micro/cpu_fma_blocks.c b/libmla.a -lm \
     -o /tmp/rb/cpu_fma_blocks) && /tmp/rb/cpu_fma_blocks > "$OUT/cpu_fma_blocks.log"
