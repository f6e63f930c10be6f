#!/usr/bin/env bash
# Thirtieth session, call 3 (H100): 4555288 (kernel choice: v3 fused from b=1 with two M blocks, v2 fused
# up to b=15). (1) e810fc7's default (bin2) against 4555288's (bin3) on the small-batch rows, two
# alternating rounds; (2) --quick x2; (3) the spec §7 grid; (4) whole dense suite; sparse quick suite.
set -u
for n in 2 3; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
B2=$PWD/.devcarry/b2/bin; B=$PWD/.devcarry/b3/bin; L=$OUT/s30c3; mkdir -p "$L"
export MLA_GIT_COMMIT=${MLA_GIT_COMMIT:-unset}
call_info "$L"
C="--case 1,1,128,1,8192,64,fixed,fixed --case 2,1,128,1,8192,64,fixed,fixed --case 3,1,128,1,8192,64,fixed,fixed"
C="$C --case 2,2,128,1,4096,64,causal,fixed --case 1,1,16,1,16384,64,fixed,fixed --case 4,1,16,1,16384,64,fixed,fixed"
C="$C --case 4,1,64,1,8192,64,fixed,fixed --case 8,1,64,1,8192,64,fixed,fixed --case 8,1,16,1,8192,64,fixed,fixed"
C="$C --case 12,1,64,1,4096,64,fixed,varlen --case 12,1,32,1,4096,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed"
C="$C --case 32,1,128,1,2048,64,fixed,varlen --case 1,1,128,1,8192,16,fixed,fixed --case 8,1,64,1,8192,16,fixed,fixed"
for r in 1 2; do
  call_step "$L" s30c3.tgz c-old-$r 80 env MLA_GIT_COMMIT=e810fc7 "$B2/mla-bench" --no-ceilings $C
  call_step "$L" s30c3.tgz c-new-$r 80 "$B/mla-bench" --no-ceilings $C
done
for r in 1 2; do for m in c-old c-new; do echo "== $m-$r: $(grep -E "^b=.*[|]" "$L/$m-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
call_step "$L" s30c3.tgz q-1 25 "$B/mla-bench" --quick --no-ceilings
call_step "$L" s30c3.tgz q-2 25 "$B/mla-bench" --quick --no-ceilings
for f in q-1 q-2; do echo "== $f: $(grep -E "^b=.*[|]" "$L/$f.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done
call_step "$L" s30c3.tgz grid 150 "$B/mla-bench"
tail -n 12 "$L/grid.log" | cut -c1-150
call_step "$L" s30c3.tgz test_gpu_sparse-quick 60 "$B/test_gpu_sparse" --quick
tail -n 1 "$L/test_gpu_sparse-quick.log"
call_step "$L" s30c3.tgz test_gpu 300 "$B/test_gpu"
tail -n 2 "$L/test_gpu.log"; grep -E "FAIL|fused schedule" "$L/test_gpu.log" | head -20
