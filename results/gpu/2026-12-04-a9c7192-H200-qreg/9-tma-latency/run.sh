#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/info.log 2>&1
timeout 120 $B/tma_latency > $L/tma_latency.log 2>&1; echo "rc=$?" >> $L/tma_latency.log; pack
