#!/usr/bin/env bash
# Twenty-fifth session, call 2 (H100): 7aaffaf, the sparse prefill seesaw with a producer warpgroup
# (SSP, MLA_SPARSE_SEESAW=2) against the default 256-thread kernel and the 256-thread seesaw (=1),
# same binary; the sparse suite (prefill grid three times) and sanitizers on SSP.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s1; mkdir -p "$L"
export MLA_GIT_COMMIT=7aaffaf
call_info "$L"
call_step "$L" s1.tgz quick-ssp 60 env MLA_SPARSE_SEESAW=2 "$B/test_gpu_sparse" --quick
tail -n 3 "$L/quick-ssp.log"
if grep -q "rc=124" "$L/quick-ssp.log"; then echo "SSP quick suite timed out: stop"; exit 0; fi
for rnd in 1 2; do
  call_step "$L" s1.tgz pf-def-r$rnd 90 "$B/mla-bench" --sparse-prefill
  call_step "$L" s1.tgz pf-ssp-r$rnd 90 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  [ $rnd = 1 ] && call_step "$L" s1.tgz pf-ss-r$rnd 90 env MLA_SPARSE_SEESAW=1 "$B/mla-bench" --sparse-prefill
done
for f in "$L"/pf-*.log; do echo "== $(basename $f)"; grep -E "^sparse prefill" "$f" | cut -c1-118; done
call_step "$L" s1.tgz test_gpu_sparse 200 "$B/test_gpu_sparse"
tail -n 4 "$L/test_gpu_sparse.log"
call_step "$L" s1.tgz san-memcheck-ssp 60 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" s1.tgz san-synccheck-ssp 60 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L"/san-*.log
