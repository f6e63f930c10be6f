#!/usr/bin/env bash
# Twenty-ninth session, call 2 (H100): cabb0c4 (mla-bench with its watchdog; test binaries of 5771a7a, same sources), whose kernels / host code / tests are cf87426's (bf16
# partials and Q-at-entry reverted). (1) synccheck on the dense and sparse quick suites (not run on
# the per-base descriptor SASS before) and racecheck on the dense quick suite; (2) hang probe: in
# call 1 two bench runs of d842f90's builds stopped inside a b=128 v3 case (q32-2 in its first case
# for 40 s, g16 in its fifth for ~50 s); here those two cases 8 times, 20 s each; (3) the MLA_DIAG=7
# timeline of b=1 / 8 / 32 with and without the L2 flush (§29's probe), --quick twice; (4) the whole
# dense suite.
set -u
tar -xJf .devcarry/bin3.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c3; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
call_step "$L" c3.tgz san-synccheck 60 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 2 "$L/san-synccheck.log"
call_step "$L" c3.tgz san-synccheck-sparse 60 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu_sparse" --quick
tail -n 2 "$L/san-synccheck-sparse.log"
H="--case 128,1,16,1,16384,64,fixed,varlen --case 128,1,32,1,8192,64,fixed,varlen"
for i in 1 2 3 4 5 6 7 8; do call_step "$L" c3.tgz hang-$i 20 env MLA_BENCH_WATCHDOG_S=15 "$B/mla-bench" --no-ceilings $H; done
C="--case 1,1,128,1,8192,64,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
call_step "$L" c3.tgz tl 40 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-d7" --no-ceilings $C
call_step "$L" c3.tgz tl-noflush 40 env MLA_BENCH_TIMELINE=1 "$B/mla-bench-d7" --no-ceilings --no-flush $C
grep -E "^b=|decode part bounds|r0 prepared|r0 tile 0 landed|r0 tiles done|r0 epilogue done|combine:" "$L/tl.log" "$L/tl-noflush.log" | cut -c1-150
call_step "$L" c3.tgz q-1 25 "$B/mla-bench" --quick --no-ceilings
call_step "$L" c3.tgz q-2 25 "$B/mla-bench" --quick --no-ceilings
for f in q-1 q-2; do echo "== $f: $(grep -E "^b=.*[|]" "$L/$f.log" | awk "{print \$(NF-9)}" | tr '\n' ' ')"; done
call_step "$L" c3.tgz san-racecheck 90 compute-sanitizer --tool racecheck "$B/test_gpu" --quick
tail -n 3 "$L/san-racecheck.log"
call_step "$L" c3.tgz test_gpu 330 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL" "$L/test_gpu.log" | head -10
