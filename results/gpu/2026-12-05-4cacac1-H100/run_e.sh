#!/usr/bin/env bash
# Third H100 call for 4cacac1: the whole dense suite again with a longer limit (run_d.sh's 280 s cut
# it off inside the spec §6 grid, its last section; every section before had passed).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$L/info_e.log" 2>&1
timeout 450 "$B/test_gpu" > "$L/test_gpu.log" 2>&1
echo "rc=$?" >> "$L/test_gpu.log"
tail -4 "$L/test_gpu.log"
