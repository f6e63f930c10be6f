#!/usr/bin/env bash
# Second call: the sanitizers of run18 (split off so the first call fits 600 s).
set -u
for n in 26; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s35c2; mkdir -p "$L"; D=$PWD/.devcarry; T=s35c2.tgz
call_info "$L"
for tool in memcheck synccheck racecheck; do
  call_step "$L" $T san-$tool 120 env MLA_GPU_KERNEL=4 compute-sanitizer --tool $tool --error-exitcode 99 "$D/b26/bin/test_gpu" --quick
done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
