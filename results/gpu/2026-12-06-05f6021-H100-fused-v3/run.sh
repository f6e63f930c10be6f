#!/usr/bin/env bash
# Thirtieth session, call 1 (H100): v3 (TMA) with the fused schedule (no scheduler launch) at small b.
# (1) bench: the same binary in three modes, alternating, two rounds: default (fused v3 up to b=32),
#     MLA_GPU_FUSED_SCHED=0 (scheduler kernel everywhere, = the previous default), =1 (fused up to b=512);
# (2) MLA_DIAG=7 timeline of b=8 / 32 fused vs not, with and without the L2 flush;
# (3) synccheck on the dense quick suite; (4) the whole dense suite (fused-schedule sections for v2 and v3).
set -u
tar -xJf .devcarry/bin1.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s30c1; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
C="--case 1,1,128,1,8192,64,fixed,fixed --case 4,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed"
C="$C --case 16,1,128,1,4096,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen --case 32,2,128,1,4096,64,causal,varlen"
C="$C --case 16,1,16,1,16384,64,fixed,varlen --case 64,1,128,1,2048,64,fixed,varlen --case 128,1,128,1,4096,64,fixed,varlen"
for r in 1 2; do
  call_step "$L" s30c1.tgz b-def-$r 80 "$B/mla-bench" --no-ceilings $C
  call_step "$L" s30c1.tgz b-f0-$r 80 env MLA_GPU_FUSED_SCHED=0 "$B/mla-bench" --no-ceilings $C
  call_step "$L" s30c1.tgz b-f1-$r 80 env MLA_GPU_FUSED_SCHED=1 "$B/mla-bench" --no-ceilings $C
done
for r in 1 2; do for m in def f0 f1; do echo "== $m-$r: $(grep -E "^b=.*[|]" "$L/b-$m-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
T="--case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
call_step "$L" s30c1.tgz tl-def 40 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-d7" --no-ceilings $T
call_step "$L" s30c1.tgz tl-f0 40 env MLA_BENCH_TIMELINE=1 MLA_GPU_FUSED_SCHED=0 "$B/mla-bench-d7" --no-ceilings $T
call_step "$L" s30c1.tgz tl-def-noflush 40 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-d7" --no-ceilings --no-flush $T
call_step "$L" s30c1.tgz tl-f0-noflush 40 env MLA_BENCH_TIMELINE=1 MLA_GPU_FUSED_SCHED=0 "$B/mla-bench-d7" --no-ceilings --no-flush $T
grep -E "^b=|timeline|part bounds|scheduler|r0 prepared|r0 tile 0 landed|r0 tiles done|r0 epilogue done|combine:" "$L"/tl-*.log | cut -c1-170
call_step "$L" s30c1.tgz san-synccheck 60 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 2 "$L/san-synccheck.log"
call_step "$L" s30c1.tgz test_gpu 300 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL|fused schedule" "$L/test_gpu.log" | head -20
