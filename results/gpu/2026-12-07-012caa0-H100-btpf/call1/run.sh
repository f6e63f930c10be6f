#!/usr/bin/env bash
# Thirty-second session, call 1: v3 tile-loop accounting (bin14 = MLA_DIAG=9, bin15 = + MLA_V3_SLICES=3);
# A/B, three alternating rounds: f68c9f5 (bin12) / slices 3 (bin13) / slices 3 + block-table prefetch (bin16)
# / prefetch alone (bin17); quick suites with v3 forced for 13 / 16 / 17.
set -u
for n in 12 13 14 15 16 17; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s32c1; mkdir -p "$L"; D=$PWD/.devcarry
call_info "$L"
for n in 13 16 17; do call_step "$L" s32c1.tgz q$n-k4 40 env MLA_GPU_KERNEL=4 "$D/b$n/bin/test_gpu" --quick; done
A="--case 128,2,128,1,16384,64,causal,varlen --case 128,1,128,1,16384,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed"
A="$A --case 128,1,16,1,16384,64,fixed,varlen --case 128,1,128,1,8192,16,fixed,varlen"
for n in 14 15; do call_step "$L" s32c1.tgz diag$n 60 env MLA_BENCH_TIMELINE=1 MLA_GPU_KERNEL=4 MLA_GIT_COMMIT=diag$n "$D/b$n/bin/mla-bench" --no-ceilings $A; done
grep -h "accounting" "$L"/diag14.log "$L"/diag15.log | sed 's/cycles per tile//'
C="--case 128,1,128,1,8192,64,fixed,varlen --case 128,2,128,1,16384,64,causal,varlen --case 128,1,16,1,16384,64,fixed,varlen"
C="$C --case 128,1,64,1,4096,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
C="$C --case 128,1,128,1,8192,32,fixed,varlen --case 128,1,128,1,8192,16,fixed,varlen"
for r in 1 2 3; do for n in 12 13 16 17; do
  call_step "$L" s32c1.tgz t$n-$r 40 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --no-ceilings $C
done; done
for r in 1 2 3; do for n in 12 13 16 17; do echo "== $n-$r: $(grep -E "^b=.*[|]" "$L/t$n-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ') $(tail -n1 "$L/t$n-$r.log")"; done; done
