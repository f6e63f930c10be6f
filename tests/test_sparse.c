/* test_sparse.c — sparse decode (FP8 cache) and sparse prefill through the public API, against
 * an independent fp64 implementation written here (its own byte-level FP8 reader, full
 * softmax per row), on FlashMLA's grids (dossier §5.3-5.4) scaled for a CPU; plus invalid
 * indices of every kind, topk_length (clamped), sinks of ±inf, the extra cache, both formats,
 * padded strides (nothing outside the outputs written), determinism across thread counts,
 * exact FP8 dequantisation for odd scales, and the validation of every argument. The CPU calls
 * run the kernel MLA_CPU_KERNEL picks (default: the first of AMX, src/cpu_amx.c, AVX512-BF16,
 * src/cpu_avx512bf16.c, AVX-512 FMA, src/cpu_avx512.c, and AVX2 FMA, src/cpu_avx2.c, that runs
 * here, else the C reference);
 * the first line says which. With MLA_CPU_KERNEL unset, the feature cases then run again on every
 * other kernel that runs here; with it set, only the kernel it names runs. */
#include <limits.h>

#include "common.h"
#include "internal.h" /* mla_cpu_sparse_kernel: which CPU kernel runs */
#include "sparse_cases.h"
#include "cpu_kernels.h"

