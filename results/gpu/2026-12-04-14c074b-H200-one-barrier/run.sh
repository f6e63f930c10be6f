#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
timeout 150 $B/mla-bench > $L/grid.log 2>&1; echo "rc=$?" >> $L/grid.log; pack
timeout 150 $B/mla-bench-old --no-ceilings > $L/grid-old-dff5ad4.log 2>&1; echo "rc=$?" >> $L/grid-old-dff5ad4.log; pack
MLA_GPU_KERNEL=4 timeout 100 compute-sanitizer --tool memcheck --error-exitcode 99 $B/test_gpu --quick > $L/memcheck4.log 2>&1; echo "rc=$?" >> $L/memcheck4.log; pack
MLA_GPU_KERNEL=4 timeout 100 compute-sanitizer --tool synccheck --error-exitcode 99 $B/test_gpu --quick > $L/synccheck4.log 2>&1; echo "rc=$?" >> $L/synccheck4.log; pack
MLA_GPU_KERNEL=4 timeout 120 compute-sanitizer --tool racecheck $B/test_gpu --quick > $L/racecheck4.log 2>&1; echo "rc=$?" >> $L/racecheck4.log; pack
timeout 330 $B/test_gpu > $L/test_gpu.log 2>&1; echo "rc=$?" >> $L/test_gpu.log; pack
