#!/usr/bin/env bash
# ncu_stalls.sh — where one decode kernel launch spends its time: Nsight Compute speed-of-light,
# warp-state statistics and the SASS instructions with the most stall samples (source page).
# Usage: tests/gpu/ncu_stalls.sh <name> <mla-bench --case ...> ; env KREGEX (kernel-name regex,
# default the sm90 decode kernels), OUT (output folder), BENCH (binary, default ./build/mla-bench),
# BENCH_FLAGS (default the dense flags; e.g. BENCH_FLAGS=--sparse-decode KREGEX=mla_sp_decode_v32),
# The stall table is made of the SASS source view (ncu's CUDA-source view printed no metric columns
# on the H100's ncu of CUDA 13.0); per-line stalls come from that page through tests/gpu/ncu_lines.py.
# Writes $OUT/ncu_<name>.log and $OUT/ncu_src_<name>.csv.gz (the source page, whole).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-out}
name=$1; shift
rep=/tmp/ncu_$name
ncu --kernel-name "regex:${KREGEX:-mla_decode_sm90}" --launch-count 1 --import-source yes --clock-control none \
  --section SpeedOfLight --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis \
  -f -o "$rep" ${BENCH:-./build/mla-bench} ${BENCH_FLAGS---no-ceilings --no-graph --iters 1 --warmup 0} "$@" > /tmp/ncu_run_$name.log 2>&1
echo "ncu rc=$?" > "$OUT/ncu_$name.log"
tail -3 /tmp/ncu_run_$name.log >> "$OUT/ncu_$name.log"
ncu --import "$rep.ncu-rep" --print-details all 2>&1 | grep -vE "^\s*$" >> "$OUT/ncu_$name.log"
ncu --import "$rep.ncu-rep" --page source --csv --print-source sass > /tmp/ncu_src_$name.csv 2>&1
# keep the whole page (gzipped): tests/gpu/ncu_lines.py maps the SASS rows to source lines offline
gzip -c /tmp/ncu_src_$name.csv > "$OUT/ncu_src_$name.csv.gz"
python3 - "$name" >> "$OUT/ncu_$name.log" 2>&1 <<'PY'
import csv, sys
name = sys.argv[1]
rows = list(csv.reader(open(f"/tmp/ncu_src_{name}.csv", errors="replace")))
hdr_i = next((i for i, r in enumerate(rows) if any("Sampling" in c for c in r)), None)
if hdr_i is None:
    print("no stall-sampling columns in the source page; first lines:"); [print(r) for r in rows[:5]]; sys.exit()
hdr = rows[hdr_i]
col = next(i for i, c in enumerate(hdr) if c.startswith("Warp Stall Sampling (All"))
src = next((i for i, c in enumerate(hdr) if c in ("Source", "# Source")), 1)
data = []
for r in rows[hdr_i + 1:]:
    try: data.append((float(r[col].replace(",", "")), r))
    except (ValueError, IndexError): pass
tot = sum(d[0] for d in data) or 1
print(f"== top SASS by stall samples ({len(data)} instructions, {tot:.0f} samples); columns: {hdr}")
for v, r in sorted(data, key=lambda d: -d[0])[:40]:
    extra = [f"{hdr[i]}={r[i]}" for i in range(len(hdr)) if i not in (col, src) and "stall" in hdr[i].lower() and r[i] not in ("0", "")]
    print(f"{100*v/tot:5.1f}%  {r[0]:>6}  {r[src][:110]}  {' '.join(extra)[:200]}")
PY
