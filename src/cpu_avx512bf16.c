/* cpu_avx512bf16.c — the CPU fast path on AVX512-BF16 vectors (VDPBF16PS), for x86-64 CPUs that
 * have it but no AMX tiles (AMD Zen 4 / Zen 5: AWS m7a / c7a / r7a, GCP c3d / n4d, Azure Dasv6 ...;
 * Intel Cooper Lake). The code is src/cpu_tiles.h, the same item kernels and chunk core as the
 * AMX path (src/cpu_amx.c) with the two matrix products done in zmm registers. */
#define MLA_TILES 2
#include "cpu_tiles.h"
