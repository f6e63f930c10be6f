/* mla_ref_sparse.c — sparse decode (FP8 paged cache) and sparse prefill (bf16 KV) on the CPU;
 * the contract is in mla_ref_sparse.h and include/mla.h.
 *
 * Both operations reduce to one kernel, attend(): up to R query rows that share one key list
 * (the heads of one query token that use one KV head) attend to keys given by one or two
 * sources (index list + where the rows live). Invalid positions are skipped before the keys
 * are gathered, which is the same as giving them a -inf score. */
#include "mla_ref_sparse.h"

#include <math.h>

#include "mla_fp8.h"
#include "mla_ref.h"

#define R MLA_REF_SPARSE_ROWS
#define C MLA_REF_SPARSE_KEYS
#define DMAX 576
#define DV 512

typedef mla_sparse_keys key_src;

static void load_key(const key_src *s, int64_t pos, int dqk, float *dst)
{
    if (s->fp8) {
        const int64_t page = pos / s->page_size, row = pos % s->page_size;
        mla_fp8_dequant_token(s->fmt, s->base + page * s->page_stride_bytes, s->page_size, row,
                              dst);
    } else {
        const uint16_t *k = (const uint16_t *)s->base + pos * s->row_stride;
        for (int d = 0; d < dqk; d++) dst[d] = mla_bf16_to_float(k[d]);
    }
}

/* Attention of nr (<= R) bf16 query rows over the keys of src[0..nsrc). On return, for every
 * row: m[r] = max score (natural units; -inf if no valid key), l[r] = sum exp(score - m),
 * acc[r] = sum exp(score - m) * v (fp32, un-normalised). */
static void attend(const key_src *src, int nsrc, int dqk, float scale, const uint16_t *const *qrows,
                   int nr, float acc[R][DV], float *m, float *l)
{
    float qt[DMAX][R]; /* q rows, transposed */
    float kb[C][DMAX]; /* one chunk of keys as fp32 */
    float s[C][R];     /* scores of the chunk (natural units) */

    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    for (int r = 0; r < nr; r++) {
        for (int d = 0; d < dqk; d++) qt[d][r] = mla_bf16_to_float(qrows[r][d]);
        for (int d = 0; d < DV; d++) acc[r][d] = 0.0f;
    }
    for (int r = nr; r < R; r++)
        for (int d = 0; d < dqk; d++) qt[d][r] = 0.0f;

    for (int si = 0; si < nsrc; si++) {
        const key_src *ks = &src[si];
        int64_t k = 0;
        while (k < ks->n) {
            /* gather the next (up to) C valid keys */
            int nk = 0;
            while (nk < C && k < ks->n) {
                const int64_t pos = ks->idx[k++];
                if (pos < 0 || pos >= ks->limit) continue; /* masked, never dereferenced */
                load_key(ks, pos, dqk, kb[nk++]);
            }
            if (nk == 0) continue;
            for (int c = 0; c < nk; c++) {
                float sc[R];
                for (int r = 0; r < R; r++) sc[r] = 0.0f;
                const float *kr = kb[c];
                for (int d = 0; d < dqk; d++) {
                    const float kd = kr[d];
                    for (int r = 0; r < R; r++) sc[r] += qt[d][r] * kd;
                }
                for (int r = 0; r < R; r++) s[c][r] = sc[r] * scale;
            }
            for (int r = 0; r < nr; r++) {
                float mx = m[r];
                int nan = 0;
                for (int c = 0; c < nk; c++) {
                    nan |= s[c][r] != s[c][r];
                    mx = s[c][r] > mx ? s[c][r] : mx;
                }
                /* a NaN score (NaN in q or in a selected key) makes the row NaN for good: m, l and
                 * acc all become NaN (docs/guarantees.md F6-F8, as in the dense reference) */
                if (nan) mx = NAN;
                if (mx == -INFINITY) continue; /* only -inf scores so far */
                const float alpha = expf(m[r] - mx); /* m = -inf -> 0 */
                float p[C];
                float sum = 0.0f;
                for (int c = 0; c < nk; c++) {
                    p[c] = expf(s[c][r] - mx);
                    sum += p[c];
                }
                l[r] = l[r] * alpha + sum;
                m[r] = mx;
                float *o = acc[r];
                if (alpha != 1.0f)
                    for (int d = 0; d < DV; d++) o[d] *= alpha;
                for (int c = 0; c < nk; c++) {
                    const float pc = p[c];
                    const float *v = kb[c];
                    for (int d = 0; d < DV; d++) o[d] += pc * v[d];
                }
            }
        }
    }
}

