#!/usr/bin/env bash
# Twenty-fifth session, call 10 (H100): dcb9709. racecheck on the sparse quick suite with SSF, every
# hazard printed (the default print limit of 100 was filled by the decode kernels' known one-sided
# hand-offs before the prefill cases ran), then counted by the pair of functions involved.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s10; mkdir -p "$L"
call_info "$L" > /dev/null
call_step "$L" s10.tgz san-racecheck-ssf-all 150 env MLA_SPARSE_SEESAW=2 compute-sanitizer --tool racecheck --print-limit 1000000 "$B/test_gpu_sparse" --quick
grep -E "Race reported" -A1 "$L/san-racecheck-ssf-all.log" | grep -oE "(Read|Write) access at [a-zA-Z_0-9]+" | paste - - | sort | uniq -c | sort -rn > "$L/pairs.txt"
gzip -f "$L/san-racecheck-ssf-all.log"
(cd "$OUT" && tar -czf s10.tgz s10)
cat "$L/pairs.txt" | head -40
tail -n 3 <(zcat "$L/san-racecheck-ssf-all.log.gz")
