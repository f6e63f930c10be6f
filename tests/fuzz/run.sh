#!/usr/bin/env bash
# run.sh — build the libFuzzer harness of the C API (tests/fuzz/fuzz_decode.c) with
# AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) and run it for a bounded time.
#
#   tests/fuzz/run.sh [seconds]      default 90 (the CI budget); e.g. 3600 for an hour
#
# The committed seed corpus (tests/fuzz/corpus/, written by gen_corpus.py) is replayed first;
# new interesting inputs go to $FUZZ_BUILD/corpus (not committed). A failing input is saved as
# $FUZZ_BUILD/crash-* (replay it: $FUZZ_BUILD/fuzz_decode <file>). The last line reports the
# executions, e.g. "fuzz: 31337 executions in 90 s (348/s), 0 failures".
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
mkdir -p "$out/corpus"

# The library is compiled CPU-only (src/*.c incl. gpu_stub.c, ref/*.c). Coverage guidance
# (-fsanitize=fuzzer-no-link) is on for src/ (the validation code the fuzzer explores) and off
# for ref/ (the compute loops: comparison tracing there would cost 5x in speed and add nothing);
# every file has ASan + UBSan.
san="-fsanitize=address,undefined -fno-sanitize-recover=all"
flags="-g -O1 -std=c11 -D_GNU_SOURCE -pthread -Iinclude -Isrc -Iref -fno-omit-frame-pointer"
echo "== fuzz: building $out/fuzz_decode with $cc"
rm -f "$out"/*.o
for f in src/*.c; do
    # shellcheck disable=SC2086
    "$cc" $flags $san -fsanitize=fuzzer-no-link -c "$f" -o "$out/src_$(basename "$f" .c).o"
done
for f in ref/*.c; do
    # shellcheck disable=SC2086
    "$cc" $flags $san -c "$f" -o "$out/ref_$(basename "$f" .c).o"
done
# shellcheck disable=SC2086
"$cc" $flags $san -fsanitize=fuzzer tests/fuzz/fuzz_decode.c "$out"/*.o -lm -o "$out/fuzz_decode"

log="$out/fuzz.log"
echo "== fuzz: running for $secs s (log: $log)"
set +e
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$out/fuzz_decode" -max_total_time="$secs" -max_len=64 -timeout=20 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$out/" ${FUZZ_ARGS:-} \
    "$out/corpus" tests/fuzz/corpus > "$log" 2>&1
rc=$?
set -e
grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|FAILURE|ERROR|runtime error|SUMMARY" "$log" | tail -n 12
execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n1)
took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
corpus=$(find "$out/corpus" -type f | wc -l)
seeds=$(find tests/fuzz/corpus -type f | wc -l)
if [ "$rc" -ne 0 ]; then
    echo "fuzz: FAILED (exit $rc) after ${execs:-?} executions; see $log and $out/crash-*"
    tail -n 40 "$log"
    exit 1
fi
rate=$(( ${execs:-0} / (${took:-$secs} > 0 ? ${took:-$secs} : 1) ))
echo "fuzz: ${execs:-?} executions in ${took:-$secs} s (${rate}/s), $seeds seeds + $corpus new corpus inputs, 0 failures"