static double ind_e4m3(int code)
{
    const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
    if (e == 15 && m == 7) return NAN;
    const double v = e == 0 ? ldexp((double)m, -9) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

/* One token of an FP8 cache as doubles (scales are powers of two: exact). */
static void ind_token(mla_fp8_format fmt, const uint8_t *cache, int64_t stride, int64_t ps,
                      int64_t pos, double *dst)
{
    const uint8_t *page = cache + (pos / ps) * stride;
    const int64_t r = pos % ps;
    if (fmt == MLA_FP8_FORMAT_V32) {
        const uint8_t *t = page + r * 656;
        for (int x = 0; x < 512; x++) {
            float s;
            memcpy(&s, t + 512 + 4 * (x / 128), 4);
            dst[x] = ind_e4m3(t[x]) * (double)s;
        }
        for (int x = 0; x < 64; x++) {
            uint16_t h;
            memcpy(&h, t + 528 + 2 * x, 2);
            dst[512 + x] = mla_bf16_to_float(h);
        }
    } else {
        const uint8_t *t = page + r * 576, *sc = page + ps * 576 + r * 8;
        for (int x = 0; x < 448; x++) dst[x] = ind_e4m3(t[x]) * ldexp(1.0, sc[x / 64] - 127);
        for (int x = 0; x < 64; x++) {
            uint16_t h;
            memcpy(&h, t + 448 + 2 * x, 2);
            dst[448 + x] = mla_bf16_to_float(h);
        }
    }
}

/* Softmax of one query row over nk keys (rows of kd, d_qk wide) in fp64: writes out[512],
 * *lse, *mx; empty: 0 / +inf / -inf. sink: NULL or the sink value. */
static void ind_attend(const double *q, const double *kd, int64_t nk, int64_t dqk, double scale,
                       const float *sink, double *sc, double *out, double *lse, double *mx)
{
    for (int d = 0; d < 512; d++) out[d] = 0.0;
    if (nk == 0) { *lse = INFINITY; *mx = -INFINITY; return; }
    double m = -INFINITY;
    for (int64_t k = 0; k < nk; k++) {
        double s = 0.0;
        for (int64_t d = 0; d < dqk; d++) s += q[d] * kd[k * dqk + d];
        sc[k] = s * scale;
        if (sc[k] > m) m = sc[k];
    }
    double sum = 0.0;
    for (int64_t k = 0; k < nk; k++) { sc[k] = exp(sc[k] - m); sum += sc[k]; }
    for (int64_t k = 0; k < nk; k++) {
        const double p = sc[k] / sum;
        for (int d = 0; d < 512; d++) out[d] += p * kd[k * dqk + d];
    }
    *lse = m + log(sum);
    *mx = m;
    if (sink) {
        const double f = 1.0 / (1.0 + exp((double)*sink - *lse));
        for (int d = 0; d < 512; d++) out[d] *= f;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Sparse decode                                                                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct dcfg {
    int64_t b, s_q, h_q, topk, ps, s_k;   /* s_k: used tokens of the cache               */
    mla_fp8_format fmt;
    int64_t extra_topk, extra_ps, extra_s_k;
    int topk_len, extra_topk_len, sink; /* features                                     */
    int weird;       /* invalid entries from the weird set (else -1)                     */
    int all_invalid; /* every index invalid                                              */
    int split_chunks; /* > 0: plans made with MLA_CPU_SPLIT_CHUNKS=split_chunks, and the call
                         must split (its workspace written)                              */
    uint64_t seed;
} dcfg;

/* The CPU sparse decode workspace rule (src/cpu_split.c, restated): calls of fewer than 16 row
 * tiles (b x s_q x ceil(h_q / 16)) with a fast kernel keep ceil(16 / tiles) ranges of partial
 * rows (514 floats per row), plus 64 bytes of alignment; all others 0. */
static size_t expected_ws(int64_t b, int64_t s_q, int64_t h_q, int ref_kernel)
{
    const int64_t tiles = b * s_q * ((h_q + 15) / 16);
    if (ref_kernel || tiles >= 16) return 0;
    const int64_t m = (16 + tiles - 1) / tiles;
    return (size_t)(tiles * m * 16) * 514 * 4 + 64;
}

/* Plan of sh on the CPU (hook MLA_CPU_SPLIT_CHUNKS = chunks when > 0) and one call with a
 * workspace of ws_bytes bytes at ws (NULL / 0: none). */
static mla_status decode_call(mla_sparse_decode_shape *sh, const mla_sparse_decode_args *a, int chunks,
                              void *ws, size_t ws_bytes, size_t *plan_ws)
{
    char v[16];
    if (chunks > 0) {
        snprintf(v, sizeof v, "%d", chunks);
        setenv("MLA_CPU_SPLIT_CHUNKS", v, 1);
    }
    mla_sparse_decode_plan_t plan = NULL;
    mla_status st = mla_sparse_decode_plan_create(&plan, sh, MLA_DEVICE_CPU);
    if (chunks > 0) unsetenv("MLA_CPU_SPLIT_CHUNKS");
    if (st == MLA_OK && plan_ws) st = mla_sparse_decode_workspace_size(plan, plan_ws);
    if (st == MLA_OK) st = mla_sparse_decode(plan, a, ws, ws_bytes, NULL);
    mla_sparse_decode_plan_destroy(plan);
    return st;
}

/* A workspace of n bytes (at least 1) filled with a NaN pattern; untouched(): still so. */
static uint32_t *nan_ws(size_t n)
{
    uint32_t *w = malloc(n / 4 * 4 + 4);
    for (size_t x = 0; x < n / 4 + 1; x++) w[x] = 0x7fc0beefu;
    return w;
}
static int ws_untouched(const uint32_t *w, size_t n)
{
    for (size_t x = 0; x < n / 4; x++)
        if (w[x] != 0x7fc0beefu) return 0;
    return 1;
}

static int64_t clampn(const int32_t *len, int64_t i, int64_t topk)
{
    if (!len) return topk;
    return len[i] < 0 ? 0 : (len[i] > topk ? topk : len[i]);
}

static void run_decode(const char *label, const dcfg *cfg)
{
    tc_rng rng;
    tc_rng_seed(&rng, cfg->seed * 7919 + 17);
    const mla_fp8_format fmt = cfg->fmt;
    const int64_t b = cfg->b, s_q = cfg->s_q, h_q = cfg->h_q, topk = cfg->topk;
    const int64_t dqk = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512;
    const int has_extra = cfg->extra_topk > 0;
    fcache kc, ec;
    memset(&ec, 0, sizeof ec);
    if (make_fcache(&kc, fmt, cfg->s_k, cfg->ps, &rng) ||
        (has_extra && make_fcache(&ec, fmt, cfg->extra_s_k, cfg->extra_ps, &rng))) {
        tc_expect(0, "%s: setup failed", label);
        return;
    }
    int64_t is0, is1, es0 = 0, es1 = 0;
    int32_t *ind = make_indices(&kc, b, s_q, topk, cfg->weird, cfg->all_invalid, &rng, &is0, &is1);
    int32_t *eind = has_extra ? make_indices(&ec, b, s_q, cfg->extra_topk, cfg->weird, cfg->all_invalid, &rng, &es0, &es1) : NULL;
    int32_t *tl = cfg->topk_len ? make_lengths(b, topk, &rng) : NULL;
    int32_t *etl = has_extra && cfg->extra_topk_len ? make_lengths(b, cfg->extra_topk, &rng) : NULL;
    float *sink = cfg->sink ? make_sinks(h_q, &rng) : NULL;

    /* q [b, s_q, h_q, dqk] padded; out padded; lse as a transposed [b, s_q, h_q] buffer */
    const int64_t qs2 = dqk + 64, qs1 = h_q * qs2 + 8, qs0 = s_q * qs1;
    uint16_t *q = malloc((size_t)(b * qs0) * 2);
    for (int64_t x = 0; x < b * qs0; x++) {
        double v = tc_randn(&rng);
        q[x] = mla_float_to_bf16((float)(v > 1 ? 1 : v < -1 ? -1 : v));
    }
    const int64_t os2 = 512 + 32, os1 = h_q * os2, os0 = s_q * os1 + 16;
    uint16_t *out = malloc((size_t)(b * os0) * 2), *out2 = malloc((size_t)(b * os0) * 2);
    const int64_t ls1 = 1, ls2 = h_q, ls0 = s_q * h_q + 1; /* lse [b, h_q, s_q] */
    float *lse = malloc((size_t)(b * ls0) * 4), *lse2 = malloc((size_t)(b * ls0) * 4);
    for (int64_t x = 0; x < b * os0; x++) out[x] = out2[x] = TC_POISON_HALF;
    for (int64_t x = 0; x < b * ls0; x++) lse[x] = lse2[x] = mla_bits_f32(0x7fc00123u);

    const double scale = pow((double)dqk, -0.55); /* FlashMLA's sparse test scale */
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = b; sh.s_q = s_q; sh.h_q = h_q; sh.h_kv = 1; sh.d_qk = dqk; sh.d_v = 512;
    sh.topk = topk; sh.page_size = cfg->ps; sh.format = fmt;
    sh.extra_topk = cfg->extra_topk; sh.extra_page_size = cfg->extra_ps;
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    a.q = q; a.q_stride[0] = qs0; a.q_stride[1] = qs1; a.q_stride[2] = qs2;
    a.k_cache = kc.bytes; a.num_pages = kc.pages; a.k_page_stride_bytes = kc.stride;
    a.indices = ind; a.indices_stride[0] = is0; a.indices_stride[1] = is1;
    a.topk_length = tl; a.attn_sink = sink;
    if (has_extra) {
        a.extra_k_cache = ec.bytes; a.extra_num_pages = ec.pages; a.extra_k_page_stride_bytes = ec.stride;
        a.extra_indices = eind; a.extra_indices_stride[0] = es0; a.extra_indices_stride[1] = es1;
        a.extra_topk_length = etl;
    }
    a.out = out; a.out_stride[0] = os0; a.out_stride[1] = os1; a.out_stride[2] = os2;
    a.lse = lse; a.lse_stride[0] = ls0; a.lse_stride[1] = ls1; a.lse_stride[2] = ls2;
    a.softmax_scale = (float)scale;

    /* the call gets a NaN-filled workspace of the plan's size (the key splits' partial rows) */
    const int refk = tck_sparse_kernel() == MLA_CPU_KERNEL_REF;
    const size_t wsb = expected_ws(b, s_q, h_q, refk);
    uint32_t *ws = nan_ws(wsb);
    size_t plan_ws = 7;
    const double t0 = tc_now();
    mla_status st = decode_call(&sh, &a, cfg->split_chunks, wsb ? ws : NULL, wsb, &plan_ws);
    const double t_lib = tc_now() - t0;
    int ok = tc_expect(st == MLA_OK, "%s: %s: %s", label, mla_status_string(st), mla_last_error());
    ok = ok && tc_expect(plan_ws == wsb, "%s: workspace size %zu (expected %zu)", label, plan_ws, wsb);
    if (ok && cfg->split_chunks > 0 && !refk) /* (the reference never splits) */
        tc_expect(wsb > 0 && !ws_untouched(ws, wsb), "%s: the call split (its workspace was written)", label);
    if (ok) { /* determinism: one thread gives the same bytes */
        sh.cpu_threads = 1;
        a.out = out2; a.lse = lse2;
        st = decode_call(&sh, &a, cfg->split_chunks, wsb ? ws : NULL, wsb, NULL);
        sh.cpu_threads = 0;
        ok = tc_expect(st == MLA_OK && !memcmp(out, out2, (size_t)(b * os0) * 2) &&
                           !memcmp(lse, lse2, (size_t)(b * ls0) * 4),
                       "%s: 1 thread and all threads give identical bytes", label);
    }
    if (ok && wsb > 0) { /* a workspace one byte short is never touched: the same bytes as none */
        uint32_t *w2 = nan_ws(wsb);
        uint16_t *out3 = malloc((size_t)(b * os0) * 2);
        float *lse3 = malloc((size_t)(b * ls0) * 4);
        for (int64_t x = 0; x < b * os0; x++) out3[x] = TC_POISON_HALF;
        for (int64_t x = 0; x < b * ls0; x++) lse3[x] = mla_bits_f32(0x7fc00123u);
        a.out = out3; a.lse = lse3;
        st = decode_call(&sh, &a, cfg->split_chunks, w2, wsb - 1, NULL);
        mla_status st2 = st;
        if (st == MLA_OK) {
            a.out = out2; a.lse = lse2;
            st2 = decode_call(&sh, &a, cfg->split_chunks, NULL, 0, NULL);
        }
        tc_expect(st == MLA_OK && st2 == MLA_OK && ws_untouched(w2, wsb) &&
                      !memcmp(out3, out2, (size_t)(b * os0) * 2) && !memcmp(lse3, lse2, (size_t)(b * ls0) * 4),
                  "%s: a workspace 1 byte short is untouched and the call equals one without", label);
        free(w2); free(out3); free(lse3);
    }
    free(ws);
    a.out = out; a.lse = lse;

    /* the fp64 oracle */
    const double t1 = tc_now();
    double *kd = malloc((size_t)((topk + cfg->extra_topk) * dqk) * sizeof(double));
    double *sc = malloc((size_t)(topk + cfg->extra_topk) * sizeof(double));
    double qd[576], od[512], rl, rm;
    tc_allclose so, sl;
    tc_allclose_begin(&so, TC_TOL_SPARSE_OUT_ABS, TC_TOL_OUT_REL, TC_TOL_OUT_COS);
    tc_allclose_begin(&sl, TC_TOL_LSE_ABS, TC_TOL_LSE_REL, TC_TOL_LSE_COS);
    int64_t empty_rows = 0, rows = 0;
    for (int64_t i = 0; i < b && ok; i++)
        for (int64_t j = 0; j < s_q; j++) {
            int64_t nk = 0;
            for (int src = 0; src < 1 + has_extra; src++) {
                const fcache *c = src ? &ec : &kc;
                const int32_t *row = src ? eind + i * es0 + j * es1 : ind + i * is0 + j * is1;
                const int64_t n = src ? clampn(etl, i, cfg->extra_topk) : clampn(tl, i, topk);
                for (int64_t k = 0; k < n; k++) {
                    const int64_t pos = row[k];
                    if (pos < 0 || pos >= c->pages * c->ps) continue;
                    ind_token(fmt, c->bytes, c->stride, c->ps, pos, kd + nk * dqk);
                    nk++;
                }
            }
            for (int64_t h = 0; h < h_q; h++) {
                const uint16_t *qr = q + i * qs0 + j * qs1 + h * qs2;
                for (int64_t d = 0; d < dqk; d++) qd[d] = mla_bf16_to_float(qr[d]);
                ind_attend(qd, kd, nk, dqk, (double)(float)scale, sink ? sink + h : NULL, sc, od, &rl, &rm);
                const uint16_t *orow = out + i * os0 + j * os1 + h * os2;
                const int64_t base = ((i * s_q + j) * h_q + h) * 512;
                for (int d = 0; d < 512; d++) tc_allclose_add(&so, base + d, mla_bf16_to_float(orow[d]), od[d]);
                tc_allclose_add(&sl, (i * h_q + h) * s_q + j, lse[i * ls0 + h * ls1 + j * ls2], rl);
                rows++;
                empty_rows += nk == 0;
            }
        }
    if (ok) {
        tc_report ro = tc_allclose_end(&so), rlr = tc_allclose_end(&sl);
        const int good = ro.ok && rlr.ok;
        tc_expect(good, "%s: out / lse match the fp64 oracle", label);
        if (!good) { tc_print_report("out", &ro); tc_print_report("lse", &rlr); }
        /* nothing written outside the outputs' rows */
        int64_t clob = 0;
        for (int64_t x = 0; x < b * os0; x++) {
            const int64_t i = x / os0, r = x % os0, j = r / os1, h = (r % os1) / os2, d = (r % os1) % os2;
            if ((j >= s_q || h >= h_q || d >= 512) && out[x] != TC_POISON_HALF) clob++;
            (void)i;
        }
        for (int64_t x = 0; x < b * ls0; x++)
            if (x % ls0 == ls0 - 1 && mla_f32_bits(lse[x]) != 0x7fc00123u) clob++;
        tc_expect(clob == 0, "%s: %lld elements written outside out / lse", label, (long long)clob);
        if (cfg->all_invalid)
            tc_expect(empty_rows == rows, "%s: all rows are empty (%lld of %lld)", label,
                      (long long)empty_rows, (long long)rows);
    }
    printf("  %-64s lib %6.2f s, oracle %6.2f s\n", label, t_lib, tc_now() - t1);
    fflush(stdout);
    free(kd); free(sc); free(q); free(out); free(out2); free(lse); free(lse2);
    free(ind); free(eind); free(tl); free(etl); free(sink);
    free_fcache(&kc);
    if (has_extra) free_fcache(&ec);
}

/* ---------------------------------------------------------------------------------------- */
/* Sparse prefill                                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct pcfg {
    int64_t s_q, s_kv, h_q, h_kv, dqk, topk;
    int topk_len, sink, all_invalid;
    uint64_t seed;
} pcfg;

static void run_prefill(const char *label, const pcfg *cfg)
{
    tc_rng rng;
    tc_rng_seed(&rng, cfg->seed * 104729 + 3);
    const int64_t s_q = cfg->s_q, s_kv = cfg->s_kv, h_q = cfg->h_q, h_kv = cfg->h_kv, dqk = cfg->dqk, topk = cfg->topk;
    const int64_t hpk = h_q / h_kv;
    /* q / kv ~ N(0,1)/10 plus a per-tensor random offset (FlashMLA's prefill data) */
    const double qoff = tc_randn(&rng) / 10.0, koff = tc_randn(&rng) / 10.0;
    const int64_t qs1 = dqk + 16, qs0 = h_q * qs1 + 8;
    const int64_t ks1 = dqk + 8, ks0 = h_kv * ks1;
    uint16_t *q = malloc((size_t)(s_q * qs0) * 2), *kv = malloc((size_t)(s_kv * ks0) * 2);
    for (int64_t x = 0; x < s_q * qs0; x++) q[x] = mla_float_to_bf16((float)(tc_randn(&rng) / 10.0 + qoff));
    for (int64_t x = 0; x < s_kv * ks0; x++) kv[x] = mla_float_to_bf16((float)(tc_randn(&rng) / 10.0 + koff));
    const int64_t is1 = topk + 1, is0 = h_kv * is1;
    int32_t *ind = malloc((size_t)(s_q * is0) * 4);
    int32_t *tok = malloc((size_t)s_kv * 4);
    for (int64_t s = 0; s < s_q; s++)
        for (int64_t g = 0; g < h_kv; g++) {
            int32_t *row = ind + s * is0 + g * is1;
            row[topk] = 0; /* padding: a valid-looking index that must not be used */
            const int64_t nv = cfg->all_invalid ? 0 : (s_kv < topk ? s_kv : topk) * (3 + (int64_t)tc_randint(&rng, 2)) / 4;
            for (int64_t t = 0; t < s_kv; t++) tok[t] = (int32_t)t;
            for (int64_t k = 0; k < nv; k++) {
                const int64_t r = k + tc_randint(&rng, s_kv - k);
                const int32_t t = tok[r]; tok[r] = tok[k]; tok[k] = t;
                row[k] = t;
            }
            for (int64_t k = nv; k < topk; k++) row[k] = weird_invalid(&rng, s_kv);
            for (int64_t k = topk - 1; k > 0; k--) {
                const int64_t r = tc_randint(&rng, k + 1);
                const int32_t t = row[r]; row[r] = row[k]; row[k] = t;
            }
        }
    free(tok);
    int32_t *tl = cfg->topk_len ? make_lengths(s_q, topk, &rng) : NULL;
    float *sink = cfg->sink ? make_sinks(h_q, &rng) : NULL;
    const int64_t os1 = 512 + 16, os0 = h_q * os1;
    uint16_t *out = malloc((size_t)(s_q * os0) * 2);
    float *ml = malloc((size_t)(s_q * h_q) * 4), *lse = malloc((size_t)(s_q * (h_q + 1)) * 4);
    for (int64_t x = 0; x < s_q * os0; x++) out[x] = TC_POISON_HALF;
    for (int64_t x = 0; x < s_q * (h_q + 1); x++) lse[x] = mla_bits_f32(0x7fc00123u);

    mla_sparse_prefill_args a = mla_sparse_prefill_args_default();
    a.s_q = s_q; a.s_kv = s_kv; a.h_q = h_q; a.h_kv = h_kv; a.d_qk = dqk; a.d_v = 512; a.topk = topk;
    a.q = q; a.q_stride[0] = qs0; a.q_stride[1] = qs1;
    a.kv = kv; a.kv_stride[0] = ks0; a.kv_stride[1] = ks1;
    a.indices = ind; a.indices_stride[0] = is0; a.indices_stride[1] = is1;
    a.topk_length = tl; a.attn_sink = sink;
    a.out = out; a.out_stride[0] = os0; a.out_stride[1] = os1;
    a.max_logits = ml; a.max_logits_stride[0] = 1; a.max_logits_stride[1] = s_q; /* transposed */
    a.lse = lse; a.lse_stride[0] = h_q + 1; a.lse_stride[1] = 1;
    a.softmax_scale = 0.5f;
    const double t0 = tc_now();
    mla_status st = mla_sparse_prefill(&a, MLA_DEVICE_CPU, NULL, 0, NULL);
    const double t_lib = tc_now() - t0;
    int ok = tc_expect(st == MLA_OK, "%s: %s: %s", label, mla_status_string(st), mla_last_error());
    if (ok && s_q * h_q <= 100000) { /* determinism: one thread gives the same bytes */
        uint16_t *out2 = malloc((size_t)(s_q * os0) * 2);
        float *ml2 = malloc((size_t)(s_q * h_q) * 4), *lse2 = malloc((size_t)(s_q * (h_q + 1)) * 4);
        memcpy(out2, out, (size_t)(s_q * os0) * 2);
        memcpy(lse2, lse, (size_t)(s_q * (h_q + 1)) * 4);
        mla_sparse_prefill_args a1 = a;
        a1.out = out2; a1.max_logits = ml2; a1.lse = lse2; a1.cpu_threads = 1;
        st = mla_sparse_prefill(&a1, MLA_DEVICE_CPU, NULL, 0, NULL);
        ok = tc_expect(st == MLA_OK && !memcmp(out, out2, (size_t)(s_q * os0) * 2) &&
                           !memcmp(ml, ml2, (size_t)(s_q * h_q) * 4) &&
                           !memcmp(lse, lse2, (size_t)(s_q * (h_q + 1)) * 4),
                       "%s: 1 thread and all threads give identical bytes", label);
        free(out2); free(ml2); free(lse2);
    }

    const double t1 = tc_now();
    double *kd = malloc((size_t)(topk * dqk) * sizeof(double)), *sc = malloc((size_t)topk * sizeof(double));
    double qd[576], od[512], rl, rm;
    tc_allclose so, sl, sm;
    tc_allclose_begin(&so, 8e-4, 3.01 / 128, 7e-6);
    tc_allclose_begin(&sl, 1e-6, 2.01 / 65536, 1e-12 + 7e-6);
    tc_allclose_begin(&sm, 1e-6, 2.01 / 65536, 1e-12 + 7e-6);
    for (int64_t s = 0; s < s_q && ok; s++)
        for (int64_t g = 0; g < h_kv; g++) {
            const int32_t *row = ind + s * is0 + g * is1;
            const int64_t n = clampn(tl, s, topk);
            int64_t nk = 0;
            for (int64_t k = 0; k < n; k++) {
                if (row[k] < 0 || row[k] >= s_kv) continue;
                const uint16_t *kr = kv + row[k] * ks0 + g * ks1;
                for (int64_t d = 0; d < dqk; d++) kd[nk * dqk + d] = mla_bf16_to_float(kr[d]);
                nk++;
            }
            for (int64_t h = g * hpk; h < (g + 1) * hpk; h++) {
                const uint16_t *qr = q + s * qs0 + h * qs1;
                for (int64_t d = 0; d < dqk; d++) qd[d] = mla_bf16_to_float(qr[d]);
                ind_attend(qd, kd, nk, dqk, 0.5, sink ? sink + h : NULL, sc, od, &rl, &rm);
                for (int d = 0; d < 512; d++)
                    tc_allclose_add(&so, (s * h_q + h) * 512 + d, mla_bf16_to_float(out[s * os0 + h * os1 + d]), od[d]);
                tc_allclose_add(&sl, s * h_q + h, lse[s * (h_q + 1) + h], rl);
                tc_allclose_add(&sm, s * h_q + h, ml[h * s_q + s], rm);
            }
        }
    if (ok) {
        tc_report ro = tc_allclose_end(&so), rlr = tc_allclose_end(&sl), rmr = tc_allclose_end(&sm);
        const int good = ro.ok && rlr.ok && rmr.ok;
        tc_expect(good, "%s: out / max_logits / lse match the fp64 oracle", label);
        if (!good) { tc_print_report("out", &ro); tc_print_report("lse", &rlr); tc_print_report("max_logits", &rmr); }
        int64_t clob = 0;
        for (int64_t x = 0; x < s_q * os0; x++) if (x % os1 >= 512 && out[x] != TC_POISON_HALF) clob++;
        for (int64_t s = 0; s < s_q; s++) if (mla_f32_bits(lse[s * (h_q + 1) + h_q]) != 0x7fc00123u) clob++;
        tc_expect(clob == 0, "%s: %lld elements written outside the outputs", label, (long long)clob);
    }
    printf("  %-64s lib %6.2f s, oracle %6.2f s\n", label, t_lib, tc_now() - t1);
    fflush(stdout);
    free(kd); free(sc); free(q); free(kv); free(ind); free(tl); free(sink); free(out); free(ml); free(lse);
}

/* ---------------------------------------------------------------------------------------- */
/* Validation                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void expect_err(mla_status st, mla_status want, const char *needle, const char *what)
{
    tc_expect(st == want && strstr(mla_last_error(), needle) != NULL,
              "%s: want %s containing '%s', got %s: '%s'", what, mla_status_string(want), needle,
              mla_status_string(st), mla_last_error());
}

static mla_status try_shape(const mla_sparse_decode_shape *sh, int device)
{
    mla_sparse_decode_plan_t p = (mla_sparse_decode_plan_t)(uintptr_t)1;
    mla_status st = mla_sparse_decode_plan_create(&p, sh, device);
    if (st == MLA_OK) mla_sparse_decode_plan_destroy(p);
    else tc_expect(p == NULL, "failed plan_create leaves *plan NULL");
    return st;
}

static void test_decode_validation(void)
{
    mla_sparse_decode_shape s0 = mla_sparse_decode_shape_default(), s;
    s0.b = 2; s0.s_q = 1; s0.h_q = 4; s0.topk = 8; s0.page_size = 4;
    s = s0; s.h_kv = 2; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "h_kv (2) must be 1", "h_kv 2");
    s = s0; s.d_qk = 512; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "d_qk (512) does not match format MLA_FP8_FORMAT_V32", "d_qk vs format");
    s = s0; s.format = (mla_fp8_format)9; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "format (9)", "bad format");
    s = s0; s.topk = 0; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "topk (0)", "topk 0");
    s = s0; s.h_q = 0; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "h_q (0)", "h_q 0");
    s = s0; s.d_v = 576; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "d_v (576)", "d_v 576");
    s = s0; s.extra_topk = -1; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "extra_topk (-1)", "extra_topk -1");
    s = s0; s.extra_topk = 4; s.extra_page_size = 0; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "extra_page_size (0)", "extra_page_size 0");
    s = s0; s.cpu_threads = 300; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "cpu_threads (300)", "cpu_threads");
    s = s0; s.struct_size += 8; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "newer mla.h", "struct_size too big");
    s = s0; s.struct_size = 16; expect_err(try_shape(&s, -1), MLA_ERR_INVALID_ARGUMENT, "too small", "struct_size too small");
    /* GPU plans: created where a compute capability 9.0 GPU runs the kernels (test_gpu_sparse
     * tests them); elsewhere UNSUPPORTED (no CUDA in the build, no usable device, older GPU) */
    s = s0;
    {
        const mla_status gst = try_shape(&s, 0);
        tc_expect(gst == MLA_OK || (gst == MLA_ERR_UNSUPPORTED && (strstr(mla_last_error(), "CUDA") ||
                                                                   strstr(mla_last_error(), "compute capability"))),
                  "GPU plan: OK or UNSUPPORTED naming the reason, got %s: '%s'", mla_status_string(gst),
                  mla_last_error());
    }
    s = s0; s.h_kv = 3; expect_err(try_shape(&s, 0), MLA_ERR_INVALID_ARGUMENT, "h_kv (3)", "GPU plan validates first");
    s = s0; expect_err(try_shape(&s, -3), MLA_ERR_INVALID_ARGUMENT, "device (-3)", "bad device");
    expect_err(mla_sparse_decode_plan_create(NULL, &s0, -1), MLA_ERR_INVALID_ARGUMENT, "plan (the output pointer) is NULL", "NULL plan out");

    /* a valid call to mutate */
    static uint16_t q[2 * 4 * 576], out[2 * 4 * 512];
    static uint8_t cache[3 * 4 * 656];
    static int32_t ind[2 * 8], tl[2] = {8, 8};
    static float lse[2 * 4];
    memset(cache, 0, sizeof cache);
    for (int x = 0; x < 16; x++) ind[x] = x % 12;
    mla_sparse_decode_args a0 = mla_sparse_decode_args_default(), a;
    a0.q = q; a0.q_stride[0] = 4 * 576; a0.q_stride[1] = 4 * 576; a0.q_stride[2] = 576;
    a0.k_cache = cache; a0.num_pages = 3; a0.k_page_stride_bytes = 4 * 656;
    a0.indices = ind; a0.indices_stride[0] = 8; a0.indices_stride[1] = 8;
    a0.topk_length = tl;
    a0.out = out; a0.out_stride[0] = 4 * 512; a0.out_stride[1] = 4 * 512; a0.out_stride[2] = 512;
    a0.lse = lse; a0.lse_stride[0] = 4; a0.lse_stride[1] = 1; a0.lse_stride[2] = 4;
    mla_sparse_decode_plan_t plan = NULL;
    if (!tc_expect(mla_sparse_decode_plan_create(&plan, &s0, -1) == MLA_OK, "plan: %s", mla_last_error())) return;
    for (size_t x = 0; x < sizeof out / 2; x++) out[x] = TC_POISON_HALF;
    for (size_t x = 0; x < sizeof lse / 4; x++) lse[x] = mla_bits_f32(0x7fc00123u);
#define BAD(field_stmt, want, needle, what) do { a = a0; field_stmt; expect_err(mla_sparse_decode(plan, &a, NULL, 0, NULL), want, needle, what); } while (0)
    BAD(a.q = NULL, MLA_ERR_INVALID_ARGUMENT, "q is NULL", "NULL q");
    BAD(a.indices = (const int32_t *)((const char *)ind + 2), MLA_ERR_INVALID_ARGUMENT, "indices", "misaligned indices");
    BAD(a.attn_sink = (const float *)((const char *)lse + 1), MLA_ERR_INVALID_ARGUMENT, "attn_sink", "misaligned sink");
    BAD(a.k_page_stride_bytes = 1000, MLA_ERR_INVALID_ARGUMENT, "k_page_stride_bytes (1000) must be >= page_size * 656", "page stride");
    BAD(a.num_pages = 0, MLA_ERR_INVALID_ARGUMENT, "num_pages (0)", "num_pages 0");
    BAD(a.extra_k_cache = cache, MLA_ERR_INVALID_ARGUMENT, "extra_k_cache is set but the plan has no extra cache", "extra without plan");
    BAD(a.extra_topk_length = tl, MLA_ERR_INVALID_ARGUMENT, "extra_topk_length is set", "extra length without plan");
    BAD(a.out_stride[2] = 256, MLA_ERR_INVALID_ARGUMENT, "out_stride[2] (256)", "out rows overlap");
    BAD(a.indices_stride[0] = 4, MLA_ERR_INVALID_ARGUMENT, "indices_stride[0] (4) is smaller than 8", "indices overlap");
    BAD(a.q_stride[0] = -1, MLA_ERR_INVALID_ARGUMENT, "q_stride[0] (-1) is negative", "negative stride");
    BAD(a.lse = NULL, MLA_ERR_INVALID_ARGUMENT, "lse is NULL", "NULL lse");
    BAD(a.flags = 2, MLA_ERR_INVALID_ARGUMENT, "flags (0x2)", "unknown flags");
    BAD(a.struct_size = 8, MLA_ERR_INVALID_ARGUMENT, "args->struct_size (8) is too small", "args too small");
    a = a0;
    expect_err(mla_sparse_decode(plan, &a, NULL, 0, (struct CUstream_st *)q), MLA_ERR_INVALID_ARGUMENT, "stream must be NULL", "stream on CPU");
    expect_err(mla_sparse_decode(NULL, &a, NULL, 0, NULL), MLA_ERR_INVALID_ARGUMENT, "plan is NULL", "NULL plan");
    expect_err(mla_sparse_decode(plan, NULL, NULL, 0, NULL), MLA_ERR_INVALID_ARGUMENT, "args is NULL", "NULL args");
    int untouched = 1;
    for (size_t x = 0; x < sizeof out / 2; x++) untouched &= out[x] == TC_POISON_HALF;
    for (size_t x = 0; x < sizeof lse / 4; x++) untouched &= mla_f32_bits(lse[x]) == 0x7fc00123u;
    tc_expect(untouched, "failed sparse decode calls wrote nothing");
    size_t ws = 7;
    const size_t want_ws = expected_ws(s0.b, s0.s_q, s0.h_q, tck_sparse_kernel() == MLA_CPU_KERNEL_REF);
    tc_expect(mla_sparse_decode_workspace_size(plan, &ws) == MLA_OK && ws == want_ws,
              "CPU workspace is %zu bytes (got %zu)", want_ws, ws);
    a = a0;
    tc_expect(mla_sparse_decode(plan, &a, NULL, 0, NULL) == MLA_OK, "the valid call works: %s", mla_last_error());
    mla_sparse_decode_plan_destroy(plan);

    /* with an extra cache: both extra tensors are required */
    s = s0; s.extra_topk = 8; s.extra_page_size = 4;
    if (!tc_expect(mla_sparse_decode_plan_create(&plan, &s, -1) == MLA_OK, "extra plan: %s", mla_last_error())) return;
    BAD((void)0, MLA_ERR_INVALID_ARGUMENT, "extra_k_cache is NULL", "extra cache missing");
    BAD((a.extra_k_cache = cache, a.extra_num_pages = 3, a.extra_k_page_stride_bytes = 4 * 656), MLA_ERR_INVALID_ARGUMENT, "extra_indices is NULL", "extra indices missing");
    BAD((a.extra_k_cache = cache, a.extra_num_pages = 3, a.extra_k_page_stride_bytes = 100, a.extra_indices = ind, a.extra_indices_stride[0] = 8, a.extra_indices_stride[1] = 8), MLA_ERR_INVALID_ARGUMENT, "extra_k_page_stride_bytes (100)", "extra page stride");
    BAD((a.extra_k_cache = cache, a.extra_num_pages = 3, a.extra_k_page_stride_bytes = 4 * 656, a.extra_indices = ind, a.extra_indices_stride[0] = 8, a.extra_indices_stride[1] = 8), MLA_OK, "", "extra cache valid call");
    mla_sparse_decode_plan_destroy(plan);
#undef BAD

    /* the largest dims: b x s_q x ceil(h_q / 16) row tiles overflow int64 (found by the fuzzer); the plan is
     * made and reports no split workspace (so many tiles never split) */
    s = s0; s.b = INT32_MAX; s.s_q = INT32_MAX; s.h_q = INT32_MAX;
    plan = NULL;
    ws = 7;
    tc_expect(mla_sparse_decode_plan_create(&plan, &s, -1) == MLA_OK && mla_sparse_decode_workspace_size(plan, &ws) == MLA_OK &&
                  ws == 0, "plan of the largest dims: %s, workspace %zu (want 0)", plan ? "made" : mla_last_error(), ws);
    mla_sparse_decode_plan_destroy(plan);
}

static void test_prefill_validation(void)
{
    static uint16_t q[2 * 4 * 576], kv[16 * 576], out[2 * 4 * 512];
    static int32_t ind[2 * 8];
    static float ml[8], lse[8];
    for (int x = 0; x < 16; x++) ind[x] = x;
    mla_sparse_prefill_args a0 = mla_sparse_prefill_args_default(), a;
    a0.s_q = 2; a0.s_kv = 16; a0.h_q = 4; a0.h_kv = 1; a0.topk = 8;
    a0.q = q; a0.q_stride[0] = 4 * 576; a0.q_stride[1] = 576;
    a0.kv = kv; a0.kv_stride[0] = 576; a0.kv_stride[1] = 576;
    a0.indices = ind; a0.indices_stride[0] = 8; a0.indices_stride[1] = 8;
    a0.out = out; a0.out_stride[0] = 4 * 512; a0.out_stride[1] = 512;
    a0.max_logits = ml; a0.max_logits_stride[0] = 4; a0.max_logits_stride[1] = 1;
    a0.lse = lse; a0.lse_stride[0] = 4; a0.lse_stride[1] = 1;
    a0.softmax_scale = 0.1f;
    for (size_t x = 0; x < 8; x++) lse[x] = mla_bits_f32(0x7fc00123u);
#define BAD(field_stmt, want, needle, what) do { a = a0; field_stmt; expect_err(mla_sparse_prefill(&a, -1, NULL, 0, NULL), want, needle, what); } while (0)
    BAD(a.softmax_scale = 0.0f, MLA_ERR_INVALID_ARGUMENT, "softmax_scale (0) must be > 0 and finite", "scale 0");
    BAD(a.softmax_scale = NAN, MLA_ERR_INVALID_ARGUMENT, "softmax_scale (nan)", "scale NaN");
    BAD(a.softmax_scale = INFINITY, MLA_ERR_INVALID_ARGUMENT, "softmax_scale (inf)", "scale inf");
    BAD(a.h_kv = 3, MLA_ERR_INVALID_ARGUMENT, "h_q (4) is not divisible by h_kv (3)", "h_q % h_kv");
    BAD(a.d_qk = 600, MLA_ERR_INVALID_ARGUMENT, "d_qk (600)", "d_qk 600");
    BAD(a.s_kv = 0, MLA_ERR_INVALID_ARGUMENT, "s_kv (0)", "s_kv 0");
    BAD(a.max_logits = NULL, MLA_ERR_INVALID_ARGUMENT, "max_logits is NULL", "NULL max_logits");
    BAD(a.kv_stride[0] = 100, MLA_ERR_INVALID_ARGUMENT, "kv_stride[0] (100)", "kv rows overlap");
    BAD(a.topk_length = (const int32_t *)((const char *)ind + 1), MLA_ERR_INVALID_ARGUMENT, "topk_length", "misaligned topk_length");
    BAD(a.struct_size = sizeof a + 4, MLA_ERR_INVALID_ARGUMENT, "newer mla.h", "struct too big");
    a = a0;
    if (!mla_has_cuda()) /* host pointers: only where no GPU could take them */
        expect_err(mla_sparse_prefill(&a, 0, NULL, 0, NULL), MLA_ERR_UNSUPPORTED, "CUDA", "GPU prefill without a GPU");
    expect_err(mla_sparse_prefill(NULL, -1, NULL, 0, NULL), MLA_ERR_INVALID_ARGUMENT, "args is NULL", "NULL args");
    int untouched = 1;
    for (size_t x = 0; x < 8; x++) untouched &= mla_f32_bits(lse[x]) == 0x7fc00123u;
    tc_expect(untouched, "failed sparse prefill calls wrote nothing");
    size_t ws = 9;
    tc_expect(mla_sparse_prefill_workspace_size(&a, -1, &ws) == MLA_OK && ws == 0, "prefill CPU workspace is 0");
    if (!mla_has_cuda())
        expect_err(mla_sparse_prefill_workspace_size(&a, 0, &ws), MLA_ERR_UNSUPPORTED, "CUDA", "GPU prefill workspace without a GPU");
    tc_expect(mla_sparse_prefill(&a, -1, NULL, 0, NULL) == MLA_OK, "the valid prefill works: %s", mla_last_error());
#undef BAD
}

/* ---------------------------------------------------------------------------------------- */

static dcfg dc(int64_t b, int64_t s_q, int64_t h_q, int64_t s_k, int64_t topk, int64_t ps, mla_fp8_format fmt)
{
    dcfg c;
    memset(&c, 0, sizeof c);
    c.b = b; c.s_q = s_q; c.h_q = h_q; c.s_k = s_k; c.topk = topk; c.ps = ps; c.fmt = fmt;
    c.sink = 1; /* FlashMLA's grid runs with the sink on */
    c.seed = (uint64_t)(b * 1000003 + s_q * 101 + h_q * 7 + s_k * 13 + topk * 3 + ps + fmt);
    return c;
}

static pcfg pc(int64_t s_q, int64_t s_kv, int64_t h_q, int64_t dqk, int64_t topk)
{
    pcfg c;
    memset(&c, 0, sizeof c);
    c.s_q = s_q; c.s_kv = s_kv; c.h_q = h_q; c.h_kv = 1; c.dqk = dqk; c.topk = topk;
    c.seed = (uint64_t)(s_q * 31 + s_kv * 7 + h_q * 3 + dqk + topk);
    return c;
}

static const char *fname(mla_fp8_format f) { return f == MLA_FP8_FORMAT_V32 ? "V32" : "MODEL1"; }

/* Non-finite input (docs/guarantees.md F6-F8) on the CPU path: NaN in q row (0, 0, 0), +Inf in the
 * last q row, and (V32) NaN in the bf16 RoPE part of the first valid key of (0, 0). Those rows come
 * out NaN (all 512 outputs and the lse); every other row is byte-identical to a clean run. */
static void test_decode_nonfinite(mla_fp8_format fmt, int64_t topk, int chunks)
{
    tc_rng rng;
    tc_rng_seed(&rng, 4242 + fmt);
    const int64_t b = 3, s_q = 2, h_q = 16, ps = 16, s_k = 200;
    const int64_t dqk = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512;
    fcache kc;
    if (make_fcache(&kc, fmt, s_k, ps, &rng)) {
        tc_expect(0, "non-finite %s: setup failed", fname(fmt));
        return;
    }
    int64_t is0, is1;
    int32_t *ind = make_indices(&kc, b, s_q, topk, 0, 0, &rng, &is0, &is1);
    float *sink = make_sinks(h_q, &rng);
    const int64_t qs2 = dqk, qs1 = h_q * qs2, qs0 = s_q * qs1, os2 = 512, os1 = h_q * os2, os0 = s_q * os1;
    uint16_t *q = malloc((size_t)(b * qs0) * 2), *out[2];
    float *lse[2];
    for (int64_t x = 0; x < b * qs0; x++) q[x] = mla_float_to_bf16((float)(tc_randn(&rng) * 0.5));
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = b; sh.s_q = s_q; sh.h_q = h_q; sh.h_kv = 1; sh.d_qk = dqk; sh.d_v = 512;
    sh.topk = topk; sh.page_size = ps; sh.format = fmt;
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    a.q_stride[0] = qs0; a.q_stride[1] = qs1; a.q_stride[2] = qs2;
    a.k_cache = kc.bytes; a.num_pages = kc.pages; a.k_page_stride_bytes = kc.stride;
    a.indices = ind; a.indices_stride[0] = is0; a.indices_stride[1] = is1;
    a.attn_sink = sink;
    a.out_stride[0] = os0; a.out_stride[1] = os1; a.out_stride[2] = os2;
    a.lse_stride[0] = s_q * h_q; a.lse_stride[1] = 1; a.lse_stride[2] = h_q; /* lse[b][s_q][h_q] */
    int64_t key_pos = -1; /* V32: the poisoned key (a flat cache position, as indices hold) */
    for (int pass = 0; pass < 2; pass++) {
        out[pass] = malloc((size_t)(b * os0) * 2);
        lse[pass] = malloc((size_t)(b * s_q * h_q) * 4);
        if (pass == 1) {
            q[5] = mla_float_to_bf16(NAN);
            q[(b - 1) * qs0 + (s_q - 1) * qs1 + (h_q - 1) * qs2 + 9] = mla_float_to_bf16(INFINITY);
            if (fmt == MLA_FP8_FORMAT_V32)
                for (int64_t k = 0; k < topk && key_pos < 0; k++)
                    if (ind[k] >= 0 && ind[k] < kc.pages * ps) {
                        key_pos = ind[k];
                        const uint16_t nanh = mla_float_to_bf16(NAN);
                        memcpy(kc.bytes + (key_pos / ps) * kc.stride + (key_pos % ps) * 656 + 528, &nanh, 2);
                    }
        }
        a.q = q; a.out = out[pass]; a.lse = lse[pass];
        const size_t wsb = expected_ws(b, s_q, h_q, tck_sparse_kernel() == MLA_CPU_KERNEL_REF);
        uint32_t *ws = nan_ws(wsb);
        mla_status st = decode_call(&sh, &a, chunks, wsb ? ws : NULL, wsb, NULL);
        tc_expect(st == MLA_OK, "non-finite %s topk %lld pass %d: %s", fname(fmt), (long long)topk, pass,
                  mla_last_error());
        if (chunks > 0 && tck_sparse_kernel() != MLA_CPU_KERNEL_REF)
            tc_expect(wsb > 0 && !ws_untouched(ws, wsb), "non-finite %s topk %lld: the call split", fname(fmt),
                      (long long)topk);
        free(ws);
    }
    int64_t bad_nan = 0, bad_same = 0, nan_rows = 0;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < s_q; j++)
            for (int64_t h = 0; h < h_q; h++) {
                int sees_key = 0; /* every row whose index list holds the poisoned key */
                for (int64_t k = 0; k < topk && key_pos >= 0; k++) sees_key |= ind[i * is0 + j * is1 + k] == key_pos;
                const int poisoned = sees_key || (i == 0 && j == 0 && h == 0) ||
                                     (i == b - 1 && j == s_q - 1 && h == h_q - 1);
                const uint16_t *o0 = out[0] + i * os0 + j * os1 + h * os2, *o1 = out[1] + i * os0 + j * os1 + h * os2;
                const float l0 = lse[0][i * s_q * h_q + h + j * h_q], l1 = lse[1][i * s_q * h_q + h + j * h_q];
                if (poisoned) {
                    nan_rows++;
                    int all = l1 != l1;
                    for (int d = 0; d < 512; d++) all &= mla_bf16_to_float(o1[d]) != mla_bf16_to_float(o1[d]);
                    bad_nan += !all;
                } else {
                    bad_same += memcmp(o0, o1, 1024) != 0 || memcmp(&l0, &l1, 4) != 0;
                }
            }
    tc_expect(bad_nan == 0 && bad_same == 0,
              "non-finite %s topk %lld: the %lld rows that see NaN / +Inf are NaN (%lld are not), the others "
              "unchanged (%lld differ)",
              fname(fmt), (long long)topk, (long long)nan_rows, (long long)bad_nan, (long long)bad_same);
    free(q); free(ind); free(sink); free(out[0]); free(out[1]); free(lse[0]); free(lse[1]);
    free_fcache(&kc);
}


