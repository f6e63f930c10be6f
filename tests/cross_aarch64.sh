#!/usr/bin/env bash
# cross_aarch64.sh — the CPU library and C tests built for AArch64 (aarch64-linux-gnu-gcc) and run
# under qemu-aarch64 user-mode emulation: the NEON build of the CPU path (src/cpu_neon.c) and the
# C reference on an ARM CPU, which no machine here has. Correctness only: emulated timings mean
# nothing.
#
#   tests/cross_aarch64.sh [quick|full]     (default quick)
#
#   quick  test_api, test_ref --quick (NEON, then the reference), test_sparse with MLA_TEST_QUICK=1
#          (validation and feature groups), test_faults
#   full   test_sparse whole, test_ref (the default grid sample, NEON forced) and test_fp8_dense
#          as well
# Needs gcc-aarch64-linux-gnu (and its libc6-dev-arm64-cross) and qemu-user (Debian packages of
# those names). Exit status: 0 all passed, 1 a test failed, 77 the tools are missing.
# The last line: "cross_aarch64: <N> suites passed, <M> failed" with the summed test counts.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-quick}
CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU:-qemu-aarch64}
SYSROOT=${CROSS_SYSROOT:-/usr/aarch64-linux-gnu}
out=${CROSS_BUILD:-build-aarch64}
if ! command -v "$CC" >/dev/null 2>&1 || ! command -v "$QEMU" >/dev/null 2>&1; then
    echo "cross_aarch64: $CC or $QEMU not found (Debian: gcc-aarch64-linux-gnu qemu-user)"
    exit 77
fi
mkdir -p "$out/obj"
flags="-O2 -g -std=c11 -Wall -Wextra -Wno-unused-parameter -pthread -D_GNU_SOURCE -Iinclude -Isrc -Iref"
echo "== cross_aarch64: building the library with $CC into $out"
objs=()
for f in src/*.c ref/*.c; do
    o="$out/obj/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')"
    # shellcheck disable=SC2086
    $CC $flags -Werror -c "$f" -o "$o" || { echo "cross_aarch64: compiling $f failed"; exit 1; }
    objs+=("$o")
done
rm -f "$out/libmla.a"
ar rcs "$out/libmla.a" "${objs[@]}"

suites="test_api test_ref test_sparse test_faults"
# not test_threads: its fork-after-threads check aborts inside qemu-user itself; not test_fp8:
# Debian's aarch64 gcc 12 stops on it with an internal compiler error
[ "$what" = full ] && suites="$suites test_fp8_dense"
passed=0 failed=0 tp=0 tf=0
for t in $suites; do
    # shellcheck disable=SC2086
    $CC $flags -Itests "tests/$t.c" -o "$out/$t" "$out/libmla.a" -lm -lpthread ||
        { echo "cross_aarch64: building $t failed"; failed=$((failed + 1)); continue; }
done
run() {  # name, env..., -- args
    local name=$1; shift
    local log="$out/$name.log"
    echo "== cross_aarch64: $name"
    env "$@" > "$log" 2>&1
    local rc=$?
    head -n1 "$log"
    tail -n1 "$log"
    local p f
    p=$(grep -oE '[0-9]+ passed' "$log" | tail -n1 | cut -d' ' -f1)
    f=$(grep -oE '[0-9]+ failed' "$log" | tail -n1 | cut -d' ' -f1)
    tp=$((tp + ${p:-0})); tf=$((tf + ${f:-0}))
    if [ "$rc" -eq 0 ] && [ -n "$p" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); grep FAIL "$log" | head -n 20; fi
}
for t in $suites; do
    [ -x "$out/$t" ] || continue
    case "$t" in
    test_ref) run test_ref_quick "$QEMU" -L "$SYSROOT" "$out/test_ref" --quick
              [ "$what" = full ] && run test_ref_neon MLA_CPU_KERNEL=neon "$QEMU" -L "$SYSROOT" "$out/test_ref" ;;
    test_sparse) if [ "$what" = full ]; then run test_sparse "$QEMU" -L "$SYSROOT" "$out/test_sparse"
                 else run test_sparse_quick MLA_TEST_QUICK=1 "$QEMU" -L "$SYSROOT" "$out/test_sparse"; fi ;;
    *) run "$t" "$QEMU" -L "$SYSROOT" "$out/$t" ;;
    esac
done
echo "cross_aarch64: $passed suites passed, $failed failed ($tp tests passed, $tf failed)"
[ "$failed" -eq 0 ]
