/* cpu_split.c — the key split of a CPU dense or sparse decode call (internal.h: mla_cpu_split):
 * which calls split, into how many ranges, and the workspace that holds their partial rows. The
 * kernels (src/cpu_tiles.h) run the ranges and merge them. */
#include "internal.h"
#include "mla_ref_sparse.h"

#include <stdint.h>
#include <stdlib.h>

#define SPLIT_ALIGN 64
#define ROW_FLOATS (512 + 2)

/* The most ranges per request a call of `tiles` row tiles allows (< 2: it never splits). */
static int64_t split_max_of(int64_t tiles)
{
    if (tiles >= MLA_CPU_SPLIT_BELOW) return 0;
    const int64_t m = MLA_CPU_SPLIT_ROWS_MAX / (tiles * 16);
    return m < MLA_CPU_SPLIT_MAX ? m : MLA_CPU_SPLIT_MAX;
}

/* a * b * c for positive dims, saturated at INT64_MAX (any product of the validated dims, each up to
 * 2^31 - 1, is then safe: a saturated count is far past MLA_CPU_SPLIT_BELOW, so such a call never splits) */
static int64_t mul3_sat(int64_t a, int64_t b, int64_t c)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r)) return INT64_MAX;
    return r;
}

/* Dense: row tiles b x h_kv x tiles of 16 query rows per (request, kv head). */
static int64_t split_max(const mla_decode_shape *sh, int64_t *rt_total, int64_t *tiles)
{
    *rt_total = (sh->s_q * (sh->h_q / sh->h_kv) + 15) / 16;
    *tiles = mul3_sat(sh->b, sh->h_kv, *rt_total);
    return split_max_of(*tiles);
}

/* Sparse decode: row tiles b x s_q x tiles of 16 heads (h_kv is 1), and ranges only up to
 * ceil(16 / tiles), enough for the MLA_CPU_SPLIT_BELOW items an unsplit call of 16 tiles has:
 * each range starts its gather cold (its first chunk is not prefetched), which cost 10-19% at
 * b=4 s_q=2 h_q=16 (8 tiles) with 4 ranges of 512 on 2 cores (docs/performance.md §20). */
static int64_t sparse_split_max(const mla_sparse_decode_shape *sh, int64_t *rt_total, int64_t *tiles)
{
    *rt_total = (sh->h_q + 15) / 16;
    *tiles = mul3_sat(sh->b, sh->s_q, *rt_total);
    const int64_t m = split_max_of(*tiles);
    if (m < 2) return m; /* also keeps the sum below from overflowing */
    const int64_t want = (MLA_CPU_SPLIT_BELOW + *tiles - 1) / *tiles;
    return m < want ? m : want;
}

static size_t split_bytes(int64_t tiles, int64_t nsplit)
{
    return (size_t)(tiles * nsplit * 16) * ROW_FLOATS * sizeof(float) + SPLIT_ALIGN;
}

/* The split of a call whose longest request has lmax keys (positions), if the workspace
 * holds the plan's size. */
static void split_fill(int64_t smax, int64_t tiles, int64_t rt_total, int64_t lmax, int split_chunks,
                       void *workspace, size_t workspace_bytes, mla_cpu_split *split)
{
    /* a workspace below the plan's size (mla_*decode_workspace_size) is never used */
    if (smax < 2 || !workspace || workspace_bytes < split_bytes(tiles, smax)) return;
    const int64_t per = split_chunks < 1 ? 1 : split_chunks;
    int64_t ns = ((lmax + 63) / 64 + per - 1) / per;
    if (ns > smax) ns = smax;
    if (ns < 2) return;
    split->nsplit = (int)ns;
    split->chunks = (int)per;
    split->rt_total = rt_total;
    split->part = (float *)(((uintptr_t)workspace + SPLIT_ALIGN - 1) & ~(uintptr_t)(SPLIT_ALIGN - 1));
}

int mla_cpu_split_chunks_of_env(int def)
{
    const char *sc = getenv("MLA_CPU_SPLIT_CHUNKS");
    if (!sc) return def;
    char *end = NULL;
    const long v = strtol(sc, &end, 10);
    return end != sc && *end == 0 && v >= 1 && v <= 4096 ? (int)v : def;
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
    if (smax < 2) return;
    int64_t lmax = 0;
    for (int64_t i = 0; i < shape->b; i++)
        if (args->cache_seqlens[i] > lmax) lmax = args->cache_seqlens[i];
    split_fill(smax, tiles, rt_total, lmax, split_chunks, workspace, workspace_bytes, split);
}

size_t mla_cpu_sparse_split_workspace(const mla_sparse_decode_shape *shape)
{
    int64_t rt_total, tiles;
    const int64_t smax = sparse_split_max(shape, &rt_total, &tiles);
    return smax < 2 ? 0 : split_bytes(tiles, smax);
}

void mla_cpu_sparse_split_of_call(const mla_sparse_decode_shape *shape, const mla_sparse_decode_args *args,
                                  int split_chunks, void *workspace, size_t workspace_bytes,
                                  mla_cpu_split *split)
{
    split->nsplit = 1;
    split->part = NULL;
    int64_t rt_total, tiles;
    const int64_t smax = sparse_split_max(shape, &rt_total, &tiles);
    if (smax < 2) return;
    int64_t lmax = 0;
    for (int64_t i = 0; i < shape->b; i++) {
        mla_sparse_keys keys[2];
        const int nl = mla_sparse_decode_keys(shape, args, i, 0, keys);
        int64_t n = 0;
        for (int x = 0; x < nl; x++) n += keys[x].n;
        if (n > lmax) lmax = n;
    }
    split_fill(smax, tiles, rt_total, lmax, split_chunks, workspace, workspace_bytes, split);
}
