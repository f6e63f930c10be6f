#!/usr/bin/env bash
# Twenty-sixth session, call 9 (H100): 74f9edc (the session's final GPU code: SSF the default prefill,
# staged epilogue). Whole sparse and dense suites, racecheck on the sparse quick suite (all hazards
# counted by kernel), `mla-bench --sparse` three rounds, `mla-bench --quick` once.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c9; mkdir -p "$L"
export MLA_GIT_COMMIT=74f9edc
call_info "$L"
for rnd in 1 2 3; do call_step "$L" c9.tgz sparse-r$rnd 90 "$B/mla-bench" --sparse; done
for rnd in 1 2 3; do echo "== r$rnd"; grep -E "^sparse" "$L/sparse-r$rnd.log" | cut -c1-150; done
call_step "$L" c9.tgz bench-quick 150 "$B/mla-bench" --quick
grep -vE "^\s*$" "$L/bench-quick.log" | tail -n 20
call_step "$L" c9.tgz test_gpu_sparse 300 "$B/test_gpu_sparse"
tail -n 3 "$L/test_gpu_sparse.log"
call_step "$L" c9.tgz san-racecheck 150 compute-sanitizer --tool racecheck --print-limit 100000 --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 3 "$L/san-racecheck.log"
grep -E "Race reported" -A1 "$L/san-racecheck.log" | grep -oE "(Read|Write) access at [a-zA-Z_0-9]+" | paste - - | sort | uniq -c | sort -rn > "$L/race-pairs.txt"
gzip -f "$L/san-racecheck.log"; (cd "$OUT" && tar -czf c9.tgz c9)
head -20 "$L/race-pairs.txt"
call_step "$L" c9.tgz test_gpu 260 "$B/test_gpu"
tail -n 3 "$L/test_gpu.log"
