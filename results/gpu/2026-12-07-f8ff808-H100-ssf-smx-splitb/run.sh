#!/usr/bin/env bash
# Thirty-sixth session, call 2 (H100): SSF prefill variants. bin40: the tree's default build (kernels as
# dc560e1; bench with the [reused] decode rows); bin41: -DSP_SSF_SMX=1; bin42: -DSP_SSF_SPLITB=1; bin43:
# both. Quick sparse suites (43, 40), four alternating rounds of --sparse-prefill, the decode rows on 40,
# then the whole sparse suite on 43, 42, 41.
set -u
for n in 40 41 42 43; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s36c2; mkdir -p "$L"; D=$PWD/.devcarry; T=s36c2.tgz
call_info "$L"
call_step "$L" $T quick-43 90 "$D/b43/bin/test_gpu_sparse" --quick
tail -n 2 "$L/quick-43.log" | head -1
call_step "$L" $T quick-40 90 "$D/b40/bin/test_gpu_sparse" --quick
tail -n 2 "$L/quick-40.log" | head -1
for r in 1 2 3 4; do for n in 40 41 42 43; do call_step "$L" $T pf$n-$r 60 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-prefill; done; done
for n in 40 41 42 43; do echo "== $n"; for r in 1 2 3 4; do grep -E "^sparse prefill" "$L/pf$n-$r.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
call_step "$L" $T dec40 90 env MLA_GIT_COMMIT=bin40 "$D/b40/bin/mla-bench" --sparse-decode
grep -E "^sparse decode" "$L/dec40.log" | cut -c1-210
for n in 43 42 41; do call_step "$L" $T sparse-$n 200 "$D/b$n/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-$n.log" | head -1; grep -m 5 FAIL "$L/sparse-$n.log"; done
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
