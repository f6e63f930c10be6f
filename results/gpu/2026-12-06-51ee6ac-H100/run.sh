#!/usr/bin/env bash
# Twenty-fourth session, call F (H100): 51ee6ac (v3c on pages of 16/32 up to 128 rows per KV head).
# The quick suite at the default and with v3c forced; the five page rows at pages 16 / 64, one round.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/f; mkdir -p "$L"
export MLA_GIT_COMMIT=51ee6ac
call_info "$L"
call_step "$L" f.tgz quick 40 "$B/test_gpu" --quick
call_step "$L" f.tgz quick-v3c 40 env MLA_GPU_KERNEL=13 "$B/test_gpu" --quick
P=""
for row in 128,1,16,1,16384,varlen 128,1,128,1,8192,varlen 128,2,128,1,16384,varlen 8,1,128,1,8192,fixed \
           32,1,128,1,2048,varlen; do
  for pg in 16 64; do
    c=fixed; case $row in 128,2,*) c=causal ;; esac
    P="$P --case ${row%,*},$pg,$c,${row##*,}"
  done
done
call_step "$L" f.tgz pages 40 "$B/mla-bench" $P --no-ceilings
grep -E "^b=" "$L/pages.log" | cut -c1-82
tail -2 "$L/quick.log" "$L/quick-v3c.log"
