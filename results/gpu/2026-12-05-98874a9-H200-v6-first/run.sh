#!/usr/bin/env bash
# seesaw2_run.sh — the first device run of v6 (kernels/decode_seesaw2.cu, MLA_GPU_KERNEL=12), in the
# order that fails fastest: the forced-kernel quick suite (a wrong barrier phase hangs, so every step
# has a timeout), then v6 against the default kernel on the rows it is meant for, then the whole suite
# (which forces "12" on its kernel-variant cases) and the sanitizers on v6.
#
# Binaries come prebuilt (the device call's time is scarce), stripped, in .devcarry/bin.txz, made by
# tests/gpu/seesaw2_build.sh on the build machine:
#   bin/mla-bench, bin/test_gpu          (make -j16 lib tests build/mla-bench at the commit under test)
#   bin/mla-bench-cw0                    (optional: make MLA_DEFS=-DMLA_SS2_CHUNK_WAIT=0 BUILD=build-xcw0
#                                         build-xcw0/mla-bench: one wait point per chunk group)
#   bin/mla-bench-pf                     (optional: make MLA_DEFS=-DMLA_SS2_L2PF=1 BUILD=build-xpf
#                                         build-xpf/mla-bench: tile j + 4 prefetched into L2)
#   bin/mla-bench-r1                     (optional: make MLA_DEFS=-DMLA_SS2_EARLY_R1=1 BUILD=build-xr1
#                                         build-xr1/mla-bench: stage 1's chunks 0-3 refilled before QK^T(j0+2))
#   bin/mla-bench-qf                     (optional: make MLA_DEFS=-DMLA_V3_QFIRST=1 BUILD=build-xqf
#                                         build-xqf/mla-bench: the default kernel with Q issued first)
#   bin/mla-bench-diag8                  (optional: make MLA_DEFS=-DMLA_DIAG=8 MLA_ALLOW_SPILLS=1
#                                         BUILD=build-xdiag8 build-xdiag8/mla-bench: v6's wait accounting)
# Run on the device from the repository root with $OUT set; logs go to $OUT/logs and are packed into
# $OUT/run.tgz after every step (only a few files come back individually). The whole run is longer
# than one device call (600 s): `seesaw2_run.sh ab` (steps 1, 2, 2b: ~5 min) and `seesaw2_run.sh suite`
# (steps 3, 4: ~6 min) in two calls; no argument runs both.
set -u
PART=${1:-all}
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; nvcc --version | tail -2; } > "$L/info.log" 2>&1

if [ "$PART" != suite ]; then
# 1. correctness first: the quick suite with v6 forced on every case
MLA_GPU_KERNEL=12 timeout 90 "$B/test_gpu" --quick > "$L/quick-v6.log" 2>&1; echo "rc=$?" >> "$L/quick-v6.log"; pack

# 2. v6 against the default (v3 for these rows) in the same call, two rounds (the switch builds one
#    round each, between them): compute-bound rows, memory-bound rows, small batches (spec §7
#    formulas; median of 20 graph replays, L2 flushed; each run ~30-40 s)
C="--case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,2,128,1,4096,64,causal \
--case 128,1,16,1,16384 --case 128,1,64,1,16384 --case 128,1,16,1,4096 \
--case 8,1,128,1,8192,64,fixed --case 32,1,128,1,2048 --case 64,2,128,1,2048"
for rd in 1 2; do
  timeout 80 "$B/mla-bench" --no-ceilings --iters 20 $C > "$L/ab-default-$rd.log" 2>&1
  MLA_GPU_KERNEL=12 timeout 80 "$B/mla-bench" --no-ceilings --iters 20 $C > "$L/ab-v6-$rd.log" 2>&1
  if [ $rd = 1 ]; then
    for v in cw0 pf r1; do
      if [ -x "$B/mla-bench-$v" ]; then
        MLA_GPU_KERNEL=12 timeout 80 "$B/mla-bench-$v" --no-ceilings --iters 20 $C > "$L/ab-v6-$v.log" 2>&1
      fi
    done
    if [ -x "$B/mla-bench-qf" ]; then
      timeout 80 "$B/mla-bench-qf" --no-ceilings --iters 20 $C > "$L/ab-default-qf.log" 2>&1
    fi
  fi
  pack
done

# 2b. where v6's time goes (cycles per pair by kind of wait, per warpgroup)
if [ -x "$B/mla-bench-diag8" ]; then
  MLA_GPU_KERNEL=12 MLA_BENCH_TIMELINE=1 timeout 60 "$B/mla-bench-diag8" --no-ceilings --iters 5 \
    --case 128,2,128,1,16384,64,causal --case 128,1,16,1,16384 --case 8,1,128,1,8192,64,fixed > "$L/diag8-v6.log" 2>&1
  pack
fi

fi

if [ "$PART" != ab ]; then
# 3. the whole suite (its kernel-variant cases include MLA_GPU_KERNEL=12), then v6 on every case
timeout 260 "$B/test_gpu" > "$L/test_gpu.log" 2>&1; echo "rc=$?" >> "$L/test_gpu.log"; pack

# 4. sanitizers on v6
for tool in memcheck synccheck racecheck; do
  MLA_GPU_KERNEL=12 timeout 60 compute-sanitizer --tool $tool "$B/test_gpu" --quick > "$L/$tool-v6.log" 2>&1
  echo "rc=$?" >> "$L/$tool-v6.log"; pack
done
fi
