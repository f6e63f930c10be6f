#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
run() { n=$1; shift; env "$@" > $L/bench-$n.log 2>&1; echo "== $n rc=$?"; grep -E " us " $L/bench-$n.log | cut -c1-100; pack; }
timeout 60 $B/test_gpu_sparse-r --quick > $L/quick-sparse-r.log 2>&1; rc=$?; echo "sparse quick (192/176/136) rc=$rc"; tail -1 $L/quick-sparse-r.log; pack
run head-a timeout 100 $B/mla-bench --sparse-decode
run r-a timeout 100 $B/mla-bench-r --sparse-decode
run head-b timeout 100 $B/mla-bench --sparse-decode
run r-b timeout 100 $B/mla-bench-r --sparse-decode
if [ $rc = 0 ]; then t0=$(date +%s); timeout 200 $B/test_gpu_sparse-r > $L/test_gpu_sparse-r.log 2>&1; echo "test_gpu_sparse (192/176/136) rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/test_gpu_sparse-r.log; grep -m5 FAIL $L/test_gpu_sparse-r.log; pack; fi
