#!/usr/bin/env bash
# Twenty-sixth session, call 6 (H100): d1e1a59. SSF with WG1 in FlashMLA's exact order (build option
# SP_SSF_EARLY_B1=0: PV_R(j0) issued before P1 is handed to WG0, so it runs ahead of WG0's PV_L(j1)
# and B0 goes back sooner) against SSF as it is (EARLY_B1=1) and the 256-thread default; three
# rounds of the prefill rows.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c6; mkdir -p "$L"
export MLA_GIT_COMMIT=d1e1a59
call_info "$L"
for rnd in 1 2 3; do
  call_step "$L" c6.tgz pf-e0-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-e0" --sparse-prefill
  call_step "$L" c6.tgz pf-e1-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" c6.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
done
for v in e0 e1 def; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
