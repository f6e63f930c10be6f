#!/usr/bin/env bash
# Twenty-sixth session, call 5 (H100): d1e1a59. SSF's refill order (timing build option SP_SSF_ORDER):
# 0 (FlashMLA's, the default), 1 (the producer refills A1 before B0), 2 (WG1 runs PV_R(j0) first,
# producer A0, B0, A1, B1), with the 256-thread default kernel as the control; order 2's quick
# suite first (its consumer code differs). Three rounds of the prefill rows.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c5; mkdir -p "$L"
export MLA_GIT_COMMIT=d1e1a59
call_info "$L"
call_step "$L" c5.tgz quick-o2-ssf 60 env MLA_SPARSE_SEESAW=2 "$B/test_gpu_sparse-o2" --quick
tail -n 2 "$L/quick-o2-ssf.log"
if grep -q "rc=124" "$L/quick-o2-ssf.log"; then echo "order 2 timed out: stop"; exit 0; fi
for rnd in 1 2 3; do
  call_step "$L" c5.tgz pf-o0-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" c5.tgz pf-o1-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-o1" --sparse-prefill
  call_step "$L" c5.tgz pf-o2-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-o2" --sparse-prefill
  call_step "$L" c5.tgz pf-def-r$rnd 60 "$B/mla-bench" --sparse-prefill
done
for v in o0 o1 o2 def; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
