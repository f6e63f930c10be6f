#!/usr/bin/env bash
# seesaw2_tma_run.sh — where v6's TMA issue time goes (binaries: tests/gpu/seesaw2_tma_build.sh):
# the wait accounting with slot 5 split into block_table reads / mbarrier arming / box issue, with and
# without the L1 prefetch of the next refill's block_table line; then default vs v6 vs v6 + prefetch
# in one call, two rounds; then the quick suite with v6 forced. Logs in $OUT/logs, packed into run.tgz.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; nvcc --version | tail -2; } > "$L/info.log" 2>&1
D="--case 128,2,128,1,16384,64,causal --case 128,1,16,1,16384 --case 8,1,128,1,8192,64,fixed"
for v in 0 1 2 3 pf; do
  MLA_GPU_KERNEL=12 MLA_BENCH_TIMELINE=1 timeout 60 "$B/mla-bench-dt$v" --no-ceilings --iters 5 $D > "$L/diag-dt$v.log" 2>&1
done
pack
C="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,2,128,1,4096,64,causal \
--case 128,1,16,1,16384 --case 128,1,64,1,16384 --case 128,1,16,1,4096 \
--case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 64,2,128,1,2048"
for rd in 1 2; do
  timeout 80 "$B/mla-bench" --no-ceilings --iters 20 $C > "$L/ab-default-$rd.log" 2>&1
  MLA_GPU_KERNEL=12 timeout 80 "$B/mla-bench" --no-ceilings --iters 20 $C > "$L/ab-v6-$rd.log" 2>&1
  MLA_GPU_KERNEL=12 timeout 80 "$B/mla-bench-btpf" --no-ceilings --iters 20 $C > "$L/ab-v6-btpf-$rd.log" 2>&1
  [ -x "$B/mla-bench-qf" ] && timeout 80 "$B/mla-bench-qf" --no-ceilings --iters 20 $C > "$L/ab-default-qf-$rd.log" 2>&1
  pack
done
MLA_GPU_KERNEL=12 timeout 90 "$B/test_gpu" --quick > "$L/quick-v6.log" 2>&1; echo "rc=$?" >> "$L/quick-v6.log"
pack
# the default kernel with Q issued first (MLA_V3_QFIRST=1 builds of mla-bench / test_gpu, optional):
# the whole suite and memcheck / synccheck on --quick
if [ -x "$B/test_gpu-qf" ]; then
  timeout 260 "$B/test_gpu-qf" > "$L/test_gpu-qf.log" 2>&1; echo "rc=$?" >> "$L/test_gpu-qf.log"; pack
  for tool in memcheck synccheck; do
    timeout 60 compute-sanitizer --tool $tool "$B/test_gpu-qf" --quick > "$L/$tool-qf.log" 2>&1
    echo "rc=$?" >> "$L/$tool-qf.log"; pack
  done
fi
