#!/usr/bin/env bash
# Twenty-sixth session, call 1 (H100): f09f5b5 (GPU code = a7f19e1's). Sanity of the review mend
# (sparse quick suite, memcheck on SSF), then the sparse prefill rows with FlashMLA's own index
# draw next to the distinct-uniform rows: the 256-thread kernel (default), SSF (SEESAW=2) and the
# 256-thread seesaw (SEESAW=1), three alternating rounds.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c1; mkdir -p "$L"
export MLA_GIT_COMMIT=f09f5b5
call_info "$L"
call_step "$L" c1.tgz quick-sparse 60 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-sparse.log"
call_step "$L" c1.tgz quick-sparse-ssf 60 env MLA_SPARSE_SEESAW=2 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-sparse-ssf.log"
call_step "$L" c1.tgz san-memcheck-ssf 90 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/san-memcheck-ssf.log"
for rnd in 1 2 3; do
  call_step "$L" c1.tgz pf-def-r$rnd 90 "$B/mla-bench" --sparse-prefill
  call_step "$L" c1.tgz pf-ssf-r$rnd 90 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" c1.tgz pf-ss1-r$rnd 90 env MLA_SPARSE_SEESAW=1 "$B/mla-bench" --sparse-prefill
done
for v in def ssf ss1; do echo "== $v"; for rnd in 1 2 3; do [ -f "$L/pf-$v-r$rnd.log" ] && grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
grep -E "^sparse prefill" "$L/pf-def-r1.log" | cut -c1-150
