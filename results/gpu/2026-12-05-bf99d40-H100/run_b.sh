#!/usr/bin/env bash
# Second H100 call for bf99d40: the sparse GPU suite, compute-sanitizer (memcheck, synccheck) on the
# quick dense suite, the dense FP8 grid next to bf16 (mla-bench --kv-dtype fp8), and the GPU pytest.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$L/info_b.log" 2>&1
timeout 150 "$B/test_gpu_sparse" > "$L/test_gpu_sparse.log" 2>&1
echo "rc=$?" >> "$L/test_gpu_sparse.log"; pack
for t in memcheck synccheck; do
  timeout 90 compute-sanitizer --tool $t --error-exitcode 99 "$B/test_gpu" --quick > "$L/san-$t.log" 2>&1
  echo "rc=$?" >> "$L/san-$t.log"; pack
done
MLA_GIT_COMMIT=bf99d40 timeout 100 "$B/mla-bench" --grid --kv-dtype fp8 --no-ceilings > "$L/bench-fp8.log" 2>&1
echo "rc=$?" >> "$L/bench-fp8.log"; pack
PYTHONPATH=$PWD/python:$PWD/tests/python MLA_LIBRARY=$B/libmla.so timeout 120 python3 -m pytest -q -rs \
  -p no:cacheprovider tests/python/test_gpu_flash_mla.py > "$L/pytest_gpu.log" 2>&1
echo "rc=$?" >> "$L/pytest_gpu.log"; pack
for f in test_gpu_sparse san-memcheck san-synccheck bench-fp8 pytest_gpu; do echo "== $f"; tail -3 "$L/$f.log"; done
