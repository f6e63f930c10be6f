#!/usr/bin/env bash
# Twenty-eighth session, call 4 (H100): the per-CTA timeline build (d01d427 with MLA_DEFS=-DMLA_DIAG=7;
# kernels/common.cuh) on the small-batch rows of issue #4: b=1 / 8 s_k=8192 fixed, b=32 s_k=2048 varlen,
# h_q=128, and the timing build's own whole-call times beside the default build's (same call).
set -u
tar -xJf .devcarry/bin4.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin4; L=$OUT/c4; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
C="--case 1,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
call_step "$L" c4.tgz tl 60 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-d7" --no-ceilings $C
call_step "$L" c4.tgz def 60 "$B/mla-bench" --no-ceilings $C
grep -E "^b=|^timeline|^  " "$L/tl.log" | cut -c1-140
grep -E "^b=" "$L/def.log" | cut -c1-70
