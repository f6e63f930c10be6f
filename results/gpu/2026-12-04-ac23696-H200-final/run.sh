#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2) > $L/info.log 2>&1
timeout 330 $B/test_gpu > $L/test_gpu.log 2>&1; echo "rc=$?" >> $L/test_gpu.log; pack
for t in memcheck synccheck; do timeout 80 compute-sanitizer --tool $t --error-exitcode 99 $B/test_gpu --quick > $L/san-$t.log 2>&1; echo "rc=$?" >> $L/san-$t.log; pack; done
timeout 60 $B/mla-bench --quick --kv-dtype fp8 > $L/bench-fp8-quick.log 2>&1; pack
