#!/usr/bin/env bash
# Twenty-sixth session, call 8 (H100): 1383fac (the commit was re-worded after the run and is efd6df9
# in the history, same tree). The SSF producer's L2 prefetch of the Q rows and indices of the unit one
# SM-count ahead, against the same binary with MLA_SPARSE_PF_PREFETCH=0; quick sparse suite first;
# three rounds of the prefill rows.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c8; mkdir -p "$L"
export MLA_GIT_COMMIT=1383fac
call_info "$L"
call_step "$L" c8.tgz quick-sparse 60 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-sparse.log"
for rnd in 1 2 3; do
  call_step "$L" c8.tgz pf-pre-r$rnd 60 "$B/mla-bench" --sparse-prefill
  call_step "$L" c8.tgz pf-nopre-r$rnd 60 env MLA_SPARSE_PF_PREFETCH=0 "$B/mla-bench" --sparse-prefill
done
for v in pre nopre; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
