#!/usr/bin/env bash
# ncu_stalls.sh — where one decode kernel launch spends its time: Nsight Compute speed-of-light,
# warp-state statistics and the SASS instructions with the most stall samples (source page).
# Usage: tests/gpu/ncu_stalls.sh <name> <mla-bench --case ...> ; env KREGEX (kernel-name regex,
# default the sm90 decode kernels), OUT (output folder), BENCH (binary, default ./build/mla-bench),
# BENCH_FLAGS (default the dense flags; e.g. BENCH_FLAGS=--sparse-decode KREGEX=mla_sp_decode_v32).
# The stall table is the SASS source view's top instructions (`ncu_lines.py CSV --sass-top 40`; ncu's
# CUDA-source view printed no metric columns on the H100's ncu of CUDA 13.0); per-line stalls come
# from the same page through tests/gpu/ncu_lines.py with the kernel's disassembly. Keep the case's
# device memory small: ncu's kernel replay saves and restores it for every pass (a dense case with a
# 2.4 GB cache did not finish in 200 s, by inference for that reason).
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
python3 tests/gpu/ncu_lines.py /tmp/ncu_src_$name.csv --sass-top 40 >> "$OUT/ncu_$name.log" 2>&1
