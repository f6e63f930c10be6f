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
 *   Inner loops run over fixed-size arrays (R rows, or a 512/576-long row) so that gcc -O2
 *   vectorises them without -ffast-math: scores are accumulated with r innermost (vertical
 *   adds, no horizontal reduction), P @ V with d innermost.
 *   Threads take items from an atomic counter; results do not depend on who computes what.
 */
#include "mla_ref.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#define R MLA_REF_ROWS
#define C MLA_REF_KEYS
#define DMAX MLA_REF_MAX_D
#define DV 512

typedef struct ref_job {
    const mla_decode_shape *shape;
    const mla_decode_args *args;
    float scale_log2;      /* softmax_scale * log2(e) */
    int64_t hpk;           /* query heads per kv head */
    int64_t rows_max;      /* s_q * hpk: rows of a group at most */
    int64_t nblk;          /* ceil(rows_max / R): items per (request, kv head) */
    int64_t items;         /* b * h_kv * nblk */
    atomic_llong next;
} ref_job;

/* Converts n elements (n a multiple of 64, <= DMAX) of a bf16/fp16 row to fp32. */
static void load_row(float *restrict dst, const uint16_t *restrict src, int64_t n, mla_dtype dt)
{
    if (dt == MLA_DTYPE_BF16) {
        for (int64_t d = 0; d < n; d++) dst[d] = mla_bf16_to_float(src[d]);
    } else {
        for (int64_t d = 0; d < n; d++) dst[d] = mla_fp16_to_float(src[d]);
    }
}

static void run_item(const ref_job *job, int64_t w)
{
    const mla_decode_shape *sh = job->shape;
    const mla_decode_args *a = job->args;
    const int64_t dqk = sh->d_qk, hpk = job->hpk;
    const int64_t blk = w % job->nblk;
    const int64_t g = (w / job->nblk) % sh->h_kv;
    const int64_t i = w / (job->nblk * sh->h_kv);

    int64_t n_i = sh->s_q; /* query tokens of request i */
    if (a->cu_seqlens_q) n_i = (int64_t)a->cu_seqlens_q[i + 1] - a->cu_seqlens_q[i];
    const int64_t r0 = blk * R;
    const int64_t r1 = r0 + R < n_i * hpk ? r0 + R : n_i * hpk;
    if (r0 >= r1) return;
    const int nr = (int)(r1 - r0);
    const int64_t L = a->cache_seqlens[i];
    const int64_t ps = sh->page_size;
    const mla_dtype dt = sh->dtype;

    float qt[DMAX][R];          /* q rows, transposed, fp32            */
    float kb[C][DMAX];          /* one chunk of K rows as fp32         */
    float acc[R][DV];           /* un-normalised output rows           */
    float s[C][R];              /* scores of the chunk (log2 domain)   */
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
        int64_t lr = L;
        if (sh->causal) {
            lr = L - n_i + j + 1;
            if (lr < 0) lr = 0;
            if (lr > L) lr = L;
        }
        lim[r] = lr;
        if (lr > kmax) kmax = lr;
        const uint16_t *qr = (const uint16_t *)a->q + i * a->q_stride[0] + j * a->q_stride[1] +
                             h * a->q_stride[2];
        float tmp[DMAX];
        load_row(tmp, qr, dqk, dt);
        for (int64_t d = 0; d < dqk; d++) qt[d][r] = tmp[d];
    }
    for (int r = nr; r < R; r++)
        for (int64_t d = 0; d < dqk; d++) qt[d][r] = 0.0f;
    for (int r = 0; r < nr; r++)
        for (int d = 0; d < DV; d++) acc[r][d] = 0.0f;

    const int32_t *bt = a->block_table + i * a->block_table_stride;
    const uint16_t *kc = (const uint16_t *)a->k_cache;
    const float sl2 = job->scale_log2;

    for (int64_t c0 = 0; c0 < kmax; c0 += C) {
        const int nk = (int)(kmax - c0 < C ? kmax - c0 : C);
        /* gather + convert the chunk's K rows (only rows < kmax <= L are touched) */
        for (int k = 0; k < nk; k++) {
            const int64_t t = c0 + k;
            const int64_t page = bt[t / ps];
            const uint16_t *kr = kc + page * a->k_stride[0] + (t % ps) * a->k_stride[1] +
                                 g * a->k_stride[2];
            load_row(kb[k], kr, dqk, dt);
        }
        /* scores: s[k][r] = sum_d q[r][d] * k[d], r innermost (vectorises) */
        for (int k = 0; k < nk; k++) {
            float sk[R];
            for (int r = 0; r < R; r++) sk[r] = 0.0f;
            const float *kr = kb[k];
            for (int64_t d = 0; d < dqk; d++) {
                const float kd = kr[d];
                for (int r = 0; r < R; r++) sk[r] += qt[d][r] * kd;
            }
            for (int r = 0; r < R; r++) s[k][r] = sk[r] * sl2;
        }
        /* online softmax per row */
        for (int r = 0; r < nr; r++) {
            const int64_t vis = lim[r] - c0; /* keys [0, vis) of the chunk are visible */
            if (vis <= 0) continue;
            const int kv = (int)(vis < nk ? vis : nk);
            float mx = m[r];
            /* NaN-propagating max: a NaN score (NaN/Inf in q or in a visible K row) must make
             * the row NaN, not look like a row with no visible key */
            for (int k = 0; k < kv; k++) mx = (s[k][r] > mx || s[k][r] != s[k][r]) ? s[k][r] : mx;
            if (mx == -INFINITY) continue; /* only -inf scores so far (q . k = -inf) */
            const float alpha = exp2f(m[r] - mx); /* m = -inf -> 0 */
            float p[C];
            float sum = 0.0f;
            for (int k = 0; k < kv; k++) {
                p[k] = exp2f(s[k][r] - mx);
                sum += p[k];
            }
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
            float *o = acc[r];
            if (alpha != 1.0f)
                for (int d = 0; d < DV; d++) o[d] *= alpha;
            for (int k = 0; k < kv; k++) {
                const float pk = p[k];
                const float *v = kb[k];
                for (int d = 0; d < DV; d++) o[d] += pk * v[d];
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
            const float inv = 1.0f / l[r];
            for (int d = 0; d < DV; d++) orow[d] = mla_float_to_half(dt, acc[r][d] * inv);
            *lse = (m[r] + log2f(l[r])) * 0.69314718055994530942f;
        } else {
            for (int d = 0; d < DV; d++) orow[d] = 0; /* +0.0 in bf16 and fp16 */
            *lse = INFINITY;
        }
    }
}

