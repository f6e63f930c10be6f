#!/usr/bin/env bash
# Twenty-sixth session, call 7 (H100): 3fd5568. SSF is the default prefill kernel and its epilogue stages
# the output rows in the free Q tile (16-byte row stores). Quick suite first, then the prefill rows:
# the new default, SSF before the staging (d1e1a59's binary, MLA_SPARSE_SEESAW=2) and the 256-thread
# kernel (MLA_SPARSE_SEESAW=0), three rounds; sanitizers; the whole sparse suite; dense quick suite.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c7; mkdir -p "$L"
export MLA_GIT_COMMIT=3fd5568
call_info "$L"
call_step "$L" c7.tgz quick-sparse 60 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-sparse.log"
if grep -q "rc=124" "$L/quick-sparse.log"; then echo "quick suite timed out: stop"; exit 0; fi
for rnd in 1 2 3; do
  call_step "$L" c7.tgz pf-new-r$rnd 60 "$B/mla-bench" --sparse-prefill
  call_step "$L" c7.tgz pf-ssfprev-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-prev" --sparse-prefill
  call_step "$L" c7.tgz pf-256-r$rnd 60 env MLA_SPARSE_SEESAW=0 "$B/mla-bench" --sparse-prefill
done
for v in new ssfprev 256; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
call_step "$L" c7.tgz san-memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" c7.tgz san-synccheck 90 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L"/san-*.log
call_step "$L" c7.tgz test_gpu_sparse 300 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
call_step "$L" c7.tgz test_gpu-quick 60 "$B/test_gpu" --quick
tail -n 2 "$L/test_gpu-quick.log"
