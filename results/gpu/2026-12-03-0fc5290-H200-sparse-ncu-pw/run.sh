#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
timeout 60 $B/test_gpu_sparse --quick > $L/quick-sparse.log 2>&1; echo "sparse quick rc=$?"; tail -1 $L/quick-sparse.log; pack
t0=$(date +%s); OUT=$L BENCH=$B/mla-bench BENCH_FLAGS=--sparse-decode KREGEX='^mla_sp_decode_v32_pw$' timeout 150 bash tests/gpu/ncu_stalls.sh pw64; echo "ncu $(( $(date +%s) - t0 )) s"; grep -E "Duration|Issued Warp|Compute \(SM\) Th|L2 Cache Th|DRAM Th|Warp Cycles Per Issued" $L/ncu_pw64.log; grep -A24 "== top SASS" $L/ncu_pw64.log | cut -c1-170; pack