/* Exact FP8 dequantisation with the scales quantisation never makes (V32: not powers of two,
 * tiny, subnormal, huge; MODEL1: e8m0 0, 1, 2, 100, 127, 130, 200) and every non-NaN code: one
 * valid key per query token and q = 0 give p = 1, so each output row is the key's first 512
 * dequantised values, which must equal mla_fp8_dequantize_cache's bf16 bytes (the reference's
 * dequantisation). One allowance: bf16 subnormal values (|v| < 2^-126) may come out as 0, since
 * the fast CPU kernels' bf16 dot products treat subnormal inputs as zero (AMX TDPBF16PS,
 * src/cpu_amx.c, and AVX512 VDPBF16PS, src/cpu_avx512bf16.c; the FMA builds, src/cpu_avx512.c
 * and src/cpu_avx2.c, keep them). The last token holds a NaN code: its rows are all NaN. */
static void test_dequant_exact(mla_fp8_format fmt)
{
    const int64_t ps = 4, pages = 2, ntok = pages * ps, topk = 4, h_q = 16;
    const int v32 = fmt == MLA_FP8_FORMAT_V32;
    const int64_t dqk = v32 ? 576 : 512, bpt = v32 ? 656 : 584, stride = ps * bpt;
    static const float v32_scales[] = {0.3f, 1.0f, 0x1p-126f, 0x1p-130f, 0x1p100f, 3.0e-5f, 7.0f};
    static const uint8_t e8m0[] = {0, 1, 2, 100, 127, 130, 200};
    uint8_t *cache = calloc((size_t)(pages * stride), 1);
    uint16_t *deq = malloc((size_t)(ntok * dqk) * 2);
    tc_rng rng;
    tc_rng_seed(&rng, 99 + fmt);
    mla_fp8_layout lay;
    mla_fp8_get_layout(fmt, &lay);
    for (int64_t t = 0; t < ntok; t++) {
        uint8_t *page = cache + (t / ps) * stride;
        const mla_fp8_token tk = mla_fp8_locate(fmt, page, ps, t % ps);
        for (int x = 0; x < lay.d_nope; x++) {
            int c = (int)((t * 37 + x * 5) % 254); /* 0..253 -> every code but 0x7f, 0xff */
            if (c >= 0x7f) c++;
            ((uint8_t *)tk.nope)[x] = (uint8_t)c;
        }
        for (int k = 0; k < lay.num_tiles; k++) {
            const int sel = (int)((t + 3 * k) % 7);
            if (v32) memcpy((uint8_t *)tk.scales + 4 * k, &v32_scales[sel], 4);
            else ((uint8_t *)tk.scales)[k] = e8m0[sel];
        }
        for (int x = 0; x < lay.d_rope; x++) {
            const uint16_t h = mla_float_to_bf16((float)tc_randn(&rng));
            memcpy((uint8_t *)tk.rope + 2 * x, &h, 2);
        }
        if (t == ntok - 1) ((uint8_t *)tk.nope)[3] = 0xff; /* a NaN code: the row is all NaN */
    }
    mla_status st = mla_fp8_dequantize_cache(fmt, pages, ps, cache, stride, deq, ps * dqk, dqk,
                                             MLA_DEVICE_CPU, NULL);
    tc_expect(st == MLA_OK, "dequant %s: mla_fp8_dequantize_cache: %s", fname(fmt), mla_last_error());
    /* s_q = ntok query tokens; token j's index row: invalid, j, invalid, invalid */
    int32_t *ind = malloc((size_t)(ntok * topk) * 4);
    for (int64_t j = 0; j < ntok; j++) {
        ind[j * topk + 0] = -1;
        ind[j * topk + 1] = (int32_t)j;
        ind[j * topk + 2] = INT_MAX;
        ind[j * topk + 3] = (int32_t)ntok; /* = the limit: invalid */
    }
    uint16_t *q = calloc((size_t)(ntok * h_q * dqk), 2), *out = malloc((size_t)(ntok * h_q * 512) * 2);
    float *lse = malloc((size_t)(ntok * h_q) * 4);
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = 1; sh.s_q = ntok; sh.h_q = h_q; sh.h_kv = 1; sh.d_qk = dqk; sh.d_v = 512;
    sh.topk = topk; sh.page_size = ps; sh.format = fmt;
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    a.q = q; a.q_stride[0] = ntok * h_q * dqk; a.q_stride[1] = h_q * dqk; a.q_stride[2] = dqk;
    a.k_cache = cache; a.num_pages = pages; a.k_page_stride_bytes = stride;
    a.indices = ind; a.indices_stride[0] = ntok * topk; a.indices_stride[1] = topk;
    a.out = out; a.out_stride[0] = ntok * h_q * 512; a.out_stride[1] = h_q * 512; a.out_stride[2] = 512;
    a.lse = lse; a.lse_stride[0] = ntok * h_q; a.lse_stride[1] = 1; a.lse_stride[2] = h_q;
    mla_sparse_decode_plan_t plan = NULL;
    st = mla_sparse_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU);
    if (st == MLA_OK) st = mla_sparse_decode(plan, &a, NULL, 0, NULL);
    mla_sparse_decode_plan_destroy(plan);
    if (tc_expect(st == MLA_OK, "dequant %s: %s", fname(fmt), mla_last_error())) {
        int64_t bad = 0, flushed = 0, lse_bad = 0;
        for (int64_t j = 0; j < ntok; j++)
            for (int64_t h = 0; h < h_q; h++) {
                if (j == ntok - 1) { /* the NaN code */
                    int all = lse[j * h_q + h] != lse[j * h_q + h];
                    for (int d = 0; d < 512; d++) all &= (out[(j * h_q + h) * 512 + d] & 0x7fffu) > 0x7f80u;
                    bad += !all;
                    continue;
                }
                lse_bad += lse[j * h_q + h] != 0.0f;
                for (int d = 0; d < 512; d++) {
                    const uint16_t got = out[(j * h_q + h) * 512 + d], want = deq[j * dqk + d];
                    if (got == want) continue;
                    const int sub = (want & 0x7f80u) == 0; /* zero exponent: subnormal */
                    if (sub && (got & 0x7fffu) == 0) { flushed++; continue; }
                    if (bad++ < 3)
                        printf("    dequant %s token %lld dim %d: 0x%04x, want 0x%04x\n", fname(fmt),
                               (long long)j, d, got, want);
                }
            }
        tc_expect(bad == 0 && lse_bad == 0,
                  "dequant %s: every code x odd scales gives the reference's bf16 values (%lld differ, "
                  "%lld subnormals as 0, %lld lse != 0)",
                  fname(fmt), (long long)bad, (long long)flushed, (long long)lse_bad);
    }
    free(cache); free(deq); free(ind); free(q); free(out); free(lse);
}

