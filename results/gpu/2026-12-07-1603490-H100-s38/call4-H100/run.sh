#!/usr/bin/env bash
# Thirty-eighth session, call 4: bin58 = the tree with the whole-token schedule test section
# (test_decode_whole_tokens: split counts against the host mirror of the rule) -- the whole sparse suite.
set -u
mkdir -p .devcarry/b58 && tar -xJf .devcarry/bin58.txz -C .devcarry/b58
. .devcarry/calls.sh
L=$OUT/s38c4; mkdir -p "$L"; D=$PWD/.devcarry; T=s38c4.tgz
call_info "$L"
call_step "$L" $T sparse-58 220 "$D/b58/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-58.log" | head -1; grep -m 5 FAIL "$L/sparse-58.log"
grep -A9 "whole-token schedule (split" "$L/sparse-58.log" | cut -c1-200
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
