/* cpu_avx512.c — the CPU fast path on AVX-512 F with fp32 FMAs, for x86-64 CPUs with AVX-512 but
 * neither AMX nor AVX512-BF16 (Intel Skylake-SP, Cascade Lake, Ice Lake: AWS m5 / c5 / r5, m6i /
 * c6i / r6i, GCP n2 / c2, Azure Dv4 / Dv5 ...). The code is src/cpu_tiles.h, the same item kernels
 * and chunk core as the other builds, with K converted to fp32 once per chunk, P kept in fp32,
 * and both products as VFMADD231PS in zmm registers. */
#define MLA_TILES 3
#include "cpu_tiles.h"
