#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; } > $L/info.log 2>&1
timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc: $(tail -1 $L/quick.log)"; grep -m5 FAIL $L/quick.log | cut -c1-300; pack
[ $rc = 0 ] || exit 0
F="--case 128,1,32,1,4096 --case 128,1,32,1,8192 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --no-ceilings --kv-dtype fp8"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
timeout 40 $B/mla-bench $F > $L/b-new.log 2>&1; echo "== new"; show $L/b-new.log
timeout 40 $B/mla-bench-old $F > $L/b-old.log 2>&1; echo "== old (f288223)"; show $L/b-old.log
MLA_FP8_L2_PREFETCH=0 timeout 40 $B/mla-bench $F > $L/b-new-nopf.log 2>&1; echo "== new, no prefetch"; show $L/b-new-nopf.log
MLA_GPU_FP8T=1 timeout 40 $B/mla-bench --case 128,1,16,1,16384 --no-ceilings --kv-dtype fp8 > $L/b-new-ft16.log 2>&1; echo "== new ft16"; show $L/b-new-ft16.log; pack
t0=$(date +%s); timeout 90 $B/test_gpu --fp8 > $L/test_gpu_fp8.log 2>&1; echo "test_gpu --fp8 rc=$? $(( $(date +%s) - t0 )) s: $(tail -1 $L/test_gpu_fp8.log)"; grep -m5 FAIL $L/test_gpu_fp8.log | cut -c1-300; pack
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 99 $B/test_gpu --quick > $L/san-memcheck.log 2>&1; echo "memcheck rc=$?: $(tail -1 $L/san-memcheck.log)"; pack
