#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
for v in 12 13 14; do timeout 40 compute-sanitizer --tool racecheck $B/rcn $v > $L/rcn$v.log 2>&1; echo "rc=$?" >> $L/rcn$v.log; done; pack
for k in 3 4; do MLA_GPU_KERNEL=$k timeout 60 compute-sanitizer --tool racecheck $B/test_gpu --quick > $L/racecheck-k$k.log 2>&1; echo "rc=$?" >> $L/racecheck-k$k.log; pack; done
