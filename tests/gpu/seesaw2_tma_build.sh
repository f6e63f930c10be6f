#!/usr/bin/env bash
# seesaw2_tma_build.sh — binaries for tests/gpu/seesaw2_tma_run.sh (v6's TMA issue cost, eighteenth
# session): the commit's build, v6 with the block_table line of the next refill prefetched into L1
# (MLA_SS2_BTPF=1), and MLA_DIAG=8 builds whose slot 5 times all of s2_tma / its block_table reads /
# its mbarrier arming / its box issue (MLA_SS2_DIAG_TMA=0..3), and the default kernel with Q issued
# first (MLA_V3_QFIRST=1: mla-bench and test_gpu), packed into .devcarry/bin.txz.
set -eu
cd "$(dirname "$0")/../.."
J=${JOBS:-$(nproc)}
rm -f build/mla-bench
make -j"$J" lib tests build/mla-bench
make -j"$J" MLA_DEFS=-DMLA_SS2_BTPF=1 BUILD=build-xbtpf build-xbtpf/mla-bench
for v in 0 1 2 3; do
  make -j"$J" MLA_DEFS="-DMLA_DIAG=8 -DMLA_SS2_DIAG_TMA=$v" MLA_ALLOW_SPILLS=1 BUILD=build-xdt$v build-xdt$v/mla-bench
done
make -j"$J" MLA_DEFS="-DMLA_DIAG=8 -DMLA_SS2_DIAG_TMA=1 -DMLA_SS2_BTPF=1" MLA_ALLOW_SPILLS=1 BUILD=build-xdtpf build-xdtpf/mla-bench
make -j"$J" MLA_DEFS=-DMLA_V3_QFIRST=1 BUILD=build-xqf build-xqf/mla-bench build-xqf/test_gpu
rm -rf .devcarry/bin && mkdir -p .devcarry/bin
cp build/mla-bench build/test_gpu .devcarry/bin/
cp build-xbtpf/mla-bench .devcarry/bin/mla-bench-btpf
for v in 0 1 2 3; do cp build-xdt$v/mla-bench .devcarry/bin/mla-bench-dt$v; done
cp build-xdtpf/mla-bench .devcarry/bin/mla-bench-dtpf
cp build-xqf/mla-bench .devcarry/bin/mla-bench-qf
cp build-xqf/test_gpu .devcarry/bin/test_gpu-qf
strip .devcarry/bin/*
(cd .devcarry && tar -cJf bin.txz bin)
ls -la .devcarry/bin.txz
