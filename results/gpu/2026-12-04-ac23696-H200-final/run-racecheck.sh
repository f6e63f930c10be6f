#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
timeout 150 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 99 $B/test_gpu --quick > $L/san-racecheck.log 2>&1; echo "rc=$?" >> $L/san-racecheck.log
grep -oE 'in (pair_merge|pair_merged|nr_lazy_exp|n32_[a-z_]+|ft_[a-z_]+|sm90_[a-z_]+|[a-z_0-9]+)\(' $L/san-racecheck.log | sort | uniq -c | sort -rn | head -20 > $L/racecheck-functions.txt; pack
