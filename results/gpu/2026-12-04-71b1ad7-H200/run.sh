#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
t0=$(date +%s)
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; nvcc --version | tail -2; } > $L/info.log 2>&1
timeout 130 $B/mla-bench > $L/grid.log 2>&1; echo "rc=$? $(( $(date +%s) - t0 )) s" >> $L/grid.log; pack
for s in 1 2 4 8 16; do
  MLA_GPU_COMBINE_SLICES=$s timeout 40 $B/mla-bench --no-ceilings --iters 15 --case 1,1,128,1,8192,64,fixed --case 2,1,128,1,8192,64,fixed --case 4,1,128,1,8192,64,fixed --case 8,1,128,1,8192,64,fixed --case 16,1,128,1,4096 --case 32,1,128,1,2048 --case 16,1,16,1,8192 --case 8,1,16,1,8192 --case 32,1,16,1,8192 > $L/slices-$s.log 2>&1
done; echo "$(( $(date +%s) - t0 )) s" >> $L/slices-16.log; pack
timeout 270 $B/test_gpu > $L/test_gpu.log 2>&1; echo "rc=$? $(( $(date +%s) - t0 )) s" >> $L/test_gpu.log; pack
timeout 50 compute-sanitizer --tool memcheck $B/test_gpu --quick > $L/memcheck.log 2>&1; echo "rc=$?" >> $L/memcheck.log; pack
timeout 50 compute-sanitizer --tool synccheck $B/test_gpu --quick > $L/synccheck.log 2>&1; echo "rc=$? $(( $(date +%s) - t0 )) s" >> $L/synccheck.log; pack
