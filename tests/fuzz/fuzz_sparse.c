/* fuzz_sparse.c — libFuzzer harness of the sparse C API on the CPU device (issue 8, extended to
 * DeepSeek Sparse Attention): mla_sparse_prefill (bf16 KV) and mla_sparse_decode (V32 / MODEL1
 * FP8 caches, extra cache, topk_length, attn_sink) with an independent fp64 oracle (the FP8
 * cache is made with mla_fp8_quantize_cache and read back for the oracle with
 * mla_fp8_dequantize_cache, which tests/test_fp8.c checks byte-exactly). Bit 0 of the first
 * input byte picks decode (1) or prefill (0).
 *
 * Build and run: tests/fuzz/run.sh [seconds] (runs every harness of tests/fuzz/).
 *
 * One input = a small valid prefill problem from a 12-byte header plus up to 8 faults of 3 bytes
 * (shape fields, struct_size, NULL / unaligned pointers, strides, garbage indices, topk_length
 * values, attn_sink values incl. NaN/±inf, softmax scales, devices, streams, workspaces).
 * Oracle as in fuzz_decode.c: a call either fails with the documented status (nothing written,
 * non-empty message) or matches the fp64 reference (spec §6 tolerances: out abs 8e-4 + rel
 * 2.01/128, cos-diff 5e-6; lse and max_logits abs 1e-6 + rel 8.01/65536) and writes exactly the
 * logical outputs. Index values and topk_length values are data (masked / clamped, never
 * rejected); positions outside [0, s_kv) must never be dereferenced, and every buffer is the
 * exact span of its shape and strides, so an over-read is an ASan report.
 */
#include "fuzz_common.h"

enum { Q_, KV_, IND_, TL_, SINK_, OUT_, ML_, LSE_, NPTR };

typedef struct pscen {
    mla_sparse_prefill_args a;      /* the caller's struct (pointers filled later)       */
    size_t args_size;
    int null_args;
    int device, stream_bad, ws_kind;
    int null_ptr[NPTR], mis[NPTR];
    int has_tl, has_sink;
    int ind_fault, ind_sel; int32_t ind_val;
    int tl_fault, tl_sel;   int32_t tl_val;
    int sink_fault, sink_sel; float sink_val;
} pscen;

static const int64_t I64_POOL[16] = {0, -1, INT64_MIN, INT64_MAX, 1ll << 31, (1ll << 31) - 1,
                                     1ll << 40, 3, 63, 577, 511, 1024, 16, 100000, 2, 64};
static const float SCALES[8] = {0.0f, -1.0f, NAN, INFINITY, -INFINITY, 1e-30f, 0.5f, 0.0417f};
static const float SINKS[8] = {0.0f, 1.0f, -1.0f, NAN, INFINITY, -INFINITY, 5.0f, -5.0f};

static void p_fault(pscen *s, int kind, uint8_t a, uint8_t b)
{
    mla_sparse_prefill_args *x = &s->a;
    int64_t *st[12] = {&x->q_stride[0], &x->q_stride[1], &x->kv_stride[0], &x->kv_stride[1],
                       &x->indices_stride[0], &x->indices_stride[1], &x->out_stride[0],
                       &x->out_stride[1], &x->max_logits_stride[0], &x->max_logits_stride[1],
                       &x->lse_stride[0], &x->lse_stride[1]};
    switch (kind) {
    case 0:
        switch (a % 8) {
        case 0: x->s_q = I64_POOL[b % 16]; break;
        case 1: x->s_kv = I64_POOL[b % 16]; break;
        case 2: x->h_q = I64_POOL[b % 16]; break;
        case 3: x->h_kv = I64_POOL[b % 16]; break;
        case 4: x->d_qk = I64_POOL[b % 16]; break;
        case 5: x->d_v = I64_POOL[b % 16]; break;
        case 6: x->topk = I64_POOL[b % 16]; break;
        default: x->cpu_threads = b & 1 ? -1 - (int)(b >> 1) : 257 + b; break;
        }
        break;
    case 1: {
        static const size_t sz[6] = {0, 8, offsetof(mla_sparse_prefill_args, cpu_threads),
                                     offsetof(mla_sparse_prefill_args, softmax_scale),
                                     sizeof(mla_sparse_prefill_args) + 8, SIZE_MAX};
        s->args_size = sz[b % 6];
        break;
    }
    case 2: if (a % 9 == 8) s->null_args = 1; else s->null_ptr[a % 9] = 1; break;
    case 3: s->mis[a % NPTR] = 1 + b % 3; if (a % NPTR == TL_) s->has_tl = 1;
            if (a % NPTR == SINK_) s->has_sink = 1; break;
    case 4: {
        const int64_t v = fz_weird_stride(b);
        int64_t *p = st[a % 12];
        if (a >= 128) *p = sat_add(*p, v >= 0 && v < 32 ? v : 0);
        else *p = v;
        break;
    }
    case 5: { /* a garbage index (masked) */
        static const int32_t v[6] = {-1, INT32_MAX, INT32_MIN, -7, 0, 1};
        s->ind_fault = 1; s->ind_sel = a;
        s->ind_val = b % 8 == 6 ? -2 : b % 8 == 7 ? 1000000 : v[b % 6]; /* 0/1: valid if s_kv > 1 */
        if (b >= 128) s->ind_val = (int32_t)(b - 128); /* around s_kv */
        break;
    }
    case 6: { /* a topk_length value (clamped) */
        static const int32_t v[7] = {-5, 0, 1, 2, 100, INT32_MAX, INT32_MIN};
        s->has_tl = 1; s->tl_fault = 1; s->tl_sel = a; s->tl_val = v[b % 7];
        break;
    }
    case 7: s->has_sink = 1; s->sink_fault = 1; s->sink_sel = a; s->sink_val = SINKS[b % 8]; break;
    case 8: x->softmax_scale = a & 1 ? (float)b / 64.0f : SCALES[b % 8]; break;
    case 9: s->device = a & 1 ? (int)(b % 4) : (b & 1 ? -2 : INT32_MIN); break;
    case 10: s->stream_bad = 1; break;
    case 11: s->ws_kind = 1 + b % 3; break;
    case 12: s->has_tl = !s->has_tl; break;
    case 13: s->has_sink = !s->has_sink; break;
    }
}

