#!/usr/bin/env bash
# Twenty-fifth session, call 4 (H100): a977516. SSF (MLA_SPARSE_SEESAW=3) against SSP (=2) and the
# 256-thread kernel (default), same binary; SSF / SSP without the K gather (MLA_SP_DIAG=6 build);
# the sparse suite (prefill grid four times) and sanitizers on SSF.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s4; mkdir -p "$L"
export MLA_GIT_COMMIT=a977516
call_info "$L"
call_step "$L" s4.tgz quick-ssf 40 env MLA_SPARSE_SEESAW=3 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-ssf.log"
if grep -q "rc=124" "$L/quick-ssf.log"; then echo "SSF quick suite timed out: stop"; exit 0; fi
for rnd in 1 2 3; do
  call_step "$L" s4.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
  call_step "$L" s4.tgz pf-ssp-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" s4.tgz pf-ssf-r$rnd 60 env MLA_SPARSE_SEESAW=3 "$B/mla-bench" --sparse-prefill
done
call_step "$L" s4.tgz pf-d6ssf-r1 60 env MLA_SPARSE_SEESAW=3 "$B/mla-bench-d6" --sparse-prefill
call_step "$L" s4.tgz pf-d6ssp-r1 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-d6" --sparse-prefill
for v in def ssp ssf d6ssf d6ssp; do echo "== $v"; for rnd in 1 2 3; do [ -f "$L/pf-$v-r$rnd.log" ] && grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
call_step "$L" s4.tgz test_gpu_sparse 200 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
call_step "$L" s4.tgz san-memcheck-ssf 60 env MLA_SPARSE_SEESAW=3 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" s4.tgz san-synccheck-ssf 60 env MLA_SPARSE_SEESAW=3 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L"/san-*.log
