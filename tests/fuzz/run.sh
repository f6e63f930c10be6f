#!/usr/bin/env bash
# run.sh — build the libFuzzer harnesses of the C API (tests/fuzz/fuzz_decode.c: dense decode;
# tests/fuzz/fuzz_sparse.c: sparse prefill) with AddressSanitizer + UndefinedBehaviorSanitizer
# (+ LeakSanitizer) and run them for a bounded time (split 2:1).
#
#   tests/fuzz/run.sh [seconds]      default 90 (the CI budget); e.g. 3600 for an hour
#
# The committed seed corpora (tests/fuzz/corpus*/, written by gen_corpus.py) are replayed first;
# new interesting inputs go to $FUZZ_BUILD/corpus_<harness> (not committed). A failing input is
# saved as $FUZZ_BUILD/<harness>-crash-* (replay it: $FUZZ_BUILD/<harness> <file>). The last line
# reports the executions, e.g. "fuzz: 80000 executions in 90 s, fuzz_decode: ... 0 failures".
# Env: CLANG (compiler, default clang or clang-14), FUZZ_BUILD (default build-fuzz),
#      FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-90}
out=${FUZZ_BUILD:-build-fuzz}
cc=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$cc" ]; then
    echo "fuzz: clang not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
mkdir -p "$out"

# The library is compiled CPU-only (src/*.c incl. gpu_stub.c, ref/*.c). Coverage guidance
# (-fsanitize=fuzzer-no-link) is on for src/ (the validation code the fuzzer explores) and off
# for ref/ (the compute loops: comparison tracing there would cost 5x in speed and add nothing);
# every file has ASan + UBSan.
san="-fsanitize=address,undefined -fno-sanitize-recover=all"
flags="-g -O1 -std=c11 -D_GNU_SOURCE -pthread -Iinclude -Isrc -Iref -fno-omit-frame-pointer"
echo "== fuzz: building $out/fuzz_decode and $out/fuzz_sparse with $cc"
rm -f "$out"/*.o
for f in src/*.c; do
    # shellcheck disable=SC2086
    "$cc" $flags $san -fsanitize=fuzzer-no-link -c "$f" -o "$out/src_$(basename "$f" .c).o"
done
for f in ref/*.c; do
    # shellcheck disable=SC2086
    "$cc" $flags $san -c "$f" -o "$out/ref_$(basename "$f" .c).o"
done
for h in fuzz_decode fuzz_sparse; do
    # shellcheck disable=SC2086
    "$cc" $flags $san -fsanitize=fuzzer "tests/fuzz/$h.c" "$out"/*.o -lm -o "$out/$h"
done

# The time is split 2:1 between the dense harness and the sparse (prefill) one.
t_dense=$(( secs * 2 / 3 )); t_sparse=$(( secs - t_dense ))
total=0 fails=0
summary=""
for h in fuzz_decode fuzz_sparse; do
    if [ "$h" = fuzz_decode ]; then t=$t_dense; seeds_dir=tests/fuzz/corpus; else t=$t_sparse; seeds_dir=tests/fuzz/corpus_sparse; fi
    [ "$t" -ge 1 ] || continue
    mkdir -p "$out/corpus_$h"
    log="$out/$h.log"
    echo "== fuzz: $h for $t s (log: $log)"
    set +e
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
        "$out/$h" -max_total_time="$t" -max_len=64 -timeout=20 -rss_limit_mb=3072 \
        -print_final_stats=1 -artifact_prefix="$out/$h-" ${FUZZ_ARGS:-} \
        "$out/corpus_$h" "$seeds_dir" > "$log" 2>&1
    rc=$?
    set -e
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|FAILURE|ERROR|runtime error|SUMMARY" "$log" | tail -n 6
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
    corpus=$(find "$out/corpus_$h" -type f | wc -l)
    seeds=$(find "$seeds_dir" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $h FAILED (exit $rc) after ${execs:-?} executions; see $log and $out/$h-crash-*"
        tail -n 40 "$log"
        fails=$((fails + 1))
        continue
    fi
    rate=$(( ${execs:-0} / (${took:-$t} > 0 ? ${took:-$t} : 1) ))
    total=$(( total + ${execs:-0} ))
    summary="$summary $h: ${execs:-?} executions in ${took:-$t} s (${rate}/s), $seeds seeds + $corpus new inputs;"
    echo "fuzz: $h: ${execs:-?} executions in ${took:-$t} s (${rate}/s), $seeds seeds + $corpus new corpus inputs, 0 failures"
done
if [ "$fails" -ne 0 ]; then
    echo "fuzz: FAILED ($fails harnesses)"
    exit 1
fi
echo "fuzz: $total executions in $secs s,$summary 0 failures"
