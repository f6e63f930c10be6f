/* mla_ref.c — dense MLA decode on the CPU (see mla_ref.h for the contract).
 *
 * Structure
 *   A work item is (request i, kv head g, block of up to R = MLA_REF_ROWS rows). The rows of a
 *   (request, kv head) group are its n_i query tokens times the h_q/h_kv query heads that share
 *   kv head g, numbered r = j * hpk + hh (j = query token, hh = head within the group), which is
 *   FlashMLA's packing of s_q and heads into one GEMM M dimension.
 *   For each item: load the R query rows as fp32, transposed (qt[d][r]); then walk the visible
 *   keys in chunks of C = MLA_REF_KEYS: convert each K row to fp32 once, compute the R x C
 *   scores, do the online-softmax update (log2 domain) and accumulate P @ V into fp32 rows.
 *   The inner loops use GNU C vectors of 8 floats with register blocking (scores: 16 rows x
 *   2 or 4 keys per q-column load; P @ V: 32 output columns x 1 or 2 rows kept in registers
 *   across the keys), no horizontal reductions and no -ffast-math: every sum runs in order.
 *   Threads take items from an atomic counter (mla_cpu_parallel); results do not depend on
 *   who computes what.
 */
#include "mla_ref.h"
#include "mla_fp8.h" /* e4m3 decoding (dense FP8 cache: shape kv_dtype / q_dtype) */

#include <math.h>

#define R MLA_REF_ROWS
#define C MLA_REF_KEYS
#define DMAX MLA_REF_MAX_D
#define DV 512

/* On x86-64 (gcc or clang) the item kernel is compiled twice: for the baseline (SSE2) and for
 * x86-64-v3 (AVX2), picked at run time with __builtin_cpu_supports. Both do the same float
 * operations in the same order (gcc's ISO C mode keeps -ffp-contract=off), so on one machine
 * the bytes do not depend on which one runs. MLA_REF_NO_DISPATCH builds the baseline only. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(MLA_REF_NO_DISPATCH)
#define MLA_REF_DISPATCH 1
#else
#define MLA_REF_DISPATCH 0
#endif

typedef struct ref_job {
    const mla_decode_shape *shape;
    const mla_decode_args *args;
    mla_dense_numerics nm; /* dtypes and scales (mla_ref.h) */
    float e4m3[256];       /* e4m3 code -> value (filled when q or k_cache is FP8)   */
    int64_t hpk;           /* query heads per kv head */
    int64_t rows_max;      /* s_q * hpk: rows of a group at most */
    int64_t nblk;          /* ceil(rows_max / R): items per (request, kv head) */
    int64_t items;         /* b * h_kv * nblk */
    void (*run)(const struct ref_job *job, int64_t w); /* the item kernel for this CPU */
} ref_job;

/* Helpers are always inlined, so each is compiled for the target of the kernel that uses it. */
#define INL static inline __attribute__((always_inline))

/* Converts n elements (n a multiple of 64, <= DMAX) of a bf16/fp16 row, or of a row of
 * float8_e4m3fn codes (exact: the descales are applied to the scores and the output), to fp32. */
INL void load_row(float *restrict dst, const void *restrict src, int64_t n, mla_dtype dt,
                  const float *restrict e4m3)
{
    if (dt == MLA_DTYPE_BF16) {
        const uint16_t *h = (const uint16_t *)src;
        for (int64_t d = 0; d < n; d++) dst[d] = mla_bf16_to_float(h[d]);
    } else if (dt == MLA_DTYPE_FP16) {
        const uint16_t *h = (const uint16_t *)src;
        for (int64_t d = 0; d < n; d++) dst[d] = mla_fp16_to_float(h[d]);
    } else {
        const uint8_t *c = (const uint8_t *)src;
        for (int64_t d = 0; d < n; d++) dst[d] = e4m3[c[d]];
    }
}

/* GNU C vectors: v8f (8 floats) is one register in the AVX2 kernel and is used only there
 * (gcc keeps vectors wider than the hardware in memory); v4f (4 floats: SSE2, NEON) in the
 * baseline kernel. v8u / v4u are the unaligned, may-alias twins for loads and stores. */
typedef float v8f __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v4f __attribute__((vector_size(16)));
typedef float v4u __attribute__((vector_size(16), aligned(4), may_alias));
#define ld8(p) (*(const v8u *)(p))
#define st8(p, v) (*(v8u *)(p) = (v))
#define ld4(p) (*(const v4u *)(p))
#define st4(p, v) (*(v4u *)(p) = (v))

