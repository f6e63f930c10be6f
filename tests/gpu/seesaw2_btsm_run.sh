#!/usr/bin/env bash
# seesaw2_btsm_run.sh — v6 with its block_table entries copied into smem a refill ahead (MLA_SS2_BTSM=1;
# binaries: tests/gpu/seesaw2_btsm_build.sh): quick suite with v6 forced (that build and the commit's),
# the wait accounting of the block_table part, then default / v6 / v6 + BTSM in one call, two rounds.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; nvcc --version | tail -2; } > "$L/info.log" 2>&1
MLA_GPU_KERNEL=12 timeout 60 "$B/test_gpu-btsm" --quick > "$L/quick-v6-btsm.log" 2>&1; ok=$?; echo "rc=$ok" >> "$L/quick-v6-btsm.log"
MLA_GPU_KERNEL=12 timeout 60 "$B/test_gpu" --quick > "$L/quick-v6.log" 2>&1; echo "rc=$?" >> "$L/quick-v6.log"
pack
[ "$ok" = 0 ] || { echo "the BTSM build failed its quick suite: no timing" >> "$L/quick-v6-btsm.log"; exit 1; }
D="--case 128,2,128,1,16384,64,causal --case 128,1,16,1,16384 --case 8,1,128,1,8192,64,fixed"
MLA_GPU_KERNEL=12 MLA_BENCH_TIMELINE=1 timeout 60 "$B/mla-bench-dtsm" --no-ceilings --iters 5 $D > "$L/diag-dtsm.log" 2>&1
pack
C="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,2,128,1,4096,64,causal \
--case 128,1,16,1,16384 --case 128,1,64,1,16384 --case 128,1,16,1,4096 \
--case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 64,2,128,1,2048"
for rd in 1 2; do
  timeout 40 "$B/mla-bench" --no-ceilings --iters 20 $C > "$L/ab-default-$rd.log" 2>&1
  MLA_GPU_KERNEL=12 timeout 40 "$B/mla-bench" --no-ceilings --iters 20 $C > "$L/ab-v6-$rd.log" 2>&1
  MLA_GPU_KERNEL=12 timeout 40 "$B/mla-bench-btsm" --no-ceilings --iters 20 $C > "$L/ab-v6-btsm-$rd.log" 2>&1
  pack
done
