#!/usr/bin/env bash
# Second call on the same warm H100 (the command line as sent, split into lines): the whole sparse
# suite, the spec §7 grid with ceilings and the sparse benchmark, from the binaries of run.sh.
set -u; tar -xJf .devcarry/bin.txz -C .devcarry; B=$PWD/.devcarry/bin; L=$OUT/logs2; mkdir -p $L
export MLA_GIT_COMMIT=91647cf
pack() { (cd "$OUT" && tar -czf run2.tgz logs2); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $L/info.log
timeout 150 $B/test_gpu_sparse > $L/test_gpu_sparse.log 2>&1; echo "rc=$?" >> $L/test_gpu_sparse.log; pack
tail -3 $L/test_gpu_sparse.log
timeout 200 $B/mla-bench --grid --json $L/grid.json > $L/grid.log 2>&1; echo "rc=$?" >> $L/grid.log; pack
grep -E "^b=|rc=" $L/grid.log | head -70
timeout 100 $B/mla-bench --sparse --json $L/sparse.json > $L/sparse.log 2>&1; echo "rc=$?" >> $L/sparse.log; pack
tail -25 $L/sparse.log