static void p_decode_input(pscen *s, reader *r)
{
    memset(s, 0, sizeof *s);
    s->device = MLA_DEVICE_CPU;
    mla_sparse_prefill_args *x = &s->a;
    *x = mla_sparse_prefill_args_default();
    const uint8_t m0 = rd8(r);
    s->has_tl = (m0 >> 1) & 1;
    s->has_sink = (m0 >> 2) & 1;
    x->s_q = 1 + rd8(r) % 4;
    x->s_kv = 1 + rd8(r) % 48;
    x->h_kv = 1 + rd8(r) % 2;
    x->h_q = x->h_kv * (1 + rd8(r) % 3);
    const uint8_t m5 = rd8(r);
    x->d_qk = m5 & 1 ? 512 : 576;
    x->cpu_threads = (m5 >> 1) & 3;
    x->topk = 1 + rd8(r) % 8;
    const uint8_t pad = rd8(r);
    const uint8_t sc = rd8(r);
    x->softmax_scale = sc < 128 ? (float)(1.0 / sqrt((double)x->d_qk)) : (float)(sc - 100) / 64.0f;
    rng_state = rd32(r);
    s->args_size = sizeof(mla_sparse_prefill_args);
    const int64_t d = x->d_qk;
    x->q_stride[1] = d + (pad & 1 ? 8 : 0);
    x->q_stride[0] = x->h_q * x->q_stride[1] + (pad & 2 ? 3 : 0);
    x->kv_stride[1] = d + (pad & 4 ? 64 : 0);
    x->kv_stride[0] = x->h_kv * x->kv_stride[1];
    x->indices_stride[1] = x->topk + (pad & 8 ? 1 : 0);
    x->indices_stride[0] = x->h_kv * x->indices_stride[1];
    x->out_stride[1] = 512;
    x->out_stride[0] = x->h_q * 512 + (pad & 16 ? 5 : 0);
    x->max_logits_stride[1] = 1;
    x->max_logits_stride[0] = x->h_q;
    if (pad & 32) { x->lse_stride[0] = 1; x->lse_stride[1] = x->s_q; } /* transposed */
    else { x->lse_stride[1] = 1; x->lse_stride[0] = x->h_q + (pad & 64 ? 2 : 0); }
    int nf = 0;
    while (r->n >= 3 && nf < 8) {
        const uint8_t k = rd8(r), a = rd8(r), b = rd8(r);
        p_fault(s, k % 14, a, b);
        nf++;
    }
}

/* fp64 reference of one prefill call; checks out / max_logits / lse; marks written elements */
NO_COV static void p_check(const mla_sparse_prefill_args *x, const buf *bq, const buf *bkv,
                           const buf *bind, const int32_t *tl, const float *sink, const buf *bo,
                           const buf *bml, const buf *bl, const view *vo, const view *vml,
                           const view *vl, uint8_t *wo, uint8_t *wml, uint8_t *wl)
{
    const int64_t hpk = x->h_q / x->h_kv, dqk = x->d_qk, dv = x->d_v;
    double *sc = (double *)malloc(sizeof(double) * (size_t)x->topk);
    int64_t *key = (int64_t *)malloc(sizeof(int64_t) * (size_t)x->topk);
    double *o = (double *)malloc(sizeof(double) * (size_t)dv);
    double sxy = 0, sxx = 0, syy = 0;
    if (!sc || !key || !o) FAIL("malloc");
    for (int64_t s = 0; s < x->s_q; s++) {
        int64_t n = x->topk;
        if (tl) n = tl[s] < 0 ? 0 : tl[s] > x->topk ? x->topk : tl[s];
        for (int64_t h = 0; h < x->h_q; h++) {
            const int64_t g = h / hpk;
            int64_t nk = 0;
            for (int64_t k = 0; k < n; k++) {
                int32_t idx;
                memcpy(&idx, (const uint8_t *)bind->base +
                                 4 * (s * x->indices_stride[0] + g * x->indices_stride[1] + k), 4);
                if (idx >= 0 && idx < x->s_kv) key[nk++] = idx;
            }
            const int64_t qoff = s * x->q_stride[0] + h * x->q_stride[1];
            double mx = -INFINITY;
            for (int64_t k = 0; k < nk; k++) {
                const int64_t koff = key[k] * x->kv_stride[0] + g * x->kv_stride[1];
                double acc = 0;
                for (int64_t d = 0; d < dqk; d++)
                    acc += elem_at_bf16(bq, qoff + d) * elem_at_bf16(bkv, koff + d);
                sc[k] = acc * x->softmax_scale;
                if (sc[k] > mx) mx = sc[k];
            }
            double want_lse, want_ml;
            if (nk == 0) {
                for (int64_t d = 0; d < dv; d++) o[d] = 0;
                want_lse = INFINITY;
                want_ml = -INFINITY;
            } else {
                double sum = 0;
                for (int64_t d = 0; d < dv; d++) o[d] = 0;
                for (int64_t k = 0; k < nk; k++) {
                    const double p = exp(sc[k] - mx);
                    sum += p;
                    const int64_t koff = key[k] * x->kv_stride[0] + g * x->kv_stride[1];
                    for (int64_t d = 0; d < dv; d++) o[d] += p * elem_at_bf16(bkv, koff + d);
                }
                want_lse = mx + log(sum);
                want_ml = mx;
                double f = 1.0 / sum;
                if (sink) {
                    const double sk = sink[h];
                    f *= isnan(sk) ? NAN : sk == INFINITY ? 0.0 : 1.0 / (1.0 + exp(sk - want_lse));
                }
                for (int64_t d = 0; d < dv; d++) o[d] *= f;
            }
            const int64_t ooff = s * x->out_stride[0] + h * x->out_stride[1];
            for (int64_t d = 0; d < dv; d++) {
                const double got = elem_at_bf16(bo, ooff + d);
                if (!close_enough(got, o[d], 8e-4, 2.01 / 128))
                    FAIL("prefill out[%lld][%lld][%lld] = %.8g, reference %.8g (%lld keys)",
                         (long long)s, (long long)h, (long long)d, got, o[d], (long long)nk);
                if (isfinite(got) && isfinite(o[d])) { sxy += got * o[d]; sxx += got * got; syy += o[d] * o[d]; }
                wo[ooff + d - vo->lo] = 1;
            }
            const int64_t moff = s * x->max_logits_stride[0] + h * x->max_logits_stride[1];
            const int64_t loff = s * x->lse_stride[0] + h * x->lse_stride[1];
            const double gm = ((const float *)bml->base)[moff], gl = ((const float *)bl->base)[loff];
            if (!close_enough(gm, want_ml, 1e-6, 8.01 / 65536))
                FAIL("prefill max_logits[%lld][%lld] = %.9g, reference %.9g", (long long)s, (long long)h, gm, want_ml);
            if (!close_enough(gl, want_lse, 1e-6, 8.01 / 65536))
                FAIL("prefill lse[%lld][%lld] = %.9g, reference %.9g", (long long)s, (long long)h, gl, want_lse);
            wml[moff - vml->lo] = 1;
            wl[loff - vl->lo] = 1;
        }
    }
    if (sxx + syy > 0 && 1.0 - 2.0 * sxy / (sxx + syy) > 5e-6)
        FAIL("prefill cos-diff %.3g > 5e-6", 1.0 - 2.0 * sxy / (sxx + syy));
    free(sc); free(key); free(o);
}

static void check_written(const buf *b, const uint8_t *w, int64_t n, size_t esz, uint8_t pat,
                          const char *what)
{
    for (int64_t x = 0; x < n; x++) {
        if (w[x]) continue;
        for (size_t y = 0; y < esz; y++)
            if (b->first[(size_t)x * esz + y] != pat)
                FAIL("%s element %lld is not a logical output but was written", what, (long long)x);
    }
}

