#!/usr/bin/env bash
# Thirty-first session, call 3 (H100): f68c9f5 (bin12): issue #4's page rows (pages 16 / 64 / 128, same
# lengths) two rounds, the spec §7 grid, synccheck on --quick with v3 forced.
set -u
mkdir -p .devcarry/b12 && tar -xJf .devcarry/bin12.txz -C .devcarry/b12
. .devcarry/calls.sh
L=$OUT/s31c3; mkdir -p "$L"; B=$PWD/.devcarry/b12/bin
export MLA_GIT_COMMIT=f68c9f5
call_info "$L"
PC=$(pages_cases)
for r in 1 2; do call_step "$L" s31c3.tgz pages-$r 40 "$B/mla-bench" --no-ceilings $PC; done
for r in 1 2; do echo "== pages-$r: $(grep -E "^b=.*[|]" "$L/pages-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done
call_step "$L" s31c3.tgz synccheck-k4 40 env MLA_GPU_KERNEL=4 compute-sanitizer --tool synccheck --error-exitcode 99 "$B/test_gpu" --quick
tail -n 2 "$L/synccheck-k4.log"
call_step "$L" s31c3.tgz grid 150 "$B/mla-bench"
tail -n 14 "$L/grid.log" | cut -c1-160
# then, on the same warm machine (two more commands, as run):
# for r in 3 4 5: mla-bench --no-ceilings $(pages_cases) > pages-$r.log
# for r in 1 2 3: mla-bench --no-ceilings --case 8,1,128,1,8192,{16,64,128,32},fixed,fixed > b8-$r.log;
#                 MLA_GPU_KERNEL=13 mla-bench --no-ceilings --case 8,1,128,1,8192,16,fixed,fixed > b8k13-$r.log
# for r in 1 2 3: mla-bench --no-ceilings --case 8,1,128,1,8192,{64,128,32,16,64},fixed,fixed > b8rev-$r.log
