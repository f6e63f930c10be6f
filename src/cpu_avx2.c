/* cpu_avx2.c — the CPU fast path on AVX2 with fp32 FMAs, for x86-64 CPUs without AVX-512 (AMD
 * Zen 2 / Zen 3: AWS m5a / c5a / m6a / c6a, GCP n2d / c2d, Azure Dav4 / Dasv5; Intel Haswell ..
 * Comet Lake and the client cores after them). The code is src/cpu_tiles.h, the same item kernels
 * and chunk core as the other builds, in the AVX-512 FMA build's scheme (K converted to fp32 once
 * per chunk, P kept in fp32) with both products as VFMADD231PS in ymm registers. */
#define MLA_TILES 4
#include "cpu_tiles.h"
