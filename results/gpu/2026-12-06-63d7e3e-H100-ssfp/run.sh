#!/usr/bin/env bash
# Twenty-sixth session, call 3 (H100): 63d7e3e. The persistent SSF (MLA_SPARSE_SEESAW=3): quick
# suite first (a hang stops the call), then the prefill rows against SSF and the default kernel
# (two rounds), the sanitizers on the new kernel, the whole sparse suite (its prefill grid now five
# times), the dense quick suite.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c3; mkdir -p "$L"
export MLA_GIT_COMMIT=63d7e3e
call_info "$L"
call_step "$L" c3.tgz quick-ssfp 60 env MLA_SPARSE_SEESAW=3 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-ssfp.log"
if grep -q "rc=124" "$L/quick-ssfp.log"; then echo "SSFP quick suite timed out: stop"; exit 0; fi
for rnd in 1 2; do
  call_step "$L" c3.tgz pf-ssfp-r$rnd 60 env MLA_SPARSE_SEESAW=3 "$B/mla-bench" --sparse-prefill
  call_step "$L" c3.tgz pf-ssf-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" c3.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
done
for v in ssfp ssf def; do echo "== $v"; for rnd in 1 2; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
grep -E "^sparse prefill" "$L/pf-ssfp-r1.log" | cut -c1-150
call_step "$L" c3.tgz san-memcheck-ssfp 90 env MLA_SPARSE_SEESAW=3 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" c3.tgz san-synccheck-ssfp 90 env MLA_SPARSE_SEESAW=3 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L"/san-*.log
call_step "$L" c3.tgz test_gpu_sparse 300 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
call_step "$L" c3.tgz test_gpu-quick 60 "$B/test_gpu" --quick
tail -n 2 "$L/test_gpu-quick.log"
