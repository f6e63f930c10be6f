#!/usr/bin/env bash
# Third H100 call for bf99d40 (issue #7 part 3): the portable sm_80 path. Binaries: the commit's
# build from tests/gpu/seesaw2_btsm_build.sh's bundle (.devcarry/bin.txz: bin/test_gpu, bin/mla-bench).
# PTX / ELF lists, the quick suite with the driver told to JIT the compute_80 PTX (mma.sync forced,
# the default kernel, the 1-stage variant), then the portable path's speed on this card.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
{
  echo "== cuobjdump --list-ptx bin/test_gpu"; cuobjdump --list-ptx "$B/test_gpu" 2>&1 | head -20
  echo "== cuobjdump --list-elf bin/test_gpu"; cuobjdump --list-elf "$B/test_gpu" 2>&1 | head -20
  echo "== CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=1 test_gpu --quick"
  CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=1 timeout 120 "$B/test_gpu" --quick 2>&1 | tail -30; echo "rc=${PIPESTATUS[0]}"
  echo "== CUDA_FORCE_PTX_JIT=1 test_gpu --quick (default kernel: must fall back to mma.sync; FP8 plans UNSUPPORTED)"
  CUDA_FORCE_PTX_JIT=1 timeout 120 "$B/test_gpu" --quick 2>&1 | tail -6; echo "rc=${PIPESTATUS[0]}"
  echo "== CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=2 test_gpu --quick (1-stage, the A100 variant)"
  CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=2 timeout 120 "$B/test_gpu" --quick 2>&1 | tail -6; echo "rc=${PIPESTATUS[0]}"
  echo "== portable path speed on this card: MLA_GPU_KERNEL=1 mla-bench --quick (sm_90a SASS of the mma.sync kernel)"
  MLA_GPU_KERNEL=1 MLA_GIT_COMMIT=bf99d40 timeout 100 "$B/mla-bench" --quick --no-ceilings 2>&1 | grep -vE "^\[" | tail -20
  echo "== same rows, default kernel"
  MLA_GIT_COMMIT=bf99d40 timeout 100 "$B/mla-bench" --quick --no-ceilings 2>&1 | grep -E "^b=" | tail -20
} > "$L/jit.log" 2>&1
grep -E "rc=|passed|^b=" "$L/jit.log" | head -40
