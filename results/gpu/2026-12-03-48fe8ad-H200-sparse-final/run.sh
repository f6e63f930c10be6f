#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
run() { n=$1; shift; env "$@" > $L/bench-$n.log 2>&1; echo "== $n rc=$?"; grep -E " us " $L/bench-$n.log | cut -c1-100; pack; }
timeout 60 $B/test_gpu_sparse --quick > $L/quick-sparse.log 2>&1; rc=$?; echo "sparse quick rc=$rc"; tail -1 $L/quick-sparse.log; grep -m8 FAIL $L/quick-sparse.log; pack
run final-sparse timeout 150 $B/mla-bench --sparse
run base-decode MLA_GIT_COMMIT=4a1f25c timeout 100 $B/mla-bench-4a1 --sparse-decode
t0=$(date +%s); timeout 200 $B/test_gpu_sparse > $L/test_gpu_sparse.log 2>&1; echo "test_gpu_sparse rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/test_gpu_sparse.log; grep -m8 FAIL $L/test_gpu_sparse.log; pack
for tool in memcheck synccheck racecheck; do timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 $B/test_gpu_sparse --quick > $L/san-$tool-sparse.log 2>&1; echo "$tool sparse rc=$?: $(tail -1 $L/san-$tool-sparse.log)"; pack; done
grep "Race reported" -A1 $L/san-racecheck-sparse.log | grep -o "at [a-z_0-9]*(" | sort | uniq -c | head
timeout 60 $B/test_gpu --quick > $L/quick-dense.log 2>&1; echo "dense quick rc=$?"; tail -1 $L/quick-dense.log; pack
