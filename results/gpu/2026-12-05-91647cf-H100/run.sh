#!/usr/bin/env bash
# Device call for 91647cf (HEAD): the cu_seqlens_q gate (3d01bb8: m-block round robin + weighted
# scheduler only with >= 8 requests per part; 91647cf: never for v6) on an H100. Binaries built off
# the device from 91647cf (nvcc 13.0, no spills) and carried in .devcarry/bin.txz;
# mla-bench-qf: the same built with MLA_DEFS=-DMLA_V3_QFIRST=1 (Q's cp.async before the first K tiles' TMA). Steps in order of
# need, each packed into $OUT/run.tgz as it ends.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
step() { # name timeout cmd...
  local n=$1 t=$2; shift 2; local t0=$(date +%s)
  timeout "$t" "$@" > "$L/$n.log" 2>&1; local r=$?
  echo "rc=$r ($(( $(date +%s) - t0 )) s)" >> "$L/$n.log"; pack
  echo "== $n: $(tail -n 3 "$L/$n.log" | tr '\n' ' ')"
}
export MLA_GIT_COMMIT=91647cf
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -1; nproc; } > "$L/info.log" 2>&1
step test_gpu-quick 60 "$B/test_gpu" --quick
step test_gpu 340 "$B/test_gpu"
step mixed-rule 90 "$B/mla-bench" --mixed --json "$L/mixed-rule.json"
sed -n '/^Per-request/,/^(q/p' "$L/mixed-rule.log"
step san-memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu" --quick
step pytest-gpu 60 env PYTHONPATH=$PWD/python:$PWD/tests/python MLA_LIBRARY=$B/libmla.so python3 -m pytest -q -rs -p no:cacheprovider tests/python/test_gpu_flash_mla.py
step san-racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 99 "$B/test_gpu" --quick
step san-synccheck 90 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu" --quick
step test_gpu_sparse-quick 60 "$B/test_gpu_sparse" --quick
for rnd in 1 2 3; do
  step qf-base-r$rnd 60 "$B/mla-bench" --quick --no-ceilings
  step qf-qfirst-r$rnd 60 "$B/mla-bench-qf" --quick --no-ceilings
done
for f in $L/qf-*.log; do echo "== $f"; grep -E "^b=" "$f"; done
step mixed-rr1 90 env MLA_GPU_QMIX_RR=1 "$B/mla-bench" --mixed --no-ceilings
step mixed-rr0 90 env MLA_GPU_QMIX_RR=0 "$B/mla-bench" --mixed --no-ceilings
for f in mixed-rr1 mixed-rr0; do echo "== $f"; sed -n '/^Per-request/,/^(q/p' "$L/$f.log"; done
