#!/usr/bin/env bash
# MLA_V3_KEEPMAX (bin31: HEAD + the quad-shuffle skip, the default) against dc560e1 (bin29): three
# alternating A/B rounds, then the whole dense suite on bin31, then the grid on both.
set -u
for n in 29 31; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s35c9; mkdir -p "$L"; D=$PWD/.devcarry; T=s35c9.tgz
call_info "$L"
C="--case 128,1,128,1,8192,64,fixed,varlen --case 128,2,128,1,16384,64,causal,varlen --case 128,1,16,1,16384,64,fixed,varlen"
C="$C --case 128,1,64,1,4096,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
C="$C --case 128,1,128,1,8192,16,fixed,varlen --case 2,1,128,1,8192,64,fixed,fixed --case 128,2,128,1,4096,64,causal,varlen"
for r in 1 2 3; do for n in 29 31; do call_step "$L" $T t$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --no-ceilings $C; done; done
for r in 1 2 3; do for n in 29 31; do echo "== $n-$r: $(grep -E "^b=.*[|]" "$L/t$n-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
call_step "$L" $T test_gpu-31 300 env MLA_GIT_COMMIT=keepmax "$D/b31/bin/test_gpu"
tail -n 2 "$L/test_gpu-31.log" | head -1
for n in 31 29; do call_step "$L" $T grid$n 60 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench"; tail -n 9 "$L/grid$n.log" | head -7 | cut -c1-100; done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
