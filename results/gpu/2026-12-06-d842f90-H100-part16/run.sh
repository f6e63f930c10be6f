#!/usr/bin/env bash
# Twenty-ninth session, call 1 (H100): bf16 split partials (MLA_GPU_PART16, default on) and b = 1's Q
# and block_table prefetch before the part bounds (MLA_V2_QENTRY 2; builds xq0 / xq1: 0 / 1). (1) --quick and the dense grid with fp32 partials
# (MLA_GPU_PART16=0) and bf16, with the MLA_V2_QENTRY=0 / 1 builds (xq0 / xq1) and the MLA_SCHED_FIXED_COST=4
# build (xf4), alternating, two rounds of --quick; the sparse decode headline;
# (2) the whole dense suite, the sparse quick suite; (3) synccheck on both quick suites (the
# per-base descriptor SASS of e5a20e0 had none), racecheck on the dense quick suite.
set -u
tar -xJf .devcarry/bin1.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c1; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
for i in 1 2; do
  call_step "$L" c1.tgz q32-$i 40 env MLA_GPU_PART16=0 "$B/mla-bench" --quick --no-ceilings
  call_step "$L" c1.tgz q16-$i 40 "$B/mla-bench" --quick --no-ceilings
  call_step "$L" c1.tgz qq0-$i 40 "$B/mla-bench-xq0" --quick --no-ceilings
  call_step "$L" c1.tgz qq1-$i 40 "$B/mla-bench-xq1" --quick --no-ceilings
  call_step "$L" c1.tgz qf4-$i 40 "$B/mla-bench-xf4" --quick --no-ceilings
done
for f in q32-1 q16-1 qq0-1 qq1-1 qf4-1 q32-2 q16-2 qq0-2 qq1-2 qf4-2; do echo "== $f: $(grep -E "^b=.*[|]" "$L/$f.log" | awk "{print \$(NF-9)}" | tr '\n' ' ')"; done
call_step "$L" c1.tgz g32 70 env MLA_GPU_PART16=0 "$B/mla-bench" --no-ceilings
call_step "$L" c1.tgz g16 70 "$B/mla-bench" --no-ceilings
call_step "$L" c1.tgz sd 40 "$B/mla-bench" --sparse-decode
call_step "$L" c1.tgz test_gpu 330 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL|partials" "$L/test_gpu.log" | head -20
call_step "$L" c1.tgz test_gpu_sparse_quick 60 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/test_gpu_sparse_quick.log"
call_step "$L" c1.tgz san-synccheck 90 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 2 "$L/san-synccheck.log"
call_step "$L" c1.tgz san-synccheck-sparse 90 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/san-synccheck-sparse.log"
call_step "$L" c1.tgz san-racecheck 120 compute-sanitizer --tool racecheck "$B/test_gpu" --quick
tail -n 3 "$L/san-racecheck.log"
