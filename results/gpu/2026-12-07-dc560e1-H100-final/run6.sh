#!/usr/bin/env bash
# Probe: issue #4's page-16 row at b=8 (+7-9% over page 64 in call 5): v3 with TMA page slices (the
# default) against v3c (cp.async gather, MLA_GPU_V3C=1, the rule before §32) at small batches, three
# alternating rounds, bin29 (dc560e1's kernels).
set -u
mkdir -p .devcarry/b29 && tar -xJf .devcarry/bin29.txz -C .devcarry/b29
. .devcarry/calls.sh
L=$OUT/s35c6; mkdir -p "$L"; D=$PWD/.devcarry/b29/bin; T=s35c6.tgz
export MLA_GIT_COMMIT=dc560e1
call_info "$L"
C="--case 8,1,128,1,8192,16,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,32,fixed,fixed"
C="$C --case 4,1,128,1,8192,16,fixed,fixed --case 16,1,128,1,4096,16,fixed,fixed --case 32,1,128,1,2048,16,fixed,varlen"
C="$C --case 64,1,128,1,4096,16,fixed,varlen --case 2,1,128,1,8192,16,fixed,fixed --case 1,1,128,1,8192,16,fixed,fixed"
for r in 1 2 3; do
  call_step "$L" $T def-$r 30 "$D/mla-bench" --no-ceilings $C
  call_step "$L" $T v3c-$r 30 env MLA_GPU_V3C=1 "$D/mla-bench" --no-ceilings $C
done
for r in 1 2 3; do for v in def v3c; do echo "== $v-$r: $(grep -E "^b=.*[|]" "$L/$v-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
