#!/usr/bin/env bash
# Twenty-fifth session, call 9 (H100): dcb9709 (HEAD; GPU code as 269b6be plus the SP_GATHER_HINT
# option, off). The whole dense suite, and racecheck on the sparse quick suite with SSF.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s9; mkdir -p "$L"
call_info "$L"
call_step "$L" s9.tgz test_gpu 220 "$B/test_gpu"
tail -n 3 "$L/test_gpu.log"
call_step "$L" s9.tgz san-racecheck-ssf 150 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool racecheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 4 "$L/san-racecheck-ssf.log"