static void *worker(void *p)
{
    ref_job *job = (ref_job *)p;
    for (;;) {
        const long long w = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (w >= job->items) break;
        run_item(job, w);
    }
    return NULL;
}

#define MLA_REF_MAX_THREADS 256

mla_status mla_ref_decode(const mla_decode_shape *shape, const mla_decode_args *args,
                          float softmax_scale, int num_threads)
{
    ref_job job;
    job.shape = shape;
    job.args = args;
    job.scale_log2 = softmax_scale * 1.44269504088896340736f;
    job.hpk = shape->h_q / shape->h_kv;
    job.rows_max = shape->s_q * job.hpk;
    job.nblk = (job.rows_max + R - 1) / R;
    job.items = shape->b * shape->h_kv * job.nblk;
    atomic_init(&job.next, 0);

    int64_t nt = num_threads < 1 ? 1 : num_threads;
    if (nt > MLA_REF_MAX_THREADS) nt = MLA_REF_MAX_THREADS;
    if (nt > job.items) nt = job.items;

    pthread_t tids[MLA_REF_MAX_THREADS];
    int started = 0;
    if (nt > 1) {
        pthread_attr_t attr;
        int have_attr = pthread_attr_init(&attr) == 0;
        if (have_attr) pthread_attr_setstacksize(&attr, 2u << 20); /* buffers need ~150 KB */
        for (int64_t t = 1; t < nt; t++) {
            if (pthread_create(&tids[started], have_attr ? &attr : NULL, worker, &job) != 0)
                break; /* fewer threads: the rest is done by those that exist */
            started++;
        }
        if (have_attr) pthread_attr_destroy(&attr);
    }
    worker(&job);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    return MLA_OK;
}
