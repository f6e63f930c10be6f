/* cpu_amx.c — the CPU fast path on Intel AMX bf16 tiles (Xeon Sapphire Rapids and later: AWS m7i /
 * c7i / r7i, GCP c3, Azure Dv6 ...). The code is src/cpu_tiles.h, built here with its matrix
 * products on the tiles (TDPBF16PS); src/cpu_avx512bf16.c and src/cpu_avx512.c build it again for
 * CPUs without them. */
#define MLA_TILES 1
#include "cpu_tiles.h"
