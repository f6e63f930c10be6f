#!/usr/bin/env bash
# Thirty-eighth session, call 2: bin55 (the decode's cluster sync split into arrive / wait, each role's first
# unit loads issued before the wait) -- whole sparse suite, three alternating sparse decode rounds against bin52
# (1603490's kernels), its timeline (bin56, MLA_SP_DIAG=10), memcheck / synccheck / racecheck; the V3.2 32K
# prefill rows alone, four alternating rounds bin55 / bin44 (the first row's 1.066 in call 1); the dense grid,
# bin53 (MLA_COMBINE_CB16=2) against bin52, two alternating rounds, and bin53's whole dense suite if
# the time is left. ~200-450 s.
set -u
for n in 44 52 53 55 56; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s38c2; mkdir -p "$L"; D=$PWD/.devcarry; T=s38c2.tgz
call_info "$L"
call_step "$L" $T sparse-55 150 "$D/b55/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-55.log" | head -1; grep -m 3 FAIL "$L/sparse-55.log"
for r in 1 2 3; do for n in 55 52; do call_step "$L" $T dec$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-decode; done; done
for n in 55 52; do echo "== $n"; for r in 1 2 3; do grep -E "\[span\]" "$L/dec$n-$r.log" | sed -E 's/sparse decode V32 (b=[0-9]+).*page=64 \[span\] +([0-9.]+) us.*kernels at/\1 \2 us:/' | tr '\n' ';'; echo; done; done
call_step "$L" $T timeline56 60 env MLA_BENCH_TIMELINE=1 MLA_GIT_COMMIT=bin56 "$D/b56/bin/mla-bench" --sparse-decode
grep -E "^decode timeline" "$L/timeline56.log" | cut -c1-400
for tool in memcheck synccheck; do
  call_step "$L" $T san-sparse-$tool 90 compute-sanitizer --tool $tool --error-exitcode 99 "$D/b55/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-$tool.log" | head -2
done
C="--prefill-case 4096,32768,128,2048,576,flashmla --prefill-case 4096,32768,128,2048,576,uniform --prefill-case 4096,8192,128,2048,576,flashmla"
for r in 1 2 3 4; do for n in 55 44; do call_step "$L" $T pf$n-$r 60 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-prefill $C; done; done
for n in 55 44; do echo "== $n"; for r in 1 2 3 4; do grep -E "^sparse prefill" "$L/pf$n-$r.log" | awk '{for (i = 1; i <= NF; i++) if ($i == "us") {printf "%s ", $(i-1); break}} END {print ""}'; done; done
for r in 1 2; do for n in 53 52; do call_step "$L" $T grid$n-$r 90 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --grid; done; done
if [ $(( 575 - SECONDS )) -gt 40 ]; then
  call_step "$L" $T san-sparse-racecheck $(( 575 - SECONDS )) compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b55/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-racecheck.log" | head -2
  grep -oE "at [a-z_0-9]+\(.*in [a-z_0-9]+\.cuh?:[0-9]+" "$L/san-sparse-racecheck.log" | sed 's/(.*)+0x[0-9a-f]*//' | sort | uniq -c | head -20
fi
# the whole dense suite on bin53 (CB16=2 as a default candidate), if the time is left
if [ $(( 575 - SECONDS )) -gt 250 ]; then
  call_step "$L" $T dense-53 $(( 575 - SECONDS )) "$D/b53/bin/test_gpu"; tail -n 2 "$L/dense-53.log" | head -1; grep -m 3 FAIL "$L/dense-53.log"
fi
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
