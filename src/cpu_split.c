/* cpu_split.c — the key split of a CPU dense decode call (internal.h: mla_cpu_split): which calls
 * split, into how many ranges, and the workspace that holds their partial rows. The kernels
 * (src/cpu_tiles.h) run the ranges and merge them. */
#include "internal.h"

#include <stdint.h>

#define SPLIT_ALIGN 64
#define ROW_FLOATS (512 + 2)

/* Row tiles of the call (b x h_kv x tiles of 16 query rows per (request, kv head)) and the most
 * ranges per request its shape allows (< 2: it never splits). */
static int64_t split_max(const mla_decode_shape *sh, int64_t *rt_total, int64_t *tiles)
{
    *rt_total = (sh->s_q * (sh->h_q / sh->h_kv) + 15) / 16;
    *tiles = sh->b * sh->h_kv * *rt_total;
    if (*tiles >= MLA_CPU_SPLIT_BELOW) return 0;
    const int64_t m = MLA_CPU_SPLIT_ROWS_MAX / (*tiles * 16);
    return m < MLA_CPU_SPLIT_MAX ? m : MLA_CPU_SPLIT_MAX;
}

static size_t split_bytes(int64_t tiles, int64_t nsplit)
{
    return (size_t)(tiles * nsplit * 16) * ROW_FLOATS * sizeof(float) + SPLIT_ALIGN;
}

size_t mla_cpu_split_workspace(const mla_decode_shape *shape)
{
    int64_t rt_total, tiles;
    const int64_t smax = split_max(shape, &rt_total, &tiles);
    return smax < 2 ? 0 : split_bytes(tiles, smax);
}

void mla_cpu_split_of_call(const mla_decode_shape *shape, const mla_decode_args *args, int split_chunks,
                           void *workspace, size_t workspace_bytes, mla_cpu_split *split)
{
    split->nsplit = 1;
    split->part = NULL;
    int64_t rt_total, tiles;
    const int64_t smax = split_max(shape, &rt_total, &tiles);
    /* a workspace below the plan's size (mla_decode_workspace_size) is never used */
    if (smax < 2 || !workspace || workspace_bytes < split_bytes(tiles, smax)) return;
    int64_t lmax = 0;
    for (int64_t i = 0; i < shape->b; i++)
        if (args->cache_seqlens[i] > lmax) lmax = args->cache_seqlens[i];
    const int64_t per = split_chunks < 1 ? 1 : split_chunks;
    int64_t ns = ((lmax + 63) / 64 + per - 1) / per;
    if (ns > smax) ns = smax;
    if (ns < 2) return;
    split->nsplit = (int)ns;
    split->chunks = (int)per;
    split->rt_total = rt_total;
    split->part = (float *)(((uintptr_t)workspace + SPLIT_ALIGN - 1) & ~(uintptr_t)(SPLIT_ALIGN - 1));
}