#if R != 16
#error "the score kernels assume MLA_REF_ROWS == 16 (2 v8f or 4 v4f per key)"
#endif

/* Baseline scores: 2 keys x 16 rows = 8 v4f accumulators; in-order sums over d. */
INL void scores4(float s[C][R], const float qt[DMAX][R], const float kb[C][DMAX], int nk,
                 int64_t dqk, float scale)
{
    int k = 0;
    for (; k + 2 <= nk; k += 2) {
        const float *k0 = kb[k], *k1 = kb[k + 1];
        v4f a0 = {0}, b0 = {0}, c0 = {0}, d0 = {0}, a1 = {0}, b1 = {0}, c1 = {0}, d1 = {0};
        for (int64_t d = 0; d < dqk; d++) {
            const v4f qa = ld4(qt[d]), qb = ld4(qt[d] + 4), qc = ld4(qt[d] + 8), qd = ld4(qt[d] + 12);
            const float x0 = k0[d], x1 = k1[d];
            a0 += qa * x0; b0 += qb * x0; c0 += qc * x0; d0 += qd * x0;
            a1 += qa * x1; b1 += qb * x1; c1 += qc * x1; d1 += qd * x1;
        }
        st4(s[k], a0 * scale); st4(s[k] + 4, b0 * scale); st4(s[k] + 8, c0 * scale); st4(s[k] + 12, d0 * scale);
        st4(s[k + 1], a1 * scale); st4(s[k + 1] + 4, b1 * scale); st4(s[k + 1] + 8, c1 * scale); st4(s[k + 1] + 12, d1 * scale);
    }
    for (; k < nk; k++) {
        const float *k0 = kb[k];
        v4f a0 = {0}, b0 = {0}, c0 = {0}, d0 = {0};
        for (int64_t d = 0; d < dqk; d++) {
            const float x0 = k0[d];
            a0 += ld4(qt[d]) * x0; b0 += ld4(qt[d] + 4) * x0; c0 += ld4(qt[d] + 8) * x0; d0 += ld4(qt[d] + 12) * x0;
        }
        st4(s[k], a0 * scale); st4(s[k] + 4, b0 * scale); st4(s[k] + 8, c0 * scale); st4(s[k] + 12, d0 * scale);
    }
}

/* Baseline P @ V for one row: o = o * alpha + sum_{k < n} p[k] * V_k, 32 columns (8 v4f)
 * in registers across the keys. Same operations, same order as pv_one. */
INL void pv4(float *o, const float *p, float alpha, const float kb[C][DMAX], int n)
{
    for (int d = 0; d < DV; d += 32) {
        v4f o0 = ld4(o + d) * alpha, o1 = ld4(o + d + 4) * alpha, o2 = ld4(o + d + 8) * alpha,
            o3 = ld4(o + d + 12) * alpha, o4 = ld4(o + d + 16) * alpha, o5 = ld4(o + d + 20) * alpha,
            o6 = ld4(o + d + 24) * alpha, o7 = ld4(o + d + 28) * alpha;
        for (int k = 0; k < n; k++) {
            const float *v = kb[k] + d;
            const float pk = p[k];
            o0 += ld4(v) * pk; o1 += ld4(v + 4) * pk; o2 += ld4(v + 8) * pk; o3 += ld4(v + 12) * pk;
            o4 += ld4(v + 16) * pk; o5 += ld4(v + 20) * pk; o6 += ld4(v + 24) * pk; o7 += ld4(v + 28) * pk;
        }
        st4(o + d, o0); st4(o + d + 4, o1); st4(o + d + 8, o2); st4(o + d + 12, o3);
        st4(o + d + 16, o4); st4(o + d + 20, o5); st4(o + d + 24, o6); st4(o + d + 28, o7);
    }
}

/* s[k][0..16) = scale * (q rows . K row k), for k < nk (AVX2 kernel): 4 keys at a time, so
 * every q column load feeds 8 multiply-adds into 8 independent accumulators. The sum over d
 * runs in order for every (row, key): the same result as a plain loop, and as scores4. */
