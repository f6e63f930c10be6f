#!/usr/bin/env bash
# Thirtieth session, call 2 (H100). bin1 = 05f6021 (fused v3, sched_fused in 64-bit), bin2 = e810fc7
# (sched_fused in 32-bit). (1) old vs new fused schedule, both with MLA_GPU_FUSED_SCHED=1 (fused up
# to b=512), two alternating rounds; (2) kernel choice at small b with bin2: default / MLA_GPU_KERNEL=4
# (v3 everywhere) / MLA_GPU_KERNEL=3 MLA_GPU_FUSED_SCHED=1 (v2 everywhere, fused), two rounds;
# (3) bin2's MLA_DIAG=7 timeline of b=1 / 8; (4) bin2's whole dense suite; synccheck on its quick suite.
set -u
for n in 1 2; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
B1=$PWD/.devcarry/b1/bin; B=$PWD/.devcarry/b2/bin; L=$OUT/s30c2; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
S="--case 1,1,128,1,8192,64,fixed,fixed --case 4,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed"
S="$S --case 32,1,128,1,2048,64,fixed,varlen --case 64,1,128,1,2048,64,fixed,varlen --case 128,1,16,1,4096,64,fixed,varlen"
for r in 1 2; do
  call_step "$L" s30c2.tgz s-old-$r 60 env MLA_GIT_COMMIT=05f6021 MLA_GPU_FUSED_SCHED=1 "$B1/mla-bench" --no-ceilings $S
  call_step "$L" s30c2.tgz s-new-$r 60 env MLA_GPU_FUSED_SCHED=1 "$B/mla-bench" --no-ceilings $S
done
C="--case 1,1,128,1,8192,64,fixed,fixed --case 2,1,128,1,8192,64,fixed,fixed --case 3,1,128,1,8192,64,fixed,fixed"
C="$C --case 2,2,128,1,4096,64,causal,fixed --case 1,1,16,1,16384,64,fixed,fixed --case 4,1,16,1,16384,64,fixed,fixed"
C="$C --case 4,1,64,1,8192,64,fixed,fixed --case 8,1,64,1,8192,64,fixed,fixed --case 8,1,16,1,8192,64,fixed,fixed"
C="$C --case 12,1,64,1,4096,64,fixed,varlen --case 12,1,32,1,4096,64,fixed,varlen"
for r in 1 2; do
  call_step "$L" s30c2.tgz k-def-$r 80 "$B/mla-bench" --no-ceilings $C
  call_step "$L" s30c2.tgz k-k4-$r 80 env MLA_GPU_KERNEL=4 "$B/mla-bench" --no-ceilings $C
  call_step "$L" s30c2.tgz k-k3f-$r 80 env MLA_GPU_KERNEL=3 MLA_GPU_FUSED_SCHED=1 "$B/mla-bench" --no-ceilings $C
done
for r in 1 2; do for m in s-old s-new k-def k-k4 k-k3f; do echo "== $m-$r: $(grep -E "^b=.*[|]" "$L/$m-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
T="--case 1,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed"
call_step "$L" s30c2.tgz tl 40 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-d7" --no-ceilings $T
grep -E "^b=|part bounds|r0 prepared|r0 tile 0 landed|combine:" "$L/tl.log" | cut -c1-130
call_step "$L" s30c2.tgz san-synccheck 60 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 1 "$L/san-synccheck.log"
call_step "$L" s30c2.tgz test_gpu 300 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL|fused schedule" "$L/test_gpu.log" | head -20
