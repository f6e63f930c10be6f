#!/usr/bin/env bash
# Twenty-sixth session, call 2 (H100): 99e18ba (GPU code = a7f19e1's). Where the prefill's time goes
# at s_kv 8K with FlashMLA's indices (FlashMLA: 3450 us there). (1) the same FLOPs and gathered bytes
# in fewer / more tiles per CTA (topk 8192 .. 512): the fixed cost per CTA; for the default kernel,
# SSF and SSF without the gather (MLA_SP_DIAG=6 build). (2) ncu on SSF, SSF without the gather and
# the default kernel: speed of light, warp states, memory, top stalled SASS.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c2; mkdir -p "$L"
export MLA_GIT_COMMIT=99e18ba
call_info "$L"
CASES="--prefill-case 4096,8192,128,2048,576,flashmla --prefill-case 1024,8192,128,8192,576,flashmla --prefill-case 2048,8192,128,4096,576,flashmla --prefill-case 8192,8192,128,1024,576,flashmla --prefill-case 16384,8192,128,512,576,flashmla"
for rnd in 1 2; do
  call_step "$L" c2.tgz sw-def-r$rnd 60 "$B/mla-bench" $CASES
  call_step "$L" c2.tgz sw-ssf-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench" $CASES
  call_step "$L" c2.tgz sw-d6ssf-r$rnd 60 env MLA_SPARSE_SEESAW=2 "$B/mla-bench-d6" $CASES
done
for v in def ssf d6ssf; do echo "== $v"; for rnd in 1 2; do grep -E "^sparse prefill" "$L/sw-$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
NC="--prefill-case 4096,8192,128,2048,576,flashmla --iters 1"
for v in ssf d6ssf def; do
  case $v in ssf) E="MLA_SPARSE_SEESAW=2"; BB=$B/mla-bench ;; d6ssf) E="MLA_SPARSE_SEESAW=2"; BB=$B/mla-bench-d6 ;; def) E="MLA_SPARSE_SEESAW=0"; BB=$B/mla-bench ;; esac
  t0=$(date +%s)
  env $E OUT=$L BENCH=$BB BENCH_FLAGS="$NC" KREGEX=mla_sp_prefill_576 timeout 150 bash tests/gpu/ncu_stalls.sh $v
  echo "ncu $v $(( $(date +%s) - t0 )) s"
  (cd "$OUT" && tar -czf c2.tgz c2)
  grep -E "Duration|Issued Warp|Compute \(SM\) Th|L2 Cache Th|Memory Throughput|L2 Hit|Shared Memory|Registers Per|Warp Cycles Per Issued" $L/ncu_$v.log | head -20
done
