#!/usr/bin/env bash
# Twenty-fourth session, one call: 835776d (v3 with cp.async tiles for pages of 16 / 32 tokens).
# 1. the quick suite with the new kernel forced (MLA_GPU_KERNEL=13);
# 2. pages 16 / 32 / 64 / 128 on seven rows, the new default against MLA_GPU_V3C=0 (v2 on pages of
#    16 / 32, the old default), two alternating rounds;
# 3. the spec §7 grid with ceilings (issue #4's table at this commit);
# 4. the whole dense suite (its forced-variant cases include 13);
# 5. memcheck and synccheck on the quick suite with the new kernel forced.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_COMMIT:-835776d}
call_info "$L"
call_step "$L" c.tgz quick-v3c 60 env MLA_GPU_KERNEL=13 "$B/test_gpu" --quick
tail -2 "$L/quick-v3c.log"
P=""
for row in 128,1,16,1,16384,varlen 128,1,128,1,8192,varlen 128,2,128,1,16384,varlen 8,1,128,1,8192,fixed \
           32,1,128,1,2048,varlen 4,1,128,1,8192,fixed 128,1,64,1,4096,varlen; do
  for pg in 16 32 64 128; do
    c=fixed; case $row in 128,2,*) c=causal ;; esac
    P="$P --case ${row%,*},$pg,$c,${row##*,}"
  done
done
for rnd in 1 2; do
  call_step "$L" c.tgz pages-v3c-r$rnd 60 "$B/mla-bench" $P --no-ceilings
  call_step "$L" c.tgz pages-v2-r$rnd 60 env MLA_GPU_V3C=0 "$B/mla-bench" $P --no-ceilings
done
for v in v3c v2; do echo "== $v"; for rnd in 1 2; do grep -E "^b=" "$L/pages-$v-r$rnd.log" | cut -c1-82; done; done
call_step "$L" c.tgz grid 150 "$B/mla-bench" --grid
grep -E "^b=|^ceiling" "$L/grid.log" | cut -c1-140
call_step "$L" c.tgz test_gpu 280 "$B/test_gpu"
grep -E "variant|passed, .* failed$|total time" "$L/test_gpu.log" | tail -14
for tool in memcheck synccheck; do
  call_step "$L" c.tgz san-$tool-v3c 75 env MLA_GPU_KERNEL=13 compute-sanitizer --tool $tool --error-exitcode 99 "$B/test_gpu" --quick
  tail -2 "$L/san-$tool-v3c.log"
done
