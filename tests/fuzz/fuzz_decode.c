/* fuzz_decode.c — libFuzzer harness for the C API of mla.c on the CPU device.
 *
 * Build and run: tests/fuzz/run.sh [seconds]   (clang -fsanitize=fuzzer,address,undefined)
 * Replay files without libFuzzer (gcc, valgrind): build with -DMLA_FUZZ_STANDALONE and pass
 * the files (or directories) as arguments.
 *
 * One input = one scenario: a small valid configuration (shape, strides, pages, lengths) read
 * from a 16-byte header, then a list of 3-byte faults that break it (bad shape fields, struct
 * sizes, NULL or unaligned pointers, bad strides, negative/huge lengths, garbage block-table
 * entries inside the used range, bad cu_seqlens_q, special softmax scales, unknown flags, a
 * non-NULL stream, garbage workspaces, NaN/Inf in q or k). The harness then calls
 * plan_create / workspace_size / plan_info / schedule / decode / plan_destroy.
 *
 * The oracle: the harness has its own model of the documented contract (include/mla.h and the
 * rules at the top of src/api.c) and decides for every call whether it MUST succeed or MUST
 * fail (or, for a few layouts the contract leaves to the implementation, may do either).
 *  - a failing call must return the documented status (MLA_ERR_INVALID_ARGUMENT on the CPU;
 *    MLA_ERR_UNSUPPORTED allowed for a CUDA ordinal in a CPU-only build), leave a non-empty
 *    mla_last_error(), and write nothing: out and lse keep their sentinel bytes;
 *  - a succeeding decode must match an independent fp64 reference computed here, within the
 *    tolerances of spec §6 (out: abs 8e-4 + rel 2.01/128 per element, cos-diff 5e-6; lse: abs
 *    1e-6 + rel 8.01/65536), with NaN/±inf in the same places, must write exactly the logical
 *    output elements (padding and rows past cu_seqlens_q keep their sentinel), and (when asked)
 *    must give identical bytes when run twice.
 * Every buffer is allocated to exactly the span its declared shape and strides cover, and
 * unused cache rows are NaN, so any over-read trips AddressSanitizer and any read of a row the
 * contract says is unused shows up as a NaN in the result. Any violation aborts (libFuzzer
 * keeps the input as a crash file).
 */
#include "mla.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* ---------------------------------------------------------------------------------------- */
/* The scenario                                                                              */
/* ---------------------------------------------------------------------------------------- */

enum { P_Q, P_K, P_BT, P_SEQ, P_CU, P_OUT, P_LSE, P_NUM };

typedef struct scenario {
    /* calls */
    int device;
    int null_plan_out, null_shape, null_args, null_bytes;
    size_t shape_size, args_size;   /* struct_size the caller claims                       */
    mla_decode_shape shape;         /* the caller's struct (fields as written)             */
    /* args */
    int64_t num_pages, max_pages, bt_stride;
    int64_t q_stride[3], k_stride[3], out_stride[3], lse_stride[3];
    float scale;
    uint32_t flags;
    int stream_bad;
    int ws_kind;
    int null_ptr[P_NUM];
    int mis[P_NUM];                 /* bytes of misalignment                               */
    int varlen;
    int twice;
    /* values */
    int32_t seqlen_fault_req, seqlen_fault_val, has_seqlen_fault;
    int bt_fault, bt_fault_sel;  int32_t bt_fault_val;
    int cu_fault, cu_fault_idx;  int32_t cu_fault_val;
    int q_special, q_special_sel;
    int k_special, k_special_sel;
    /* dense FP8 (shape kv_dtype / q_dtype, args descale_q / descale_k) */
    int has_dq, has_dk;             /* descale pointers passed (non-NULL)                  */
    int mis_dq, mis_dk;             /* bytes of misalignment                               */
    float dq, dk;                   /* their values                                        */
} scenario;

static const float DESCALES[8] = {1.0f, 0.5f, 2.0f, 0.25f, 1.5f, NAN, 0.0f, -1.0f};
static const mla_dtype DTYPE_POOL[8] = {MLA_DTYPE_INVALID, MLA_DTYPE_BF16, MLA_DTYPE_FP16,
                                        MLA_DTYPE_FP32, MLA_DTYPE_INT32, MLA_DTYPE_FP8_E4M3,
                                        MLA_DTYPE_UINT8, (mla_dtype)77};

static const int64_t PAGE_SIZES[16] = {1, 2, 3, 4, 5, 7, 8, 16, 16, 16, 32, 64, 1, 2, 16, 9};

static const int64_t I64_POOL[16] = {0, -1, INT64_MIN, INT64_MAX, 1ll << 31, (1ll << 31) - 1,
                                     1ll << 40, 3, 63, 577, 511, 1024, 16, 100000, 2, 64};
static const int32_t I32_POOL[8] = {-1, 0, 2, 7, INT32_MIN, INT32_MAX, 100000, 257};
static const float SCALES[8] = {0.0f, -1.0f, NAN, INFINITY, -INFINITY, 1e-30f, 0.5f, 0.0417f};


