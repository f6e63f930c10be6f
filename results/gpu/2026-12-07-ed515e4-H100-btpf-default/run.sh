#!/usr/bin/env bash
# Thirty-third session, call 1: (1) whole dense suite on the BTPF default (bin20, HEAD + default flipped);
# (2) v3 tile accounting, bin14 (MLA_DIAG=9, BTPF off) / bin18 (MLA_DIAG=9, BTPF on);
# (3) two A/B rounds BTPF against f68c9f5 (bin12); (4) the spec grid on bin20.
set -u
for n in 12 14 18 20; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s33c1; mkdir -p "$L"; D=$PWD/.devcarry
call_info "$L"
call_step "$L" s33c1.tgz test_gpu 300 env MLA_GIT_COMMIT=btpf-default "$D/b20/bin/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL" "$L/test_gpu.log" | head -10
A="--case 128,2,128,1,16384,64,causal,varlen --case 128,1,128,1,16384,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed"
A="$A --case 128,1,16,1,16384,64,fixed,varlen --case 128,1,128,1,8192,16,fixed,varlen"
for n in 14 18; do call_step "$L" s33c1.tgz diag$n 30 env MLA_BENCH_TIMELINE=1 MLA_GPU_KERNEL=4 MLA_GIT_COMMIT=diag$n "$D/b$n/bin/mla-bench" --no-ceilings $A; done
grep -h -A12 "accounting" "$L"/diag14.log "$L"/diag18.log | cut -c1-160 | head -80
C="--case 128,1,128,1,8192,64,fixed,varlen --case 128,2,128,1,16384,64,causal,varlen --case 128,1,16,1,16384,64,fixed,varlen"
C="$C --case 128,1,64,1,4096,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
C="$C --case 128,1,128,1,8192,32,fixed,varlen --case 128,1,128,1,8192,16,fixed,varlen --case 2,1,128,1,8192,64,fixed,fixed"
C="$C --case 8,1,64,1,8192,16,fixed,fixed --case 32,1,128,1,2048,16,fixed,varlen"
for r in 1 2; do for n in 12 20; do call_step "$L" s33c1.tgz t$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --no-ceilings $C; done; done
for r in 1 2; do for n in 12 20; do echo "== $n-$r: $(grep -E "^b=.*[|]" "$L/t$n-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
call_step "$L" s33c1.tgz grid 60 env MLA_GIT_COMMIT=btpf-default "$D/b20/bin/mla-bench"
tail -n 14 "$L/grid.log" | cut -c1-150
