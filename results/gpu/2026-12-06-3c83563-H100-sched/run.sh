#!/usr/bin/env bash
# Device call 1 of the twenty-third session (H100): the one-warp scheduler kernel against the
# 1024-thread one (same binary through MLA_GPU_SCHED_WARP=0, and HEAD e482773's binary), the
# schedule's share (--reuse-schedule), timelines of both schedulers and of a reused schedule,
# issue #4's page-size rows, the sparse decode with the one-warp scheduler and PDL, then the whole
# dense suite on the new binary.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
step() { # name timeout cmd...
  local n=$1 t=$2; shift 2; local t0=$(date +%s)
  timeout "$t" "$@" > "$L/$n.log" 2>&1; local r=$?
  echo "rc=$r ($(( $(date +%s) - t0 )) s)" >> "$L/$n.log"; pack
  echo "== $n: $(tail -n 1 "$L/$n.log")"
}
export MLA_GIT_COMMIT=${MLA_COMMIT:-wip}
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -1; nproc; } > "$L/info.log" 2>&1
cat "$L/info.log"
step quick-new 60 "$B/test_gpu" --quick
C="--case 128,1,16,1,4096,64,varlen --case 128,1,16,1,16384,64,varlen --case 128,1,64,1,4096,64,varlen
   --case 128,1,128,1,4096,64,varlen --case 128,2,128,1,4096,64,causal,varlen --case 128,2,128,1,16384,64,causal,varlen
   --case 8,1,128,1,8192 --case 32,1,128,1,2048,64,varlen --case 32,1,16,1,8192,64,varlen --case 16,1,128,1,4096"
for rnd in 1 2 3; do
  step ab-base-r$rnd 90 "$B/mla-bench-base" $C --no-ceilings
  step ab-warp-r$rnd 90 "$B/mla-bench" $C --no-ceilings
  step ab-block-r$rnd 90 env MLA_GPU_SCHED_WARP=0 "$B/mla-bench" $C --no-ceilings
  step ab-reuse-r$rnd 90 "$B/mla-bench" $C --no-ceilings --reuse-schedule
done
for v in base warp block reuse; do
  echo "== $v"; for rnd in 1 2 3; do grep -E "^b=" "$L/ab-$v-r$rnd.log" | awk '{printf "%s ", $0; print ""}' | cut -c1-75; done
done
T="--case 128,1,16,1,4096,64,varlen --case 8,1,128,1,8192"
step tl-warp 60 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-diag" $T --no-ceilings --iters 5
step tl-block 60 env MLA_BENCH_TIMELINE=1 MLA_GPU_SCHED_WARP=0 "$B/mla-bench-diag" $T --no-ceilings --iters 5
step tl-reuse 60 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-diag" $T --no-ceilings --iters 5 --reuse-schedule
P=""
for row in 128,1,16,1,16384,varlen 128,1,128,1,8192,varlen 128,2,128,1,16384,varlen 8,1,128,1,8192,fixed; do
  for pg in 16 64 128; do
    c=fixed; case $row in 128,2,*) c=causal ;; esac
    P="$P --case ${row%,*},$pg,$c,${row##*,}"
  done
done
for rnd in 1 2; do step pages-r$rnd 120 "$B/mla-bench" $P --no-ceilings; done
for rnd in 1 2; do grep -E "^b=" "$L/pages-r$rnd.log"; done
step sp-quick-new 60 "$B/test_gpu_sparse" --quick
for rnd in 1 2; do
  step sp-base-r$rnd 60 "$B/mla-bench-base" --sparse-decode --no-ceilings
  step sp-new-r$rnd 60 "$B/mla-bench" --sparse-decode --no-ceilings
  step sp-nopdl-r$rnd 60 env MLA_SPARSE_PDL=0 "$B/mla-bench" --sparse-decode --no-ceilings
  step sp-block-r$rnd 60 env MLA_GPU_SCHED_WARP=0 "$B/mla-bench" --sparse-decode --no-ceilings
done
for v in base new nopdl block; do echo "== sparse $v"; for rnd in 1 2; do grep -E "^sparse" "$L/sp-$v-r$rnd.log" | cut -c1-110; done; done
step test_gpu 340 "$B/test_gpu"
grep -E "passed|failed" "$L/test_gpu.log" | tail -40
