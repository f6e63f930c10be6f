#!/usr/bin/env bash
# MLA_V3_SMX=1 as the default (bin28, working tree on 5844f4f with the default flipped): (1) whole dense suite;
# (2) two alternating A/B rounds against ed515e4's kernels (bin20); (3) the spec grid twice on bin28, once on bin20;
# (4) memcheck / synccheck / racecheck on the quick suite, default plan and v3 forced.
set -u
for n in 20 28; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s35c4; mkdir -p "$L"; D=$PWD/.devcarry; T=s35c4.tgz
call_info "$L"
call_step "$L" $T test_gpu-28 300 env MLA_GIT_COMMIT=smx1-default "$D/b28/bin/test_gpu"
tail -n 2 "$L/test_gpu-28.log"; grep -E "FAIL" "$L/test_gpu-28.log" | head -10
C="--case 128,1,128,1,8192,64,fixed,varlen --case 128,2,128,1,16384,64,causal,varlen --case 128,1,16,1,16384,64,fixed,varlen"
C="$C --case 128,1,64,1,4096,64,fixed,varlen --case 8,1,128,1,8192,64,fixed,fixed --case 32,1,128,1,2048,64,fixed,varlen"
C="$C --case 128,1,128,1,8192,32,fixed,varlen --case 128,1,128,1,8192,16,fixed,varlen --case 2,1,128,1,8192,64,fixed,fixed"
C="$C --case 8,1,64,1,8192,16,fixed,fixed --case 32,1,128,1,2048,16,fixed,varlen"
for r in 1 2 3; do for n in 20 28; do call_step "$L" $T t$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --no-ceilings $C; done; done
for r in 1 2 3; do for n in 20 28; do echo "== $n-$r: $(grep -E "^b=.*[|]" "$L/t$n-$r.log" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done; done
for g in 28a 20 28b; do n=${g%[ab]}; call_step "$L" $T grid$g 60 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench"; tail -n 9 "$L/grid$g.log" | head -7 | cut -c1-110; done
for k in default 4; do for tool in memcheck synccheck racecheck; do
  call_step "$L" $T san-$tool-$k 120 env MLA_GPU_KERNEL=$k compute-sanitizer --tool $tool --error-exitcode 99 "$D/b28/bin/test_gpu" --quick
  grep -oE "at [a-z_0-9]+\(.*in sm90_tile.cuh:[0-9]+" "$L/san-$tool-$k.log" | sed 's/(.*)+0x[0-9a-f]*//' | sort | uniq -c
done; done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
