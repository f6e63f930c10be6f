#!/usr/bin/env bash
# Twenty-seventh session, call 2 (cut to the sparse kernels: the device budget went on refused starts):
# cd1809d's build (= HEAD built with MLA_DESC_AT=1: wgmma descriptors from the tile base plus a
# constant offset) against a92163a's (the default SASS). (1) the prefill rows, alternating, three
# rounds; the sparse decode rows and `--quick`, one round each; (2) the whole sparse suite on the
# MLA_DESC_AT=1 build (the dense suite does not fit the budget left).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c4; mkdir -p "$L"
export MLA_GIT_COMMIT=cd1809d
call_info "$L"
for rnd in 1 2 3; do
  call_step "$L" c4.tgz pf-new-r$rnd 40 "$B/mla-bench" --sparse-prefill
  call_step "$L" c4.tgz pf-old-r$rnd 40 "$B/mla-bench-old" --sparse-prefill
done
for v in new old; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
call_step "$L" c4.tgz sd-new 40 "$B/mla-bench" --sparse-decode
call_step "$L" c4.tgz sd-old 40 "$B/mla-bench-old" --sparse-decode
for v in new old; do echo "== $v: $(grep -E "^sparse decode" "$L/sd-$v.log" | grep -oE "[0-9.]+ us" | tr '\n' ' ')"; done
call_step "$L" c4.tgz test_gpu_sparse 150 "$B/test_gpu_sparse"
tail -n 2 "$L/test_gpu_sparse.log"
call_step "$L" c4.tgz q-new 40 "$B/mla-bench" --quick --no-ceilings
call_step "$L" c4.tgz q-old 40 "$B/mla-bench-old" --quick --no-ceilings
for v in new old; do echo "== $v"; grep -E "^b=" "$L/q-$v.log" | cut -c1-68; done