static void decode_case(dcfg c)
{
    char label[160];
    snprintf(label, sizeof label, "decode %s b=%lld s_q=%lld h_q=%lld s_k=%lld topk=%lld ps=%lld%s%s%s%s%s",
             fname(c.fmt), (long long)c.b, (long long)c.s_q, (long long)c.h_q, (long long)c.s_k,
             (long long)c.topk, (long long)c.ps, c.extra_topk ? " +extra" : "",
             c.topk_len ? " topk_len" : "", c.sink ? "" : " nosink", c.weird ? " weird" : "",
             c.all_invalid ? " all-invalid" : "");
    run_decode(label, &c);
}

static void prefill_case(pcfg c)
{
    char label[160];
    snprintf(label, sizeof label, "prefill d=%lld h_q=%lld h_kv=%lld s_q=%lld s_kv=%lld topk=%lld%s%s%s",
             (long long)c.dqk, (long long)c.h_q, (long long)c.h_kv, (long long)c.s_q, (long long)c.s_kv,
             (long long)c.topk, c.topk_len ? " topk_len" : "", c.sink ? " sink" : "",
             c.all_invalid ? " all-invalid" : "");
    run_prefill(label, &c);
}

/* The full grids (FlashMLA's, scaled for a CPU). */
static void full_cases(void)
{
    const mla_fp8_format V = MLA_FP8_FORMAT_V32, M = MLA_FP8_FORMAT_MODEL1;
    dcfg c;
    pcfg p;
    /* FlashMLA's decode grid (s_k, topk, page) in {(512, 64, 2|64|69), (1024, 576, 2|61),
     * (2046, 2048, 2|64|576)}, b in {4, 74, 321}, s_q in {1, 3}, h_q in {64, 128}, sink on,
     * both formats; (b, s_q, h_q) scaled per case so the CPU oracle stays fast, plus h_q 16, 3. */
    for (int f = 0; f < 2; f++) {
        const mla_fp8_format fm = f ? M : V;
        decode_case(dc(74, 1, 64, 512, 64, 2, fm));
        decode_case(dc(321, 1, 16, 512, 64, 64, fm));
        decode_case(dc(4, 3, 128, 512, 64, 69, fm));
        decode_case(dc(4, 3, 64, 1024, 576, 2, fm));
        decode_case(dc(6, 2, 3, 1024, 576, 61, fm));
        decode_case(dc(2, 1, 128, 2046, 2048, 2, fm));
        decode_case(dc(4, 2, 16, 2046, 2048, 64, fm));
        decode_case(dc(2, 3, 64, 2046, 2048, 576, fm));
    }
    /* MODEL1 with topk_length and the extra cache (FlashMLA: pages 256 / 64 and 2) */
    c = dc(8, 2, 64, 4096, 128, 256, M); c.extra_topk = 512; c.extra_ps = 64; c.extra_s_k = 1024;
    c.topk_len = 1; c.extra_topk_len = 1;
    decode_case(c);
    c = dc(4, 1, 128, 512, 64, 69, M); c.extra_topk = 576; c.extra_ps = 2; c.extra_s_k = 1024;
    c.extra_topk_len = 1;
    decode_case(c);
    c = dc(5, 3, 16, 2046, 2048, 2, M); c.extra_topk = 64; c.extra_ps = 61; c.extra_s_k = 512;
    c.topk_len = 1; c.weird = 1;
    decode_case(c);
    /* V32 with topk_length and an extra cache (FlashMLA's SM90 rejects these; we do not) */
    c = dc(3, 2, 16, 700, 256, 53, V); c.extra_topk = 128; c.extra_ps = 61; c.extra_s_k = 300;
    c.topk_len = 1; c.extra_topk_len = 1; c.weird = 1;
    decode_case(c);
    /* invalid indices: the weird set mixed in, all invalid, no sink, h_q 1, page 1 */
    for (int f = 0; f < 2; f++) {
        const mla_fp8_format fm = f ? M : V;
        c = dc(6, 2, 64, 1024, 576, 61, fm); c.weird = 1; decode_case(c);
        c = dc(4, 2, 64, 512, 64, 64, fm); c.weird = 1; c.all_invalid = 1; decode_case(c);
        c = dc(4, 2, 64, 512, 64, 64, fm); c.all_invalid = 1; c.sink = 0; decode_case(c);
        c = dc(3, 1, 1, 300, 128, 1, fm); c.sink = 0; c.topk_len = 1; decode_case(c);
    }
    c = dc(4, 2, 16, 1024, 256, 64, M); c.extra_topk = 64; c.extra_ps = 2; c.extra_s_k = 256;
    c.all_invalid = 1; c.weird = 1; c.topk_len = 1; decode_case(c);

    /* FlashMLA's prefill grid: d in {512, 576} x h in {128, 64} x (s_kv, topk) in {(128,128),
     * (256,256), (512,512), (592,128), (1840,256), (1592,384), (1521,512), OOB (95,128),
     * (153,256), (114,384)} x s_q in {1, 62, 213}; one (h, s_q) per pair, cycling, scaled. */
    static const int64_t pairs[][2] = {{128, 128}, {256, 256}, {512, 512}, {592, 128}, {1840, 256},
                                       {1592, 384}, {1521, 512}, {95, 128}, {153, 256}, {114, 384}};
    for (int x = 0; x < 10; x++)
        for (int f = 0; f < 2; f++) {
            const int64_t d = f ? 512 : 576, sel = (x + f) % 3;
            const int64_t s_q = sel == 0 ? 1 : sel == 1 ? 62 : 213;
            const int64_t h = sel == 0 ? 128 : sel == 1 ? 64 : 16;
            pcfg p = pc(s_q, pairs[x][0], h, d, pairs[x][1]);
            p.sink = (x + f) % 2;
            p.topk_len = (x + f) % 4 >= 2;
            prefill_case(p);
        }
    p = pc(62, 592, 128, 576, 128); p.sink = 1; p.topk_len = 1; prefill_case(p);
    p = pc(62, 1521, 64, 512, 512); p.all_invalid = 1; p.sink = 1; prefill_case(p);
    p = pc(20, 32, 64, 576, 2048); prefill_case(p);       /* s_kv < topk */
    p = pc(4, 64, 64, 512, 8192); p.sink = 1; prefill_case(p);
    p = pc(30, 700, 48, 576, 256); p.h_kv = 2; p.topk_len = 1; prefill_case(p); /* h_kv 2 */
    p = pc(70000, 64, 1, 512, 8); prefill_case(p);        /* s_q > 65535 */
}

