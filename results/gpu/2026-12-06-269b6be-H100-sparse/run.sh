#!/usr/bin/env bash
# Twenty-fifth session, call 6 (H100): 269b6be. SSF (MLA_SPARSE_SEESAW=2) with WG1's early B1 release
# against SSF in FlashMLA's order (SP_SSF_EARLY_B1=0 build, mla-bench-e0) and the 256-thread
# kernel (default), all with the M blocks of a token adjacent in the grid; SSF without the gather
# (MLA_SP_DIAG=6); the sparse decode rows; the sparse suite and sanitizers; the dense quick suite.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s6; mkdir -p "$L"
export MLA_GIT_COMMIT=269b6be
call_info "$L"
call_step "$L" s6.tgz quick-ssf 40 env MLA_SPARSE_SEESAW=2 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-ssf.log"
if grep -q "rc=124" "$L/quick-ssf.log"; then echo "SSF quick suite timed out: stop"; exit 0; fi
call_step "$L" s6.tgz test_gpu-quick 60 "$B/test_gpu" --quick
tail -n 2 "$L/test_gpu-quick.log"
for rnd in 1 2 3; do
  call_step "$L" s6.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
  call_step "$L" s6.tgz pf-ssf-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" s6.tgz pf-ssfe0-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-e0" --sparse-prefill
done
call_step "$L" s6.tgz pf-d6ssf-r1 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-d6" --sparse-prefill
for v in def ssf ssfe0 d6ssf; do echo "== $v"; for rnd in 1 2 3; do [ -f "$L/pf-$v-r$rnd.log" ] && grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
call_step "$L" s6.tgz sp-decode 60 "$B/mla-bench" --sparse-decode
grep -E "^sparse" "$L/sp-decode.log" | cut -c1-120
call_step "$L" s6.tgz test_gpu_sparse 240 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
call_step "$L" s6.tgz san-memcheck-ssf 60 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" s6.tgz san-synccheck-ssf 60 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
call_step "$L" s6.tgz san-memcheck-def 60 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L"/san-*.log