/* Writes one row's results. max_logits may be NULL (decode). */
static void write_row(const float *acc, float m, float l, const float *sink, uint16_t *out,
                      float *lse, float *max_logits)
{
    if (m == -INFINITY) { /* no valid key */
        for (int d = 0; d < DV; d++) out[d] = 0;
        *lse = INFINITY;
        if (max_logits) *max_logits = -INFINITY;
        return;
    }
    /* with a sink: out = acc / (l + exp(sink - m)) = softmax @ V * exp(lse) / (exp(lse) +
     * exp(sink)); +inf sink -> 0, -inf -> no effect, NaN -> NaN */
    const float denom = sink ? l + expf(*sink - m) : l;
    const float inv = 1.0f / denom;
    for (int d = 0; d < DV; d++) out[d] = mla_float_to_bf16(acc[d] * inv);
    *lse = m + logf(l);
    if (max_logits) *max_logits = m;
}

/* ---------------------------------------------------------------------------------------- */
/* Work distribution                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct job {
    const mla_sparse_decode_shape *dshape;
    const mla_sparse_decode_args *dargs;
    const mla_sparse_prefill_args *pargs;
    float scale;
    int64_t hpk;   /* query heads per kv head */
    int64_t nblk;  /* head blocks per (token, kv head) */
    int64_t items;
} job;

static void decode_item(const job *jb, int64_t w)
{
    const mla_sparse_decode_shape *sh = jb->dshape;
    const mla_sparse_decode_args *a = jb->dargs;
    const int64_t hb = w % jb->nblk, j = (w / jb->nblk) % sh->s_q, i = w / (jb->nblk * sh->s_q);
    const int64_t h0 = hb * R;
    const int nr = (int)(sh->h_q - h0 < R ? sh->h_q - h0 : R);

    key_src src[2];
    const int nsrc = mla_sparse_decode_keys(sh, a, i, j, src);
    const uint16_t *qrows[R] = {0};
    for (int r = 0; r < nr; r++)
        qrows[r] = (const uint16_t *)a->q + i * a->q_stride[0] + j * a->q_stride[1] +
                   (h0 + r) * a->q_stride[2];
    float acc[R][DV], m[R], l[R];
    attend(src, nsrc, (int)sh->d_qk, jb->scale, qrows, nr, acc, m, l);
    for (int r = 0; r < nr; r++) {
        const int64_t h = h0 + r;
        write_row(acc[r], m[r], l[r], a->attn_sink ? a->attn_sink + h : NULL,
                  (uint16_t *)a->out + i * a->out_stride[0] + j * a->out_stride[1] +
                      h * a->out_stride[2],
                  a->lse + i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2],
                  NULL);
    }
}

static void prefill_item(const job *jb, int64_t w)
{
    const mla_sparse_prefill_args *a = jb->pargs;
    const int64_t hb = w % jb->nblk, g = (w / jb->nblk) % a->h_kv, s = w / (jb->nblk * a->h_kv);
    const int64_t h0 = g * jb->hpk + hb * R;
    const int64_t left = jb->hpk - hb * R;
    const int nr = (int)(left < R ? left : R);

    const key_src src = mla_sparse_prefill_keys(a, s, g);
    const uint16_t *qrows[R] = {0};
    for (int r = 0; r < nr; r++)
        qrows[r] = (const uint16_t *)a->q + s * a->q_stride[0] + (h0 + r) * a->q_stride[1];
    float acc[R][DV], m[R], l[R];
    attend(&src, 1, (int)a->d_qk, jb->scale, qrows, nr, acc, m, l);
    for (int r = 0; r < nr; r++) {
        const int64_t h = h0 + r;
        write_row(acc[r], m[r], l[r], a->attn_sink ? a->attn_sink + h : NULL,
                  (uint16_t *)a->out + s * a->out_stride[0] + h * a->out_stride[1],
                  a->lse + s * a->lse_stride[0] + h * a->lse_stride[1],
                  a->max_logits + s * a->max_logits_stride[0] + h * a->max_logits_stride[1]);
    }
}

static void run_item(void *ctx, int64_t w)
{
    const job *jb = (const job *)ctx;
    if (jb->dargs) decode_item(jb, w);
    else prefill_item(jb, w);
}

mla_status mla_ref_sparse_decode(const mla_sparse_decode_shape *shape,
                                 const mla_sparse_decode_args *args, float softmax_scale,
                                 int num_threads)
{
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.dshape = shape;
    jb.dargs = args;
    jb.scale = softmax_scale;
    jb.hpk = shape->h_q;
    jb.nblk = (shape->h_q + R - 1) / R;
    jb.items = shape->b * shape->s_q * jb.nblk;
    mla_cpu_parallel(jb.items, num_threads, run_item, &jb);
    return MLA_OK;
}

mla_status mla_ref_sparse_prefill(const mla_sparse_prefill_args *args, int num_threads)
{
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.pargs = args;
    jb.scale = args->softmax_scale;
    jb.hpk = args->h_q / args->h_kv;
    jb.nblk = (jb.hpk + R - 1) / R;
    jb.items = args->s_q * args->h_kv * jb.nblk;
    mla_cpu_parallel(jb.items, num_threads, run_item, &jb);
    return MLA_OK;
}
