#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
for v in 3 4; do timeout 60 compute-sanitizer --tool racecheck $B/rcn $v > $L/rcn-$v.log 2>&1; echo "rcn $v rc=$?: $(grep variant $L/rcn-$v.log) | $(tail -1 $L/rcn-$v.log)"; done; pack
timeout 60 $B/test_gpu --quick > $L/quick.log 2>&1; echo "quick rc=$?: $(tail -1 $L/quick.log)"
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 99 $B/test_gpu --quick > $L/san-racecheck.log 2>&1; echo "racecheck rc=$?: $(tail -1 $L/san-racecheck.log)"; grep -A1 "Race reported" $L/san-racecheck.log | grep -o "[a-z_0-9]*\.cu[h]*:[0-9]*" | paste - - | sort | uniq -c; pack
