/* tests/common.h — shared test utilities of mla.c (C tests, GPU test, bench). Header-only.
 *
 *   tc_rng        deterministic RNG (splitmix64 seeding, xoshiro256**), uniform and randn
 *   tc_config     what a decode problem looks like (spec §6); tc_config_default()
 *   tc_case       a full problem on the host: q, paged cache, block table, lengths, outputs,
 *                 plus the mla_decode_shape / mla_decode_args that describe it (host pointers;
 *                 a GPU test copies the tc_*_elems spans to the device and swaps the pointers)
 *   tc_check_*    FlashMLA kernelkit's check_is_allclose: ±inf/NaN at the same places, every
 *                 element abs < tol or rel < tol (rel = abs / (|ref| + 1e-6)), and
 *                 cos_diff = 1 - 2 Σab / Σ(a² + b²) in fp64 <= tol
 *   TC_TOL_*      the tolerance table of spec §6, in one place
 *   tc_naive_decode  an independent fp64 implementation (gather, full softmax) used as oracle
 *   tc_expect / tc_summary  pass/fail counting with the "<N> passed, <M> failed" last line
 */
#ifndef MLA_TESTS_COMMON_H
#define MLA_TESTS_COMMON_H

#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#endif

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mla.h"
#include "mla_ref.h"

#if defined(__GNUC__)
#define TC_FN static __attribute__((unused))
#else
#define TC_FN static
#endif

/* ---------------------------------------------------------------------------------------- */
/* Tolerances (spec §6, FlashMLA's)                                                          */
/* ---------------------------------------------------------------------------------------- */

#define TC_TOL_OUT_ABS 8e-4
#define TC_TOL_OUT_REL (2.01 / 128)
#define TC_TOL_OUT_COS 5e-6
#define TC_TOL_LSE_ABS 1e-6
#define TC_TOL_LSE_REL (8.01 / 65536)
#define TC_TOL_LSE_COS 5e-6 /* FlashMLA checks lse with the same cos-diff bound */
#define TC_TOL_SPARSE_OUT_ABS 1e-3

#define TC_UNUSED_BLOCK 2147480000 /* unused block_table entries (spec §6) */

/* ---------------------------------------------------------------------------------------- */
/* Pass/fail bookkeeping                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int tc_passed = 0, tc_failed = 0;
static const uint16_t TC_POISON_HALF = 0x7fc1; /* a bf16 NaN (also an fp16 NaN) */

