#!/usr/bin/env bash
# Twenty-fifth session, call 3 (H100): 59f7826. SSP with WG1's S(j1) before S0 (default build) against
# SSP with S(j1) after S0 (SP_SSP_EARLY_QK=0 build, mla-bench-e0) and the 256-thread kernel;
# SSP timing builds MLA_SP_DIAG=6 (no K gather) and 7 (no QK^T wgmma).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s3; mkdir -p "$L"
export MLA_GIT_COMMIT=59f7826
call_info "$L"
call_step "$L" s3.tgz quick-ssp 60 env MLA_SPARSE_SEESAW=2 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/quick-ssp.log"
if grep -q "rc=124" "$L/quick-ssp.log"; then echo "SSP quick suite timed out: stop"; exit 0; fi
for rnd in 1 2 3; do
  call_step "$L" s3.tgz pf-def-r$rnd 90 "$B/mla-bench" --sparse-prefill
  call_step "$L" s3.tgz pf-early-r$rnd 90 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" --sparse-prefill
  call_step "$L" s3.tgz pf-late-r$rnd 90 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-e0" --sparse-prefill
  [ $rnd = 3 ] || call_step "$L" s3.tgz pf-d6-r$rnd 90 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-d6" --sparse-prefill
  [ $rnd = 3 ] || call_step "$L" s3.tgz pf-d7-r$rnd 90 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-d7" --sparse-prefill
done
for v in def early late d6 d7; do echo "== $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