/* One small case of every feature (both formats, extra cache + topk_length, weird / all-invalid
 * indices, sinks, prefill with d 576 / 512, OOB pairs, h_kv 2), non-finite input, and the exact
 * dequantisation of odd scales. */
static void feature_cases(void)
{
    const mla_fp8_format V = MLA_FP8_FORMAT_V32, M = MLA_FP8_FORMAT_MODEL1;
    dcfg c;
    pcfg p;
    test_decode_nonfinite(V, 64, 0);
    test_decode_nonfinite(M, 64, 0);
    test_decode_nonfinite(V, 200, 1); /* split into 4 ranges: NaN through the merge */
    test_dequant_exact(V);
    test_dequant_exact(M);
    for (int f = 0; f < 2; f++) {
        const mla_fp8_format fm = f ? M : V;
        decode_case(dc(4, 2, 16, 300, 64, 61, fm));
        c = dc(3, 1, 64, 256, 64, 2, fm); c.weird = 1; decode_case(c);
        c = dc(2, 2, 16, 256, 64, 64, fm); c.all_invalid = 1; decode_case(c);
        c = dc(5, 1, 128, 700, 300, 16, fm); c.sink = 1; decode_case(c); /* 8 row tiles, 5 chunks */
    }
    c = dc(3, 2, 16, 512, 64, 64, M); c.extra_topk = 64; c.extra_ps = 2; c.extra_s_k = 256;
    c.topk_len = 1; c.extra_topk_len = 1; c.weird = 1;
    decode_case(c);
    /* key splits (calls of fewer than 16 row tiles, src/cpu_split.c): the default ranges (512
     * positions), one-chunk ranges through the hook, ranges across the main / extra boundary,
     * empty ranges (all invalid, short topk_length), h_q not a multiple of 16 */
    c = dc(1, 1, 16, 4096, 2048, 64, V); c.split_chunks = 8; decode_case(c);
    c = dc(1, 2, 64, 1024, 300, 61, V); c.split_chunks = 1; c.weird = 1; decode_case(c);
    c = dc(3, 1, 16, 512, 100, 16, M); c.extra_topk = 90; c.extra_ps = 2; c.extra_s_k = 256;
    c.topk_len = 1; c.extra_topk_len = 1; c.split_chunks = 1; decode_case(c);
    c = dc(2, 2, 16, 512, 256, 64, V); c.all_invalid = 1; c.split_chunks = 1; decode_case(c);
    c = dc(2, 2, 3, 512, 200, 4, M); c.topk_len = 1; c.sink = 0; c.split_chunks = 1; decode_case(c);
    p = pc(5, 300, 64, 576, 128); p.sink = 1; p.topk_len = 1; prefill_case(p);
    p = pc(5, 95, 16, 512, 128); prefill_case(p);                /* OOB pair */
    p = pc(4, 200, 32, 576, 128); p.h_kv = 2; prefill_case(p);   /* h_kv 2 */
    p = pc(3, 1000, 80, 512, 200); p.sink = 1; prefill_case(p);  /* 5 row tiles, 64 + 64 + ... keys */
}

