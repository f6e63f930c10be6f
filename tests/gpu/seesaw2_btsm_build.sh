#!/usr/bin/env bash
# seesaw2_btsm_build.sh — binaries for tests/gpu/seesaw2_btsm_run.sh: the commit's build, v6 with the
# next refills' block_table entries copied into smem ahead (MLA_SS2_BTSM=1: mla-bench, test_gpu), and
# its MLA_DIAG=8 build timing only the block_table part of s2_tma; packed into .devcarry/bin.txz. The
# BTSM builds spill 8 bytes in the d_qk 576 entries (one register over): timing probes only.
set -eu
cd "$(dirname "$0")/../.."
J=${JOBS:-$(nproc)}
rm -f build/mla-bench
make -j"$J" lib tests build/mla-bench
make -j"$J" MLA_DEFS=-DMLA_SS2_BTSM=1 MLA_ALLOW_SPILLS=1 BUILD=build-xbtsm build-xbtsm/mla-bench build-xbtsm/test_gpu
make -j"$J" MLA_DEFS="-DMLA_DIAG=8 -DMLA_SS2_DIAG_TMA=1 -DMLA_SS2_BTSM=1" MLA_ALLOW_SPILLS=1 BUILD=build-xdtsm build-xdtsm/mla-bench
rm -rf .devcarry/bin && mkdir -p .devcarry/bin
cp build/mla-bench build/test_gpu .devcarry/bin/
cp build-xbtsm/mla-bench .devcarry/bin/mla-bench-btsm
cp build-xbtsm/test_gpu .devcarry/bin/test_gpu-btsm
cp build-xdtsm/mla-bench .devcarry/bin/mla-bench-dtsm
strip .devcarry/bin/*
(cd .devcarry && tar -cJf bin.txz bin)
ls -la .devcarry/bin.txz