INL void scores8(float s[C][R], const float qt[DMAX][R], const float kb[C][DMAX], int nk,
                 int64_t dqk, float scale)
{
    int k = 0;
    for (; k + 4 <= nk; k += 4) {
        const float *k0 = kb[k], *k1 = kb[k + 1], *k2 = kb[k + 2], *k3 = kb[k + 3];
        v8f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
        for (int64_t d = 0; d < dqk; d++) {
            const v8f qa = ld8(qt[d]), qb = ld8(qt[d] + 8);
            const float x0 = k0[d], x1 = k1[d], x2 = k2[d], x3 = k3[d];
            a0 += qa * x0; b0 += qb * x0;
            a1 += qa * x1; b1 += qb * x1;
            a2 += qa * x2; b2 += qb * x2;
            a3 += qa * x3; b3 += qb * x3;
        }
        st8(s[k], a0 * scale); st8(s[k] + 8, b0 * scale);
        st8(s[k + 1], a1 * scale); st8(s[k + 1] + 8, b1 * scale);
        st8(s[k + 2], a2 * scale); st8(s[k + 2] + 8, b2 * scale);
        st8(s[k + 3], a3 * scale); st8(s[k + 3] + 8, b3 * scale);
    }
    for (; k + 2 <= nk; k += 2) {
        const float *k0 = kb[k], *k1 = kb[k + 1];
        v8f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0};
        for (int64_t d = 0; d < dqk; d++) {
            const v8f qa = ld8(qt[d]), qb = ld8(qt[d] + 8);
            const float x0 = k0[d], x1 = k1[d];
            a0 += qa * x0; b0 += qb * x0;
            a1 += qa * x1; b1 += qb * x1;
        }
        st8(s[k], a0 * scale); st8(s[k] + 8, b0 * scale);
        st8(s[k + 1], a1 * scale); st8(s[k + 1] + 8, b1 * scale);
    }
    for (; k < nk; k++) {
        const float *k0 = kb[k];
        v8f a0 = {0}, b0 = {0};
        for (int64_t d = 0; d < dqk; d++) {
            a0 += ld8(qt[d]) * k0[d];
            b0 += ld8(qt[d] + 8) * k0[d];
        }
        st8(s[k], a0 * scale); st8(s[k] + 8, b0 * scale);
    }
}

/* o = o * alpha (when first) + sum_{k in [k0, k1)} p[k] * V_k, 32 columns at a time kept in
 * registers across the keys. */
INL void pv_one(float *o, const float *p, float alpha, const float kb[C][DMAX],
                          int k0, int k1, int first)
{
    for (int d = 0; d < DV; d += 32) {
        v8f o0 = ld8(o + d), o1 = ld8(o + d + 8), o2 = ld8(o + d + 16), o3 = ld8(o + d + 24);
        if (first) { o0 *= alpha; o1 *= alpha; o2 *= alpha; o3 *= alpha; }
        for (int k = k0; k < k1; k++) {
            const float *v = kb[k] + d;
            const float pk = p[k];
            o0 += ld8(v) * pk; o1 += ld8(v + 8) * pk; o2 += ld8(v + 16) * pk; o3 += ld8(v + 24) * pk;
        }
        st8(o + d, o0); st8(o + d + 8, o1); st8(o + d + 16, o2); st8(o + d + 24, o3);
    }
}

/* Two rows sharing the V loads over their common visible keys [0, min(n0, n1)); the longer
 * row then finishes its own keys alone. Per row this is the same sequence of operations as
 * pv_one over [0, n): identical results whichever way rows are paired. */
INL void pv_pair(float *o0p, float *o1p, const float *p0, const float *p1, float al0,
                           float al1, const float kb[C][DMAX], int n0, int n1)
{
    const int nm = n0 < n1 ? n0 : n1;
    for (int d = 0; d < DV; d += 32) {
        v8f a0 = ld8(o0p + d) * al0, a1 = ld8(o0p + d + 8) * al0, a2 = ld8(o0p + d + 16) * al0,
            a3 = ld8(o0p + d + 24) * al0;
        v8f b0 = ld8(o1p + d) * al1, b1 = ld8(o1p + d + 8) * al1, b2 = ld8(o1p + d + 16) * al1,
            b3 = ld8(o1p + d + 24) * al1;
        for (int k = 0; k < nm; k++) {
            const float *v = kb[k] + d;
            const v8f v0 = ld8(v), v1 = ld8(v + 8), v2 = ld8(v + 16), v3 = ld8(v + 24);
            const float x = p0[k], y = p1[k];
            a0 += v0 * x; a1 += v1 * x; a2 += v2 * x; a3 += v3 * x;
            b0 += v0 * y; b1 += v1 * y; b2 += v2 * y; b3 += v3 * y;
        }
        st8(o0p + d, a0); st8(o0p + d + 8, a1); st8(o0p + d + 16, a2); st8(o0p + d + 24, a3);
        st8(o1p + d, b0); st8(o1p + d + 8, b1); st8(o1p + d + 16, b2); st8(o1p + d + 24, b3);
    }
    if (n0 > nm) pv_one(o0p, p0, 1.0f, kb, nm, n0, 0);
    if (n1 > nm) pv_one(o1p, p1, 1.0f, kb, nm, n1, 0);
}

