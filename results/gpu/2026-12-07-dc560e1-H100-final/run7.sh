#!/usr/bin/env bash
# Probe: b=8 h_q=128 page 16 read 65.5 us inside the pages sequence (call 5) and 60.5 alone (call 6).
# Order (what ran before it in the process) or draw (the page shuffle, --seed)? bin29.
set -u
mkdir -p .devcarry/b29 && tar -xJf .devcarry/bin29.txz -C .devcarry/b29
. .devcarry/calls.sh
L=$OUT/s35c7; mkdir -p "$L"; D=$PWD/.devcarry/b29/bin; T=s35c7.tgz
export MLA_GIT_COMMIT=dc560e1
call_info "$L"
B8="--case 8,1,128,1,8192,16,fixed,fixed --case 8,1,128,1,8192,64,fixed,fixed"
for r in 1 2; do
  call_step "$L" $T alone-$r 30 "$D/mla-bench" --no-ceilings $B8
  call_step "$L" $T after-causal-$r 40 "$D/mla-bench" --no-ceilings --case 128,2,128,1,16384,128,causal,varlen $B8
  call_step "$L" $T after-h16p16-$r 40 "$D/mla-bench" --no-ceilings --case 128,1,16,1,16384,16,fixed,varlen $B8
  for s in 2 3; do call_step "$L" $T seed$s-$r 30 "$D/mla-bench" --no-ceilings --seed $s $B8; done
  call_step "$L" $T pages-$r 60 "$D/mla-bench" --no-ceilings $(pages_cases)
done
for f in "$L"/*-[12].log; do echo "== $(basename $f .log): $(grep -E "^b=8 .*[|]" "$f" | awk '{print $(NF-9)}' | tr '\n' ' ')"; done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
