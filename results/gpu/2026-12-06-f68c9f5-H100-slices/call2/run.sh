#!/usr/bin/env bash
# Thirty-first session, call 2 (H100): f68c9f5 (bin12: v3 TMA page slices from four warps + SFREE on two
# barrier ids; TMA v3 on pages of 16 / 32) against fcffb00 (bin5). (1) the hang seen with slices alone:
# bin6 (slices), bin10 (slices + __syncwarp), bin12, on the two rows that hung, v3 forced; bin9 (slices,
# MLA_MBAR_WATCH) for the stuck wait's state; (2) timings; (3) whole dense suite, sparse quick, sanitizers.
set -u
T0=$(date +%s)
for n in 5 6 9 10 12; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s31c2; mkdir -p "$L"; D=$PWD/.devcarry
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
H="--case 128,1,64,1,4096,16,fixed,varlen --case 128,1,16,1,16384,16,fixed,varlen"
for i in 1 2; do for n in 6 10 12; do
  call_step "$L" s31c2.tgz h-b$n-$i 12 env MLA_GPU_KERNEL=4 MLA_GIT_COMMIT=b$n "$D/b$n/bin/mla-bench" --no-ceilings $H
done; done
call_step "$L" s31c2.tgz h-b12-3 12 env MLA_GIT_COMMIT=f68c9f5 "$D/b12/bin/mla-bench" --no-ceilings $H
call_step "$L" s31c2.tgz h-b9-1 20 env MLA_GPU_KERNEL=4 MLA_GIT_COMMIT=b9 "$D/b9/bin/mla-bench" --no-ceilings --iters 20 $H
grep -m6 MBAR_WATCH "$L/h-b9-1.log"; echo "watch lines: $(grep -c MBAR_WATCH "$L/h-b9-1.log")"
for f in "$L"/h-*.log; do echo "$(basename $f): $(grep -E "^b=.*[|]" "$f" | awk '{print $(NF-9)}' | tr '\n' ' ') $(tail -n1 "$f")"; done
P="--case 128,1,128,1,8192,16,fixed,varlen --case 128,2,128,1,16384,16,causal,varlen --case 8,1,128,1,8192,16,fixed,fixed"
P="$P --case 32,1,128,1,2048,16,fixed,varlen --case 128,1,16,1,16384,16,fixed,varlen --case 128,1,64,1,4096,16,fixed,varlen"
P="$P --case 2,1,128,1,8192,16,fixed,fixed --case 128,1,128,1,8192,32,fixed,varlen"
P64=$(echo "$P" | sed 's/,\(16\|32\),\(fixed\|causal\)/,64,\2/g')
for r in 1 2; do
  call_step "$L" s31c2.tgz p16-old-$r 40 env MLA_GIT_COMMIT=fcffb00 "$D/b5/bin/mla-bench" --no-ceilings $P
  call_step "$L" s31c2.tgz p16-new-$r 40 env MLA_GIT_COMMIT=f68c9f5 "$D/b12/bin/mla-bench" --no-ceilings $P
  call_step "$L" s31c2.tgz p64-old-$r 40 env MLA_GIT_COMMIT=fcffb00 "$D/b5/bin/mla-bench" --no-ceilings $P64
  call_step "$L" s31c2.tgz p64-new-$r 40 env MLA_GIT_COMMIT=f68c9f5 "$D/b12/bin/mla-bench" --no-ceilings $P64
done
for r in 1 2; do for m in p16-old p16-new p64-old p64-new; do echo "== $m-$r: $(grep -E "^b=.*[|]" "$L/$m-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ') $(tail -n1 "$L/$m-$r.log")"; done; done
C="--case 1,1,128,1,8192,64,fixed,fixed --case 2,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed"
C="$C --case 32,1,128,1,2048,64,fixed,varlen --case 1,1,128,1,8192,16,fixed,fixed --case 8,1,64,1,8192,16,fixed,fixed"
C="$C --case 2,2,128,1,4096,16,causal,fixed --case 4,1,128,1,8192,32,fixed,fixed"
call_step "$L" s31c2.tgz c-old 40 env MLA_GIT_COMMIT=fcffb00 "$D/b5/bin/mla-bench" --no-ceilings $C
call_step "$L" s31c2.tgz c-new 40 env MLA_GIT_COMMIT=f68c9f5 "$D/b12/bin/mla-bench" --no-ceilings $C
for m in c-old c-new; do echo "== $m: $(grep -E "^b=.*[|]" "$L/$m.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done
call_step "$L" s31c2.tgz q-new 25 env MLA_GIT_COMMIT=f68c9f5 "$D/b12/bin/mla-bench" --quick --no-ceilings
grep -E "^b=.*[|]" "$L/q-new.log" | cut -c1-110
call_step "$L" s31c2.tgz test_gpu 280 env MLA_GIT_COMMIT=f68c9f5 "$D/b12/bin/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL|fused schedule|stress" "$L/test_gpu.log" | head -20
call_step "$L" s31c2.tgz test_gpu_sparse-quick 40 "$D/b12/bin/test_gpu_sparse" --quick
tail -n 1 "$L/test_gpu_sparse-quick.log"
[ $(( $(date +%s) - T0 )) -gt 500 ] && { echo "skip sanitizers (time)"; exit 0; }
call_step "$L" s31c2.tgz racecheck-k4 60 env MLA_GPU_KERNEL=4 compute-sanitizer --tool racecheck "$D/b12/bin/test_gpu" --quick
tail -n 2 "$L/racecheck-k4.log"; grep "Race reported" -A1 "$L/racecheck-k4.log" | grep -o "at [a-z_0-9]*(" | sort | uniq -c | head
[ $(( $(date +%s) - T0 )) -gt 545 ] && { echo "skip memcheck (time)"; exit 0; }
call_step "$L" s31c2.tgz memcheck-k4 30 env MLA_GPU_KERNEL=4 compute-sanitizer --tool memcheck --error-exitcode 99 "$D/b12/bin/test_gpu" --quick
tail -n 2 "$L/memcheck-k4.log"
