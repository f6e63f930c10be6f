#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
for v in 8 9; do echo "== variant $v"; timeout 60 compute-sanitizer --tool racecheck --racecheck-report hazard $B/rcn $v 2>&1 | grep -E 'variant|SUMMARY|Error|Write Thread|Read Thread' | head -8; done > $L/racecheck_nbar.log 2>&1
pack
