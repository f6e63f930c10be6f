#!/usr/bin/env bash
# Twenty-eighth session, call 2 (cut to fit the device time left after refused starts): the new
# default e5a20e0 (MLA_DESC_AT 1, the sparse crossover decode kept on desc_sw128 of each address).
# (1) the whole dense and sparse suites; (2) sparse decode new / MLA_DESC_AT=1-everywhere / old, one
# round; --quick, prefill rows and the grid on the new build; memcheck on the dense quick suite.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c2; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
call_step "$L" c2.tgz test_gpu 330 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"
call_step "$L" c2.tgz test_gpu_sparse 120 "$B/test_gpu_sparse"
tail -n 2 "$L/test_gpu_sparse.log"
for v in new at1 old; do call_step "$L" c2.tgz sd-$v 40 "$B/mla-bench-$v" --sparse-decode; done
for v in new at1 old; do echo "== sd $v: $(grep -E "^sparse decode" "$L/sd-$v.log" | grep -oE "[0-9.]+ us" | tr '\n' ' ')"; done
call_step "$L" c2.tgz q-new 40 "$B/mla-bench-new" --quick --no-ceilings
grep -E "^b=" "$L/q-new.log" | tail -6
call_step "$L" c2.tgz pf-new 40 "$B/mla-bench-new" --sparse-prefill
call_step "$L" c2.tgz g-new 60 "$B/mla-bench-new" --no-ceilings
call_step "$L" c2.tgz san-memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 2 "$L/san-memcheck.log"
