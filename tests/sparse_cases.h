/* sparse_cases.h — test data builders shared by tests/test_sparse.c (CPU, vs an fp64 oracle)
 * and tests/test_gpu_sparse.c (GPU vs a CPU plan): paged FP8 caches with NaN in every unused
 * byte, index rows with unique valid positions mixed with invalid ones (-1 or FlashMLA's "weird"
 * set), topk lengths (incl. 0, > topk, negative), sinks (incl. +-inf). Include after common.h. */
#ifndef MLA_TESTS_SPARSE_CASES_H
#define MLA_TESTS_SPARSE_CASES_H

#include <limits.h>

#include "mla_fp8.h"

static const int32_t WEIRD[] __attribute__((unused)) = {INT_MIN, -123456, -1, 0 /* = limit, set per case */, 114514,
                                1919810, 2147480000, INT_MAX};

/* an invalid position for a cache / kv of `limit` valid positions */
TC_FN int32_t weird_invalid(tc_rng *rng, int64_t limit)
{
    for (;;) {
        const int k = (int)tc_randint(rng, 8);
        const int64_t v = k == 3 ? limit : WEIRD[k];
        if (v < 0 || v >= limit) return (int32_t)v;
    }
}

/* One paged FP8 cache with s_k used tokens, pages shuffled, unused rows / pages NaN. */
typedef struct fcache {
    uint8_t *bytes;
    int64_t pages, ps, stride;
    int32_t *tok2pos; /* logical token -> flat position */
    int64_t s_k;
} fcache;

/* values: clamp(N(0,1), -1, 1) * amp before quantisation */
TC_FN int make_fcache_amp(fcache *c, mla_fp8_format fmt, int64_t s_k, int64_t ps, double amp, tc_rng *rng)
{
    const int64_t d = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512, bpt = fmt == MLA_FP8_FORMAT_V32 ? 656 : 584;
    const int64_t used = (s_k + ps - 1) / ps;
    c->pages = used + 2;
    c->ps = ps;
    c->s_k = s_k;
    c->stride = ps * bpt + 16 * (1 + (int64_t)tc_randint(rng, 3)); /* padded pages */
    const int64_t rows = c->pages * ps;
    uint16_t *bf = malloc((size_t)(rows * d) * 2);
    int64_t *perm = malloc((size_t)c->pages * sizeof(int64_t));
    c->tok2pos = malloc((size_t)(s_k > 0 ? s_k : 1) * 4);
    c->bytes = malloc((size_t)(c->pages * c->stride));
    if (!bf || !perm || !c->tok2pos || !c->bytes) return -1;
    for (int64_t p = 0; p < c->pages; p++) perm[p] = p;
    for (int64_t p = c->pages - 1; p > 0; p--) {
        const int64_t j = tc_randint(rng, p + 1), t = perm[p];
        perm[p] = perm[j]; perm[j] = t;
    }
    const uint16_t nan = mla_float_to_bf16(NAN);
    for (int64_t x = 0; x < rows * d; x++) bf[x] = nan;
    for (int64_t t = 0; t < s_k; t++) {
        const int64_t pos = perm[t / ps] * ps + t % ps;
        c->tok2pos[t] = (int32_t)pos;
        for (int64_t x = 0; x < d; x++) {
            double v = tc_randn(rng);
            if (v > 1.0) v = 1.0;
            if (v < -1.0) v = -1.0;
            bf[pos * d + x] = mla_float_to_bf16((float)(v * amp));
        }
    }
    memset(c->bytes, 0xff, (size_t)(c->pages * c->stride));
    mla_status st = mla_fp8_quantize_cache(fmt, c->pages, ps, bf, ps * d, d, c->bytes, c->stride,
                                           MLA_DEVICE_CPU, NULL);
    free(bf);
    free(perm);
    return st == MLA_OK ? 0 : -1;
}

TC_FN int make_fcache(fcache *c, mla_fp8_format fmt, int64_t s_k, int64_t ps, tc_rng *rng)
{
    return make_fcache_amp(c, fmt, s_k, ps, 1.0, rng);
}

TC_FN void free_fcache(fcache *c) { free(c->bytes); free(c->tok2pos); }

/* indices [b, s_q, topk] (row stride topk + pad): unique valid tokens of the cache, shuffled
 * with invalid entries. Returns the buffer; *stride0 / *stride1 set. */
TC_FN int32_t *make_indices(const fcache *c, int64_t b, int64_t s_q, int64_t topk, int weird,
                             int all_invalid, tc_rng *rng, int64_t *st0, int64_t *st1)
{
    const int64_t pad = 3;
    *st1 = topk + pad;
    *st0 = s_q * *st1 + 5;
    int32_t *ind = malloc((size_t)(b * *st0) * 4);
    int32_t *tok = malloc((size_t)(c->s_k > 0 ? c->s_k : 1) * 4);
    const int64_t limit = c->pages * c->ps;
    for (int64_t x = 0; x < b * *st0; x++) ind[x] = INT_MIN; /* padding */
    for (int64_t i = 0; i < b; i++) {
        /* request i sees tokens [0, L): L random in [1, s_k] */
        const int64_t L = c->s_k > 0 ? 1 + tc_randint(rng, c->s_k) : 0;
        for (int64_t j = 0; j < s_q; j++) {
            int32_t *row = ind + i * *st0 + j * *st1;
            const int64_t nv = all_invalid ? 0 : (L < topk ? L : topk);
            for (int64_t t = 0; t < L; t++) tok[t] = (int32_t)t;
            for (int64_t k = 0; k < nv; k++) { /* partial Fisher-Yates: nv unique tokens */
                const int64_t r = k + tc_randint(rng, L - k);
                const int32_t t = tok[r]; tok[r] = tok[k]; tok[k] = t;
                row[k] = c->tok2pos[t];
            }
            for (int64_t k = nv; k < topk; k++) row[k] = weird ? weird_invalid(rng, limit) : -1;
            if (weird) /* spread the invalid entries among the valid ones */
                for (int64_t k = topk - 1; k > 0; k--) {
                    const int64_t r = tc_randint(rng, k + 1);
                    const int32_t t = row[r]; row[r] = row[k]; row[k] = t;
                }
        }
    }
    free(tok);
    return ind;
}

TC_FN int32_t *make_lengths(int64_t n, int64_t topk, tc_rng *rng)
{
    int32_t *len = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        const int k = (int)tc_randint(rng, 10);
        len[i] = k == 0 ? 0 : k == 1 ? (int32_t)topk : k == 2 ? (int32_t)(topk + 7) /* clamped */
                 : k == 3 ? -5 /* clamped to 0 */ : (int32_t)tc_randint(rng, topk + 1);
    }
    return len;
}

TC_FN float *make_sinks(int64_t h_q, tc_rng *rng)
{
    float *s = malloc((size_t)h_q * 4);
    for (int64_t h = 0; h < h_q; h++) {
        const double u = tc_uniform(rng);
        s[h] = u < 0.15 ? INFINITY : u < 0.3 ? -INFINITY : (float)tc_randn(rng);
    }
    return s;
}

#endif
