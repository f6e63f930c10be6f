#!/usr/bin/env bash
# Third call (91647cf, binaries of run.sh): the portable path proven by PTX JIT at this commit (its
# mma.sync kernel gained req_mblk in c7b97c2, after 4cacac1's JIT run): the quick suite with the
# driver JIT-compiling the compute_80 PTX, mma.sync forced / the default kernel (must fall back) /
# the 1-stage variant; test_gpu --no-grid of the next commit (library 91647cf; tests/test_gpu.c adds a
# forced round-robin cu_seqlens_q case to every forced kernel); then the portable path's --mixed speed
# (its sm_90a SASS, no JIT) and FP8 --mixed --quick.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs3; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run3.tgz logs3); }
export MLA_GIT_COMMIT=91647cf  # library; test_gpu from 422eb51
{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
  echo "== cuobjdump --list-ptx libmla.so"; cuobjdump --list-ptx "$B/libmla.so" 2>&1 | head -20
  echo "== cuobjdump --list-elf libmla.so"; cuobjdump --list-elf "$B/libmla.so" 2>&1 | head -20; } > "$L/info.log" 2>&1
for k in 1; do
  if [ $k = default ]; then CUDA_FORCE_PTX_JIT=1 timeout 150 "$B/test_gpu" --quick > "$L/jit-k$k.log" 2>&1
  else CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=$k timeout 150 "$B/test_gpu" --quick > "$L/jit-k$k.log" 2>&1; fi
  echo "rc=$?" >> "$L/jit-k$k.log"; pack
  echo "== jit k=$k: $(grep -E "passed, [0-9]+ failed|rc=" "$L/jit-k$k.log" | tail -3 | tr '\n' ' ')"
done
timeout 200 "$B/test_gpu" --no-grid > "$L/test_gpu-no-grid.log" 2>&1; echo "rc=$?" >> "$L/test_gpu-no-grid.log"; pack
grep -E "kernel variant|passed, [0-9]+ failed$|rc=" "$L/test_gpu-no-grid.log" | tail -12
for k in default 2; do
  if [ $k = default ]; then CUDA_FORCE_PTX_JIT=1 timeout 150 "$B/test_gpu" --quick > "$L/jit-k$k.log" 2>&1
  else CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=$k timeout 150 "$B/test_gpu" --quick > "$L/jit-k$k.log" 2>&1; fi
  echo "rc=$?" >> "$L/jit-k$k.log"; pack
  echo "== jit k=$k: $(grep -E "passed, [0-9]+ failed|rc=" "$L/jit-k$k.log" | tail -3 | tr '\n' ' ')"
done
MLA_GPU_KERNEL=1 timeout 90 "$B/mla-bench" --mixed --no-ceilings > "$L/mixed-portable.log" 2>&1; echo "rc=$?" >> "$L/mixed-portable.log"; pack
sed -n '/^Per-request/,/^(q/p' "$L/mixed-portable.log"
timeout 60 "$B/mla-bench" --mixed --quick --kv-dtype fp8 --no-ceilings > "$L/mixed-fp8.log" 2>&1; echo "rc=$?" >> "$L/mixed-fp8.log"; pack
sed -n '/^Per-request/,/^(q/p' "$L/mixed-fp8.log"
