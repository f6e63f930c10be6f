#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
t0=$(date +%s); timeout 200 $B/test_gpu_sparse > $L/test_gpu_sparse.log 2>&1; echo "test_gpu_sparse rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/test_gpu_sparse.log; grep -m5 FAIL $L/test_gpu_sparse.log; pack
timeout 100 $B/mla-bench --sparse-decode > $L/bench-decode.log 2>&1; echo "bench rc=$?"; grep -E " us " $L/bench-decode.log | cut -c1-100; pack
for tool in memcheck synccheck; do timeout 100 compute-sanitizer --tool $tool --error-exitcode 99 $B/test_gpu_sparse --quick > $L/san-$tool-sparse.log 2>&1; echo "$tool rc=$?: $(tail -1 $L/san-$tool-sparse.log)"; pack; done
