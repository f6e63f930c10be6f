#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc $(( $(date +%s) - t0 )) s: $(tail -1 $L/quick.log)"; grep -m5 FAIL $L/quick.log | cut -c1-250; pack
[ $rc = 0 ] || exit 0
F="--case 128,1,16,1,4096 --case 128,1,16,1,8192 --case 128,1,16,1,16384 --case 128,1,32,1,4096 --case 128,1,32,1,8192 --case 128,1,32,1,16384 --case 128,2,16,1,4096,64,causal --case 128,2,16,1,8192,64,causal --case 128,2,16,1,16384,64,causal --no-ceilings"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/bench-fp8.log 2>&1; echo "== fp8 default"; show $L/bench-fp8.log
MLA_GPU_FP8T=1 timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/bench-fp8-ft.log 2>&1; echo "== fp8 FP8T=1"; show $L/bench-fp8-ft.log
timeout 60 $B/mla-bench $F > $L/bench-bf16.log 2>&1; echo "== bf16"; show $L/bench-bf16.log; pack
t0=$(date +%s); timeout 280 $B/test_gpu > $L/test_gpu.log 2>&1; echo "test_gpu rc=$? $(( $(date +%s) - t0 )) s: $(tail -1 $L/test_gpu.log)"; grep -m8 FAIL $L/test_gpu.log | cut -c1-300; pack
t0=$(date +%s); timeout 120 $B/test_gpu_sparse > $L/test_gpu_sparse.log 2>&1; echo "test_gpu_sparse rc=$? $(( $(date +%s) - t0 )) s: $(tail -1 $L/test_gpu_sparse.log)"; grep -m5 FAIL $L/test_gpu_sparse.log | cut -c1-200; pack
for tool in memcheck synccheck; do timeout 100 compute-sanitizer --tool $tool --error-exitcode 99 $B/test_gpu --quick > $L/san-$tool.log 2>&1; echo "$tool rc=$?: $(tail -1 $L/san-$tool.log)"; pack; done
timeout 120 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 99 $B/test_gpu --quick > $L/san-racecheck.log 2>&1; echo "racecheck rc=$?: $(tail -1 $L/san-racecheck.log)"; grep -c "narrow32\|sm90n32" $L/san-racecheck.log; grep -m6 -B1 -A3 "Race\|hazard" $L/san-racecheck.log | cut -c1-200; pack
