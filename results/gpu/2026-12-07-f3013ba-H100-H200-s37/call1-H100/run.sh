#!/usr/bin/env bash
# Call A of the thirty-seventh session: the prepared call of unrun-347969e (run30.sh) without its whole
# sparse suites (those move to run32.sh), plus compute-sanitizer on the defaults (bin44: SP_SSF_SMX=1,
# MLA_V3_LAZY=1), which the thirty-sixth session could not run. bin44 default, bin45 -DSP_SSF_LAZY=1,
# bin46 -DSP_SSF_STSM=1, bin47 both, bin48 -DMLA_SP_DIAG=9 (mla-bench only), bin49 mla-bench with the CUPTI kernel-span rows
# (bench/kspan.c; the library as bin44's). ~420 s.
set -u
for n in 44 45 46 47 48 49; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s37c1; mkdir -p "$L"; D=$PWD/.devcarry; T=s37c1.tgz
call_info "$L"
ls /usr/local/cuda/lib64/libcupti* /usr/local/cuda/extras/CUPTI/lib64/libcupti* 2>&1 | head -4
call_step "$L" $T bench49 60 env MLA_GIT_COMMIT=bin49 "$D/b49/bin/mla-bench" --sparse
grep -E "^sparse" "$L/bench49.log" | cut -c1-150
call_step "$L" $T dec49-2 30 env MLA_GIT_COMMIT=bin49 "$D/b49/bin/mla-bench" --sparse-decode
grep -E "reused|span" "$L/dec49-2.log" | cut -c1-150
for r in 1 2 3 4; do for n in 44 45 46 47; do call_step "$L" $T pf$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-prefill; done; done
for n in 44 45 46 47; do echo "== $n"; for r in 1 2 3 4; do grep -E "^sparse prefill" "$L/pf$n-$r.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
# variants ranked by the geomean over rows of (median of 4 rounds) / bin44's; whole suites (end of the call) for those below 1
python3 - "$L" > "$L/rank.txt" <<'PY'
import sys, re, statistics, math
L = sys.argv[1]
def rows(n):
    out = {}
    for r in range(1, 5):
        try: f = open(f"{L}/pf{n}-{r}.log")
        except OSError: continue
        for i, line in enumerate(l for l in f if l.startswith("sparse prefill")):
            out.setdefault(i, []).append(float(line.split()[7]))
    return {i: statistics.median(v) for i, v in out.items()}
base = rows(44)
res = []
for n in (45, 46, 47):
    v = rows(n)
    common = [i for i in base if i in v]
    if not common: continue
    g = math.exp(sum(math.log(v[i] / base[i]) for i in common) / len(common))
    res.append((g, n))
for g, n in sorted(res): print(n, f"{g:.4f}")
PY
cat "$L/rank.txt"
for tool in memcheck synccheck; do
  call_step "$L" $T san-sparse-$tool 90 compute-sanitizer --tool $tool --error-exitcode 99 "$D/b44/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-$tool.log" | head -2
  call_step "$L" $T san-dense-$tool 60 compute-sanitizer --tool $tool --error-exitcode 99 "$D/b44/bin/test_gpu" --quick
  tail -n 3 "$L/san-dense-$tool.log" | head -2
done
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv -lms 50 > "$L/smi.log" 2>&1 &
SMI=$!
nvidia-smi --query-gpu=timestamp,clocks_event_reasons.active --format=csv -lms 100 > "$L/smi-reasons.log" 2>&1 &
SMI2=$!
C="--prefill-case 4096,8192,128,2048,576,flashmla --prefill-case 4096,8192,128,1024,512,flashmla"
call_step "$L" $T probe 40 env MLA_GIT_COMMIT=bin44 "$D/b44/bin/mla-bench" --sparse-prefill $C $C $C
kill $SMI $SMI2; grep -E "^sparse prefill" "$L/probe.log" | awk '{print $3, $7, $8}'
awk -F', ' 'NR>1 {print $2, int($3/25)*25}' "$L/smi.log" | sort | uniq -c | sort -rn | head -12
awk -F', ' 'NR>1 {print $2}' "$L/smi-reasons.log" | sort | uniq -c | sort -rn | head -5
A="--prefill-case 4096,8192,128,2048,576,flashmla --prefill-case 4096,8192,128,1024,512,flashmla --prefill-case 4096,65536,128,1024,512,flashmla"
call_step "$L" $T accounts 60 env MLA_BENCH_TIMELINE=1 MLA_GIT_COMMIT=bin48 "$D/b48/bin/mla-bench" --sparse-prefill $A
grep -h "SSF accounts" "$L/accounts.log" | cut -c1-420
call_step "$L" $T quick-dense-44 60 "$D/b44/bin/test_gpu" --quick; tail -n 2 "$L/quick-dense-44.log" | head -1
for n in 45 46 47; do call_step "$L" $T quick-$n 60 "$D/b$n/bin/test_gpu_sparse" --quick; tail -n 2 "$L/quick-$n.log" | head -1; done
echo "== whole sparse suites, ranked variants below 1.000 (elapsed ${SECONDS} s)"
while read -r n g; do
  awk -v g="$g" 'BEGIN { exit !(g < 1.0) }' || continue
  [ "$SECONDS" -lt 430 ] || { echo "no time left for sparse-$n"; continue; }
  call_step "$L" $T sparse-$n 140 "$D/b$n/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-$n.log" | head -1; grep -m 5 FAIL "$L/sparse-$n.log"
done < "$L/rank.txt"
if [ "$SECONDS" -lt 480 ]; then
  call_step "$L" $T san-sparse-racecheck $(( 575 - SECONDS )) compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b44/bin/test_gpu_sparse" --quick
  tail -n 3 "$L/san-sparse-racecheck.log" | head -2
  grep -oE "at [a-z_0-9]+\(.*in [a-z_0-9]+\.cuh?:[0-9]+" "$L/san-sparse-racecheck.log" | sed 's/(.*)+0x[0-9a-f]*//' | sort | uniq -c | head -20
fi
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
