#!/usr/bin/env bash
# Twenty-fifth session, call 5 (H100): ab19cdd. SSX (MLA_SPARSE_SEESAW=4: SSF as 2-CTA clusters sharing
# the gather) against SSF (=3) and the 256-thread kernel (default), with the new grid order and
# with the old one (MLA_SPARSE_PF_ORDER=0); SSX without the gather (MLA_SP_DIAG=6); the sparse
# suite (prefill grid six times) and sanitizers on SSX.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s5; mkdir -p "$L"
export MLA_GIT_COMMIT=ab19cdd
call_info "$L"
call_step "$L" s5.tgz quick-ssx 40 env MLA_SPARSE_SEESAW=4 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-ssx.log"
if grep -q "rc=124" "$L/quick-ssx.log"; then echo "SSX quick suite timed out: stop"; exit 0; fi
for rnd in 1 2 3; do
  call_step "$L" s5.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
  call_step "$L" s5.tgz pf-defold-r$rnd 60 env MLA_SPARSE_PF_ORDER=0 "$B/mla-bench" --sparse-prefill
  call_step "$L" s5.tgz pf-ssf-r$rnd 60 env MLA_SPARSE_SEESAW=3 "$B/mla-bench" --sparse-prefill
  call_step "$L" s5.tgz pf-ssx-r$rnd 60 env MLA_SPARSE_SEESAW=4 "$B/mla-bench" --sparse-prefill
done
call_step "$L" s5.tgz pf-d6ssx-r1 60 env MLA_SPARSE_SEESAW=4 "$B/mla-bench-d6" --sparse-prefill
for v in def defold ssf ssx d6ssx; do echo "== $v"; for rnd in 1 2 3; do [ -f "$L/pf-$v-r$rnd.log" ] && grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
call_step "$L" s5.tgz test_gpu_sparse 240 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
call_step "$L" s5.tgz san-memcheck-ssx 60 env MLA_SPARSE_SEESAW=4 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" s5.tgz san-synccheck-ssx 60 env MLA_SPARSE_SEESAW=4 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L"/san-*.log
