#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc $(( $(date +%s) - t0 )) s"; tail -1 $L/quick.log; grep -m8 FAIL $L/quick.log | cut -c1-300; pack
[ $rc = 0 ] || exit 0
C="--case 128,1,16,1,4096 --case 128,1,16,1,8192 --case 128,1,16,1,16384 --case 128,1,32,1,4096 --case 128,1,32,1,8192 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --no-ceilings"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
timeout 60 $B/mla-bench $C --kv-dtype fp8 > $L/bench-fp8t.log 2>&1; echo "bench fp8t rc=$?"; show $L/bench-fp8t.log; pack
MLA_GPU_FP8T=0 timeout 60 $B/mla-bench $C --kv-dtype fp8 > $L/bench-fp8-narrow.log 2>&1; echo "bench narrow rc=$?"; show $L/bench-fp8-narrow.log; pack
MLA_GPU_NARROW=0 timeout 60 $B/mla-bench $C --kv-dtype fp8 > $L/bench-fp8-wide.log 2>&1; echo "bench wide rc=$?"; show $L/bench-fp8-wide.log; pack
timeout 60 $B/mla-bench $C > $L/bench-bf16.log 2>&1; echo "bench bf16 rc=$?"; show $L/bench-bf16.log; pack
t0=$(date +%s); timeout 280 $B/test_gpu > $L/test_gpu.log 2>&1; echo "test_gpu rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/test_gpu.log; grep -m8 FAIL $L/test_gpu.log | cut -c1-300; grep -i "FP8 cache" $L/test_gpu.log | tail -1; pack
for tool in memcheck synccheck racecheck; do timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 $B/test_gpu --quick > $L/san-$tool.log 2>&1; echo "$tool rc=$?: $(tail -1 $L/san-$tool.log)"; pack; done
