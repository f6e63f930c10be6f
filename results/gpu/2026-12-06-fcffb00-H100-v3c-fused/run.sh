#!/usr/bin/env bash
# Thirty-first session, call 1 (H100): fcffb00 (= 3e7f250 restored: v3c fused entries, choice rule without
# the page condition) against 4555288 (bin3) on small-batch rows at pages 64 / 16 / 32, two alternating
# rounds; --quick; the whole dense suite; racecheck (v3c and v3 forced, --quick) and memcheck (v3c).
set -u
T0=$(date +%s)
for n in 3 5 6; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
B3=$PWD/.devcarry/b3/bin; B=$PWD/.devcarry/b5/bin; B6=$PWD/.devcarry/b6/bin; L=$OUT/s31c1; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
C="--case 1,1,128,1,8192,64,fixed,fixed --case 2,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed"
C="$C --case 8,1,64,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
C="$C --case 1,1,128,1,8192,16,fixed,fixed --case 2,1,128,1,8192,16,fixed,fixed --case 3,1,128,1,8192,16,fixed,fixed"
C="$C --case 8,1,128,1,8192,16,fixed,fixed --case 32,1,128,1,2048,16,fixed,varlen --case 64,1,128,1,2048,16,fixed,varlen"
C="$C --case 8,1,64,1,8192,16,fixed,fixed --case 2,1,128,1,8192,32,fixed,fixed --case 16,1,64,1,4096,32,fixed,varlen"
C="$C --case 2,2,128,1,4096,16,causal,fixed --case 4,1,128,1,8192,32,fixed,fixed"
for r in 1 2; do
  call_step "$L" s31c1.tgz c-old-$r 60 env MLA_GIT_COMMIT=4555288 "$B3/mla-bench" --no-ceilings $C
  call_step "$L" s31c1.tgz c-new-$r 60 "$B/mla-bench" --no-ceilings $C
done
for r in 1 2; do for m in c-old c-new; do echo "== $m-$r: $(grep -E "^b=.*[|]" "$L/$m-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
# page-16 TMA experiment: v3 forced (MLA_GPU_KERNEL=4) with one issuing thread (bin5) and with one warp per
# page slice (bin6, MLA_V3_SLICES=1), against the default (v3c / v2) and page 64; same lengths per page size
P="--case 128,1,128,1,8192,16,fixed,varlen --case 128,2,128,1,16384,16,causal,varlen --case 8,1,128,1,8192,16,fixed,fixed"
P="$P --case 32,1,128,1,2048,16,fixed,varlen --case 128,1,16,1,16384,16,fixed,varlen --case 128,1,64,1,4096,16,fixed,varlen"
P64=$(echo "$P" | sed 's/,16,\(fixed\|causal\)/,64,\1/g')
call_step "$L" s31c1.tgz q6-k4 40 env MLA_GPU_KERNEL=4 "$B6/test_gpu" --quick
tail -n 1 "$L/q6-k4.log"
for r in 1 2; do
  call_step "$L" s31c1.tgz p16-def-$r 60 "$B/mla-bench" --no-ceilings $P
  call_step "$L" s31c1.tgz p16-k4-$r 60 env MLA_GPU_KERNEL=4 "$B/mla-bench" --no-ceilings $P
  call_step "$L" s31c1.tgz p16-k4sl-$r 60 env MLA_GPU_KERNEL=4 MLA_GIT_COMMIT=slices "$B6/mla-bench" --no-ceilings $P
  call_step "$L" s31c1.tgz p64-def-$r 60 "$B/mla-bench" --no-ceilings $P64
done
for r in 1 2; do for m in p16-def p16-k4 p16-k4sl p64-def; do echo "== $m-$r: $(grep -E "^b=.*[|]" "$L/$m-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
call_step "$L" s31c1.tgz q-1 25 "$B/mla-bench" --quick --no-ceilings
call_step "$L" s31c1.tgz test_gpu 270 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL|fused schedule" "$L/test_gpu.log" | head -20
for k in 13 4; do
  [ $(( $(date +%s) - T0 )) -gt 430 ] && { echo "skip racecheck-k$k (time)"; continue; }
  call_step "$L" s31c1.tgz racecheck-k$k 90 env MLA_GPU_KERNEL=$k compute-sanitizer --tool racecheck "$B/test_gpu" --quick
  tail -n 3 "$L/racecheck-k$k.log"; grep "Race reported" -A1 "$L/racecheck-k$k.log" | grep -o "at [a-z_0-9]*(" | sort | uniq -c | head
done
[ $(( $(date +%s) - T0 )) -gt 500 ] && { echo "skip memcheck (time)"; exit 0; }
call_step "$L" s31c1.tgz memcheck-k13 60 env MLA_GPU_KERNEL=13 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 3 "$L/memcheck-k13.log"
