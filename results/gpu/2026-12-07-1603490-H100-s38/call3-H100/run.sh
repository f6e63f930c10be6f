#!/usr/bin/env bash
# Thirty-eighth session, call 3: bin57 (the sparse scheduler's whole-token schedule for uniform tokens,
# MLA_SP_SCHED_SPLIT_COST 6) -- whole sparse suite; three alternating sparse decode rounds against bin52
# (1603490's build); the whole sparse bench once; dense quick; memcheck on the sparse quick suite. ~170 s.
set -u
for n in 52 57; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s38c3; mkdir -p "$L"; D=$PWD/.devcarry; T=s38c3.tgz
call_info "$L"
call_step "$L" $T sparse-57 170 "$D/b57/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-57.log" | head -1; grep -m 3 FAIL "$L/sparse-57.log"
for r in 1 2 3; do for n in 57 52; do call_step "$L" $T dec$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-decode; done; done
for n in 57 52; do echo "== $n"; for r in 1 2 3; do grep -E "\[span\]" "$L/dec$n-$r.log" | sed -E 's/sparse decode V32 (b=[0-9]+).*page=64 \[span\] +([0-9.]+) us.*kernels at/\1 \2 us:/' | tr '\n' ';'; echo; done; done
for n in 57 52; do echo "== $n"; for r in 1 2 3; do grep -E "^sparse decode" "$L/dec$n-$r.log" | awk '{for (i = 1; i <= NF; i++) if ($i == "us") {printf "%s ", $(i-1); break}} END {print ""}'; done; done
call_step "$L" $T bench57 60 env MLA_GIT_COMMIT=bin57 "$D/b57/bin/mla-bench" --sparse
grep -E "^sparse decode" "$L/bench57.log" | cut -c1-160
call_step "$L" $T quick-dense-57 60 "$D/b57/bin/test_gpu" --quick; tail -n 2 "$L/quick-dense-57.log" | head -1
call_step "$L" $T san-sparse-memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$D/b57/bin/test_gpu_sparse" --quick
tail -n 3 "$L/san-sparse-memcheck.log" | head -2
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
