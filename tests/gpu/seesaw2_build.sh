#!/usr/bin/env bash
# seesaw2_build.sh — on the build machine (no GPU needed): builds the binaries tests/gpu/seesaw2_run.sh
# takes to the device, strips them and packs .devcarry/bin.txz; then run the device call with
#   carry [".devcarry/bin.txz"], command "OUT=$OUT bash tests/gpu/seesaw2_run.sh".
# Commit first: the binaries print the commit they were built from.
set -eu
cd "$(dirname "$0")/../.."
J=${JOBS:-$(nproc)}
rm -f build/mla-bench
make -j"$J" lib tests build/mla-bench
make -j"$J" MLA_DEFS=-DMLA_SS2_CHUNK_WAIT=0 BUILD=build-xcw0 build-xcw0/mla-bench
make -j"$J" MLA_DEFS=-DMLA_SS2_L2PF=1 BUILD=build-xpf build-xpf/mla-bench
make -j"$J" MLA_DEFS=-DMLA_SS2_EARLY_R1=1 BUILD=build-xr1 build-xr1/mla-bench
make -j"$J" MLA_DEFS=-DMLA_V3_QFIRST=1 BUILD=build-xqf build-xqf/mla-bench
make -j"$J" MLA_DEFS=-DMLA_DIAG=8 MLA_ALLOW_SPILLS=1 BUILD=build-xdiag8 build-xdiag8/mla-bench
rm -rf .devcarry/bin && mkdir -p .devcarry/bin
cp build/mla-bench build/test_gpu .devcarry/bin/
cp build-xcw0/mla-bench .devcarry/bin/mla-bench-cw0
cp build-xpf/mla-bench .devcarry/bin/mla-bench-pf
cp build-xr1/mla-bench .devcarry/bin/mla-bench-r1
cp build-xqf/mla-bench .devcarry/bin/mla-bench-qf
cp build-xdiag8/mla-bench .devcarry/bin/mla-bench-diag8
strip .devcarry/bin/*
(cd .devcarry && tar -cJf bin.txz bin)
ls -la .devcarry/bin .devcarry/bin.txz
