#!/usr/bin/env bash
# First H100 call for bf99d40 (binaries built off the device from that commit with nvcc 13.0,
# -gencode sm_90a + sm_80 + compute_80, packed into .devcarry/bin.txz): the card, the dense spec §7
# grid and FlashMLA's sparse cases (mla-bench), then the GPU suite (test_gpu, full).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv
  nvcc --version | tail -2; nproc; } > "$L/info.log" 2>&1
MLA_GIT_COMMIT=bf99d40 timeout 170 "$B/mla-bench" --grid --json "$L/bench.json" > "$L/bench.log" 2>&1
echo "rc=$?" >> "$L/bench.log"; pack
MLA_GIT_COMMIT=bf99d40 timeout 110 "$B/mla-bench" --sparse --json "$L/sparse.json" > "$L/sparse.log" 2>&1
echo "rc=$?" >> "$L/sparse.log"; pack
timeout 290 "$B/test_gpu" > "$L/test_gpu.log" 2>&1
echo "rc=$?" >> "$L/test_gpu.log"; pack
tail -3 "$L/test_gpu.log"; grep -E "^b=|^sparse|rc=" "$L/bench.log" "$L/sparse.log" | tail -45
