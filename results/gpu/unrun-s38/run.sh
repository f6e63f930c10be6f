#!/usr/bin/env bash
# Prepared in the thirty-eighth session (unrun-s38): MLA_SP_CLOSED_PARTS=1 (bin59: the producer-warpgroup
# decode CTAs compute their schedule parts when every token costs the same, instead of reading part_begin)
# against the default build of the same tree (bin60) -- whole sparse suite on bin59, four alternating sparse
# decode rounds, bin61's timeline (closed parts + MLA_SP_DIAG=10), memcheck on bin59's sparse quick suite. ~230 s.
set -u
for n in 59 60 61; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s39c1; mkdir -p "$L"; D=$PWD/.devcarry; T=s39c1.tgz
call_info "$L"
for r in 1 2 3 4; do for n in 59 60; do call_step "$L" $T dec$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-decode; done; done
for n in 59 60; do echo "== $n"; for r in 1 2 3 4; do grep -E "\[span\]" "$L/dec$n-$r.log" | sed -E 's/sparse decode V32 (b=[0-9]+).*page=64 \[span\] +([0-9.]+) us.*kernels at/\1 \2 us:/' | tr '\n' ';'; echo; done; done
call_step "$L" $T timeline61 60 env MLA_BENCH_TIMELINE=1 MLA_GIT_COMMIT=bin61 "$D/b61/bin/mla-bench" --sparse-decode
grep -E "^decode timeline" "$L/timeline61.log" | cut -c1-400
call_step "$L" $T sparse-59 220 "$D/b59/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-59.log" | head -1; grep -m 5 FAIL "$L/sparse-59.log"
call_step "$L" $T san-sparse-memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$D/b59/bin/test_gpu_sparse" --quick
tail -n 3 "$L/san-sparse-memcheck.log" | head -2
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
