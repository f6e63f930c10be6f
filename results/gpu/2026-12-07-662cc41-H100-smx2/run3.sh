#!/usr/bin/env bash
# racecheck on ed515e4's default kernels (bin20) and SMX=1 (bin21), v3 forced and default plan: is the
# hazard report of run19 (bin26, SMX=2) new, or also there on the shipped kernels?
set -u
for n in 20 21; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s35c3; mkdir -p "$L"; D=$PWD/.devcarry; T=s35c3.tgz
call_info "$L"
call_step "$L" $T race20-v3 120 env MLA_GPU_KERNEL=4 compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b20/bin/test_gpu" --quick
call_step "$L" $T race21-v3 120 env MLA_GPU_KERNEL=4 compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b21/bin/test_gpu" --quick
call_step "$L" $T race20-def 200 compute-sanitizer --tool racecheck --error-exitcode 99 "$D/b20/bin/test_gpu" --quick
for f in "$L"/race*.log; do echo "== $f"; grep -E "Race reported|SUMMARY" "$f" | sort | uniq -c | head -20; done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