/* One work item (see the top of the file). `wide`: the AVX2 register budget (constant after
 * inlining into run_item_base / run_item_v3). */
INL void run_item(const ref_job *job, int64_t w, const int wide)
{
    const mla_decode_shape *sh = job->shape;
    const mla_decode_args *a = job->args;
    const int64_t dqk = sh->d_qk, hpk = job->hpk;
    const mla_dense_item it = mla_dense_item_of(sh, a, w, job->nblk, R, hpk);
    const int64_t g = it.g, i = it.i, n_i = it.n_i, r0 = it.r0, r1 = it.r1;
    if (r0 >= r1) return;
    const int nr = (int)(r1 - r0);
    const int64_t L = a->cache_seqlens[i];
    const int64_t ps = sh->page_size;
    const mla_dtype dt = sh->dtype;

    float qt[DMAX][R];          /* q rows, transposed, fp32            */
    float kb[C][DMAX];          /* one chunk of K rows as fp32         */
    float acc[R][DV];           /* un-normalised output rows           */
    float s[C][R];              /* scores of the chunk (log2 domain)   */
    float p[R][C];              /* probabilities of the chunk          */
    float m[R], l[R];
    int64_t lim[R];             /* keys [0, lim[r]) are visible to row r */
    int64_t kmax = 0;

    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        lim[r] = 0;
    }
    for (int r = 0; r < nr; r++) {
        const int64_t rr = r0 + r, j = rr / hpk, h = g * hpk + rr % hpk;
        const int64_t lr = mla_visible_keys(L, n_i, j, sh->causal);
        lim[r] = lr;
        if (lr > kmax) kmax = lr;
        const char *qr = (const char *)a->q + (i * a->q_stride[0] + j * a->q_stride[1] +
                                               h * a->q_stride[2]) * (int64_t)job->nm.qsz;
        float tmp[DMAX];
        load_row(tmp, qr, dqk, job->nm.qdt, job->e4m3);
        for (int64_t d = 0; d < dqk; d++) qt[d][r] = tmp[d];
    }
    for (int r = nr; r < R; r++)
        for (int64_t d = 0; d < dqk; d++) qt[d][r] = 0.0f;
    for (int r = 0; r < R; r++)
        for (int d = 0; d < DV; d++) acc[r][d] = 0.0f;

    const int32_t *bt = a->block_table + i * a->block_table_stride;
    const char *kc = (const char *)a->k_cache;
    const int64_t ksz = (int64_t)job->nm.ksz;
    const float sl2 = job->nm.scale_log2;

    for (int64_t c0 = 0; c0 < kmax; c0 += C) {
        const int nk = (int)(kmax - c0 < C ? kmax - c0 : C);
        /* gather + convert the chunk's K rows (only rows < kmax <= L are touched) */
        for (int k = 0; k < nk; k++) {
            const int64_t t = c0 + k;
            const int64_t page = bt[t / ps];
            const char *kr = kc + (page * a->k_stride[0] + (t % ps) * a->k_stride[1] +
                                   g * a->k_stride[2]) * ksz;
            load_row(kb[k], kr, dqk, job->nm.kdt, job->e4m3);
        }
        /* scores of all R rows x nk keys (masked ones are computed but never used) */
        if (wide) scores8(s, qt, kb, nk, dqk, sl2);
        else scores4(s, qt, kb, nk, dqk, sl2);
        /* online softmax per row: p[r][k] for the row's visible keys, alpha[r] rescales */
        int kv[R];
        float alpha[R];
        for (int r = 0; r < R; r++) {
            kv[r] = 0;
            alpha[r] = 1.0f;
            const int64_t vis = r < nr ? lim[r] - c0 : 0; /* keys [0, vis) of the chunk */
            if (vis <= 0) continue;
            const int n = (int)(vis < nk ? vis : nk);
            float mx = m[r];
            /* NaN-propagating max: a NaN score (NaN/Inf in q or in a visible K row) must make
             * the row NaN, not look like a row with no visible key */
            for (int k = 0; k < n; k++) mx = (s[k][r] > mx || s[k][r] != s[k][r]) ? s[k][r] : mx;
            if (mx == -INFINITY) continue; /* only -inf scores so far (q . k = -inf) */
            alpha[r] = exp2f(m[r] - mx); /* m = -inf -> 0 */
            float sum = 0.0f;
            for (int k = 0; k < n; k++) {
                p[r][k] = exp2f(s[k][r] - mx);
                sum += p[r][k];
            }
            l[r] = l[r] * alpha[r] + sum;
            m[r] = mx;
            kv[r] = n;
        }
        /* acc = acc * alpha + P @ V, two rows at a time when registers allow (one V load feeds
         * both); each row only ever touches its own visible keys (a masked key's V may be
         * anything, even NaN, without effect), and per row the operations are the same
         * whichever way rows are paired */
        for (int r = 0; r < nr; r += 2) {
            const int r2 = r + 1 < nr ? r + 1 : r; /* odd count: the last row alone */
            if (!wide) {
                if (kv[r] > 0) pv4(acc[r], p[r], alpha[r], kb, kv[r]);
                if (r2 != r && kv[r2] > 0) pv4(acc[r2], p[r2], alpha[r2], kb, kv[r2]);
            } else if (r2 != r && kv[r] > 0 && kv[r2] > 0) {
                pv_pair(acc[r], acc[r2], p[r], p[r2], alpha[r], alpha[r2], kb, kv[r], kv[r2]);
            } else {
                if (kv[r] > 0) pv_one(acc[r], p[r], alpha[r], kb, 0, kv[r], 1);
                if (r2 != r && kv[r2] > 0) pv_one(acc[r2], p[r2], alpha[r2], kb, 0, kv[r2], 1);
            }
        }
    }

    /* write out and lse */
    for (int r = 0; r < nr; r++) {
        const int64_t rr = r0 + r, j = rr / hpk, h = g * hpk + rr % hpk;
        uint16_t *orow = (uint16_t *)a->out + i * a->out_stride[0] + j * a->out_stride[1] +
                         h * a->out_stride[2];
        float *lse = a->lse + i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2];
        if (l[r] > 0.0f || l[r] != l[r]) { /* NaN l: the row is NaN (out and lse) */
            const float inv = job->nm.out_scale / l[r]; /* out_scale 1 unless FP8 */
            for (int d = 0; d < DV; d++) orow[d] = mla_float_to_half(dt, acc[r][d] * inv);
            *lse = (m[r] + log2f(l[r])) * 0.69314718055994530942f;
        } else {
            for (int d = 0; d < DV; d++) orow[d] = 0; /* +0.0 in bf16 and fp16 */
            *lse = INFINITY;
        }
    }
}

