#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
timeout 290 $B/test_gpu > $L/test_gpu.log 2>&1; echo "rc=$?" >> $L/test_gpu.log
(cd $OUT && tar -czf run.tgz logs)
