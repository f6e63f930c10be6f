#!/usr/bin/env bash
# Thirty-seventh session, call 3: the tree's default build (bin52: SP_SSF_LAZY=1 with max_logits from the true
# maxima, SP_SSF_STSM=1, the sparse combine's slices by the dense rule, 256 CTAs / at most 8 slices; the CUPTI
# span rows) against bin44 (f3013ba's default) in two alternating rounds of the whole sparse bench; the whole
# sparse suite, the dense quick suite and compute-sanitizer memcheck / synccheck on the sparse quick suite (bin52);
# then bin53 (-DMLA_COMBINE_CB16=2) against bin52 in three alternating sparse decode rounds, its whole sparse
# suite and the dense quick suite; bin54's decode timeline (MLA_SP_DIAG=10). ~340 s.
set -u
for n in 44 52 53 54; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s37c3; mkdir -p "$L"; D=$PWD/.devcarry; T=s37c3.tgz
call_info "$L"
call_step "$L" $T sparse-52 150 "$D/b52/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-52.log" | head -1; grep -m 3 FAIL "$L/sparse-52.log"
for r in 1 2; do for n in 52 44; do call_step "$L" $T bench$n-$r 60 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse; done; done
for n in 52 44; do echo "== $n"; for r in 1 2; do grep -E "^sparse (decode|prefill)" "$L/bench$n-$r.log" | awk '{for (i = 1; i <= NF; i++) if ($i == "us") {printf "%s ", $(i-1); break}} END {print ""}'; done; done
grep -E "b=2 .*\[(span|reused)\]" "$L"/bench52-*.log "$L"/bench44-*.log | sed -E 's/sparse decode V32 //; s/page=64 //' | cut -c1-200
call_step "$L" $T quick-dense-52 60 "$D/b52/bin/test_gpu" --quick; tail -n 2 "$L/quick-dense-52.log" | head -1
for tool in memcheck synccheck; do
  call_step "$L" $T san-sparse-$tool 90 compute-sanitizer --tool $tool --error-exitcode 99 "$D/b52/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-$tool.log" | head -2
done
# MLA_COMBINE_CB16=2 (bin53: two pieces' loads in flight per lane in the one-slice combine): decode rounds, suites
for r in 1 2 3; do for n in 52 53; do call_step "$L" $T dec$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-decode; done; done
for n in 52 53; do echo "== $n"; for r in 1 2 3; do grep -E "\[span\]" "$L/dec$n-$r.log" | sed -E 's/sparse decode V32 (b=[0-9]+).*page=64 \[span\] +([0-9.]+) us.*kernels at/\1 \2 us:/' | tr '\n' ';'; echo; done; done
call_step "$L" $T sparse-53 150 "$D/b53/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-53.log" | head -1; grep -m 3 FAIL "$L/sparse-53.log"
call_step "$L" $T quick-dense-53 60 "$D/b53/bin/test_gpu" --quick; tail -n 2 "$L/quick-dense-53.log" | head -1
# bin54 (-DMLA_SP_DIAG=10): the decode's per-CTA timeline on each row's [reused] graph
call_step "$L" $T timeline54 60 env MLA_BENCH_TIMELINE=1 MLA_GIT_COMMIT=bin54 "$D/b54/bin/mla-bench" --sparse-decode
grep -E "^decode timeline" "$L/timeline54.log" | cut -c1-400
# racecheck on the new SSF defaults (owed), with whatever time is left
if [ $(( 575 - SECONDS )) -gt 40 ]; then
  call_step "$L" $T san-sparse-racecheck $(( 575 - SECONDS )) compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b52/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-racecheck.log" | head -2
  grep -oE "at [a-z_0-9]+\(.*in [a-z_0-9]+\.cuh?:[0-9]+" "$L/san-sparse-racecheck.log" | sed 's/(.*)+0x[0-9a-f]*//' | sort | uniq -c | head -20
fi
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