static void apply_fault(scenario *s, int kind, uint8_t a, uint8_t b)
{
    mla_decode_shape *sh = &s->shape;
    switch (kind) {
    case 0: /* a shape field */
        switch (a % 10) {
        case 0: sh->b = I64_POOL[b % 16]; break;
        case 1: sh->s_q = I64_POOL[b % 16]; break;
        case 2: sh->h_q = I64_POOL[b % 16]; break;
        case 3: sh->h_kv = I64_POOL[b % 16]; break;
        case 4: sh->d_qk = I64_POOL[b % 16]; break;
        case 5: sh->d_v = I64_POOL[b % 16]; break;
        case 6: sh->page_size = I64_POOL[b % 16]; break;
        case 7: sh->dtype = (mla_dtype)I32_POOL[b % 8]; break;
        case 8: sh->causal = I32_POOL[b % 8]; break;
        case 9: sh->cpu_threads = I32_POOL[b % 8]; break;
        }
        break;
    case 1: { /* shape struct_size */
        static const size_t sz[10] = {0, 8, offsetof(mla_decode_shape, h_q),
                                      offsetof(mla_decode_shape, h_kv),
                                      offsetof(mla_decode_shape, page_size),
                                      offsetof(mla_decode_shape, cpu_threads),
                                      sizeof(mla_decode_shape) + 8, SIZE_MAX,
                                      /* 0.1.0's sizeof (kv_dtype's bytes are its padding) */
                                      (offsetof(mla_decode_shape, kv_dtype) + 7) / 8 * 8,
                                      offsetof(mla_decode_shape, q_dtype)};
        s->shape_size = sz[b % 10];
        break;
    }
    case 2: { /* args struct_size */
        static const size_t sz[8] = {0, 8, offsetof(mla_decode_args, lse),
                                     offsetof(mla_decode_args, lse_stride) + 16,
                                     offsetof(mla_decode_args, softmax_scale),
                                     offsetof(mla_decode_args, flags),
                                     sizeof(mla_decode_args) + 8, SIZE_MAX};
        s->args_size = sz[b % 8];
        break;
    }
    case 3: /* a NULL pointer (P_CU: turns varlen off, which is valid) */
        if (a % 11 < P_NUM) s->null_ptr[a % 11] = 1;
        else if (a % 11 == 7) s->null_plan_out = 1;
        else if (a % 11 == 8) s->null_shape = 1;
        else if (a % 11 == 9) s->null_args = 1;
        else s->null_bytes = 1;
        break;
    case 4: /* misaligned pointer */
        s->mis[a % P_NUM] = 1 + b % 3;
        if (a % P_NUM == P_CU) s->varlen = 1;
        break;
    case 5: { /* a stride */
        const int64_t v = fz_weird_stride(b);
        int t = a % 13;
        int64_t *p = t < 3 ? &s->q_stride[t] : t < 6 ? &s->k_stride[t - 3]
                   : t < 9 ? &s->out_stride[t - 6] : t < 12 ? &s->lse_stride[t - 9] : &s->bt_stride;
        if (a >= 128) *p = sat_add(*p, v >= 0 && v < 32 ? v : 0); /* padding: still valid */
        else *p = v;
        break;
    }
    case 6: s->num_pages = a & 1 ? sat_add(s->num_pages, b % 5) : I64_POOL[b % 16]; break;
    case 7: s->max_pages = a & 1 ? sat_add(s->max_pages, b % 3) : I64_POOL[b % 16]; break;
    case 8: { /* a cache_seqlens value */
        static const int32_t v[6] = {-1, INT32_MIN, -2, INT32_MAX, 1 << 30, 0};
        s->has_seqlen_fault = 1;
        s->seqlen_fault_req = a;
        s->seqlen_fault_val = b % 7 == 6 ? -1000 : v[b % 6];
        if (b % 7 == 4) s->seqlen_fault_val = 0x7fff0000; /* cap + something: too large */
        if (b >= 200) s->seqlen_fault_val = -(int32_t)b; /* negative */
        if (b >= 100 && b < 200) s->seqlen_fault_val = 1 << 20; /* > cap for small configs */
        break;
    }
    case 9: { /* a block_table value inside (or past) the used range */
        static const int32_t v[6] = {-1, INT32_MIN, INT32_MAX, 2147480000, -7, 0};
        s->bt_fault = 1;
        s->bt_fault_sel = a;
        s->bt_fault_val = b % 7 == 6 ? INT32_MIN + 1 : v[b % 6];
        if (b >= 128) s->bt_fault_val = (int32_t)(b - 128); /* maybe == num_pages or beyond */
        break;
    }
    case 10: /* a cu_seqlens_q value */
        s->varlen = 1;
        s->cu_fault = 1;
        s->cu_fault_idx = a;
        s->cu_fault_val = b < 128 ? (int32_t)b - 64 : I32_POOL[b % 8];
        break;
    case 11: s->scale = SCALES[b % 8]; if (a & 1) s->scale = (float)b / 64.0f; break;
    case 12: s->flags = a & 1 ? MLA_DECODE_REUSE_SCHEDULE : (uint32_t)b << (a % 25); break;
    case 13: s->stream_bad = 1; break;
    case 14: s->ws_kind = 1 + b % 6; break;
    case 15: s->q_special = 1 + b % 3; s->q_special_sel = a; break;
    case 16: s->k_special = 1; s->k_special_sel = a; break;
    case 17: s->device = a & 1 ? (int)(b % 4) : (b & 1 ? -2 : INT32_MIN); break;
    case 18: s->varlen = !s->varlen; break;
    case 19: s->twice = 1; break;
    case 20: if (a & 1) s->dq = DESCALES[b % 8]; else s->dk = DESCALES[b % 8]; break;
    case 21: /* descale pointers: present / absent / misaligned */
        switch (a % 6) {
        case 0: s->has_dq = !s->has_dq; break;
        case 1: s->has_dk = !s->has_dk; break;
        case 2: s->mis_dq = 1 + b % 3; s->has_dq = 1; break;
        case 3: s->mis_dk = 1 + b % 3; s->has_dk = 1; break;
        default: s->has_dq = s->has_dk = 1; break;
        }
        break;
    case 22: if (a & 1) sh->q_dtype = DTYPE_POOL[b % 8]; else sh->kv_dtype = DTYPE_POOL[b % 8]; break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The fp64 reference (spec §3 and mla.h, written independently of ref/)                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct model {
    mla_decode_shape sh;         /* effective shape                                          */
    int64_t b, s_q, h_q, h_kv, dqk, dv, ps;
    int fp16;                    /* out (and 16-bit q / k) is fp16, else bf16                */
    int ek_q, ek_k, ek_o;        /* element kinds of q, k_cache, out                         */
    int fp8;                     /* FP8 cache: scores * dq * dk, out * dk                     */
    double dq, dk;               /* effective descales (FP8 cache only)                      */
    view vq, vk, vbt, vout, vlse;
    buf q, k, bt, out, lse;
    int32_t *seq, *cu;
    uint8_t *seq_mem, *cu_mem;
} model;

NO_COV static double elem_at(int ek, const buf *bf, int64_t off)
{
    if (ek == EK_E4M3) return e4m3_to_double(((const uint8_t *)bf->base)[off]);
    uint16_t h;
    memcpy(&h, (const uint8_t *)bf->base + off * 2, 2);
    return ek == EK_FP16 ? fp16_to_double(h) : bf16_to_double(h);
}


/* Checks out/lse against the reference; marks the elements written in `wo` / `wl`. */
NO_COV static void check_results(const model *m, int64_t cap, float scale, uint8_t *wo, uint8_t *wl)
{
    const int64_t hpk = m->h_q / m->h_kv;
    double sxy = 0, sxx = 0, syy = 0;
    double *kd = (double *)malloc(sizeof(double) * (size_t)((cap + 1) * m->dqk));
    double *sc = (double *)malloc(sizeof(double) * (size_t)(cap + 1));
    double *o = (double *)malloc(sizeof(double) * (size_t)m->dv);
    double *qd = (double *)malloc(sizeof(double) * (size_t)m->dqk);
    if (!kd || !sc || !o || !qd) FAIL("malloc");
    for (int64_t i = 0; i < m->b; i++) {
        const int64_t L = m->seq[i];
        const int64_t n = m->cu ? (int64_t)m->cu[i + 1] - m->cu[i] : m->s_q;
        const int32_t *btrow = (const int32_t *)m->bt.base + i * m->vbt.stride[0];
        for (int64_t g = 0; g < m->h_kv; g++) {
            for (int64_t t = 0; t < L; t++) { /* the request's K rows of head g, as fp64 */
                const int64_t koff = (int64_t)btrow[t / m->ps] * m->vk.stride[0] +
                                     (t % m->ps) * m->vk.stride[1] + g * m->vk.stride[2];
                for (int64_t d = 0; d < m->dqk; d++) kd[t * m->dqk + d] = elem_at(m->ek_k, &m->k, koff + d);
            }
            for (int64_t j = 0; j < n; j++) {
                int64_t lim = L;
                if (m->sh.causal) {
                    lim = L - n + j + 1;
                    if (lim < 0) lim = 0;
                    if (lim > L) lim = L;
                }
                for (int64_t h = g * hpk; h < (g + 1) * hpk; h++) {
                    const int64_t qoff = i * m->vq.stride[0] + j * m->vq.stride[1] +
                                         h * m->vq.stride[2];
                    for (int64_t d = 0; d < m->dqk; d++) qd[d] = elem_at(m->ek_q, &m->q, qoff + d);
                    int any_nan = 0, any_pinf = 0;
                    double mx = -INFINITY;
                    for (int64_t t = 0; t < lim; t++) {
                        const double *kr = kd + t * m->dqk;
                        double acc = 0;
                        for (int64_t d = 0; d < m->dqk; d++) acc += qd[d] * kr[d];
                        acc *= scale;
                        if (m->fp8) acc *= m->dq * m->dk;
                        sc[t] = acc;
                        if (isnan(acc)) any_nan = 1;
                        else if (acc == INFINITY) any_pinf = 1;
                        else if (acc > mx) mx = acc;
                    }
                    /* Defined results: a score that is NaN or +inf makes the row NaN (out and
                     * lse); a row with no visible key, or whose scores are all -inf, gets
                     * out = 0 and lse = +inf. */
                    double want_lse;
                    const int row_nan = lim > 0 && (any_nan || any_pinf);
                    const int row_empty = lim == 0 || (!row_nan && mx == -INFINITY);
                    if (row_nan) {
                        for (int64_t d = 0; d < m->dv; d++) o[d] = NAN;
                        want_lse = NAN;
                    } else if (row_empty) {
                        for (int64_t d = 0; d < m->dv; d++) o[d] = 0.0;
                        want_lse = INFINITY;
                    } else {
                        double sum = 0;
                        for (int64_t d = 0; d < m->dv; d++) o[d] = 0;
                        for (int64_t t = 0; t < lim; t++) {
                            const double p = exp(sc[t] - mx);
                            if (p == 0) continue;
                            sum += p;
                            const double *vr = kd + t * m->dqk;
                            for (int64_t d = 0; d < m->dv; d++) o[d] += p * vr[d];
                        }
                        for (int64_t d = 0; d < m->dv; d++) o[d] /= sum;
                        if (m->fp8)
                            for (int64_t d = 0; d < m->dv; d++) o[d] *= m->dk;
                        want_lse = mx + log(sum);
                    }
                    const int64_t ooff = i * m->vout.stride[0] + j * m->vout.stride[1] +
                                         h * m->vout.stride[2];
                    for (int64_t d = 0; d < m->dv; d++) {
                        const double got = elem_at(m->ek_o, &m->out, ooff + d);
                        if (!close_enough(got, o[d], 8e-4, 2.01 / 128))
                            FAIL("out[%lld][%lld][%lld][%lld] = %.8g, reference %.8g (L=%lld "
                                 "visible=%lld)",
                                 (long long)i, (long long)j, (long long)h, (long long)d, got, o[d],
                                 (long long)L, (long long)lim);
                        if (isfinite(got) && isfinite(o[d])) {
                            sxy += got * o[d]; sxx += got * got; syy += o[d] * o[d];
                        }
                        wo[ooff + d - m->vout.lo] = 1;
                    }
                    const int64_t loff = i * m->vlse.stride[0] + h * m->vlse.stride[1] +
                                         j * m->vlse.stride[2];
                    const double got_lse = ((const float *)m->lse.base)[loff];
                    if (!close_enough(got_lse, want_lse, 1e-6, 8.01 / 65536))
                        FAIL("lse[%lld][%lld][%lld] = %.9g, reference %.9g", (long long)i,
                             (long long)h, (long long)j, got_lse, want_lse);
                    wl[loff - m->vlse.lo] = 1;
                }
            }
        }
    }
    if (sxx + syy > 0) {
        const double cosdiff = 1.0 - 2.0 * sxy / (sxx + syy);
        if (cosdiff > 5e-6) FAIL("cos-diff %.3g > 5e-6", cosdiff);
    }
    free(kd); free(sc); free(o); free(qd);
}

/* ---------------------------------------------------------------------------------------- */
/* One input                                                                                 */
/* ---------------------------------------------------------------------------------------- */



/* Decodes the input into a scenario (see the header comment for the format). */
static void decode_input(scenario *s, reader *r)
{
    memset(s, 0, sizeof *s);
    const uint8_t m0 = rd8(r);
    s->varlen = m0 & 1;
    s->twice = (m0 >> 1) & 1;
    s->device = MLA_DEVICE_CPU;
    mla_decode_shape *sh = &s->shape;
    *sh = mla_decode_shape_default();
    sh->b = 1 + rd8(r) % 3;
    sh->s_q = 1 + rd8(r) % 3;
    sh->h_kv = 1 + rd8(r) % 2;
    sh->h_q = sh->h_kv * (1 + rd8(r) % 3);
    const uint8_t m5 = rd8(r);
    sh->d_qk = m5 & 1 ? 512 : 576;
    sh->dtype = m5 & 2 ? MLA_DTYPE_FP16 : MLA_DTYPE_BF16;
    sh->causal = (m5 >> 2) & 1;
    sh->cpu_threads = (m5 >> 3) & 3;
    switch ((m5 >> 5) & 3) { /* dense FP8: 1 = FP8 cache, 2 = FP8 cache and q, 3 = explicit dtype */
    case 1: sh->kv_dtype = MLA_DTYPE_FP8_E4M3; s->has_dk = 1; break;
    case 2: sh->kv_dtype = sh->q_dtype = MLA_DTYPE_FP8_E4M3; s->has_dk = s->has_dq = 1; break;
    case 3: sh->kv_dtype = sh->q_dtype = sh->dtype; break;
    }
    s->dq = s->dk = 1.0f;
    sh->page_size = PAGE_SIZES[rd8(r) % 16];
    s->num_pages = 1 + rd8(r) % 8;
    s->max_pages = 1 + rd8(r) % 4;
    const uint8_t pad = rd8(r);
    const uint8_t perm = rd8(r);
    if ((perm & 16) && sh->kv_dtype == MLA_DTYPE_FP8_E4M3) s->has_dq = 1; /* optional for 16-bit q */
    const uint8_t sc = rd8(r);
    rng_state = rd32(r);
    s->scale = sc < 128 ? 0.0f : sc < 200 ? (float)(sc - 120) / 64.0f : SCALES[sc % 8];
    s->shape_size = sizeof(mla_decode_shape);
    s->args_size = sizeof(mla_decode_args);

    /* valid default layouts with optional padding / permutation */
    const int64_t dqk = sh->d_qk;
    const int64_t p0 = pad & 1 ? 64 : 0, p1 = pad & 2 ? 8 : 0, p2 = pad & 4 ? 3 : 0;
    s->q_stride[2] = dqk + p2;
    s->q_stride[1] = sh->h_q * s->q_stride[2] + p1;
    s->q_stride[0] = sh->s_q * s->q_stride[1] + p0;
    if (perm & 1) { /* q as [s_q, b, h_q, d] in memory */
        s->q_stride[0] = sh->h_q * s->q_stride[2];
        s->q_stride[1] = sh->b * s->q_stride[0];
    }
    s->k_stride[2] = dqk + (pad & 8 ? 64 : 0);
    s->k_stride[1] = sh->h_kv * s->k_stride[2];
    s->k_stride[0] = sh->page_size * s->k_stride[1] + (pad & 16 ? 7 : 0);
    if (perm & 2) { /* cache as [page, h_kv, row, d] */
        s->k_stride[1] = dqk;
        s->k_stride[2] = sh->page_size * dqk;
        s->k_stride[0] = sh->h_kv * s->k_stride[2];
    }
    s->out_stride[2] = 512 + (pad & 32 ? 5 : 0);
    s->out_stride[1] = sh->h_q * s->out_stride[2];
    s->out_stride[0] = sh->s_q * s->out_stride[1];
    if (perm & 4) { /* out as [b, h_q, s_q, d] */
        s->out_stride[1] = 512;
        s->out_stride[2] = sh->s_q * 512;
    }
    s->lse_stride[2] = 1;
    s->lse_stride[1] = sh->s_q;
    s->lse_stride[0] = sh->h_q * sh->s_q + (pad & 64 ? 2 : 0);
    if (perm & 8) { /* lse as [b, s_q, h_q] in memory (FlashMLA's transposed lse) */
        s->lse_stride[1] = 1;
        s->lse_stride[2] = sh->h_q;
    }
    s->bt_stride = s->max_pages + (pad & 128 ? 3 : 0);

    /* faults */
    int nf = 0;
    while (r->n >= 3 && nf < 8) {
        const uint8_t k = rd8(r), a = rd8(r), b = rd8(r);
        apply_fault(s, k % 23, a, b);
        nf++;
    }
}

static void run_one(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    scenario s;
    decode_input(&s, &r);

    /* ---- plan creation ------------------------------------------------------------------ */
    size_t shape_alloc = s.shape_size < sizeof(size_t) ? sizeof(size_t)
                       : s.shape_size > sizeof(mla_decode_shape) + 8 ? sizeof(mla_decode_shape) + 8
                       : s.shape_size;
    uint8_t *shape_mem = (uint8_t *)calloc(1, shape_alloc); /* exactly what the caller has */
    if (!shape_mem) FAIL("calloc");
    s.shape.struct_size = s.shape_size;
    memcpy(shape_mem, &s.shape, shape_alloc < sizeof s.shape ? shape_alloc : sizeof s.shape);

    model m;
    memset(&m, 0, sizeof m);
    int unsupported_ok = 0;
    m.sh = mla_decode_shape_default();
    memcpy(&m.sh, &s.shape, s.shape_size < sizeof m.sh ? s.shape_size : sizeof m.sh);
    /* a caller of the 0.1.0 struct (before kv_dtype; its tail padding covers kv_dtype's bytes)
     * never set kv_dtype */
    if (s.shape_size <= (offsetof(mla_decode_shape, kv_dtype) + 7) / 8 * 8) m.sh.kv_dtype = MLA_DTYPE_INVALID;
    const mla_decode_shape *e = &m.sh;
    int size_bad = s.shape_size > sizeof(mla_decode_shape) ||
                   s.shape_size < offsetof(mla_decode_shape, h_q) + sizeof(int64_t);
    int dims_bad = e->b < 1 || e->s_q < 1 || e->h_q < 1 || e->h_kv < 1 || e->page_size < 1 ||
                   e->b > INT32_MAX || e->s_q > INT32_MAX || e->h_q > INT32_MAX ||
                   e->h_kv > INT32_MAX || e->page_size > INT32_MAX;
    int shape_bad = size_bad || dims_bad || e->h_q % e->h_kv != 0 ||
                    (e->d_qk != 576 && e->d_qk != 512) || e->d_v != 512 ||
                    (e->dtype != MLA_DTYPE_BF16 && e->dtype != MLA_DTYPE_FP16) ||
                    (e->causal != 0 && e->causal != 1) || e->cpu_threads < 0 ||
                    e->cpu_threads > 256 || s.device < MLA_DEVICE_CPU || s.null_plan_out ||
                    s.null_shape;
    /* dense FP8: kv_dtype / q_dtype each 0 (= dtype), dtype or e4m3; an e4m3 q needs an e4m3 cache */
    if (e->kv_dtype != MLA_DTYPE_INVALID && e->kv_dtype != e->dtype && e->kv_dtype != MLA_DTYPE_FP8_E4M3)
        shape_bad = 1;
    if (e->q_dtype != MLA_DTYPE_INVALID && e->q_dtype != e->dtype && e->q_dtype != MLA_DTYPE_FP8_E4M3)
        shape_bad = 1;
    if (e->q_dtype == MLA_DTYPE_FP8_E4M3 && e->kv_dtype != MLA_DTYPE_FP8_E4M3) shape_bad = 1;
    if (s.device >= 0) unsupported_ok = 1; /* this harness is built without CUDA */

    mla_decode_plan_t plan = (mla_decode_plan_t)(uintptr_t)0x1; /* must be overwritten */
    /* workspace kind 5: key ranges of one 64-key chunk (the testing hook, read at creation) */
    if (s.ws_kind == 5) setenv("MLA_CPU_SPLIT_CHUNKS", "1", 1);
    mla_status st = mla_decode_plan_create(s.null_plan_out ? NULL : &plan,
                                           s.null_shape ? NULL : (const mla_decode_shape *)shape_mem,
                                           s.device);
    if (s.ws_kind == 5) unsetenv("MLA_CPU_SPLIT_CHUNKS");
    free(shape_mem);
    if (shape_bad || s.device >= 0) {
        expect_failure(st, "mla_decode_plan_create", unsupported_ok);
        if (!s.null_plan_out && plan != NULL) FAIL("*plan is not NULL after a failed create");
        return;
    }
    if (st != MLA_OK) FAIL("mla_decode_plan_create failed on a valid shape: %s", mla_status_string(st));

    /* ---- workspace size, info, schedule --------------------------------------------------- */
    size_t ws_bytes = 12345;
    st = mla_decode_workspace_size(plan, s.null_bytes ? NULL : &ws_bytes);
    if (s.null_bytes) expect_failure(st, "mla_decode_workspace_size(NULL)", 0);
    else {
        /* mla.h: CPU plans report the optional key-split workspace: fewer than 16 row tiles
         * (b x h_kv x ceil(s_q h_q / h_kv / 16)): tiles x 16 rows x min(64, 4096 / (16 tiles))
         * ranges x 514 floats + 64, when that allows 2 ranges; 0 otherwise and where the
         * reference runs (fp16) */
        int64_t tiles; /* saturated: the dims up to 2^31 - 1 each overflow int64 */
        if (__builtin_mul_overflow(e->b, e->h_kv, &tiles) ||
            __builtin_mul_overflow(tiles, (e->s_q * (e->h_q / e->h_kv) + 15) / 16, &tiles))
            tiles = INT64_MAX;
        int64_t smax = tiles < 16 ? 4096 / (tiles * 16) : 0;
        if (smax > 64) smax = 64;
        const size_t want = smax >= 2 ? (size_t)(tiles * 16 * smax) * 514 * 4 + 64 : 0;
        if (st != MLA_OK || (ws_bytes != 0 && ws_bytes != want))
            FAIL("workspace size: %d, %zu bytes (the rule: %zu)", (int)st, ws_bytes, want);
    }
    int dev = 7, parts = 7;
    st = mla_decode_plan_info(plan, &dev, s.null_bytes ? NULL : &parts);
    if (st != MLA_OK || dev != MLA_DEVICE_CPU || (!s.null_bytes && parts != 1))
        FAIL("plan_info: %d device %d parts %d", (int)st, dev, parts);
    if (mla_decode_plan_info(plan, NULL, NULL) != MLA_OK) FAIL("plan_info(NULL, NULL)");

    /* ---- tensors ---------------------------------------------------------------------------- */
    m.b = e->b; m.s_q = e->s_q; m.h_q = e->h_q; m.h_kv = e->h_kv; m.dqk = e->d_qk; m.dv = e->d_v;
    m.ps = e->page_size; m.fp16 = e->dtype == MLA_DTYPE_FP16;
    m.ek_o = ek_of(e->dtype);
    m.ek_q = ek_of(e->q_dtype ? e->q_dtype : e->dtype);
    m.ek_k = ek_of(e->kv_dtype ? e->kv_dtype : e->dtype);
    m.fp8 = e->kv_dtype == MLA_DTYPE_FP8_E4M3;
    const size_t qsz = ek_size(m.ek_q), ksz = ek_size(m.ek_k);
    view *vq = &m.vq, *vk = &m.vk, *vbt = &m.vbt, *vo = &m.vout, *vl = &m.vlse;
    *vq = (view){3, {m.b, m.s_q, m.h_q}, {s.q_stride[0], s.q_stride[1], s.q_stride[2]}, m.dqk, 0, 0, 0};
    *vk = (view){3, {s.num_pages, m.ps, m.h_kv}, {s.k_stride[0], s.k_stride[1], s.k_stride[2]}, m.dqk, 0, 0, 0};
    *vbt = (view){1, {m.b, 1, 1}, {s.bt_stride, 0, 0}, s.max_pages, 0, 0, 0};
    *vo = (view){3, {m.b, m.s_q, m.h_q}, {s.out_stride[0], s.out_stride[1], s.out_stride[2]}, m.dv, 0, 0, 0};
    *vl = (view){3, {m.b, m.h_q, m.s_q}, {s.lse_stride[0], s.lse_stride[1], s.lse_stride[2]}, 1, 0, 0, 0};
    view *vs[5] = {vq, vk, vbt, vo, vl};
    int small = m.b <= 8 && m.s_q <= 8 && m.h_q <= 64 && m.ps <= 128 && s.num_pages >= 1 &&
                s.num_pages <= 64 && s.max_pages >= 1 && s.max_pages <= 64;
    for (int t = 0; t < 5; t++) {
        view_span(vs[t]);
        if (vs[t]->overflow || view_elems(vs[t]) > BIG_ELEMS) small = 0;
    }
    /* keep every input fast: bound the reference's work (b * s_q * h_q * keys * d_qk) */
    if (small && m.b * m.s_q * m.h_q * s.max_pages * m.ps * m.dqk > 16000000) small = 0;

    /* args-level verdict (everything the library can see without reading host values) */
    mla_decode_args a = mla_decode_args_default();
    int args_size_bad = s.args_size > sizeof(mla_decode_args) ||
                        s.args_size < offsetof(mla_decode_args, lse_stride) + 3 * sizeof(int64_t);
    int verdict = V_OK;
    if (args_size_bad || s.null_args || s.stream_bad) verdict = V_FAIL;
    const size_t eff_args = s.args_size < sizeof a ? s.args_size : sizeof a;
    const int flags_seen = eff_args >= offsetof(mla_decode_args, flags) + sizeof(uint32_t);
    const int scale_seen = eff_args >= offsetof(mla_decode_args, softmax_scale) + sizeof(float);
    if (flags_seen && (s.flags & ~(uint32_t)MLA_DECODE_REUSE_SCHEDULE)) verdict = V_FAIL;
    /* pointers: non-NULL (cu_seqlens_q optional), aligned to their element size */
    const size_t esz_of[P_NUM] = {qsz, ksz, 4, 4, 4, 2, 4};
    for (int p = 0; p < P_NUM; p++)
        if (p != P_CU && (s.null_ptr[p] || s.mis[p] % (int)esz_of[p])) verdict = V_FAIL;
    if (s.varlen && !s.null_ptr[P_CU] && s.mis[P_CU]) verdict = V_FAIL;
    /* descales: only with an FP8 cache (then descale_k required, descale_q required for an
     * FP8 q), 4-byte aligned; older callers (args_size before them) pass none */
    const int dq_seen = eff_args >= offsetof(mla_decode_args, descale_q) + sizeof(void *);
    const int dk_seen = eff_args >= offsetof(mla_decode_args, descale_k) + sizeof(void *);
    const int has_dq = dq_seen && s.has_dq, has_dk = dk_seen && s.has_dk;
    if (!m.fp8 && (has_dq || has_dk)) verdict = V_FAIL;
    if (m.fp8 && (!has_dk || s.mis_dk % 4)) verdict = V_FAIL;
    if (m.fp8 && m.ek_q == EK_E4M3 && !has_dq) verdict = V_FAIL;
    if (m.fp8 && has_dq && s.mis_dq % 4) verdict = V_FAIL;
    m.dq = has_dq ? (double)s.dq : 1.0;
    m.dk = (double)s.dk;
    if (s.num_pages < 1 || s.max_pages < 1) verdict = V_FAIL;
    for (int t = 0; t < 5; t++) {
        int v = view_verdict(vs[t], small);
        if (v == V_FAIL) verdict = V_FAIL;
        else if (v == V_EITHER && verdict == V_OK) verdict = V_EITHER;
    }
    const float eff_scale_req = scale_seen ? s.scale : 0.0f;
    const float scale = eff_scale_req > 0.0f && isfinite(eff_scale_req)
                            ? eff_scale_req : (float)(1.0 / sqrt((double)m.dqk));

    if (!small) {
        /* Big scenario: the tensors cannot be allocated. Every pointer points at a small dummy
         * block and the stream is non-NULL, so the call must fail; it exercises the layout
         * arithmetic (overflow checks) without giving the library anything it may read: the
         * CPU path checks the stream before it reads any host value (src/api.c order). */
        static uint64_t dummy[64];
        a.q = a.k_cache = dummy; a.block_table = (const int32_t *)dummy;
        a.cache_seqlens = (const int32_t *)dummy; a.out = dummy; a.lse = (float *)dummy;
        a.num_pages = s.num_pages; a.max_pages = s.max_pages; a.block_table_stride = s.bt_stride;
        memcpy(a.q_stride, s.q_stride, sizeof a.q_stride);
        memcpy(a.k_stride, s.k_stride, sizeof a.k_stride);
        memcpy(a.out_stride, s.out_stride, sizeof a.out_stride);
        memcpy(a.lse_stride, s.lse_stride, sizeof a.lse_stride);
        a.softmax_scale = s.scale;
        a.flags = s.flags;
        st = mla_decode(plan, &a, NULL, 0, (struct CUstream_st *)(uintptr_t)0x40);
        expect_failure(st, "mla_decode (big scenario, non-NULL stream)", 0);
        if (mla_decode_plan_destroy(plan) != MLA_OK) FAIL("destroy");
        return;
    }

    /* allocate: q, k NaN-filled; bt garbage; out/lse sentinel */
    buf_alloc(&m.q, vq, qsz, s.mis[P_Q]);
    buf_alloc(&m.k, vk, ksz, s.mis[P_K]);
    buf_alloc(&m.bt, vbt, 4, s.mis[P_BT]);
    buf_alloc(&m.out, vo, 2, s.mis[P_OUT]);
    buf_alloc(&m.lse, vl, 4, s.mis[P_LSE]);
    for (size_t x = 0; x < m.q.bytes / qsz; x++) put_special(m.q.first + qsz * x, m.ek_q, 1);
    for (size_t x = 0; x < m.k.bytes / ksz; x++) put_special(m.k.first + ksz * x, m.ek_k, 1);
    for (size_t x = 0; x < m.bt.bytes / 4; x++) {
        int32_t g = x & 1 ? 2147480000 : (int32_t)(rng_next() | 0x80000000u);
        memcpy(m.bt.first + 4 * x, &g, 4);
    }
    memset(m.out.first, 0xA5, m.out.bytes);
    memset(m.lse.first, 0x5A, m.lse.bytes);
    /* lengths and cu_seqlens_q: built in aligned arrays (m.seq, m.cu), copied at the end into
     * the blocks handed to the library (which may be misaligned on purpose) */
    m.seq = (int32_t *)calloc((size_t)m.b, 4);
    m.seq_mem = (uint8_t *)malloc((size_t)m.b * 4 + (size_t)s.mis[P_SEQ]);
    m.cu = NULL;
    m.cu_mem = NULL;
    if (s.varlen && !s.null_ptr[P_CU]) {
        m.cu = (int32_t *)calloc((size_t)(m.b + 1), 4);
        m.cu_mem = (uint8_t *)malloc((size_t)(m.b + 1) * 4 + (size_t)s.mis[P_CU]);
    }
    /* Every value is filled whatever the verdict, so an expected failure can only come from
     * the fault under test (never from garbage lengths). */
    int values_bad = 0;
    {
        const int64_t cap = s.max_pages * m.ps;
        uint8_t *btb = (uint8_t *)m.bt.base;
#define BT_SET(idx, v) do { int32_t v_ = (int32_t)(v); memcpy(btb + 4 * (idx), &v_, 4); } while (0)
        for (int64_t i = 0; i < m.b; i++) {
            int64_t L = rng_int(0, cap);
            if (rng_next() % 4 == 0) L = rng_next() & 1 ? 0 : cap;
            m.seq[i] = (int32_t)L;
            for (int64_t c = 0; c < (L + m.ps - 1) / m.ps; c++)
                BT_SET(i * s.bt_stride + c, rng_int(0, s.num_pages - 1));
        }
        if (m.cu) {
            m.cu[0] = rng_next() % 4 == 0 ? 5 : 0;
            for (int64_t i = 0; i < m.b; i++) m.cu[i + 1] = m.cu[i] + (int32_t)rng_int(0, m.s_q);
        }
        if (s.has_seqlen_fault) {
            const int64_t i = s.seqlen_fault_req % m.b;
            m.seq[i] = s.seqlen_fault_val;
            if (s.seqlen_fault_val < 0 || s.seqlen_fault_val > cap) values_bad = 1;
            else /* a valid length: fill the block-table entries it now uses */
                for (int64_t c = 0; c < (m.seq[i] + m.ps - 1) / m.ps; c++)
                    BT_SET(i * s.bt_stride + c, rng_int(0, s.num_pages - 1));
        }
        if (s.bt_fault) {
            const int64_t i = (s.bt_fault_sel >> 2) % m.b, c = (s.bt_fault_sel & 3) % s.max_pages;
            BT_SET(i * s.bt_stride + c, s.bt_fault_val);
            const int64_t L = m.seq[i];
            const int in_use = L >= 0 && L <= cap && c < (L + m.ps - 1) / m.ps;
            if (in_use && (s.bt_fault_val < 0 || s.bt_fault_val >= s.num_pages)) values_bad = 1;
        }
#undef BT_SET
        if (m.cu && s.cu_fault) m.cu[s.cu_fault_idx % (m.b + 1)] = s.cu_fault_val;
        if (m.cu)
            for (int64_t i = 0; i < m.b; i++) {
                const int64_t d = (int64_t)m.cu[i + 1] - m.cu[i];
                if (d < 0 || d > m.s_q) values_bad = 1;
            }
        for (int64_t i = 0; i < m.b && !values_bad; i++)
            if (m.seq[i] < 0 || m.seq[i] > cap) values_bad = 1;
        /* every used entry, after all writes (rows of an overlapping block table share them) */
        for (int64_t i = 0; i < m.b && !values_bad; i++)
            for (int64_t c = 0; c < (m.seq[i] + m.ps - 1) / m.ps; c++) {
                int32_t pg;
                memcpy(&pg, btb + 4 * (i * s.bt_stride + c), 4);
                if (pg < 0 || pg >= s.num_pages) values_bad = 1;
            }
        /* data: q (all logical rows; rows past cu lengths stay NaN: never read), k rows in use */
        for (int64_t i = 0; i < m.b; i++) {
            const int64_t n = m.cu ? (int64_t)m.cu[i + 1] - m.cu[i] : m.s_q;
            for (int64_t j = 0; j < m.s_q; j++)
                for (int64_t h = 0; h < m.h_q; h++) {
                    if (j >= n && !values_bad) continue;
                    const int64_t off = i * vq->stride[0] + j * vq->stride[1] + h * vq->stride[2];
                    for (int64_t d = 0; d < m.dqk; d++)
                        put_small((uint8_t *)m.q.base + (int64_t)qsz * (off + d), m.ek_q);
                }
        }
        if (!values_bad)
            for (int64_t i = 0; i < m.b; i++)
                for (int64_t t = 0; t < m.seq[i]; t++) {
                    int32_t page;
                    memcpy(&page, btb + 4 * (i * s.bt_stride + t / m.ps), 4);
                    for (int64_t g = 0; g < m.h_kv; g++) {
                        const int64_t off = page * vk->stride[0] + (t % m.ps) * vk->stride[1] +
                                            g * vk->stride[2];
                        for (int64_t d = 0; d < m.dqk; d++)
                            put_small((uint8_t *)m.k.base + (int64_t)ksz * (off + d), m.ek_k);
                    }
                }
        if (!values_bad && s.q_special) {
            const uint8_t q = s.q_special_sel;
            const int64_t i = q % m.b, j = (q >> 2) % m.s_q, h = (q >> 4) % m.h_q;
            const int64_t d = (int64_t)(rng_next() % (uint64_t)m.dqk);
            const int64_t off = i * vq->stride[0] + j * vq->stride[1] + h * vq->stride[2] + d;
            put_special((uint8_t *)m.q.base + (int64_t)qsz * off, m.ek_q, s.q_special);
        }
        if (!values_bad && s.k_special) {
            const int64_t i = s.k_special_sel % m.b;
            if (m.seq[i] > 0) {
                const int64_t t = (int64_t)(rng_next() % (uint64_t)m.seq[i]);
                const int64_t g = (s.k_special_sel >> 2) % m.h_kv;
                int32_t page;
                memcpy(&page, btb + 4 * (i * s.bt_stride + t / m.ps), 4);
                const int64_t off = page * vk->stride[0] + (t % m.ps) * vk->stride[1] +
                                    g * vk->stride[2] + (int64_t)(rng_next() % (uint64_t)m.dqk);
                put_special((uint8_t *)m.k.base + (int64_t)ksz * off, m.ek_k, 1);
            }
        }
    }
    memcpy(m.seq_mem + s.mis[P_SEQ], m.seq, (size_t)m.b * 4);
    if (m.cu) memcpy(m.cu_mem + s.mis[P_CU], m.cu, (size_t)(m.b + 1) * 4);
    if (values_bad) verdict = V_FAIL;
    /* descales: float32 [1] blocks (misaligned on request) */
    uint8_t dq_mem[8], dk_mem[8];
    {
        const float dq = s.dq, dk = s.dk;
        memcpy(dq_mem + s.mis_dq, &dq, 4);
        memcpy(dk_mem + s.mis_dk, &dk, 4);
    }
    if (getenv("MLA_FUZZ_VERBOSE")) {
        fprintf(stderr, "fuzz_decode: b=%lld s_q=%lld h_q=%lld h_kv=%lld d_qk=%lld page=%lld out %s "
                "q/k kinds %d/%d%s num_pages=%lld max_pages=%lld varlen=%d dq=%g(%d) dk=%g(%d) "
                "verdict=%d seqlens:",
                (long long)m.b, (long long)m.s_q, (long long)m.h_q, (long long)m.h_kv,
                (long long)m.dqk, (long long)m.ps, m.fp16 ? "fp16" : "bf16", m.ek_q, m.ek_k,
                e->causal ? " causal" : "", (long long)s.num_pages, (long long)s.max_pages,
                m.cu != NULL, (double)s.dq, has_dq, (double)s.dk, has_dk, verdict);
        for (int64_t i = 0; i < m.b; i++) fprintf(stderr, " %d", m.seq[i]);
        fprintf(stderr, "\n");
    }

    /* args struct: exactly args_size bytes (at least the struct_size field) */
    a.q = s.null_ptr[P_Q] ? NULL : m.q.base;
    a.k_cache = s.null_ptr[P_K] ? NULL : m.k.base;
    a.block_table = s.null_ptr[P_BT] ? NULL : (const int32_t *)m.bt.base;
    a.cache_seqlens = s.null_ptr[P_SEQ] ? NULL : (const int32_t *)(m.seq_mem + s.mis[P_SEQ]);
    a.cu_seqlens_q = m.cu ? (const int32_t *)(m.cu_mem + s.mis[P_CU]) : NULL;
    a.out = s.null_ptr[P_OUT] ? NULL : m.out.base;
    a.lse = s.null_ptr[P_LSE] ? NULL : (float *)m.lse.base;
    a.num_pages = s.num_pages;
    a.max_pages = s.max_pages;
    a.block_table_stride = s.bt_stride;
    memcpy(a.q_stride, s.q_stride, sizeof a.q_stride);
    memcpy(a.k_stride, s.k_stride, sizeof a.k_stride);
    memcpy(a.out_stride, s.out_stride, sizeof a.out_stride);
    memcpy(a.lse_stride, s.lse_stride, sizeof a.lse_stride);
    a.softmax_scale = s.scale;
    a.flags = s.flags;
    a.descale_q = s.has_dq ? (const float *)(dq_mem + s.mis_dq) : NULL;
    a.descale_k = s.has_dk ? (const float *)(dk_mem + s.mis_dk) : NULL;
    a.struct_size = s.args_size;
    size_t args_alloc = s.args_size < sizeof(size_t) ? sizeof(size_t)
                      : s.args_size > sizeof a + 8 ? sizeof a + 8 : s.args_size;
    uint8_t *args_mem = (uint8_t *)calloc(1, args_alloc);
    if (!args_mem) FAIL("calloc");
    memcpy(args_mem, &a, args_alloc < sizeof a ? args_alloc : sizeof a);

    /* workspace: optional on the CPU (key splits of calls with few row tiles). 0 / 5: the plan's
     * size, NaN-filled (5: one-chunk ranges); anything smaller must be ignored: 512 bytes (less
     * than any nonzero size), a garbage pointer one byte short, NULL */
    static uint8_t wsbuf[512];
    void *ws = NULL, *ws_own = NULL;
    size_t wsb = 0;
    switch (s.ws_kind) {
    case 0:
    case 5:
        if (ws_bytes > 0 && !s.null_bytes) {
            if (!(ws_own = malloc(ws_bytes))) FAIL("malloc workspace");
            memset(ws_own, 0xff, ws_bytes);
            ws = ws_own;
            wsb = ws_bytes;
        }
        break;
    case 1: ws = NULL; wsb = SIZE_MAX; break;
    case 2: ws = wsbuf + 1; wsb = 3; break;
    case 3: ws = wsbuf; wsb = sizeof wsbuf; break;
    case 4: /* never dereferenced */
        ws = (void *)(uintptr_t)0x1000;
        wsb = ws_bytes > 0 && !s.null_bytes ? ws_bytes - 1 : (size_t)1 << 20;
        break;
    case 6: ws = NULL; wsb = 0; break;
    }
    memset(wsbuf, 0x3c, sizeof wsbuf);

    struct CUstream_st *stream = s.stream_bad ? (struct CUstream_st *)(uintptr_t)0x40 : NULL;
    st = mla_decode_schedule(plan, a.cache_seqlens, ws, wsb, stream); /* no-op on the CPU */
    if (s.stream_bad) expect_failure(st, "mla_decode_schedule (non-NULL stream)", 0);
    else if (st != MLA_OK) FAIL("mla_decode_schedule on a CPU plan: %s", mla_status_string(st));

    st = mla_decode(plan, s.null_args ? NULL : (const mla_decode_args *)args_mem, ws, wsb, stream);
    for (size_t x = 0; x < sizeof wsbuf; x++)
        if (wsbuf[x] != 0x3c) FAIL("the CPU path wrote into the workspace");
    if (verdict == V_FAIL || (verdict == V_EITHER && st != MLA_OK)) {
        expect_failure(st, "mla_decode", 0);
        check_untouched(&m.out, 0xA5, "out");
        check_untouched(&m.lse, 0x5A, "lse");
    } else {
        if (st != MLA_OK) FAIL("mla_decode failed on a valid input: %s", mla_status_string(st));
        uint8_t *wo = (uint8_t *)calloc((size_t)view_elems(vo), 1);
        uint8_t *wl = (uint8_t *)calloc((size_t)view_elems(vl), 1);
        if (!wo || !wl) FAIL("calloc");
        check_results(&m, s.max_pages * m.ps, scale, wo, wl);
        for (int64_t x = 0; x < view_elems(vo); x++) {
            if (wo[x]) continue;
            if (m.out.first[2 * x] != 0xA5 || m.out.first[2 * x + 1] != 0xA5)
                FAIL("out element at offset %lld is not a logical output but was written",
                     (long long)(x + vo->lo));
        }
        for (int64_t x = 0; x < view_elems(vl); x++) {
            if (wl[x]) continue;
            for (int y = 0; y < 4; y++)
                if (m.lse.first[4 * x + y] != 0x5A)
                    FAIL("lse element at offset %lld is not a logical output but was written",
                         (long long)(x + vl->lo));
        }
        free(wo);
        free(wl);
        if (s.twice) { /* determinism: the same bytes again */
            uint8_t *o1 = (uint8_t *)malloc(m.out.bytes), *l1 = (uint8_t *)malloc(m.lse.bytes);
            if (!o1 || !l1) FAIL("malloc");
            memcpy(o1, m.out.first, m.out.bytes);
            memcpy(l1, m.lse.first, m.lse.bytes);
            memset(m.out.first, 0xA5, m.out.bytes);
            memset(m.lse.first, 0x5A, m.lse.bytes);
            st = mla_decode(plan, (const mla_decode_args *)args_mem, ws, wsb, stream);
            if (st != MLA_OK) FAIL("second mla_decode failed");
            if (memcmp(o1, m.out.first, m.out.bytes) || memcmp(l1, m.lse.first, m.lse.bytes))
                FAIL("two identical calls gave different bytes");
            free(o1);
            free(l1);
        }
    }
    free(args_mem);
    free(ws_own);
    free(m.q.mem); free(m.k.mem); free(m.bt.mem); free(m.out.mem); free(m.lse.mem);
    free(m.seq_mem); free(m.cu_mem); free(m.seq); free(m.cu);
    if (mla_decode_plan_destroy(plan) != MLA_OK) FAIL("destroy");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    run_one(data, size);
    return 0;
}

#ifdef MLA_FUZZ_STANDALONE
FZ_REPLAY_MAIN("fuzz_decode")
#endif
