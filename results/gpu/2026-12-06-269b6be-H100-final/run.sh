#!/usr/bin/env bash
# Twenty-fifth session, call 7 (H100): 269b6be's binary (HEAD's GPU code). Issue #5's rows
# (`mla-bench --sparse`: decode + prefill) three rounds, and issue #4's `mla-bench --quick` once.
set -u
tar -xJf .devcarry/bin.txz -C .devcarry
. .devcarry/calls.sh
B=$PWD/.devcarry/bin; L=$OUT/s7; mkdir -p "$L"
export MLA_GIT_COMMIT=269b6be
call_info "$L"
for rnd in 1 2 3; do call_step "$L" s7.tgz sparse-r$rnd 90 "$B/mla-bench" --sparse; done
for rnd in 1 2 3; do grep -E "^sparse" "$L/sparse-r$rnd.log" | awk '{printf "%s ", $0 ~ /decode/ ? $(NF-0) : ""}' >/dev/null; done
for rnd in 1 2 3; do echo "== r$rnd"; grep -E "^sparse" "$L/sparse-r$rnd.log" | cut -c1-100; done
call_step "$L" s7.tgz bench-quick 120 "$B/mla-bench" --quick
grep -vE "^\s*$" "$L/bench-quick.log" | tail -n 20
