#!/usr/bin/env bash
# First H100 call for 4cacac1 (binaries built off the device from that commit with nvcc 13.0,
# -gencode sm_90a + sm_80 + compute_80, carried as .devcarry/bin.txz): issue #7's two open items.
#  1. mla-bench --mixed: per-request query lengths (cu_seqlens_q) against padding to s_q, bf16 (the
#     9 preset pairs) and FP8 (--quick pairs).
#  2. The portable sm_80 path with the driver told to JIT the compute_80 PTX (CUDA_FORCE_PTX_JIT=1):
#     the quick dense suite with mma.sync forced, the default kernel (must fall back to mma.sync,
#     FP8 plans UNSUPPORTED) and the 1-stage variant; then the mma.sync kernel's speed on this card
#     (its sm_90a SASS) next to the default kernel, same rows.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
C=4cacac1
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv
  nvcc --version | tail -2; nproc; } > "$L/info.log" 2>&1
MLA_GIT_COMMIT=$C timeout 200 "$B/mla-bench" --mixed --json "$L/bench-mixed.json" > "$L/bench-mixed.log" 2>&1
echo "rc=$?" >> "$L/bench-mixed.log"; pack
MLA_GIT_COMMIT=$C timeout 60 "$B/mla-bench" --mixed --quick --kv-dtype fp8 --no-ceilings > "$L/bench-mixed-fp8.log" 2>&1
echo "rc=$?" >> "$L/bench-mixed-fp8.log"; pack
{
  echo "== cuobjdump --list-ptx bin/test_gpu"; cuobjdump --list-ptx "$B/test_gpu" 2>&1 | head -20
  echo "== cuobjdump --list-elf bin/test_gpu"; cuobjdump --list-elf "$B/test_gpu" 2>&1 | head -20
  echo "== CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=1 test_gpu --quick"
  CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=1 timeout 100 "$B/test_gpu" --quick 2>&1 | tail -30; echo "rc=${PIPESTATUS[0]}"
  echo "== CUDA_FORCE_PTX_JIT=1 test_gpu --quick (default kernel: must fall back to mma.sync; FP8 plans UNSUPPORTED)"
  CUDA_FORCE_PTX_JIT=1 timeout 80 "$B/test_gpu" --quick 2>&1 | tail -6; echo "rc=${PIPESTATUS[0]}"
  echo "== CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=2 test_gpu --quick (1-stage, the A100 variant)"
  CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=2 timeout 80 "$B/test_gpu" --quick 2>&1 | tail -6; echo "rc=${PIPESTATUS[0]}"
  echo "== portable path speed on this card: MLA_GPU_KERNEL=1 mla-bench --quick (sm_90a SASS of the mma.sync kernel)"
  MLA_GPU_KERNEL=1 MLA_GIT_COMMIT=$C timeout 70 "$B/mla-bench" --quick --no-ceilings 2>&1 | grep -vE "^\[" | tail -20
  echo "== same rows, default kernel"
  MLA_GIT_COMMIT=$C timeout 60 "$B/mla-bench" --quick --no-ceilings 2>&1 | grep -E "^b=" | tail -20
} > "$L/jit.log" 2>&1
pack
sed -n '/^case/,$p' "$L/bench-mixed.log" | grep -v "^\[" | tail -32
grep -E "rc=|passed|^b=" "$L/bench-mixed-fp8.log" "$L/jit.log" | head -40
