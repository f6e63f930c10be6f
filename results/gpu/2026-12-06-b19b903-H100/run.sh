#!/usr/bin/env bash
# Device call 2 of the twenty-third session (H100): the sparse decode launched with PDL behind its
# scheduler (b19b903) against e482773's binary and the same binary with MLA_SPARSE_PDL=0; issue #4's
# page sizes on identical lengths; the sparse and dense suites and sanitizers on b19b903.
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
step sp-quick 60 "$B/test_gpu_sparse" --quick
for rnd in 1 2 3; do
  step sp-base-r$rnd 60 "$B/mla-bench-base" --sparse-decode
  step sp-pdl-r$rnd 60 "$B/mla-bench" --sparse-decode
  step sp-nopdl-r$rnd 60 env MLA_SPARSE_PDL=0 "$B/mla-bench" --sparse-decode
done
for v in base pdl nopdl; do echo "== sparse $v"; for rnd in 1 2 3; do grep -E "^sparse" "$L/sp-$v-r$rnd.log" | cut -c1-100; done; done
P=""
for row in 128,1,16,1,16384,varlen 128,1,128,1,8192,varlen 128,2,128,1,16384,varlen 8,1,128,1,8192,fixed; do
  for pg in 16 64 128; do
    c=fixed; case $row in 128,2,*) c=causal ;; esac
    P="$P --case ${row%,*},$pg,$c,${row##*,}"
  done
done
for rnd in 1; do step pages-r$rnd 60 "$B/mla-bench" $P --no-ceilings; done
for rnd in 1; do grep -E "^b=" "$L/pages-r$rnd.log" | cut -c1-100; done
step test_gpu_sparse 200 "$B/test_gpu_sparse"
tail -4 "$L/test_gpu_sparse.log"
step san-sp-synccheck 60 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
