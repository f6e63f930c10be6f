#!/usr/bin/env bash
# Twenty-fifth session, call 8 (H100): 0509ab7. The default sparse prefill against the builds with the
# gather's L2 256-byte prefetch (SP_GATHER_HINT=1, mla-bench-h1) and that plus evict_last (=2, -h2),
# four rounds, alternating.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s8; mkdir -p "$L"
export MLA_GIT_COMMIT=0509ab7
call_info "$L"
for rnd in 1 2 3 4; do
  call_step "$L" s8.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
  call_step "$L" s8.tgz pf-h1-r$rnd 60 "$B/mla-bench-h1" --sparse-prefill
  call_step "$L" s8.tgz pf-h2-r$rnd 60 "$B/mla-bench-h2" --sparse-prefill
done
for v in def h1 h2; do echo "== $v"; for rnd in 1 2 3 4; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