/* Records one check; prints the failure with its message. Returns cond. */
TC_FN int tc_expect(int cond, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
TC_FN int tc_expect(int cond, const char *fmt, ...)
{
    if (cond) {
        tc_passed++;
    } else {
        tc_failed++;
        va_list ap;
        va_start(ap, fmt);
        printf("  FAIL: ");
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        fflush(stdout);
    }
    return cond;
}

/* The last line of every test binary; returns the exit status. */
TC_FN int tc_summary(void)
{
    printf("%d passed, %d failed\n", tc_passed, tc_failed);
    fflush(stdout);
    return tc_failed > 0 ? 1 : 0;
}

TC_FN double tc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------- */
/* RNG                                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct tc_rng {
    uint64_t s[4];
    int have_spare;
    double spare;
} tc_rng;

TC_FN uint64_t tc_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

TC_FN void tc_rng_seed(tc_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = tc_splitmix64(&x);
    r->have_spare = 0;
    r->spare = 0.0;
}

TC_FN inline uint64_t tc_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

TC_FN uint64_t tc_next(tc_rng *r) /* xoshiro256** */
{
    uint64_t *s = r->s;
    const uint64_t res = tc_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tc_rotl(s[3], 45);
    return res;
}

/* uniform in [0, 1) with 53 bits */
TC_FN double tc_uniform(tc_rng *r) { return (double)(tc_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* uniform integer in [0, n), n >= 1 */
TC_FN int64_t tc_randint(tc_rng *r, int64_t n) { return (int64_t)(tc_uniform(r) * (double)n); }

/* standard normal (Marsaglia's polar method, both values used) */
TC_FN double tc_randn(tc_rng *r)
{
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u, v, q;
    do {
        u = 2.0 * tc_uniform(r) - 1.0;
        v = 2.0 * tc_uniform(r) - 1.0;
        q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    const double f = sqrt(-2.0 * log(q) / q);
    r->spare = v * f;
    r->have_spare = 1;
    return u * f;
}

/* randn / 10 clamped to ±1 (FlashMLA's test data) */
TC_FN float tc_randn_data(tc_rng *r)
{
    double v = tc_randn(r) * 0.1;
    if (v > 1.0) v = 1.0;
    if (v < -1.0) v = -1.0;
    return (float)v;
}

/* ---------------------------------------------------------------------------------------- */
/* Cases                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct tc_config {
    int64_t b, s_q, s_k, h_q, h_kv, d_qk, d_v, page_size;
    mla_dtype dtype;
    int causal;
    int varlen;          /* lengths ~ max(N(s_k, s_k/2), s_q) rounded; else all s_k        */
    int zero_half;       /* about half of the requests get length 0                         */
    int shuffle_pages;   /* random page order in the pool (default 1)                       */
    int strided;         /* padded q/out strides, transposed lse, padded cache heads        */
    int cu_seqlens_q;    /* per-request query lengths, random in [0, s_q], via cu_seqlens_q */
    const int32_t *kv_lens; /* optional explicit cache_seqlens [b] (overrides s_k/varlen)   */
    const int32_t *q_lens;  /* optional explicit query lengths [b] (implies cu_seqlens_q)    */
    int64_t extra_pages; /* NaN-filled pages in the pool nobody uses (default 3)             */
    int64_t extra_cols;  /* garbage block_table columns past the longest request (default 2) */
    float softmax_scale; /* 0 = library default                                            */
    int cpu_threads;     /* shape.cpu_threads                                              */
    uint64_t seed;
} tc_config;

TC_FN tc_config tc_config_default(void)
{
    tc_config c;
    memset(&c, 0, sizeof c);
    c.b = 2; c.s_q = 1; c.s_k = 140; c.h_q = 16; c.h_kv = 1; c.d_qk = 576; c.d_v = 512;
    c.page_size = 64; c.dtype = MLA_DTYPE_BF16;
    c.shuffle_pages = 1; c.extra_pages = 3; c.extra_cols = 2;
    c.seed = 1;
    return c;
}

typedef struct tc_case {
    tc_config cfg;
    mla_decode_shape shape;
    mla_decode_args args;    /* host pointers into the buffers below                         */
    uint16_t *q, *k_cache, *out;
    float *lse;
    int32_t *block_table, *seqlens, *cu_seqlens_q, *q_lens; /* q_lens: per-request rows used */
    int64_t q_elems, k_elems, out_elems, lse_elems, bt_elems; /* allocation sizes (elements) */
    int64_t num_pages, max_pages;
    int64_t total_k;         /* sum of cache_seqlens                                          */
} tc_case;

TC_FN void tc_case_free(tc_case *c)
{
    free(c->q); free(c->k_cache); free(c->out); free(c->lse);
    free(c->block_table); free(c->seqlens); free(c->cu_seqlens_q); free(c->q_lens);
    memset(c, 0, sizeof *c);
}

/* Fills out and lse with NaN poison (so unwritten rows are detectable). */
TC_FN void tc_case_poison(tc_case *c)
{
    for (int64_t x = 0; x < c->out_elems; x++) c->out[x] = TC_POISON_HALF;
    for (int64_t x = 0; x < c->lse_elems; x++) c->lse[x] = mla_bits_f32(0x7fc00123u);
}

/* Builds the whole problem; returns 0 on success (allocation failure: -1). */
TC_FN int tc_case_build(tc_case *c, const tc_config *cfg)
{
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    tc_rng rng;
    tc_rng_seed(&rng, cfg->seed * 0x9e3779b97f4a7c15ull + 12345);
    const int64_t b = cfg->b, s_q = cfg->s_q, h_q = cfg->h_q, h_kv = cfg->h_kv;
    const int64_t dqk = cfg->d_qk, dv = cfg->d_v, ps = cfg->page_size;
    const mla_dtype dt = cfg->dtype;

    c->seqlens = (int32_t *)calloc((size_t)b, 4);
    c->q_lens = (int32_t *)calloc((size_t)b, 4);
    if (!c->seqlens || !c->q_lens) return -1;
    /* query lengths */
    const int use_cu = cfg->cu_seqlens_q || cfg->q_lens;
    for (int64_t i = 0; i < b; i++) {
        if (cfg->q_lens) c->q_lens[i] = cfg->q_lens[i];
        else if (cfg->cu_seqlens_q) c->q_lens[i] = (int32_t)tc_randint(&rng, s_q + 1);
        else c->q_lens[i] = (int32_t)s_q;
    }
    if (use_cu) {
        c->cu_seqlens_q = (int32_t *)calloc((size_t)b + 1, 4);
        if (!c->cu_seqlens_q) return -1;
        for (int64_t i = 0; i < b; i++) c->cu_seqlens_q[i + 1] = c->cu_seqlens_q[i] + c->q_lens[i];
    }
    /* kv lengths */
    int64_t max_len = 0;
    for (int64_t i = 0; i < b; i++) {
        int64_t L = cfg->s_k;
        if (cfg->kv_lens) {
            L = cfg->kv_lens[i];
        } else if (cfg->varlen) {
            double v = (double)cfg->s_k + tc_randn(&rng) * (double)cfg->s_k / 2.0;
            L = (int64_t)llround(v);
            if (L < s_q) L = s_q;
        }
        c->seqlens[i] = (int32_t)L;
    }
    if (cfg->zero_half && !cfg->kv_lens)
        for (int64_t i = 0; i < b; i++)
            if (tc_uniform(&rng) < 0.5) c->seqlens[i] = 0;
    for (int64_t i = 0; i < b; i++) {
        c->total_k += c->seqlens[i];
        if (c->seqlens[i] > max_len) max_len = c->seqlens[i];
    }

    /* pages */
    int64_t used_pages = 0;
    for (int64_t i = 0; i < b; i++) used_pages += (c->seqlens[i] + ps - 1) / ps;
    c->num_pages = used_pages + cfg->extra_pages;
    if (c->num_pages < 1) c->num_pages = 1;
    c->max_pages = (max_len + ps - 1) / ps + cfg->extra_cols;
    if (c->max_pages < 1) c->max_pages = 1;
    int64_t *perm = (int64_t *)malloc((size_t)c->num_pages * sizeof(int64_t));
    if (!perm) return -1;
    for (int64_t p = 0; p < c->num_pages; p++) perm[p] = p;
    if (cfg->shuffle_pages)
        for (int64_t p = c->num_pages - 1; p > 0; p--) {
            int64_t j = tc_randint(&rng, p + 1), t = perm[p];
            perm[p] = perm[j];
            perm[j] = t;
        }
    const int64_t bts = c->max_pages;
    c->bt_elems = b * bts;
    c->block_table = (int32_t *)malloc((size_t)c->bt_elems * 4);
    if (!c->block_table) { free(perm); return -1; }
    int64_t next = 0;
    for (int64_t i = 0; i < b; i++) {
        const int64_t used = (c->seqlens[i] + ps - 1) / ps;
        for (int64_t j = 0; j < bts; j++)
            c->block_table[i * bts + j] = j < used ? (int32_t)perm[next++] : TC_UNUSED_BLOCK;
    }

    /* cache: [num_pages, ps, h_kv, d_qk] with (when strided) padded heads */
    const int64_t ks2 = cfg->strided ? dqk + 64 : dqk;
    const int64_t ks1 = h_kv * ks2, ks0 = ps * ks1;
    c->k_elems = c->num_pages * ks0;
    c->k_cache = (uint16_t *)malloc((size_t)c->k_elems * 2);
    if (!c->k_cache) { free(perm); return -1; }
    const uint16_t nan_h = mla_float_to_half(dt, NAN);
    for (int64_t x = 0; x < c->k_elems; x++) c->k_cache[x] = nan_h;
    for (int64_t i = 0; i < b; i++) {
        const int64_t L = c->seqlens[i];
        for (int64_t t = 0; t < L; t++) {
            const int64_t page = c->block_table[i * bts + t / ps];
            for (int64_t g = 0; g < h_kv; g++) {
                uint16_t *row = c->k_cache + page * ks0 + (t % ps) * ks1 + g * ks2;
                for (int64_t d = 0; d < dqk; d++) row[d] = mla_float_to_half(dt, tc_randn_data(&rng));
            }
        }
    }
    free(perm);

    /* q and out: [b, s_q, h_q, d] (padded rows and tokens when strided) */
    const int64_t qs2 = cfg->strided ? dqk + 128 : dqk;
    const int64_t qs1 = h_q * qs2 + (cfg->strided ? 8 : 0), qs0 = s_q * qs1 + (cfg->strided ? 16 : 0);
    c->q_elems = b * qs0;
    c->q = (uint16_t *)malloc((size_t)c->q_elems * 2);
    if (!c->q) return -1;
    for (int64_t x = 0; x < c->q_elems; x++) c->q[x] = nan_h; /* padding and unused rows */
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < c->q_lens[i]; j++)
            for (int64_t h = 0; h < h_q; h++) {
                uint16_t *row = c->q + i * qs0 + j * qs1 + h * qs2;
                for (int64_t d = 0; d < dqk; d++) row[d] = mla_float_to_half(dt, tc_randn_data(&rng));
            }
    const int64_t os2 = cfg->strided ? dv + 64 : dv;
    const int64_t os1 = h_q * os2 + (cfg->strided ? 8 : 0), os0 = s_q * os1;
    c->out_elems = b * os0;
    c->out = (uint16_t *)malloc((size_t)c->out_elems * 2);
    /* lse: logical [b, h_q, s_q]; strided = physically [b, s_q, h_q] plus padding */
    int64_t ls0, ls1, ls2;
    if (cfg->strided) { ls1 = 1; ls2 = h_q + 1; ls0 = s_q * ls2 + 3; }
    else { ls2 = 1; ls1 = s_q; ls0 = h_q * s_q; }
    c->lse_elems = b * ls0;
    c->lse = (float *)malloc((size_t)c->lse_elems * 4);
    if (!c->out || !c->lse) return -1;
    tc_case_poison(c);

    /* shape and args */
    mla_decode_shape *sh = &c->shape;
    *sh = mla_decode_shape_default();
    sh->b = b; sh->s_q = s_q; sh->h_q = h_q; sh->h_kv = h_kv; sh->d_qk = dqk; sh->d_v = dv;
    sh->page_size = ps; sh->dtype = dt; sh->causal = cfg->causal; sh->cpu_threads = cfg->cpu_threads;
    mla_decode_args *a = &c->args;
    *a = mla_decode_args_default();
    a->q = c->q;
    a->q_stride[0] = qs0; a->q_stride[1] = qs1; a->q_stride[2] = qs2;
    a->k_cache = c->k_cache;
    a->num_pages = c->num_pages;
    a->k_stride[0] = ks0; a->k_stride[1] = ks1; a->k_stride[2] = ks2;
    a->block_table = c->block_table;
    a->max_pages = c->max_pages;
    a->block_table_stride = bts;
    a->cache_seqlens = c->seqlens;
    a->cu_seqlens_q = c->cu_seqlens_q;
    a->out = c->out;
    a->out_stride[0] = os0; a->out_stride[1] = os1; a->out_stride[2] = os2;
    a->lse = c->lse;
    a->lse_stride[0] = ls0; a->lse_stride[1] = ls1; a->lse_stride[2] = ls2;
    a->softmax_scale = cfg->softmax_scale;
    return 0;
}

/* Creates a CPU plan for the case and runs mla_decode with the workspace the plan reports (the
 * CPU path's key splits; internal.h mla_cpu_split), as a caller following the API does; with
 * no_ws, without one (the call runs unsplit). Returns the status. */
TC_FN mla_status tc_case_run_cpu_ws(tc_case *c, int no_ws)
{
    mla_decode_plan_t plan = NULL;
    mla_status st = mla_decode_plan_create(&plan, &c->shape, MLA_DEVICE_CPU);
    if (st != MLA_OK) return st;
    size_t wsb = 0;
    void *ws = NULL;
    if (!no_ws && (st = mla_decode_workspace_size(plan, &wsb)) == MLA_OK && wsb > 0) {
        ws = malloc(wsb);
        if (!ws) wsb = 0;
        else memset(ws, 0xff, wsb); /* NaN: the path must write what it reads */
    }
    if (st == MLA_OK) st = mla_decode(plan, &c->args, ws, wsb, NULL);
    free(ws);
    mla_decode_plan_destroy(plan);
    return st;
}

TC_FN mla_status tc_case_run_cpu(tc_case *c) { return tc_case_run_cpu_ws(c, 0); }

/* ---------------------------------------------------------------------------------------- */
/* Independent fp64 oracle                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Naive decode in fp64: for every existing query row, gather its visible keys through the
 * block table, full softmax (max-subtracted), P @ V. Writes ref_out [b, s_q, h_q, d_v] and
 * ref_lse [b, h_q, s_q] densely; rows it does not compute (rows that do not exist, and with
 * row_step > 1 all rows but about one in row_step, picked by a hash of the row) get lse NaN,
 * which tc_compare_case reads as "not computed" and skips. Empty rows: out 0, lse +inf. */
TC_FN int tc_naive_decode_rows(const tc_case *c, double *ref_out, double *ref_lse, int64_t row_step)
{
    const tc_config *cfg = &c->cfg;
    const mla_decode_args *a = &c->args;
    const int64_t b = cfg->b, s_q = cfg->s_q, h_q = cfg->h_q, h_kv = cfg->h_kv;
    const int64_t dqk = cfg->d_qk, dv = cfg->d_v, ps = cfg->page_size, hpk = h_q / h_kv;
    const mla_dtype dt = cfg->dtype;
    const double scale = (cfg->softmax_scale > 0.0f && isfinite(cfg->softmax_scale))
                             ? (double)cfg->softmax_scale
                             : 1.0 / sqrt((double)dqk);
    int64_t max_len = 0;
    for (int64_t i = 0; i < b; i++) if (c->seqlens[i] > max_len) max_len = c->seqlens[i];
    double *sc = (double *)malloc((size_t)(max_len + 1) * sizeof(double));
    double *qd = (double *)malloc((size_t)dqk * sizeof(double));
    if (!sc || !qd) { free(sc); free(qd); return -1; }
    for (int64_t x = 0; x < b * s_q * h_q * dv; x++) ref_out[x] = NAN;
    for (int64_t x = 0; x < b * h_q * s_q; x++) ref_lse[x] = NAN;
    for (int64_t i = 0; i < b; i++) {
        const int64_t L = c->seqlens[i], n = c->q_lens[i];
        for (int64_t j = 0; j < n; j++) {
            int64_t vis = L;
            if (cfg->causal) vis = L - n + j + 1;
            if (vis < 0) vis = 0;
            if (vis > L) vis = L;
            for (int64_t h = 0; h < h_q; h++) {
                if (row_step > 1) { /* a hash of the row index spreads the sample over heads */
                    uint64_t hx = (uint64_t)((i * s_q + j) * h_q + h);
                    if (tc_splitmix64(&hx) % (uint64_t)row_step != 0) continue;
                }
                const int64_t g = h / hpk;
                const uint16_t *qr = c->q + i * a->q_stride[0] + j * a->q_stride[1] + h * a->q_stride[2];
                for (int64_t d = 0; d < dqk; d++) qd[d] = mla_half_to_float(dt, qr[d]);
                double *o = ref_out + ((i * s_q + j) * h_q + h) * dv;
                double *lse = ref_lse + (i * h_q + h) * s_q + j;
                if (vis == 0) {
                    for (int64_t d = 0; d < dv; d++) o[d] = 0.0;
                    *lse = INFINITY;
                    continue;
                }
                double mx = -INFINITY;
                for (int64_t t = 0; t < vis; t++) {
                    const int64_t page = c->block_table[i * a->block_table_stride + t / ps];
                    const uint16_t *kr = c->k_cache + page * a->k_stride[0] + (t % ps) * a->k_stride[1] + g * a->k_stride[2];
                    double s4[4] = {0.0, 0.0, 0.0, 0.0}; /* 4 partial sums: d_qk % 4 == 0 */
                    for (int64_t d = 0; d < dqk; d += 4)
                        for (int u = 0; u < 4; u++) s4[u] += qd[d + u] * mla_half_to_float(dt, kr[d + u]);
                    sc[t] = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * scale;
                    if (sc[t] > mx) mx = sc[t];
                }
                double sum = 0.0;
                for (int64_t t = 0; t < vis; t++) { sc[t] = exp(sc[t] - mx); sum += sc[t]; }
                for (int64_t d = 0; d < dv; d++) o[d] = 0.0;
                for (int64_t t = 0; t < vis; t++) {
                    const int64_t page = c->block_table[i * a->block_table_stride + t / ps];
                    const uint16_t *kr = c->k_cache + page * a->k_stride[0] + (t % ps) * a->k_stride[1] + g * a->k_stride[2];
                    const double p = sc[t] / sum;
                    for (int64_t d = 0; d < dv; d++) o[d] += p * mla_half_to_float(dt, kr[d]);
                }
                *lse = mx + log(sum);
            }
        }
    }
    free(sc);
    free(qd);
    return 0;
}

TC_FN int tc_naive_decode(const tc_case *c, double *ref_out, double *ref_lse)
{
    return tc_naive_decode_rows(c, ref_out, ref_lse, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* check_is_allclose                                                                         */
/* ---------------------------------------------------------------------------------------- */

typedef struct tc_report {
    int ok;
    int64_t n;               /* elements compared                                       */
    int64_t n_bad;           /* elements failing both abs and rel                        */
    int64_t n_anomaly;       /* positions where ±inf/NaN differ                          */
    double max_abs, max_rel; /* over finite pairs                                        */
    double cos_diff;
    int64_t worst;           /* flat index of the worst element (largest abs/tol excess) */
    double worst_ref, worst_got;
    int64_t first_anomaly;
} tc_report;

typedef struct tc_allclose {
    tc_report r;
    double sab, saa, sbb;
    double abs_tol, rel_tol, cos_tol;
    double worst_score;
} tc_allclose;

TC_FN void tc_allclose_begin(tc_allclose *s, double abs_tol, double rel_tol, double cos_tol)
{
    memset(s, 0, sizeof *s);
    s->abs_tol = abs_tol; s->rel_tol = rel_tol; s->cos_tol = cos_tol;
    s->r.worst = -1; s->r.first_anomaly = -1; s->worst_score = -1.0;
}

TC_FN int tc_cls(double v) { return isnan(v) ? 1 : (isinf(v) ? (v > 0 ? 2 : 3) : 0); }

/* Adds one (got, ref) pair with flat index idx. */
TC_FN void tc_allclose_add(tc_allclose *s, int64_t idx, double got, double ref)
{
    s->r.n++;
    const int cg = tc_cls(got), cr = tc_cls(ref);
    if (cg != cr) {
        if (s->r.n_anomaly++ == 0) s->r.first_anomaly = idx;
        if (s->r.worst < 0 || s->worst_score < INFINITY) {
            s->worst_score = INFINITY; s->r.worst = idx; s->r.worst_ref = ref; s->r.worst_got = got;
        }
        return;
    }
    if (cg != 0) return; /* same anomaly: zeroed, contributes nothing */
    const double ae = fabs(got - ref), re = ae / (fabs(ref) + 1e-6);
    if (ae > s->r.max_abs) s->r.max_abs = ae;
    if (re > s->r.max_rel) s->r.max_rel = re;
    if (!(ae < s->abs_tol || re < s->rel_tol)) s->r.n_bad++;
    const double score = fmin(ae / s->abs_tol, re / s->rel_tol);
    if (score > s->worst_score) {
        s->worst_score = score; s->r.worst = idx; s->r.worst_ref = ref; s->r.worst_got = got;
    }
    s->sab += got * ref; s->saa += got * got; s->sbb += ref * ref;
}

TC_FN tc_report tc_allclose_end(tc_allclose *s)
{
    if (s->sbb < 1e-12) s->r.cos_diff = 0.0; /* kernelkit: an all-zero reference */
    else s->r.cos_diff = 1.0 - 2.0 * s->sab / (s->saa + s->sbb);
    s->r.ok = s->r.n_anomaly == 0 && s->r.n_bad == 0 && s->r.cos_diff <= s->cos_tol;
    return s->r;
}

/* check_is_allclose over two flat arrays. */
TC_FN tc_report tc_check_allclose(const double *got, const double *ref, int64_t n, double abs_tol,
                                   double rel_tol, double cos_tol)
{
    tc_allclose s;
    tc_allclose_begin(&s, abs_tol, rel_tol, cos_tol);
    for (int64_t x = 0; x < n; x++) tc_allclose_add(&s, x, got[x], ref[x]);
    return tc_allclose_end(&s);
}

TC_FN void tc_print_report(const char *what, const tc_report *r)
{
    printf("    %s: %s n=%lld bad=%lld anomalies=%lld max_abs=%.3g max_rel=%.3g cos_diff=%.3g",
           what, r->ok ? "ok" : "MISMATCH", (long long)r->n, (long long)r->n_bad,
           (long long)r->n_anomaly, r->max_abs, r->max_rel, r->cos_diff);
    if (!r->ok && r->worst >= 0)
        printf(" worst[%lld]: got %.9g ref %.9g", (long long)r->worst, r->worst_got, r->worst_ref);
    printf("\n");
}

/* Compares the case's out/lse (as computed by the library, in c->out / c->lse with the case's
 * strides) against dense fp64 ref_out / ref_lse over the rows that exist and that the oracle
 * computed (ref lse not NaN). Fills out_r, lse_r; returns 1 if both pass. */
TC_FN int tc_compare_case(const tc_case *c, const double *ref_out, const double *ref_lse,
                           tc_report *out_r, tc_report *lse_r)
{
    const tc_config *cfg = &c->cfg;
    const mla_decode_args *a = &c->args;
    const int64_t s_q = cfg->s_q, h_q = cfg->h_q, dv = cfg->d_v;
    tc_allclose so, sl;
    tc_allclose_begin(&so, TC_TOL_OUT_ABS, TC_TOL_OUT_REL, TC_TOL_OUT_COS);
    tc_allclose_begin(&sl, TC_TOL_LSE_ABS, TC_TOL_LSE_REL, TC_TOL_LSE_COS);
    for (int64_t i = 0; i < cfg->b; i++)
        for (int64_t j = 0; j < c->q_lens[i]; j++)
            for (int64_t h = 0; h < h_q; h++) {
                if (isnan(ref_lse[(i * h_q + h) * s_q + j])) continue; /* not computed */
                const uint16_t *orow = c->out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                const int64_t base = ((i * s_q + j) * h_q + h) * dv;
                for (int64_t d = 0; d < dv; d++)
                    tc_allclose_add(&so, base + d, mla_half_to_float(cfg->dtype, orow[d]), ref_out[base + d]);
                const float l = c->lse[i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2]];
                const int64_t li = (i * h_q + h) * s_q + j;
                tc_allclose_add(&sl, li, l, ref_lse[li]);
            }
    *out_r = tc_allclose_end(&so);
    *lse_r = tc_allclose_end(&sl);
    return out_r->ok && lse_r->ok;
}

/* Counts elements of existing out/lse rows that still hold the poison (never written). */
TC_FN int64_t tc_count_unwritten(const tc_case *c)
{
    const tc_config *cfg = &c->cfg;
    const mla_decode_args *a = &c->args;
    int64_t n = 0;
    for (int64_t i = 0; i < cfg->b; i++)
        for (int64_t j = 0; j < c->q_lens[i]; j++)
            for (int64_t h = 0; h < cfg->h_q; h++) {
                const uint16_t *o = c->out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                for (int64_t d = 0; d < cfg->d_v; d++) n += o[d] == TC_POISON_HALF;
                n += mla_f32_bits(c->lse[i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2]]) == 0x7fc00123u;
            }
    return n;
}

/* Counts elements of out/lse rows that do NOT exist (past cu_seqlens_q lengths) and also
 * padding between rows (strided layouts) whose poison was overwritten. */
TC_FN int64_t tc_count_clobbered(const tc_case *c)
{
    const tc_config *cfg = &c->cfg;
    const mla_decode_args *a = &c->args;
    /* mark the elements the library may write, then check every other element */
    unsigned char *mo = (unsigned char *)calloc((size_t)c->out_elems, 1);
    unsigned char *ml = (unsigned char *)calloc((size_t)c->lse_elems, 1);
    if (!mo || !ml) { free(mo); free(ml); return -1; }
    for (int64_t i = 0; i < cfg->b; i++)
        for (int64_t j = 0; j < c->q_lens[i]; j++)
            for (int64_t h = 0; h < cfg->h_q; h++) {
                const int64_t o = i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                memset(mo + o, 1, (size_t)cfg->d_v);
                ml[i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2]] = 1;
            }
    int64_t bad = 0;
    for (int64_t x = 0; x < c->out_elems; x++) if (!mo[x] && c->out[x] != TC_POISON_HALF) bad++;
    for (int64_t x = 0; x < c->lse_elems; x++)
        if (!ml[x] && mla_f32_bits(c->lse[x]) != 0x7fc00123u) bad++;
    free(mo);
    free(ml);
    return bad;
}

#endif
