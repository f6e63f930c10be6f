#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
run() { n=$1; shift; env "$@" > $L/bench-$n.log 2>&1; echo "== $n rc=$?"; grep -E " us " $L/bench-$n.log | cut -c1-100; pack; }
timeout 60 $B/test_gpu_sparse --quick > $L/quick-sparse.log 2>&1; rc=$?; echo "sparse quick rc=$rc"; tail -1 $L/quick-sparse.log; grep -m8 FAIL $L/quick-sparse.log; pack
if [ $rc = 0 ]; then
run ss-prefill timeout 100 $B/mla-bench --sparse-prefill
run l2-prefill timeout 100 $B/mla-bench-l2 --sparse-prefill
run 9a1-prefill timeout 100 $B/mla-bench-9a1 --sparse-prefill
run old-prefill MLA_SPARSE_SEESAW=0 timeout 100 $B/mla-bench --sparse-prefill
run ss2-prefill timeout 100 $B/mla-bench --sparse-prefill
t0=$(date +%s); OUT=$L BENCH=$B/mla-bench BENCH_FLAGS=--sparse-prefill KREGEX=mla_sp_prefill_576_ss timeout 150 bash tests/gpu/ncu_stalls.sh ss; echo "ncu $(( $(date +%s) - t0 )) s"; grep -E "Duration|Issued Warp|Compute \(SM\) Th|L2 Cache Th" $L/ncu_ss.log; grep -A14 "== top SASS" $L/ncu_ss.log | cut -c1-160; pack
t0=$(date +%s); timeout 150 $B/test_gpu_sparse > $L/test_gpu_sparse.log 2>&1; echo "test_gpu_sparse rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/test_gpu_sparse.log; grep -m8 FAIL $L/test_gpu_sparse.log; pack
fi
MLA_GPU_KERNEL=7 timeout 60 $B/test_gpu --quick > $L/quick-dense-k7.log 2>&1; echo "dense quick (KERNEL=7 seesaw) rc=$?"; tail -1 $L/quick-dense-k7.log; pack
