#!/usr/bin/env bash
# Device call for b712efc (library as of 499a350): with cu_seqlens_q, a part's (request, m-block)
# units round robin over its CTAs (req_mblk, c7b97c2) and the scheduler weighting requests by their
# m-blocks (499a350). Binaries built off the device (nvcc 13.0) and carried in .devcarry/bin.txz:
# bin/test_gpu and bin/mla-bench (b712efc), bin/mla-bench-rr (499a350 built with
# MLA_SCHED_QWEIGHT=0: round robin, unweighted scheduler), bin/mla-bench-old (4cacac1: neither; the
# baseline, same call), bin/test_gpu-mut (c7b97c2 with req_mblk's wrap `if (k < 0) k += M` removed:
# must fail). Steps in order of need, each packed as it ends: the budget left (383 s, a fresh start
# to pay from it) may cut the call. test_gpu --no-grid leaves out the spec §6 grid (155 s), which
# has no cu_seqlens_q case.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p "$L"
pack() { (cd "$OUT" && tar -czf run.tgz logs); }
mixed() { # tag binary commit [extra args]
  local tag=$1 bin=$2 c=$3; shift 3
  MLA_GIT_COMMIT=$c timeout 60 "$B/$bin" --mixed --no-ceilings "$@" > "$L/mixed-$tag.log" 2>&1
  echo "rc=$?" >> "$L/mixed-$tag.log"; pack
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv; nvcc --version | tail -1; } > "$L/info.log" 2>&1
timeout 60 "$B/test_gpu" --quick > "$L/test_gpu-quick.log" 2>&1; echo "rc=$?" >> "$L/test_gpu-quick.log"; pack
mixed new-r1 mla-bench b712efc --json "$L/mixed-new-r1.json"
mixed old-r1 mla-bench-old 4cacac1
mixed rr-r1 mla-bench-rr b712efc-qweight0
timeout 60 "$B/test_gpu-mut" --quick > "$L/mutant-nowrap-quick.log" 2>&1; echo "rc=$?" >> "$L/mutant-nowrap-quick.log"; pack
echo "== quick suite / mutant"; tail -2 "$L/test_gpu-quick.log"; grep -E "passed, [0-9]+ failed|rc=" "$L/mutant-nowrap-quick.log" | tail -3
for f in new-r1 rr-r1 old-r1; do echo "== mixed-$f"; sed -n '/^Per-request/,/^(q/p' "$L/mixed-$f.log" | sed '1,2d;$d'; grep "rc=" "$L/mixed-$f.log"; done
timeout 200 "$B/test_gpu" --no-grid > "$L/test_gpu-no-grid.log" 2>&1; echo "rc=$?" >> "$L/test_gpu-no-grid.log"; pack
echo "== test_gpu --no-grid"; tail -4 "$L/test_gpu-no-grid.log"
MLA_GIT_COMMIT=b712efc timeout 40 "$B/mla-bench" --quick --no-ceilings > "$L/quick-new.log" 2>&1; echo "rc=$?" >> "$L/quick-new.log"
MLA_GIT_COMMIT=4cacac1 timeout 40 "$B/mla-bench-old" --quick --no-ceilings > "$L/quick-old.log" 2>&1; echo "rc=$?" >> "$L/quick-old.log"; pack
for f in quick-new quick-old; do echo "== $f"; grep -E "^b=" "$L/$f.log" | head -6; done
mixed fp8-new mla-bench b712efc --quick --kv-dtype fp8
mixed fp8-old mla-bench-old 4cacac1 --quick --kv-dtype fp8
mixed new-r2 mla-bench b712efc
mixed old-r2 mla-bench-old 4cacac1
for f in fp8-new fp8-old new-r2 old-r2; do echo "== mixed-$f"; sed -n '/^Per-request/,/^(q/p' "$L/mixed-$f.log" | sed '1,2d;$d'; done