static void run_item_base(const ref_job *job, int64_t w) { run_item(job, w, 0); }

#if MLA_REF_DISPATCH
__attribute__((target("arch=x86-64-v3"))) static void run_item_v3(const ref_job *job, int64_t w)
{
    run_item(job, w, 1);
}
#endif

static void run_item_fn(void *ctx, int64_t w)
{
    const ref_job *job = (const ref_job *)ctx;
    job->run(job, w);
}

mla_status mla_ref_decode(const mla_decode_shape *shape, const mla_decode_args *args,
                          float softmax_scale, int num_threads)
{
    ref_job job;
    job.shape = shape;
    job.args = args;
    job.nm = mla_dense_numerics_of(shape, args, softmax_scale);
    if (job.nm.kdt == MLA_DTYPE_FP8_E4M3)
        for (int c = 0; c < 256; c++) job.e4m3[c] = mla_e4m3_to_float((uint8_t)c);
    job.hpk = shape->h_q / shape->h_kv;
    job.rows_max = shape->s_q * job.hpk;
    job.nblk = (job.rows_max + R - 1) / R;
    job.items = shape->b * shape->h_kv * job.nblk;
    job.run = run_item_base;
#if MLA_REF_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) job.run = run_item_v3;
#endif
    mla_cpu_parallel(job.items, num_threads, run_item_fn, &job);
    return MLA_OK;
}