int main(void)
{
    const double t0 = tc_now();
    /* The kernel of the CPU sparse calls, as MLA_CPU_KERNEL (the caller's, untouched) picks it:
     * by default the first of AMX, AVX512-BF16, AVX-512 FMA and AVX2 FMA (src/cpu_amx.c,
     * cpu_avx512bf16.c, cpu_avx512.c, cpu_avx2.c) that runs here, else the C reference. With MLA_CPU_KERNEL unset, the feature cases run
     * again at the end for every other kernel that runs here, so each meets the oracle; with it
     * set, only that kernel runs. */
    tck_env env = tck_env_save();
    const int kernel = tck_sparse_kernel();
    if (kernel < 0) {
        printf("CPU kernel of the sparse calls: none (MLA_CPU_KERNEL=%s): %s\n",
               env.set ? env.value : "unset", mla_last_error());
        tc_expect(0, "the CPU sparse kernel: %s", mla_last_error());
        tck_env_restore(&env);
        return tc_summary();
    }
    printf("CPU kernel of the sparse calls: %s, %s%s%s\n", tck_name(kernel), tck_what(kernel),
           env.set ? ", as MLA_CPU_KERNEL=" : ", the default", env.set ? env.value : "");
    test_decode_validation();
    test_prefill_validation();
    /* MLA_TEST_QUICK=1 (tests/sanitize.sh under ASan/UBSan): the validation groups and the feature
     * cases; the full grids too otherwise. */
    const char *qenv = getenv("MLA_TEST_QUICK");
    const int quick = qenv && qenv[0] && strcmp(qenv, "0") != 0;
    feature_cases();
    if (!quick) full_cases();
    int others[TCK_MAX_KERNELS];
    const int n_others = env.set ? 0 : tck_other_kernels(kernel, others);
    for (int i = 0; i < n_others; i++) {
        printf("-- again with %s, %s (MLA_CPU_KERNEL=%s): the feature cases\n", tck_name(others[i]),
               tck_what(others[i]), tck_env_value(others[i]));
        setenv("MLA_CPU_KERNEL", tck_env_value(others[i]), 1);
        if (tc_expect(tck_sparse_kernel() == others[i], "MLA_CPU_KERNEL=%s: sparse calls run %s",
                      tck_env_value(others[i]), tck_name(others[i])))
            feature_cases();
    }
    tck_env_restore(&env);
    printf("%stotal %.1f s\n", quick ? "quick (MLA_TEST_QUICK) " : "", tc_now() - t0);
    return tc_summary();
}
