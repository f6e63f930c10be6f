/* cpu_neon.c — the CPU fast path on AArch64 Advanced SIMD (NEON) with fp32 FMAs, for ARM servers
 * (AWS Graviton 2 / 3 / 4, Ampere Altra, NVIDIA Grace, ...). The code is src/cpu_tiles.h, the
 * same item kernels and chunk core as the x86 builds, in the AVX-512 FMA build's scheme (K
 * converted to fp32 once per chunk, P kept in fp32) with both products as FMLA by element in
 * 4-lane registers. On other architectures it builds as a stub that reports UNSUPPORTED. */
#define MLA_TILES 5
#include "cpu_tiles.h"
