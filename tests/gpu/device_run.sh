#!/usr/bin/env bash
# device_run.sh — one full GPU-machine run: build, compiler report, SASS counts, GPU suite,
# compute-sanitizer on the quick case, and the benchmark when build/mla-bench exists.
# Everything is tee'd to $OUT (default: ./device-out). Steps to run: arguments from
#   info build test quick devices pytest sanitize profile bench jit fp8bench mixed pages
#   (default: info build test sanitize bench)
# Env: MLA_COMMIT (commit under test, printed), JOBS (make -j, default 16), SAN_KERNELS (MLA_GPU_KERNEL
# values for the sanitizer step, default "default 6 1").
set -u
cd "$(dirname "$0")/../.."
. tests/gpu/calls.sh
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
JOBS=${JOBS:-16}
steps=${*:-info build test sanitize bench}
rc_all=0
has() { case " $steps " in *" $1 "*) return 0 ;; esac; return 1; }

if has info; then
  {
    echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "== commit: ${MLA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv
    nvcc --version | tail -2
    nproc
  } 2>&1 | tee "$OUT/info.log"
fi

if has build; then
  t0=$(date +%s)
  { make -k -j"$JOBS" lib tests 2>&1; echo "make rc=$?"; } | tee "$OUT/build.log" | grep -E "error|rc=" | tail -20
  if [ -d bench ] && ls bench/*.c >/dev/null 2>&1; then
    { make -j"$JOBS" build/mla-bench 2>&1; echo "make bench rc=$?"; } | tee -a "$OUT/build.log" | grep -E "error|rc=" | tail -5
  fi
  echo "build: $(( $(date +%s) - t0 )) s"
  {
    echo "== ptxas (registers / spills / smem) per kernel"
    for f in build/ptxas/*.log; do
      echo "-- $f"
      grep -E "Compiling entry|registers|spill|stack" "$f" | sed 's/ptxas info    : //'
    done
    for obj in build/obj/kernels/*.cu.o; do
      for arch in sm_90a sm_80; do
        echo "== SASS instruction counts: $obj $arch (all kernels of the file)"
        cuobjdump --gpu-architecture $arch --dump-sass "$obj" 2>/dev/null |
          grep -oE "(HMMA|HGMMA|WARPGROUP|LDSM|LDGSTS|UTMALDG|SYNCS|STSM|BAR|LDL|STL|MUFU|FENCE)[.A-Z0-9_]*" | sort | uniq -c
      done
    done
  } >> "$OUT/build.log" 2>&1
  grep -E "spill|stack frame" "$OUT/build.log" | sort | uniq -c
fi

if has test; then
  t0=$(date +%s)
  timeout 330 ./build/test_gpu 2>&1 | tee "$OUT/test_gpu.log" | grep -vE "^  (FAIL|    )" | tail -40
  r=${PIPESTATUS[0]}; [ "$r" = 0 ] || rc_all=1
  echo "test_gpu rc=$r ($(( $(date +%s) - t0 )) s)"
  grep -c "FAIL" "$OUT/test_gpu.log" | sed 's/^/FAIL lines: /'
  grep -m 20 -A3 "FAIL\|MISMATCH" "$OUT/test_gpu.log" | head -60
fi

if has quick; then
  ./build/test_gpu --quick 2>&1 | tee "$OUT/quick.log" | tail -5
fi

if has devices; then
  ./build/test_gpu --devices 2>&1 | tee "$OUT/devices.log" | tail -8
fi

if has pytest; then
  t0=$(date +%s)
  python3 -c "import pytest" 2>/dev/null || echo "pytest is not installed on this machine"
  PYTHONPATH=$PWD/python:$PWD/tests/python:${PYTHONPATH:-} MLA_LIBRARY=$PWD/build/libmla.so PYTHONUNBUFFERED=1 \
    timeout 300 python3 -m pytest -q -rs tests/python/test_gpu_flash_mla.py 2>&1 | tee "$OUT/pytest_gpu.log" | tail -15
  echo "pytest: $(( $(date +%s) - t0 )) s"
fi

if has sanitize; then
  t0=$(date +%s)
  for k in ${SAN_KERNELS:-default 6 1}; do
    for tool in memcheck racecheck synccheck; do
      echo "== compute-sanitizer --tool $tool build/test_gpu --quick (MLA_GPU_KERNEL=$k)"
      if [ $k = default ]; then
        timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool $tool --error-exitcode 99 ./build/test_gpu --quick 2>&1 | tail -6
      else
        MLA_GPU_KERNEL=$k timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool $tool --error-exitcode 99 ./build/test_gpu --quick 2>&1 | tail -6
      fi
      echo "rc=${PIPESTATUS[0]}"
    done
  done 2>&1 | tee "$OUT/sanitizer.log"
  echo "sanitizers: $(( $(date +%s) - t0 )) s"
fi

if has profile; then
  # Nsight Compute on one decode launch per case (PROFILE_CASES: bench --case specs)
  for c in ${PROFILE_CASES:-128,1,128,1,16384 128,1,16,1,16384}; do
    echo "== ncu: mla-bench --case $c (MLA_GPU_KERNEL=${MLA_GPU_KERNEL:-default})"
    timeout 240 ncu --kernel-name regex:mla_decode --launch-count 1 --section SpeedOfLight \
      --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats \
      --section SchedulerStats --section LaunchStats \
      ./build/mla-bench --case "$c" --iters 1 --warmup 1 --no-ceilings --no-graph --no-flush 2>&1 |
      grep -vE "^\[|^mla-bench|^==PROF==" | sed -n '/Section:/,$p'
  done 2>&1 | tee "$OUT/ncu.log" | grep -E "Section:|Throughput|Pipe|Busy|Issue Slots|Stall|Duration|Registers|Elapsed" | head -60
fi

if has bench; then
  if [ -x build/mla-bench ]; then
    t0=$(date +%s)
    MLA_GIT_COMMIT=${MLA_COMMIT:-} ./build/mla-bench ${BENCH_ARGS:---grid} --json "$OUT/bench.json" 2>&1 |
      tee "$OUT/bench.log" | tail -45
    if [ -n "${BENCH_ALSO_KERNEL:-}" ]; then
      echo "== same grid with MLA_GPU_KERNEL=$BENCH_ALSO_KERNEL"
      MLA_GPU_KERNEL=$BENCH_ALSO_KERNEL MLA_GIT_COMMIT=${MLA_COMMIT:-} ./build/mla-bench ${BENCH_ARGS:---grid} --no-ceilings 2>&1 |
        tee "$OUT/bench_kernel$BENCH_ALSO_KERNEL.log" | grep -E "^b=" | tail -30
    fi
    python3 bench/plot.py "$OUT/bench.json" -o "$OUT/bench.png" 2>&1 | tail -2
    echo "bench: $(( $(date +%s) - t0 )) s"
  else
    echo "bench: build/mla-bench not built (bench/ not present yet)"
  fi
fi
if has jit; then
  # the portable sm_80 path proven by PTX JIT: which kernels carry compute_80 PTX, then the quick
  # suite forced onto mma.sync (MLA_GPU_KERNEL=1: scheduler, mma.sync decode, combine) with the
  # driver told to JIT-compile the PTX instead of loading the sm_90a SASS; then the portable path's
  # speed on this card (the sm_90a SASS build of the same kernel, no JIT) for reference
  t0=$(date +%s)
  {
    echo "== cuobjdump --list-ptx build/libmla.so"
    cuobjdump --list-ptx build/libmla.so 2>&1 | head -20
    echo "== cuobjdump --list-elf build/libmla.so"
    cuobjdump --list-elf build/libmla.so 2>&1 | head -20
    echo "== CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=1 build/test_gpu --quick"
    CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=1 timeout 120 ./build/test_gpu --quick 2>&1 | tail -30
    echo "rc=${PIPESTATUS[0]}"
    echo "== CUDA_FORCE_PTX_JIT=1 build/test_gpu --quick (default kernel: the library must see that the wgmma"
    echo "   kernels were JIT-compiled from empty compute_80 bodies and use mma.sync; FP8 plans UNSUPPORTED)"
    CUDA_FORCE_PTX_JIT=1 timeout 120 ./build/test_gpu --quick 2>&1 | tail -4
    echo "rc=${PIPESTATUS[0]}"
    echo "== CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=2 build/test_gpu --quick (1-stage, the A100 variant)"
    CUDA_FORCE_PTX_JIT=1 MLA_GPU_KERNEL=2 timeout 120 ./build/test_gpu --quick 2>&1 | tail -4
    echo "rc=${PIPESTATUS[0]}"
    echo "== portable path speed: MLA_GPU_KERNEL=1 build/mla-bench ($JIT_BENCH_ARGS)"
    MLA_GPU_KERNEL=1 timeout 120 ./build/mla-bench ${JIT_BENCH_ARGS:---quick} --no-ceilings 2>&1 | grep -vE "^\[" | tail -20
    echo "== same rows, default kernel"
    timeout 120 ./build/mla-bench ${JIT_BENCH_ARGS:---quick} --no-ceilings 2>&1 | grep -E "^b=" | tail -20
  } 2>&1 | tee "$OUT/jit.log" | grep -E "rc=|passed|==|^b=|FAIL|error" | head -60
  echo "jit: $(( $(date +%s) - t0 )) s"
fi

if has fp8bench; then
  # dense FP8 cache vs bf16 on the same grid, same run (FP8_BENCH_ARGS, default --grid --no-ceilings)
  t0=$(date +%s)
  MLA_GIT_COMMIT=${MLA_COMMIT:-} timeout 200 ./build/mla-bench --kv-dtype fp8 ${FP8_BENCH_ARGS:---grid --no-ceilings} \
    --json "$OUT/bench_fp8.json" 2>&1 | grep -vE "^\[" | tee "$OUT/bench_fp8.log" | grep -E "^b=|^timing|^device|rc=" | head -40
  MLA_GIT_COMMIT=${MLA_COMMIT:-} timeout 200 ./build/mla-bench ${FP8_BENCH_ARGS:---grid --no-ceilings} 2>&1 |
    grep -vE "^\[" | tee "$OUT/bench_bf16.log" | grep -E "^b=" | head -40
  if [ -n "${FP8_NOPF_ARGS:-}" ]; then
    echo "== FP8 without the L2 prefetch of the tile after next (MLA_FP8_L2_PREFETCH=0)" | tee -a "$OUT/bench_fp8.log"
    MLA_FP8_L2_PREFETCH=0 timeout 100 ./build/mla-bench --kv-dtype fp8 $FP8_NOPF_ARGS --no-ceilings 2>&1 |
      grep -E "^b=" | tee -a "$OUT/bench_fp8.log"
  fi
  echo "fp8bench: $(( $(date +%s) - t0 )) s"
fi
if has mixed; then
  # per-request query lengths (cu_seqlens_q) against padding (mla-bench --mixed): the library's rule,
  # then the m-block round robin forced on and off (MLA_GPU_QMIX_RR), same run
  t0=$(date +%s)
  MLA_GIT_COMMIT=${MLA_COMMIT:-} timeout 120 ./build/mla-bench --mixed --json "$OUT/bench_mixed.json" 2>&1 |
    grep -vE "^\[" | tee "$OUT/bench_mixed.log" | sed -n '/^Per-request/,/^(q/p'
  for rr in 1 0; do
    echo "== MLA_GPU_QMIX_RR=$rr" | tee -a "$OUT/bench_mixed.log"
    MLA_GPU_QMIX_RR=$rr MLA_GIT_COMMIT=${MLA_COMMIT:-} timeout 120 ./build/mla-bench --mixed --no-ceilings 2>&1 |
      grep -vE "^\[" | sed -n '/^Per-request/,/^(q/p' | tee -a "$OUT/bench_mixed.log"
  done
  echo "mixed: $(( $(date +%s) - t0 )) s"
fi
if has pages; then
  # issue #4's page-size target (pages 16 and 128 within 5% of page 64, h_kv = 1) on four spec §7
  # rows (tests/gpu/calls.sh pages_cases; the same lengths at every page size), PAGES_ROUNDS rounds
  # (default 2) in one call; page 16 runs the cp.async kernel (the TMA one needs pages of 64k
  # tokens, src/gpu.cu), so its gap is that loader's. BENCH: the binary (default ./build/mla-bench,
  # e.g. a carried one)
  t0=$(date +%s)
  pargs=$(pages_cases)
  for rnd in $(seq 1 "${PAGES_ROUNDS:-2}"); do
    echo "== pages, round $rnd" | tee -a "$OUT/bench_pages.log"
    MLA_GIT_COMMIT=${MLA_COMMIT:-} timeout 120 "${BENCH:-./build/mla-bench}" $pargs --no-ceilings 2>&1 |
      grep -vE "^\[" | tee -a "$OUT/bench_pages.log" | grep -E "^b="
  done
  echo "pages: $(( $(date +%s) - t0 )) s"
fi
exit $rc_all
