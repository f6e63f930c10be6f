#!/usr/bin/env bash
# Twenty-eighth session, call 1 (H100): 9461d11 built with MLA_DESC_AT=1 (masked desc_sw128_at; the
# SPLIT kernel's spill gone) against the default build (SASS = 74f9edc's). (1) the whole sparse and
# dense suites on the MLA_DESC_AT=1 build; (2) alternating new/old: the spec grid (2 rounds), prefill
# rows (3 rounds), sparse decode (2 rounds), --quick (2 rounds); (3) racecheck / memcheck on the
# sparse quick suite of the new build, as time allows.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c1; mkdir -p "$L"
export MLA_GIT_COMMIT=9461d11
call_info "$L"
call_step "$L" c1.tgz test_gpu_sparse 110 "$B/test_gpu_sparse"
tail -n 2 "$L/test_gpu_sparse.log"
call_step "$L" c1.tgz test_gpu 220 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"
for rnd in 1 2; do
  call_step "$L" c1.tgz q-new-r$rnd 40 "$B/mla-bench" --quick --no-ceilings
  call_step "$L" c1.tgz q-old-r$rnd 40 "$B/mla-bench-old" --quick --no-ceilings
done
for v in new old; do echo "== q $v"; for rnd in 1 2; do grep -E "^b=" "$L/q-$v-r$rnd.log" | cut -c1-68; done; done
for rnd in 1 2 3; do
  call_step "$L" c1.tgz pf-new-r$rnd 40 "$B/mla-bench" --sparse-prefill
  call_step "$L" c1.tgz pf-old-r$rnd 40 "$B/mla-bench-old" --sparse-prefill
done
for v in new old; do echo "== pf $v"; for rnd in 1 2 3; do grep -E "^sparse prefill" "$L/pf-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
for rnd in 1 2; do
  call_step "$L" c1.tgz sd-new-r$rnd 40 "$B/mla-bench" --sparse-decode
  call_step "$L" c1.tgz sd-old-r$rnd 40 "$B/mla-bench-old" --sparse-decode
done
for v in new old; do for rnd in 1 2; do echo "== sd $v: $(grep -E "^sparse decode" "$L/sd-$v-r$rnd.log" | grep -oE "[0-9.]+ us" | tr '\n' ' ')"; done; done
for rnd in 1 2; do
  call_step "$L" c1.tgz g-new-r$rnd 60 "$B/mla-bench" --no-ceilings
  call_step "$L" c1.tgz g-old-r$rnd 60 "$B/mla-bench-old" --no-ceilings
done
echo "== grid us: new r1, new r2, old r1, old r2"; paste <(grep -E "^b=" "$L/g-new-r1.log" | cut -c1-58) <(grep -E "^b=" "$L/g-new-r2.log" | cut -c50-58) <(grep -E "^b=" "$L/g-old-r1.log" | cut -c50-58) <(grep -E "^b=" "$L/g-old-r2.log" | cut -c50-58)
call_step "$L" c1.tgz san-racecheck 60 compute-sanitizer --tool racecheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 3 "$L/san-racecheck.log"
call_step "$L" c1.tgz san-memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 3 "$L/san-memcheck.log"
