#!/usr/bin/env bash
# Prepared in the thirty-ninth session (unrun-s39; its nine device starts were all refused): bin62 =
# MLA_SP_CLOSED_PARTS=1 (decode CTAs compute their schedule parts when every token costs the same) and
# SP_SSF_PREADDR=1 (SSF's producer makes a pair's row pointers at the end of the pair before, so a group's
# issue after its empty wait is only the copies), against bin60 (the default build of 4cf3baa; its kernels'
# .text is the default's of this tree). The two options touch disjoint kernels (decode / SSF; hashes), so
# one suite on bin62 covers both. Four alternating sparse decode rounds, six alternating prefill rounds,
# bin61's timeline (closed parts + MLA_SP_DIAG=10), bin62's whole sparse suite, memcheck / synccheck, and
# racecheck with what time is left. ~460 s.
set -u
SECONDS=0
for n in 60 61 62; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s40c1; mkdir -p "$L"; D=$PWD/.devcarry; T=s40c1.tgz
call_info "$L"
for r in 1 2 3 4; do for n in 62 60; do call_step "$L" $T dec$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-decode; done; done
for n in 62 60; do echo "== $n"; for r in 1 2 3 4; do grep -E "\[span\]" "$L/dec$n-$r.log" | sed -E 's/sparse decode V32 (b=[0-9]+).*page=64 \[span\] +([0-9.]+) us.*kernels at/\1 \2 us:/' | tr '\n' ';'; echo; done; done
for r in 1 2 3 4 5 6; do for n in 62 60; do call_step "$L" $T pf$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-prefill; done; done
python3 - "$L" <<'PY' | tee "$L/pf-rank.txt"
import sys, statistics, math
L = sys.argv[1]
def rows(n):
    out, name = {}, {}
    for r in range(1, 7):
        try: f = open(f"{L}/pf{n}-{r}.log")
        except OSError: continue
        for i, line in enumerate(l for l in f if l.startswith("sparse prefill")):
            out.setdefault(i, []).append(float(line.split()[7])); name[i] = " ".join(line.split()[2:7]) + (" uniform" if "uniform" in line else "")
    return {i: statistics.median(v) for i, v in out.items()}, name
base, name = rows(60)
v, _ = rows(62)
common = [i for i in base if i in v]
for i in common: print(f"{name[i]:60s} bin60 {base[i]:8.1f} us  bin62 {v[i]:8.1f} us  {v[i] / base[i]:.3f}")
if common: print("geomean bin62 / bin60 (medians of the rounds):", f"{math.exp(sum(math.log(v[i] / base[i]) for i in common) / len(common)):.4f}")
PY
call_step "$L" $T timeline61 60 env MLA_BENCH_TIMELINE=1 MLA_GIT_COMMIT=bin61 "$D/b61/bin/mla-bench" --sparse-decode
grep -E "^decode timeline" "$L/timeline61.log" | cut -c1-400
call_step "$L" $T sparse-62 220 "$D/b62/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-62.log" | head -1; grep -m 5 FAIL "$L/sparse-62.log"
call_step "$L" $T san-sparse-memcheck-62 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$D/b62/bin/test_gpu_sparse" --quick
tail -n 3 "$L/san-sparse-memcheck-62.log" | head -2
for n in 62 60; do
  call_step "$L" $T san-sparse-synccheck-$n 60 compute-sanitizer --tool synccheck --error-exitcode 99 "$D/b$n/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-synccheck-$n.log" | head -2
done
for n in 62 60; do
  [ $SECONDS -lt 470 ] || break
  call_step "$L" $T san-sparse-racecheck-$n $(( 575 - SECONDS )) compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b$n/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-racecheck-$n.log" | head -2
  grep -oE "at [a-z_0-9]+\(.*in [a-z_0-9]+\.cuh?:[0-9]+" "$L/san-sparse-racecheck-$n.log" | sed 's/(.*)+0x[0-9a-f]*//' | sort | uniq -c | head -20
done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
