#!/usr/bin/env bash
# Twenty-sixth session, call 11 (H100): 43ee61e. The staged epilogue only for full 64-row blocks (decode final rows and prefill).
# Quick suite first; decode rows against 74f9edc's binary, three alternating rounds; memcheck; the whole
# sparse suite; `mla-bench --sparse` three rounds (this commit's figures).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c11; mkdir -p "$L"
export MLA_GIT_COMMIT=43ee61e
call_info "$L"
call_step "$L" c11.tgz quick-sparse 60 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-sparse.log"
if grep -q "rc=124" "$L/quick-sparse.log"; then echo "quick suite timed out: stop"; exit 0; fi
for rnd in 1 2 3; do
  call_step "$L" c11.tgz dec-new-r$rnd 60 "$B/mla-bench" --sparse-decode
  call_step "$L" c11.tgz dec-prev-r$rnd 60 env MLA_GIT_COMMIT=74f9edc "$B/mla-bench-prev" --sparse-decode
done
for v in new prev; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse decode" "$L/dec-$v-r$rnd.log" | awk '{for(i=1;i<=NF;i++) if ($i=="us") printf "%s ", $(i-1)} END {print ""}'; done; done
call_step "$L" c11.tgz san-memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/san-memcheck.log"
call_step "$L" c11.tgz test_gpu_sparse 300 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
for rnd in 1 2 3; do call_step "$L" c11.tgz sparse-r$rnd 90 "$B/mla-bench" --sparse; done
for rnd in 1 2 3; do grep -E "^sparse" "$L/sparse-r$rnd.log" | awk '{for(i=1;i<=NF;i++) if ($i=="us") printf "%s ", $(i-1)} END {print ""}'; done
