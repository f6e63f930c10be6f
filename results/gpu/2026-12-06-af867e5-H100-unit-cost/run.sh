#!/usr/bin/env bash
# Twenty-sixth session, call 4 (H100): af867e5. Where the ~7 us per unit goes: the same FLOPs in
# 8..128 tiles per unit (s_kv 8K, FlashMLA's indices), SSF against the persistent SSF, in the real
# build, without the K gather (MLA_SP_DIAG=6) and without the output stores (MLA_SP_DIAG=8).
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/c4; mkdir -p "$L"
export MLA_GIT_COMMIT=af867e5
call_info "$L"
CASES="--prefill-case 4096,8192,128,2048,576,flashmla --prefill-case 1024,8192,128,8192,576,flashmla --prefill-case 2048,8192,128,4096,576,flashmla --prefill-case 8192,8192,128,1024,576,flashmla --prefill-case 16384,8192,128,512,576,flashmla"
for rnd in 1 2; do
  for b in real d6 d8; do
    for v in 2 3; do
      call_step "$L" c4.tgz sw-$b-s$v-r$rnd 60 env MLA_SPARSE_SEESAW=$v "$B/mla-bench-$b" $CASES
    done
  done
done
echo "columns: topk 2048 8192 4096 1024 512 (tiles per unit 32 128 64 16 8)"
for b in real d6 d8; do for v in 2 3; do echo "== $b seesaw=$v"; for rnd in 1 2; do grep -E "^sparse prefill" "$L/sw-$b-s$v-r$rnd.log" | awk '{printf "%s ", $8} END {print ""}'; done; done; done
