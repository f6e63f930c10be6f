#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1; cat $L/info.log
timeout 60 $B/wgmma_rate > $L/wgmma_rate.log 2>&1; echo "rate rc=$?"; cat $L/wgmma_rate.log; pack
t0=$(date +%s); timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; rc=$?; echo "quick rc=$rc $(( $(date +%s) - t0 )) s"; tail -1 $L/quick.log; pack
timeout 70 $B/test_gpu --fp8 > $L/test_gpu_fp8.log 2>&1; echo "fp8 rc=$?: $(tail -1 $L/test_gpu_fp8.log)"; pack
F="--case 128,1,16,1,4096 --case 128,1,16,1,16384 --case 128,1,32,1,4096 --case 128,1,32,1,16384 --case 128,2,16,1,16384,64,causal --case 128,1,64,1,16384 --no-ceilings"
show() { grep -E "varlen" $1 | grep -v "\.\.\." | cut -c1-100; }
timeout 60 $B/mla-bench $F --kv-dtype fp8 > $L/bench-fp8.log 2>&1; echo "== fp8 default"; show $L/bench-fp8.log
timeout 60 $B/mla-bench $F > $L/bench-bf16.log 2>&1; echo "== bf16"; show $L/bench-bf16.log; pack
