#!/usr/bin/env bash
# The closing run of dc560e1's kernels (HEAD's kernels/ and src/ are dc560e1's), one H100 call:
# whole dense and sparse suites, the spec grid (JSON), issue #4's page rows (two rounds), the sparse
# decode / prefill rows, memcheck / synccheck / racecheck on the quick dense suite, the GPU pytest.
# bin29: build/ of HEAD (test_gpu, test_gpu_sparse, mla-bench, libmla.so), built off the device.
set -u
mkdir -p .devcarry/b29 && tar -xJf .devcarry/bin29.txz -C .devcarry/b29
. .devcarry/calls.sh
L=$OUT/s35c5; mkdir -p "$L"; D=$PWD/.devcarry/b29/bin; T=s35c5.tgz
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-dc560e1}
call_info "$L"
call_step "$L" $T test_gpu 300 "$D/test_gpu"
tail -n 1 "$L/test_gpu.log"
call_step "$L" $T grid 60 "$D/mla-bench" --grid --json "$L/bench.json"
tail -n 12 "$L/grid.log" | head -8 | cut -c1-120
call_step "$L" $T pages 60 bash -c "for r in 1 2; do echo \"== pages, round \$r\"; \"$D/mla-bench\" $(pages_cases) --no-ceilings; done"
call_step "$L" $T test_gpu_sparse 150 "$D/test_gpu_sparse"
tail -n 1 "$L/test_gpu_sparse.log"
call_step "$L" $T sparse-bench 90 "$D/mla-bench" --sparse
grep -E "^sparse (decode|prefill)" "$L/sparse-bench.log" | head -4 | cut -c1-130
for tool in memcheck synccheck racecheck; do
  call_step "$L" $T san-$tool 90 compute-sanitizer --tool $tool --error-exitcode 99 "$D/test_gpu" --quick
done
grep -oE "at [a-z_0-9]+\(.*in sm90_tile.cuh:[0-9]+" "$L/san-racecheck.log" | sed 's/(.*)+0x[0-9a-f]*//' | sort | uniq -c
call_step "$L" $T pytest-gpu 120 env PYTHONPATH=$PWD/python:$PWD/tests/python MLA_LIBRARY=$D/libmla.so python3 -m pytest -q -rs tests/python/test_gpu_flash_mla.py
tail -n 3 "$L/pytest-gpu.log"
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
