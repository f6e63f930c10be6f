#!/usr/bin/env bash
# Twenty-fourth session, call E (H100): a994926 (= 7038125's code: v3c with the refill's block-table
# reads issued before WG1's P wait). Quick suite with it forced; pages 16 / 64 on five rows, three
# alternating rounds: a994926 default, 835776d's binary (mla-bench-1, first v3c), a994926 with
# MLA_GPU_V3C=0 (v2); the whole dense suite; memcheck / synccheck forced; the v3c entry's SASS counts.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/e; mkdir -p "$L"
export MLA_GIT_COMMIT=a994926
call_info "$L"
call_step "$L" e.tgz quick-v3c 60 env MLA_GPU_KERNEL=13 "$B/test_gpu" --quick
tail -2 "$L/quick-v3c.log"
P=""
for row in 128,1,16,1,16384,varlen 128,1,128,1,8192,varlen 128,2,128,1,16384,varlen 8,1,128,1,8192,fixed \
           32,1,128,1,2048,varlen; do
  for pg in 16 64; do
    c=fixed; case $row in 128,2,*) c=causal ;; esac
    P="$P --case ${row%,*},$pg,$c,${row##*,}"
  done
done
for rnd in 1 2 3; do
  call_step "$L" e.tgz pages-new-r$rnd 60 "$B/mla-bench" $P --no-ceilings
  call_step "$L" e.tgz pages-first-r$rnd 60 env MLA_GIT_COMMIT=835776d "$B/mla-bench-1" $P --no-ceilings
  call_step "$L" e.tgz pages-v2-r$rnd 60 env MLA_GPU_V3C=0 "$B/mla-bench" $P --no-ceilings
done
for v in new first v2; do echo "== $v"; for rnd in 1 2 3; do grep -E "^b=.*page=16" "$L/pages-$v-r$rnd.log" | cut -c1-82; done; done
echo "== page 64 (control)"; for rnd in 1 2 3; do grep -E "^b=" "$L/pages-new-r$rnd.log" | grep -v page= | grep -v -E "GB/s +[0-9]|TFLOPS +[0-9]| us +[0-9]" | cut -c1-82; done
call_step "$L" e.tgz sass 60 cuobjdump -sass -fun _Z27mla_decode_sm90v3c_bf16_57614mla_dec_params "$B/mla-bench"
grep -oE "(HGMMA|LDGSTS|LDG|BAR\.[A-Z]+|SYNCS\.[A-Z.]+|UTMALDG|STL|LDL)" "$L/sass.log" | sort | uniq -c
call_step "$L" e.tgz test_gpu 280 "$B/test_gpu"
grep -E "variant wgmma v3|passed, .* failed$|total time" "$L/test_gpu.log" | tail -4
for tool in memcheck synccheck; do
  call_step "$L" e.tgz san-$tool-v3c 75 env MLA_GPU_KERNEL=13 compute-sanitizer --tool $tool --error-exitcode 99 "$B/test_gpu" --quick
  tail -2 "$L/san-$tool-v3c.log"
done
