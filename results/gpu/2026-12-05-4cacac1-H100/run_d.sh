#!/usr/bin/env bash
# Second H100 call for 4cacac1: the whole dense and sparse GPU suites, compute-sanitizer memcheck on
# the quick dense suite, and the GPU pytest (flash_mla_with_kvcache with cu_seqlens_q among them).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$L/info_d.log" 2>&1
timeout 280 "$B/test_gpu" > "$L/test_gpu.log" 2>&1
echo "rc=$?" >> "$L/test_gpu.log"; pack
timeout 110 "$B/test_gpu_sparse" > "$L/test_gpu_sparse.log" 2>&1
echo "rc=$?" >> "$L/test_gpu_sparse.log"; pack
PYTHONPATH=$PWD/python:$PWD/tests/python MLA_LIBRARY=$B/libmla.so timeout 100 python3 -m pytest -q -rs \
  -p no:cacheprovider tests/python/test_gpu_flash_mla.py > "$L/pytest_gpu.log" 2>&1
echo "rc=$?" >> "$L/pytest_gpu.log"; pack
timeout 80 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu" --quick > "$L/san-memcheck.log" 2>&1
echo "rc=$?" >> "$L/san-memcheck.log"; pack
for f in test_gpu test_gpu_sparse pytest_gpu san-memcheck; do echo "== $f"; tail -3 "$L/$f.log"; done