static void run_prefill(reader *r)
{
    pscen s;
    p_decode_input(&s, r);
    mla_sparse_prefill_args *x = &s.a;
    /* the struct the library sees: struct_size prefix over the defaults */
    mla_sparse_prefill_args e = mla_sparse_prefill_args_default();
    const size_t eff = s.args_size < sizeof e ? s.args_size : sizeof e;
    memcpy(&e, x, eff);
    int verdict = V_OK;
    /* mla_sparse_prefill_workspace_size checks only the struct and the device (0 bytes on the
     * CPU whatever the arguments) */
    const int ws_fail = s.null_args || s.args_size > sizeof e ||
                        s.args_size < offsetof(mla_sparse_prefill_args, cpu_threads) + sizeof(int) ||
                        s.device < MLA_DEVICE_CPU;
    if (ws_fail) verdict = V_FAIL;
    if (e.s_q < 1 || e.s_kv < 1 || e.h_q < 1 || e.h_kv < 1 || e.topk < 1 || e.s_q > INT32_MAX ||
        e.s_kv > INT32_MAX || e.h_q > INT32_MAX || e.h_kv > INT32_MAX || e.topk > INT32_MAX)
        verdict = V_FAIL;
    else if (e.h_q % e.h_kv) verdict = V_FAIL;
    if ((e.d_qk != 576 && e.d_qk != 512) || e.d_v != 512) verdict = V_FAIL;
    if (!(e.softmax_scale > 0.0f) || !isfinite(e.softmax_scale)) verdict = V_FAIL;
    if (e.cpu_threads < 0 || e.cpu_threads > 256) verdict = V_FAIL;
    if (s.device < MLA_DEVICE_CPU || s.stream_bad) verdict = V_FAIL;
    const int gpu = s.device >= 0;
    for (int p = 0; p < NPTR; p++) {
        const int optional = p == TL_ || p == SINK_;
        const int given = optional ? (p == TL_ ? s.has_tl : s.has_sink) && !s.null_ptr[p] : !s.null_ptr[p];
        if (!optional && !given) verdict = V_FAIL;
        if (given && s.mis[p] % (p == Q_ || p == KV_ || p == OUT_ ? 2 : 4)) verdict = V_FAIL;
    }
    int small = verdict != V_FAIL && e.s_q <= 8 && e.s_kv <= 128 && e.h_q <= 16 && e.topk <= 64;
    view vq = {2, {e.s_q, e.h_q, 1}, {e.q_stride[0], e.q_stride[1], 0}, e.d_qk, 0, 0, 0};
    view vkv = {2, {e.s_kv, e.h_kv, 1}, {e.kv_stride[0], e.kv_stride[1], 0}, e.d_qk, 0, 0, 0};
    view vind = {2, {e.s_q, e.h_kv, 1}, {e.indices_stride[0], e.indices_stride[1], 0}, e.topk, 0, 0, 0};
    view vo = {2, {e.s_q, e.h_q, 1}, {e.out_stride[0], e.out_stride[1], 0}, e.d_v, 0, 0, 0};
    view vml = {2, {e.s_q, e.h_q, 1}, {e.max_logits_stride[0], e.max_logits_stride[1], 0}, 1, 0, 0, 0};
    view vl = {2, {e.s_q, e.h_q, 1}, {e.lse_stride[0], e.lse_stride[1], 0}, 1, 0, 0, 0};
    view *vs[6] = {&vq, &vkv, &vind, &vo, &vml, &vl};
    if (small) {
        for (int t = 0; t < 6; t++) {
            view_span(vs[t]);
            if (vs[t]->overflow || view_elems(vs[t]) > (1 << 20)) small = 0;
        }
    }
    if (small)
        for (int t = 0; t < 6; t++) {
            const int v = view_verdict(vs[t], 1);
            if (v == V_FAIL) verdict = V_FAIL;
            else if (v == V_EITHER && verdict == V_OK) verdict = V_EITHER;
        }
    if (!small) {
        /* cannot allocate (or already invalid): every pointer at a dummy block, stream non-NULL:
         * must fail without reading anything */
        static uint64_t dummy[64];
        x->q = x->kv = dummy; x->indices = (const int32_t *)dummy; x->out = dummy;
        x->max_logits = x->lse = (float *)dummy;
        x->topk_length = NULL; x->attn_sink = NULL;
        x->struct_size = s.args_size;
        const size_t alloc = s.args_size < sizeof(size_t) ? sizeof(size_t)
                           : s.args_size > sizeof *x + 8 ? sizeof *x + 8 : s.args_size;
        uint8_t *amem = (uint8_t *)calloc(1, alloc);
        memcpy(amem, x, alloc < sizeof *x ? alloc : sizeof *x);
        const mla_sparse_prefill_args *ap = s.null_args ? NULL : (const mla_sparse_prefill_args *)amem;
        size_t wsb = 7;
        mla_status st = mla_sparse_prefill_workspace_size(ap, s.device, &wsb);
        if (!gpu && (ws_fail ? st == MLA_OK : st != MLA_OK || wsb != 0))
            FAIL("prefill workspace_size: %s, %zu bytes", mla_status_string(st), wsb);
        st = mla_sparse_prefill(ap, MLA_DEVICE_CPU, NULL, 0, (struct CUstream_st *)(uintptr_t)0x40);
        expect_failure(st, "mla_sparse_prefill (big or invalid, non-NULL stream)", 0);
        free(amem);
        return;
    }
    /* buffers of exactly their spans */
    buf bq, bkv, bind, bo, bml, bl;
    buf_alloc(&bq, &vq, 2, s.mis[Q_]);
    buf_alloc(&bkv, &vkv, 2, s.mis[KV_]);
    buf_alloc(&bind, &vind, 4, s.mis[IND_]);
    buf_alloc(&bo, &vo, 2, s.mis[OUT_]);
    buf_alloc(&bml, &vml, 4, s.mis[ML_]);
    buf_alloc(&bl, &vl, 4, s.mis[LSE_]);
    for (size_t i = 0; i < bq.bytes / 2; i++) put_special(bq.first + 2 * i, EK_BF16, 1);
    for (size_t i = 0; i < bkv.bytes / 2; i++) put_small(bkv.first + 2 * i, EK_BF16);
    memset(bo.first, 0xA5, bo.bytes);
    memset(bml.first, 0x5A, bml.bytes);
    memset(bl.first, 0x5A, bl.bytes);
    for (int64_t q = 0; q < e.s_q; q++)
        for (int64_t h = 0; h < e.h_q; h++)
            for (int64_t d = 0; d < e.d_qk; d++)
                put_small((uint8_t *)bq.base + 2 * (q * e.q_stride[0] + h * e.q_stride[1] + d), EK_BF16);
    /* indices: mostly valid positions, some -1 (FlashMLA's invalid marker) */
    for (size_t i = 0; i < bind.bytes / 4; i++) {
        int32_t v = rng_next() % 5 == 0 ? -1 : (int32_t)rng_int(0, e.s_kv - 1);
        memcpy(bind.first + 4 * i, &v, 4);
    }
    if (s.ind_fault) {
        const int64_t q = s.ind_sel % e.s_q, g = (s.ind_sel >> 3) % e.h_kv, k = (s.ind_sel >> 4) % e.topk;
        int32_t v = s.ind_val;
        if (v >= 0 && v < 128 && s.ind_val == (int32_t)(s.ind_val)) v = (int32_t)(e.s_kv + v - 2);
        memcpy((uint8_t *)bind.base + 4 * (q * e.indices_stride[0] + g * e.indices_stride[1] + k), &v, 4);
    }
    int32_t *tl = (int32_t *)malloc((size_t)e.s_q * 4 + 4);
    float *sink = (float *)malloc((size_t)e.h_q * 4 + 4);
    for (int64_t q = 0; q < e.s_q; q++) tl[q] = (int32_t)rng_int(0, e.topk);
    for (int64_t h = 0; h < e.h_q; h++) sink[h] = (float)rng_int(-20, 20) / 8.0f;
    if (s.tl_fault) tl[s.tl_sel % e.s_q] = s.tl_val;
    if (s.sink_fault) sink[s.sink_sel % e.h_q] = s.sink_val;
    uint8_t *tl_mem = (uint8_t *)malloc((size_t)e.s_q * 4 + 3), *sink_mem = (uint8_t *)malloc((size_t)e.h_q * 4 + 3);
    memcpy(tl_mem + s.mis[TL_], tl, (size_t)e.s_q * 4);
    memcpy(sink_mem + s.mis[SINK_], sink, (size_t)e.h_q * 4);
    const int tl_given = s.has_tl && !s.null_ptr[TL_], sink_given = s.has_sink && !s.null_ptr[SINK_];

    x->q = s.null_ptr[Q_] ? NULL : bq.base;
    x->kv = s.null_ptr[KV_] ? NULL : bkv.base;
    x->indices = s.null_ptr[IND_] ? NULL : (const int32_t *)bind.base;
    x->topk_length = tl_given ? (const int32_t *)(tl_mem + s.mis[TL_]) : NULL;
    x->attn_sink = sink_given ? (const float *)(sink_mem + s.mis[SINK_]) : NULL;
    x->out = s.null_ptr[OUT_] ? NULL : bo.base;
    x->max_logits = s.null_ptr[ML_] ? NULL : (float *)bml.base;
    x->lse = s.null_ptr[LSE_] ? NULL : (float *)bl.base;
    x->struct_size = s.args_size;
    const size_t alloc = s.args_size < sizeof(size_t) ? sizeof(size_t)
                       : s.args_size > sizeof *x + 8 ? sizeof *x + 8 : s.args_size;
    uint8_t *amem = (uint8_t *)calloc(1, alloc);
    memcpy(amem, x, alloc < sizeof *x ? alloc : sizeof *x);
    const mla_sparse_prefill_args *ap = s.null_args ? NULL : (const mla_sparse_prefill_args *)amem;

    size_t wsb = 7;
    mla_status st = mla_sparse_prefill_workspace_size(ap, s.device, &wsb);
    if (!gpu && (ws_fail ? st == MLA_OK : st != MLA_OK || wsb != 0))
        FAIL("prefill workspace_size: %s, %zu bytes", mla_status_string(st), wsb);
    static uint8_t wsbuf[256];
    void *ws = s.ws_kind == 1 ? (void *)wsbuf : s.ws_kind == 2 ? (void *)(uintptr_t)0x1000 : NULL;
    size_t wsz = s.ws_kind == 1 ? sizeof wsbuf : s.ws_kind == 2 ? SIZE_MAX : 0;
    st = mla_sparse_prefill(ap, s.device, ws, wsz, s.stream_bad ? (struct CUstream_st *)(uintptr_t)0x40 : NULL);
    if (getenv("MLA_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_sparse prefill: s_q=%lld s_kv=%lld h_q=%lld h_kv=%lld topk=%lld verdict=%d -> %s\n",
                (long long)e.s_q, (long long)e.s_kv, (long long)e.h_q, (long long)e.h_kv,
                (long long)e.topk, verdict, mla_status_string(st));
    /* on a CUDA ordinal (this harness builds without CUDA) a valid call is UNSUPPORTED; one the
     * layout model leaves open (V_EITHER: non-nested strides) may instead be rejected as invalid,
     * as on the CPU, and is then held to the failure rules below */
    if (gpu && (verdict == V_OK || (verdict == V_EITHER && st == MLA_ERR_UNSUPPORTED))) {
        if (st != MLA_ERR_UNSUPPORTED) FAIL("prefill on a CUDA ordinal: %s", mla_status_string(st));
    } else if (verdict == V_FAIL || (verdict == V_EITHER && st != MLA_OK)) {
        expect_failure(st, "mla_sparse_prefill", gpu);
        check_untouched(&bo, 0xA5, "out");
        check_untouched(&bml, 0x5A, "max_logits");
        check_untouched(&bl, 0x5A, "lse");
    } else {
        if (st != MLA_OK) FAIL("mla_sparse_prefill failed on a valid input: %s", mla_status_string(st));
        uint8_t *wo = (uint8_t *)calloc((size_t)view_elems(&vo), 1);
        uint8_t *wml = (uint8_t *)calloc((size_t)view_elems(&vml), 1);
        uint8_t *wl = (uint8_t *)calloc((size_t)view_elems(&vl), 1);
        p_check(&e, &bq, &bkv, &bind, tl_given ? tl : NULL, sink_given ? sink : NULL, &bo, &bml, &bl,
                &vo, &vml, &vl, wo, wml, wl);
        check_written(&bo, wo, view_elems(&vo), 2, 0xA5, "out");
        check_written(&bml, wml, view_elems(&vml), 4, 0x5A, "max_logits");
        check_written(&bl, wl, view_elems(&vl), 4, 0x5A, "lse");
        free(wo); free(wml); free(wl);
    }
    free(amem); free(tl); free(sink); free(tl_mem); free(sink_mem);
    free(bq.mem); free(bkv.mem); free(bind.mem); free(bo.mem); free(bml.mem); free(bl.mem);
}

/* ======================================================================================== */
/* Sparse decode on an FP8 cache                                                            */
/* ======================================================================================== */

enum { DQ_, DK_, DIND_, DTL_, DSINK_, DXK_, DXIND_, DXTL_, DOUT_, DLSE_, DNPTR };

typedef struct dscen {
    mla_sparse_decode_shape sh;
    mla_sparse_decode_args a;       /* strides and sizes (pointers filled later)            */
    size_t shape_size, args_size;
    int null_args, null_shape, null_plan_out;
    int device, stream_bad;
    int null_ptr[DNPTR], mis[DNPTR];
    int has_tl, has_sink, has_xtl;
    int extra_ptrs_without_extra;
    int ind_fault, ind_sel; int32_t ind_val;
    int tl_fault, tl_sel; int32_t tl_val;
    int sink_fault, sink_sel; float sink_val;
    int64_t kps_pad, xkps_pad;      /* page stride padding (bytes)                         */
    int ws_kind;                    /* bits 6-7 of m0: the workspace passed (see the call) */
} dscen;

static const int64_t SP_PAGES[8] = {1, 2, 3, 16, 64, 5, 7, 8};

static void d_fault(dscen *s, int kind, uint8_t a, uint8_t b)
{
    mla_sparse_decode_shape *sh = &s->sh;
    mla_sparse_decode_args *x = &s->a;
    switch (kind) {
    case 0:
        switch (a % 10) {
        case 0: sh->b = I64_POOL[b % 16]; break;
        case 1: sh->s_q = I64_POOL[b % 16]; break;
        case 2: sh->h_q = I64_POOL[b % 16]; break;
        case 3: sh->h_kv = I64_POOL[b % 16]; break;
        case 4: sh->d_qk = I64_POOL[b % 16]; break;
        case 5: sh->d_v = I64_POOL[b % 16]; break;
        case 6: sh->topk = I64_POOL[b % 16]; break;
        case 7: sh->page_size = I64_POOL[b % 16]; break;
        case 8: sh->extra_topk = I64_POOL[b % 16]; break;
        default: sh->cpu_threads = b & 1 ? -1 : 257; break;
        }
        break;
    case 1: {
        static const size_t sz[4] = {0, 8, (size_t)-1, 0};
        const size_t full = a & 1 ? sizeof(mla_sparse_decode_shape) : sizeof(mla_sparse_decode_args);
        size_t v = b % 4 == 2 ? full + 8 : b % 4 == 3 ? full - 8 : sz[b % 4];
        if (a & 1) s->shape_size = v; else s->args_size = v;
        break;
    }
    case 2:
        if (a % 13 < DNPTR) s->null_ptr[a % 13] = 1;
        else if (a % 13 == 10) s->null_args = 1;
        else if (a % 13 == 11) s->null_shape = 1;
        else s->null_plan_out = 1;
        break;
    case 3: s->mis[a % DNPTR] = 1 + b % 3; break;
    case 4: {
        const int64_t v = fz_weird_stride(b);
        int64_t *p[14] = {&x->q_stride[0], &x->q_stride[1], &x->q_stride[2], &x->indices_stride[0],
                          &x->indices_stride[1], &x->out_stride[0], &x->out_stride[1],
                          &x->out_stride[2], &x->lse_stride[0], &x->lse_stride[1],
                          &x->lse_stride[2], &x->extra_indices_stride[0],
                          &x->k_page_stride_bytes, &x->extra_k_page_stride_bytes};
        if (a % 14 == 12 && (b & 1)) s->kps_pad = -(int64_t)(b >> 1); /* below one page */
        else if (a % 14 == 13 && (b & 1)) s->xkps_pad = -(int64_t)(b >> 1);
        else *p[a % 14] = v;
        break;
    }
    case 5: {
        static const int32_t v[6] = {-1, INT32_MAX, INT32_MIN, -7, 1000000, -2};
        s->ind_fault = 1 + (a & 1); s->ind_sel = a >> 1;
        s->ind_val = b >= 128 ? (int32_t)(b - 128) : v[b % 6]; /* b >= 128: around num_pages*page */
        break;
    }
    case 6: {
        static const int32_t v[7] = {-5, 0, 1, 2, 100, INT32_MAX, INT32_MIN};
        s->tl_fault = 1 + (a & 1); s->tl_sel = a >> 1; s->tl_val = v[b % 7];
        if (a & 1) s->has_xtl = 1; else s->has_tl = 1;
        break;
    }
    case 7: s->has_sink = 1; s->sink_fault = 1; s->sink_sel = a; s->sink_val = SINKS[b % 8]; break;
    case 8: x->softmax_scale = a & 1 ? (float)b / 64.0f : SCALES[b % 8]; break;
    case 9: s->device = a & 1 ? (int)(b % 4) : (b & 1 ? -2 : INT32_MIN); break;
    case 10: s->stream_bad = 1; break;
    case 11: x->flags = a & 1 ? MLA_SPARSE_DECODE_REUSE_SCHEDULE : (uint32_t)b << (a % 25); break;
    case 12: s->extra_ptrs_without_extra = 1 + b % 3; break;
    case 13: sh->format = (mla_fp8_format)(a & 1 ? (b % 3 == 0 ? 0 : b % 3 == 1 ? 3 : -1)
                                                 : (sh->format == MLA_FP8_FORMAT_V32 ? 2 : 1)); break;
    }
}

static void d_decode_input(dscen *s, reader *r, uint8_t m0)
{
    memset(s, 0, sizeof *s);
    s->device = MLA_DEVICE_CPU;
    mla_sparse_decode_shape *sh = &s->sh;
    mla_sparse_decode_args *x = &s->a;
    *sh = mla_sparse_decode_shape_default();
    *x = mla_sparse_decode_args_default();
    s->has_tl = (m0 >> 1) & 1;
    s->has_sink = (m0 >> 2) & 1;
    const int extra = (m0 >> 3) & 1;
    s->has_xtl = extra && ((m0 >> 4) & 1);
    sh->format = (m0 >> 5) & 1 ? MLA_FP8_FORMAT_MODEL1 : MLA_FP8_FORMAT_V32;
    sh->d_qk = sh->format == MLA_FP8_FORMAT_MODEL1 ? 512 : 576;
    s->ws_kind = (m0 >> 6) & 3;
    sh->b = 1 + rd8(r) % 3;
    sh->s_q = 1 + rd8(r) % 3;
    sh->h_q = 1 + rd8(r) % 4;
    const uint8_t ps = rd8(r);
    sh->page_size = SP_PAGES[ps % 8];
    sh->extra_page_size = SP_PAGES[(ps >> 4) % 8];
    const uint8_t np = rd8(r);
    x->num_pages = 1 + np % 4;
    x->extra_num_pages = 1 + (np >> 4) % 3;
    const uint8_t tk = rd8(r);
    sh->topk = 1 + tk % 8;
    sh->extra_topk = extra ? 1 + (tk >> 4) % 4 : 0;
    sh->cpu_threads = (tk >> 6) & 3;
    const uint8_t pad = rd8(r);
    const uint8_t sc = rd8(r);
    x->softmax_scale = sc < 128 ? 0.0f : (float)(sc - 100) / 64.0f;
    rng_state = rd32(r);
    s->shape_size = sizeof *sh;
    s->args_size = sizeof *x;
    const int64_t d = sh->d_qk, h = sh->h_q, q = sh->s_q;
    x->q_stride[2] = d + (pad & 1 ? 8 : 0);
    x->q_stride[1] = h * x->q_stride[2];
    x->q_stride[0] = q * x->q_stride[1] + (pad & 2 ? 3 : 0);
    x->indices_stride[1] = sh->topk + (pad & 4 ? 1 : 0);
    x->indices_stride[0] = q * x->indices_stride[1];
    x->extra_indices_stride[1] = sh->extra_topk;
    x->extra_indices_stride[0] = q * sh->extra_topk;
    x->out_stride[2] = 512;
    x->out_stride[1] = h * 512;
    x->out_stride[0] = q * h * 512;
    if (pad & 8) { x->lse_stride[1] = 1; x->lse_stride[2] = h; x->lse_stride[0] = q * h; }
    else { x->lse_stride[2] = 1; x->lse_stride[1] = q; x->lse_stride[0] = h * q; }
    s->kps_pad = pad & 16 ? 16 : 0;
    s->xkps_pad = pad & 32 ? 8 : 0;
    int nf = 0;
    while (r->n >= 3 && nf < 8) {
        const uint8_t k = rd8(r), a = rd8(r), b = rd8(r);
        d_fault(s, k % 14, a, b);
        nf++;
    }
}

/* Quantises a random bf16 cache into an exactly sized FP8 buffer (page stride kps) and
 * dequantises it back into `deq` [num_pages * page_size, d_qk] for the oracle. */
static uint8_t *make_fp8_cache(mla_fp8_format f, int64_t num_pages, int64_t ps, int64_t kps,
                               int64_t d_qk, int64_t bpt, int mis, size_t *bytes, uint16_t **deq)
{
    const int64_t rows = num_pages * ps;
    uint16_t *src = (uint16_t *)malloc((size_t)(rows * d_qk) * 2);
    *deq = (uint16_t *)malloc((size_t)(rows * d_qk) * 2);
    *bytes = (size_t)((num_pages - 1) * kps + ps * bpt);
    uint8_t *mem = (uint8_t *)malloc(*bytes + (size_t)mis);
    if (!src || !*deq || !mem) FAIL("malloc");
    for (int64_t x = 0; x < rows * d_qk; x++) put_small((uint8_t *)(src + x), EK_BF16);
    if (mla_fp8_quantize_cache(f, num_pages, ps, src, ps * d_qk, d_qk, mem + mis, kps,
                               MLA_DEVICE_CPU, NULL) != MLA_OK ||
        mla_fp8_dequantize_cache(f, num_pages, ps, mem + mis, kps, *deq, ps * d_qk, d_qk,
                                 MLA_DEVICE_CPU, NULL) != MLA_OK)
        FAIL("quantise / dequantise a valid cache: %s", mla_last_error());
    free(src);
    return mem;
}

static void run_sparse_decode(reader *r, uint8_t m0)
{
    dscen s;
    d_decode_input(&s, r, m0);
    mla_sparse_decode_shape e = mla_sparse_decode_shape_default();
    memcpy(&e, &s.sh, s.shape_size < sizeof e ? s.shape_size : sizeof e);
    int64_t fmt_dqk = 0, bpt = 0;
    const int fmt_ok = mla_fp8_format_info(e.format, &fmt_dqk, NULL, NULL, &bpt) == MLA_OK;
    int shape_bad = s.null_shape || s.null_plan_out || s.shape_size != sizeof e;
    if (e.b < 1 || e.s_q < 1 || e.h_q < 1 || e.h_kv < 1 || e.topk < 1 || e.page_size < 1 ||
        e.extra_topk < 0 || e.b > INT32_MAX || e.s_q > INT32_MAX || e.h_q > INT32_MAX ||
        e.h_kv > INT32_MAX || e.topk > INT32_MAX || e.page_size > INT32_MAX || e.extra_topk > INT32_MAX)
        shape_bad = 1;
    if (e.h_kv != 1 || !fmt_ok || e.d_qk != fmt_dqk || e.d_v != 512) shape_bad = 1;
    if (e.extra_topk > 0 && (e.extra_page_size < 1 || e.extra_page_size > INT32_MAX)) shape_bad = 1;
    if (e.cpu_threads < 0 || e.cpu_threads > 256) shape_bad = 1;
    if (s.device < MLA_DEVICE_CPU) shape_bad = 1;
    mla_sparse_decode_shape *shm = (mla_sparse_decode_shape *)calloc(1, sizeof e + 8);
    s.sh.struct_size = s.shape_size;
    memcpy(shm, &s.sh, sizeof e);
    mla_sparse_decode_plan_t plan = (mla_sparse_decode_plan_t)(uintptr_t)0x1;
    mla_status st = mla_sparse_decode_plan_create(s.null_plan_out ? NULL : &plan,
                                                  s.null_shape ? NULL : shm, s.device);
    free(shm);
    if (shape_bad || s.device >= 0) {
        expect_failure(st, "mla_sparse_decode_plan_create", s.device >= 0);
        if (!s.null_plan_out && plan != NULL) FAIL("*plan is not NULL after a failed create");
        return;
    }
    if (st != MLA_OK) FAIL("mla_sparse_decode_plan_create failed on a valid shape: %s", mla_status_string(st));
    /* mla.h: CPU plans report the optional key-split workspace: fewer than 16 row tiles
     * (b x s_q x ceil(h_q / 16)): tiles x 16 rows x ceil(16 / tiles) ranges x 514 floats + 64;
     * 0 otherwise and where the reference runs */
    size_t wsb = 3;
    {
        int64_t tiles; /* saturated: b, s_q and h_q up to 2^31 - 1 each overflow int64 */
        if (__builtin_mul_overflow(e.b, e.s_q, &tiles) || __builtin_mul_overflow(tiles, (e.h_q + 15) / 16, &tiles))
            tiles = INT64_MAX;
        const int64_t smax = tiles < 16 ? (16 + tiles - 1) / tiles : 0;
        const size_t want = smax >= 2 ? (size_t)(tiles * 16 * smax) * 514 * 4 + 64 : 0;
        if (mla_sparse_decode_workspace_size(plan, &wsb) != MLA_OK || (wsb != 0 && wsb != want))
            FAIL("sparse workspace size: %zu bytes (the rule: %zu)", wsb, want);
    }

    /* argument verdict */
    mla_sparse_decode_args *x = &s.a;
    const int extra = e.extra_topk > 0;
    int verdict = V_OK;
    if (s.null_args || s.args_size != sizeof *x || s.stream_bad) verdict = V_FAIL;
    if (x->flags & ~(uint32_t)MLA_SPARSE_DECODE_REUSE_SCHEDULE) verdict = V_FAIL;
    static const int align[DNPTR] = {2, 1, 4, 4, 4, 1, 4, 4, 2, 4};
    int given[DNPTR];
    for (int p = 0; p < DNPTR; p++) {
        const int optional = p == DTL_ || p == DSINK_ || p == DXTL_;
        const int is_extra = p == DXK_ || p == DXIND_ || p == DXTL_;
        int want = p == DTL_ ? s.has_tl : p == DSINK_ ? s.has_sink : p == DXTL_ ? s.has_xtl
                 : is_extra ? extra : 1;
        if (!extra && is_extra && s.extra_ptrs_without_extra == 1 + (p - DXK_)) want = 1;
        given[p] = want && !s.null_ptr[p];
        if (want && !given[p] && !optional && (!is_extra || extra)) verdict = V_FAIL;
        if (given[p] && s.mis[p] % align[p]) verdict = V_FAIL;
        if (!extra && is_extra && given[p]) verdict = V_FAIL;
    }
    const int64_t kps = x->k_page_stride_bytes ? x->k_page_stride_bytes : e.page_size * bpt + s.kps_pad;
    const int64_t xkps = x->extra_k_page_stride_bytes ? x->extra_k_page_stride_bytes
                                                       : e.extra_page_size * bpt + s.xkps_pad;
    x->k_page_stride_bytes = kps;
    x->extra_k_page_stride_bytes = xkps;
    if (x->num_pages > 1 && kps < e.page_size * bpt) verdict = V_FAIL;
    if (x->num_pages < 1 || x->num_pages > INT32_MAX) verdict = V_FAIL;
    if (extra && (x->extra_num_pages < 1 || x->extra_num_pages > INT32_MAX)) verdict = V_FAIL;
    if (kps < 0) verdict = V_FAIL;
    if (extra && ((x->extra_num_pages > 1 && xkps < e.extra_page_size * bpt) || xkps < 0)) verdict = V_FAIL;
    /* allocatable and a cache the quantiser accepts (a page stride below one page with more
     * than one page is an invalid call: it goes to the "big" path, which must fail) */
    int small = e.b <= 4 && e.s_q <= 4 && e.h_q <= 16 && e.topk <= 64 && e.page_size <= 64 &&
                e.extra_topk <= 16 && (!extra || e.extra_page_size <= 64) && kps >= 0 &&
                kps <= (1 << 20) && (x->num_pages == 1 || kps >= e.page_size * bpt) &&
                x->num_pages >= 1 && x->num_pages <= 64 &&
                (!extra || (xkps >= 0 && xkps <= (1 << 20) && x->extra_num_pages >= 1 &&
                            x->extra_num_pages <= 64 &&
                            (x->extra_num_pages == 1 || xkps >= e.extra_page_size * bpt)));
    view vq = {3, {e.b, e.s_q, e.h_q}, {x->q_stride[0], x->q_stride[1], x->q_stride[2]}, e.d_qk, 0, 0, 0};
    view vind = {2, {e.b, e.s_q, 1}, {x->indices_stride[0], x->indices_stride[1], 0}, e.topk, 0, 0, 0};
    view vxind = {2, {e.b, e.s_q, 1}, {x->extra_indices_stride[0], x->extra_indices_stride[1], 0},
                  extra ? e.extra_topk : 1, 0, 0, 0};
    view vo = {3, {e.b, e.s_q, e.h_q}, {x->out_stride[0], x->out_stride[1], x->out_stride[2]}, 512, 0, 0, 0};
    view vl = {3, {e.b, e.h_q, e.s_q}, {x->lse_stride[0], x->lse_stride[1], x->lse_stride[2]}, 1, 0, 0, 0};
    view *vs[5] = {&vq, &vind, &vo, &vl, &vxind};
    for (int t = 0; t < (extra ? 5 : 4) && small; t++) {
        view_span(vs[t]);
        if (vs[t]->overflow || view_elems(vs[t]) > (1 << 20)) small = 0;
    }
    if (small)
        for (int t = 0; t < (extra ? 5 : 4); t++) {
            const int v = view_verdict(vs[t], 1);
            if (v == V_FAIL) verdict = V_FAIL;
            else if (v == V_EITHER && verdict == V_OK) verdict = V_EITHER;
        }
    if (!extra) { /* no extra cache: a one-element block (only passed when testing that it is refused) */
        vxind.dim[0] = vxind.dim[1] = 1;
        view_span(&vxind);
    }
    if (!small) { /* cannot allocate: dummy pointers + a non-NULL stream must fail */
        static uint64_t dummy[64];
        mla_sparse_decode_args a = *x;
        a.q = a.k_cache = dummy; a.indices = (const int32_t *)dummy; a.out = dummy;
        a.lse = (float *)dummy; a.topk_length = NULL; a.attn_sink = NULL;
        a.extra_k_cache = extra ? (const void *)dummy : NULL;
        a.extra_indices = extra ? (const int32_t *)dummy : NULL; a.extra_topk_length = NULL;
        st = mla_sparse_decode(plan, &a, NULL, 0, (struct CUstream_st *)(uintptr_t)0x40);
        expect_failure(st, "mla_sparse_decode (big, non-NULL stream)", 0);
        mla_sparse_decode_plan_destroy(plan);
        return;
    }
    /* tensors */
    buf bq, bind, bxind, bo, bl;
    buf_alloc(&bq, &vq, 2, s.mis[DQ_]);
    buf_alloc(&bind, &vind, 4, s.mis[DIND_]);
    buf_alloc(&bxind, &vxind, 4, s.mis[DXIND_]);
    buf_alloc(&bo, &vo, 2, s.mis[DOUT_]);
    buf_alloc(&bl, &vl, 4, s.mis[DLSE_]);
    for (size_t i = 0; i < bq.bytes / 2; i++) put_small(bq.first + 2 * i, EK_BF16);
    memset(bo.first, 0xA5, bo.bytes);
    memset(bl.first, 0x5A, bl.bytes);
    const int64_t npos = x->num_pages * e.page_size, xnpos = extra ? x->extra_num_pages * e.extra_page_size : 1;
    for (size_t i = 0; i < bind.bytes / 4; i++) {
        int32_t v = rng_next() % 5 == 0 ? -1 : (int32_t)rng_int(0, npos - 1);
        memcpy(bind.first + 4 * i, &v, 4);
    }
    for (size_t i = 0; i < bxind.bytes / 4; i++) {
        int32_t v = rng_next() % 5 == 0 ? -1 : (int32_t)rng_int(0, xnpos - 1);
        memcpy(bxind.first + 4 * i, &v, 4);
    }
    if (s.ind_fault) {
        const int xtra = s.ind_fault == 2 && extra;
        const view *vv = xtra ? &vxind : &vind;
        const int64_t tk = xtra ? e.extra_topk : e.topk;
        const int64_t i = s.ind_sel % e.b, j = (s.ind_sel >> 2) % e.s_q, k = (s.ind_sel >> 4) % tk;
        int32_t v = s.ind_val;
        if (s.ind_val >= 0 && s.ind_val < 128) v = (int32_t)((xtra ? xnpos : npos) + s.ind_val - 2);
        memcpy((uint8_t *)(xtra ? bxind.base : bind.base) +
                   4 * (i * vv->stride[0] + j * vv->stride[1] + k), &v, 4);
    }
    size_t kbytes = 0, xkbytes = 0;
    uint16_t *deq = NULL, *xdeq = NULL;
    uint8_t *kmem = make_fp8_cache(e.format, x->num_pages, e.page_size, kps, e.d_qk, bpt, s.mis[DK_], &kbytes, &deq);
    uint8_t *xkmem = extra ? make_fp8_cache(e.format, x->extra_num_pages, e.extra_page_size, xkps, e.d_qk,
                                            bpt, s.mis[DXK_], &xkbytes, &xdeq) : (uint8_t *)malloc(8);
    int32_t tl[4], xtl[4];
    float sink[16];
    for (int i = 0; i < 4; i++) { tl[i] = (int32_t)rng_int(0, e.topk); xtl[i] = (int32_t)rng_int(0, extra ? e.extra_topk : 1); }
    for (int i = 0; i < 16; i++) sink[i] = (float)rng_int(-20, 20) / 8.0f;
    if (s.tl_fault == 1) tl[s.tl_sel % e.b] = s.tl_val;
    if (s.tl_fault == 2) xtl[s.tl_sel % e.b] = s.tl_val;
    if (s.sink_fault) sink[s.sink_sel % e.h_q] = s.sink_val;
    uint8_t tlm[32], xtlm[32], sinkm[80];
    memcpy(tlm + s.mis[DTL_], tl, sizeof tl);
    memcpy(xtlm + s.mis[DXTL_], xtl, sizeof xtl);
    memcpy(sinkm + s.mis[DSINK_], sink, sizeof sink);

    mla_sparse_decode_args a = *x;
    a.struct_size = s.args_size;
    a.q = given[DQ_] ? bq.base : NULL;
    a.k_cache = given[DK_] ? kmem + s.mis[DK_] : NULL;
    a.indices = given[DIND_] ? (const int32_t *)bind.base : NULL;
    a.topk_length = given[DTL_] ? (const int32_t *)(tlm + s.mis[DTL_]) : NULL;
    a.attn_sink = given[DSINK_] ? (const float *)(sinkm + s.mis[DSINK_]) : NULL;
    a.extra_k_cache = given[DXK_] ? xkmem + (extra ? s.mis[DXK_] : 0) : NULL;
    a.extra_indices = given[DXIND_] ? (const int32_t *)bxind.base : NULL;
    a.extra_topk_length = given[DXTL_] ? (const int32_t *)(xtlm + s.mis[DXTL_]) : NULL;
    a.out = given[DOUT_] ? bo.base : NULL;
    a.lse = given[DLSE_] ? (float *)bl.base : NULL;
    const size_t alloc = s.args_size < sizeof(size_t) ? sizeof(size_t)
                       : s.args_size > sizeof a + 8 ? sizeof a + 8 : s.args_size;
    uint8_t *amem = (uint8_t *)calloc(1, alloc);
    memcpy(amem, &a, alloc < sizeof a ? alloc : sizeof a);
    /* workspace: optional on the CPU (key splits of calls with few row tiles). 0: the plan's
     * size, NaN-filled; anything smaller must be ignored: 1 / 3 NULL, 2 a garbage pointer one
     * byte short (never dereferenced) */
    void *ws = NULL, *ws_own = NULL;
    size_t ws_bytes = 0;
    if (s.ws_kind == 0 && wsb > 0) {
        if (!(ws_own = malloc(wsb))) FAIL("malloc workspace");
        memset(ws_own, 0xff, wsb);
        ws = ws_own;
        ws_bytes = wsb;
    } else if (s.ws_kind == 2) {
        ws = (void *)(uintptr_t)0x1000;
        ws_bytes = wsb > 0 ? wsb - 1 : 0;
    }
    st = mla_sparse_decode(plan, s.null_args ? NULL : (const mla_sparse_decode_args *)amem, ws, ws_bytes,
                           s.stream_bad ? (struct CUstream_st *)(uintptr_t)0x40 : NULL);
    free(ws_own);
    if (getenv("MLA_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_sparse decode: b=%lld s_q=%lld h_q=%lld format=%d topk=%lld extra_topk=%lld "
                "page=%lld pages=%lld verdict=%d -> %s\n", (long long)e.b, (long long)e.s_q,
                (long long)e.h_q, (int)e.format, (long long)e.topk, (long long)e.extra_topk,
                (long long)e.page_size, (long long)x->num_pages, verdict, mla_status_string(st));
    if (verdict == V_FAIL || (verdict == V_EITHER && st != MLA_OK)) {
        expect_failure(st, "mla_sparse_decode", 0);
        check_untouched(&bo, 0xA5, "out");
        check_untouched(&bl, 0x5A, "lse");
    } else {
        if (st != MLA_OK) FAIL("mla_sparse_decode failed on a valid input: %s", mla_status_string(st));
        const float req = x->softmax_scale;
        const double scale = req > 0.0f && isfinite(req) ? (double)req : (double)(float)(1.0 / sqrt((double)e.d_qk));
        uint8_t *wo = (uint8_t *)calloc((size_t)view_elems(&vo), 1), *wl = (uint8_t *)calloc((size_t)view_elems(&vl), 1);
        const int64_t maxk = e.topk + e.extra_topk;
        double *sc = (double *)malloc(sizeof(double) * (size_t)maxk), *o = (double *)malloc(sizeof(double) * 512);
        const uint16_t **rows = (const uint16_t **)malloc(sizeof(void *) * (size_t)maxk);
        double sxy = 0, sxx = 0, syy = 0;
        for (int64_t i = 0; i < e.b; i++) {
            int64_t n = e.topk, xn = e.extra_topk;
            if (given[DTL_]) n = tl[i] < 0 ? 0 : tl[i] > e.topk ? e.topk : tl[i];
            if (extra && given[DXTL_]) xn = xtl[i] < 0 ? 0 : xtl[i] > e.extra_topk ? e.extra_topk : xtl[i];
            for (int64_t j = 0; j < e.s_q; j++) {
                int64_t nk = 0;
                for (int64_t k = 0; k < n; k++) {
                    int32_t pos;
                    memcpy(&pos, (uint8_t *)bind.base + 4 * (i * vind.stride[0] + j * vind.stride[1] + k), 4);
                    if (pos >= 0 && pos < npos) rows[nk++] = deq + (int64_t)pos * e.d_qk;
                }
                for (int64_t k = 0; extra && k < xn; k++) {
                    int32_t pos;
                    memcpy(&pos, (uint8_t *)bxind.base + 4 * (i * vxind.stride[0] + j * vxind.stride[1] + k), 4);
                    if (pos >= 0 && pos < xnpos) rows[nk++] = xdeq + (int64_t)pos * e.d_qk;
                }
                for (int64_t h = 0; h < e.h_q; h++) {
                    const int64_t qo = i * vq.stride[0] + j * vq.stride[1] + h * vq.stride[2];
                    double mx = -INFINITY, sum = 0, lse;
                    for (int64_t k = 0; k < nk; k++) {
                        double acc = 0;
                        for (int64_t d = 0; d < e.d_qk; d++) acc += elem_at_bf16(&bq, qo + d) * bf16_to_double(rows[k][d]);
                        sc[k] = acc * scale;
                        if (sc[k] > mx) mx = sc[k];
                    }
                    for (int d = 0; d < 512; d++) o[d] = 0;
                    if (nk == 0) lse = INFINITY;
                    else {
                        for (int64_t k = 0; k < nk; k++) {
                            const double p = exp(sc[k] - mx);
                            sum += p;
                            for (int d = 0; d < 512; d++) o[d] += p * bf16_to_double(rows[k][d]);
                        }
                        lse = mx + log(sum);
                        double f = 1.0 / sum;
                        if (given[DSINK_]) {
                            const double sk = sink[h];
                            f *= isnan(sk) ? NAN : sk == INFINITY ? 0.0 : 1.0 / (1.0 + exp(sk - lse));
                        }
                        for (int d = 0; d < 512; d++) o[d] *= f;
                    }
                    const int64_t oo = i * vo.stride[0] + j * vo.stride[1] + h * vo.stride[2];
                    for (int d = 0; d < 512; d++) {
                        const double got = elem_at_bf16(&bo, oo + d);
                        if (!close_enough(got, o[d], 8e-4, 2.01 / 128))
                            FAIL("sparse decode out[%lld][%lld][%lld][%d] = %.8g, reference %.8g (%lld keys)",
                                 (long long)i, (long long)j, (long long)h, d, got, o[d], (long long)nk);
                        if (isfinite(got) && isfinite(o[d])) { sxy += got * o[d]; sxx += got * got; syy += o[d] * o[d]; }
                        wo[oo + d - vo.lo] = 1;
                    }
                    const int64_t lo = i * vl.stride[0] + h * vl.stride[1] + j * vl.stride[2];
                    const double gl = ((const float *)bl.base)[lo];
                    if (!close_enough(gl, lse, 1e-6, 8.01 / 65536))
                        FAIL("sparse decode lse[%lld][%lld][%lld] = %.9g, reference %.9g", (long long)i, (long long)h, (long long)j, gl, lse);
                    wl[lo - vl.lo] = 1;
                }
            }
        }
        if (sxx + syy > 0 && 1.0 - 2.0 * sxy / (sxx + syy) > 5e-6)
            FAIL("sparse decode cos-diff %.3g > 5e-6", 1.0 - 2.0 * sxy / (sxx + syy));
        check_written(&bo, wo, view_elems(&vo), 2, 0xA5, "out");
        check_written(&bl, wl, view_elems(&vl), 4, 0x5A, "lse");
        free(wo); free(wl); free(sc); free(o); free(rows);
    }
    free(amem); free(kmem); free(xkmem); free(deq); free(xdeq);
    free(bq.mem); free(bind.mem); free(bxind.mem); free(bo.mem); free(bl.mem);
    if (mla_sparse_decode_plan_destroy(plan) != MLA_OK) FAIL("sparse plan destroy");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    reader r = {data, size};
    if (size > 0 && (data[0] & 1)) { /* bit 0 of the first byte: sparse decode */
        const uint8_t m0 = rd8(&r);
        run_sparse_decode(&r, m0);
    } else {
        run_prefill(&r);
    }
    return 0;
}

#ifdef MLA_FUZZ_STANDALONE
FZ_REPLAY_MAIN("fuzz_sparse")
#endif
