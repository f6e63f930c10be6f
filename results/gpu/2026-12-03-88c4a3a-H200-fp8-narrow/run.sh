#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
cuobjdump -sass -fun _Z26mla_decode_sm90nr_bf16_57614mla_dec_params $B/mla-bench > $L/sass_nr_bf16_576.txt 2>&1; grep -cE "^\s+/\*[0-9a-f]{4}\*/" $L/sass_nr_bf16_576.txt; grep -oE "HGMMA\.[0-9x]+\.[A-Z0-9]+|UBLKCP[.A-Z]*|LDS(\.[0-9A-Z]+)*|STS(\.[0-9A-Z]+)*|F2FP[.A-Z0-9_]*|BAR\.[A-Z]+|LDL|STL|PRMT|SYNCS[.A-Z]*" $L/sass_nr_bf16_576.txt | sort | uniq -c > $L/sass_counts.txt; cat $L/sass_counts.txt; pack
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; echo "quick rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/quick.log; grep -m8 FAIL $L/quick.log | cut -c1-300; pack
C="--case 128,1,16,1,4096 --case 128,1,16,1,8192 --case 128,1,16,1,16384 --case 128,2,8,1,8192,64,causal --no-ceilings"
timeout 60 $B/mla-bench $C --kv-dtype fp8 > $L/bench-fp8-narrow.log 2>&1; echo "bench narrow rc=$?"; grep -E "varlen" $L/bench-fp8-narrow.log | grep -v "\.\.\." | cut -c1-100; pack
MLA_GPU_NARROW=0 timeout 60 $B/mla-bench $C --kv-dtype fp8 > $L/bench-fp8-wide.log 2>&1; echo "bench wide rc=$?"; grep -E "varlen" $L/bench-fp8-wide.log | grep -v "\.\.\." | cut -c1-100; pack
timeout 150 $B/mla-bench --grid --no-ceilings --kv-dtype fp8 --json $L/grid-fp8.json > $L/grid-fp8.log 2>&1; echo "grid fp8 rc=$?"; pack
timeout 150 $B/mla-bench --grid --json $L/grid-bf16.json > $L/grid-bf16.log 2>&1; echo "grid bf16 rc=$?"; pack
t0=$(date +%s); timeout 260 $B/test_gpu > $L/test_gpu.log 2>&1; echo "test_gpu rc=$? $(( $(date +%s) - t0 )) s"; tail -1 $L/test_gpu.log; grep -m8 FAIL $L/test_gpu.log | cut -c1-300; grep -i "FP8" $L/test_gpu.log | tail -3; pack
for tool in memcheck synccheck racecheck; do timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 $B/test_gpu --quick > $L/san-$tool.log 2>&1; echo "$tool rc=$?: $(tail -1 $L/san-$tool.log)"; pack; done
