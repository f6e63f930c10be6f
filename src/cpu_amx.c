/* cpu_amx.c — dense MLA decode on the CPU with Intel AMX bf16 tiles (Xeon Sapphire Rapids and
 * later: AWS m7i / c7i / r7i, GCP c3, Azure Dv6 ...). The C reference (ref/mla_ref.c) stays the
 * spec and the path of every other CPU; this file is only the fast path of the CPU plans it
 * can serve (internal.h: mla_cpu_amx_eligible), tested against an fp64 oracle with the same
 * tolerances as the GPU kernels.
 *
 * Numerics: q and K in bf16 (FP8 e4m3 codes are converted to bf16 exactly), scores accumulated
 * in fp32 by the tiles, online softmax in fp32 (exp2 by a degree-7 polynomial, ~1e-8 relative),
 * P carried as two bf16 parts (hi + lo, ~2^-17 relative; the GPU kernels and FlashMLA round P
 * to one bf16, 2^-9, which outputs that cancel amplify past the spec tolerance), the output
 * accumulated in fp32. Every row's result depends only on its inputs: the output is
 * bit-for-bit the same for any thread count and any page order.
 *
 * Work item: (request i, kv head g, block of up to RB = 32 query rows that share the kv head),
 * the reference's packing of s_q and heads into rows. For each chunk of KC = 32 keys:
 *   1. the chunk's K rows are gathered from their pages into kbuf (bf16; rows past the last
 *      visible key are zero, never read from the cache);
 *   2. V (the first 512 dims) is re-laid in pairs of keys (vp: the tiles' "VNNI" B layout);
 *   3. S^T = K Q^T on the tiles: A = kbuf (16 keys x 32 dims), B = q packed once per item in
 *      pairs of dims (qp), C = 16 keys x 16 rows; stored to sbuf[key][row];
 *   4. online softmax on sbuf with the 16 rows of a tile in the 16 lanes of a zmm (mask, max,
 *      exp2, row sums); rows whose maximum moved rescale their accumulator;
 *   5. P (bf16) transposed to rows x keys (pa), then O += P V on the tiles, 16 output columns at
 *      a time, the fp32 accumulator rows living in acc between chunks.
 * About 180 KB of buffers per item on the worker's stack (mla_cpu_parallel: 2 MB stacks).
 *
 * Linux hands out the tile state only on request: the first eligibility check asks for it once
 * per process (arch_prctl ARCH_REQ_XCOMP_PERM), as oneDNN and PyTorch do; if that fails, or the
 * CPU lacks AMX-BF16 / AVX512-BF16, every plan uses the reference. */
#include "internal.h"
#include "mla_fp8.h"
#include "mla_ref.h"

#if defined(__x86_64__) && defined(__linux__) && \
    (defined(__clang__) ? __clang_major__ >= 12 : (defined(__GNUC__) && __GNUC__ >= 11))
#define MLA_AMX_BUILD 1
#else
#define MLA_AMX_BUILD 0
#endif

#if !MLA_AMX_BUILD

int mla_cpu_amx_available(void) { return 0; }
mla_status mla_cpu_amx_decode(const mla_decode_shape *shape, const mla_decode_args *args,
                              float softmax_scale, int num_threads)
{
    (void)shape; (void)args; (void)softmax_scale; (void)num_threads;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "this build of mla.c has no AMX path");
}

#else

#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KC 64     /* keys per chunk: four 16-key tiles                          */
#define RTMAX 8   /* row tiles per item at most                                  */
#define RBMAX (16 * RTMAX)
#define ACC_LD (512 + 16) /* floats per accumulator row (padded off the 2 KB stride) */
#define DMAX 576
#define DV 512
#define NCT (DV / 16) /* output column tiles */

/* ---- availability ------------------------------------------------------------------------ */

#define ARCH_REQ_XCOMP_PERM_ 0x1023
#define XFEATURE_XTILEDATA_ 18

static int g_amx_ok;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0xe6u) != 0xe6u) return; /* XMM, YMM, opmask, ZMM state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    const int avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
    const int amx = (d & (1u << 22)) && (d & (1u << 24)); /* AMX-BF16, AMX-TILE */
    if (!avx512 || !amx) return;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return; /* AVX512_BF16 */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) != 0) return;
    g_amx_ok = 1;
}

int mla_cpu_amx_available(void)
{
    pthread_once(&g_amx_once, amx_probe);
    return g_amx_ok;
}

/* ---- the item kernel --------------------------------------------------------------------- */

typedef struct amx_job {
    const mla_decode_shape *shape;
    const mla_decode_args *args;
    mla_dense_numerics nm; /* dtypes and scales (mla_ref.h) */
    int64_t hpk, nblk, items;
    int64_t rb;            /* query rows per item: 16 x (1 .. RTMAX)                   */
    uint16_t e4m3[256];    /* e4m3 code -> bf16 bits (exact)                          */
} amx_job;

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")))
#define INL static inline __attribute__((always_inline)) TGT

/* The tile configuration: palette 1, all 8 tiles 16 rows x 64 bytes. */
typedef struct tile_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;

/* 2^x for x <= 0 (and -inf -> 0, NaN -> NaN): x = n + f, f in [-0.5, 0.5], 2^f by its Taylor
 * polynomial of degree 7 (truncation < 6e-9 relative), scaled by 2^n. */
INL __m512 exp2v(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x); /* NaN stays NaN (second operand) */
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5252733804059841e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284770e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* One row of n elements (bf16 bits, or e4m3 codes through the table) as bf16 bits. */
INL void load_bf16_row(uint16_t *restrict dst, const void *restrict src, int64_t n, mla_dtype dt,
                       const uint16_t *restrict e4m3)
{
    if (dt == MLA_DTYPE_BF16) {
        memcpy(dst, src, (size_t)n * 2);
    } else {
        const uint8_t *c = (const uint8_t *)src;
        for (int64_t d = 0; d < n; d++) dst[d] = e4m3[c[d]];
    }
}

/* dst[c][r] = src[r][c] for a 16 x 16 matrix of 32-bit words (rows 64 bytes apart). */
INL void transpose16(uint32_t *restrict dst, const uint32_t *restrict src)
{
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + 16 * i);
    for (int i = 0; i < 16; i += 2) { /* 2x2 blocks of words */
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* 4x4 blocks */
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* r[4q + j] now holds, in each 128-bit lane L, column 4L + c0(j) of rows 4q..4q+3 where
     * j = 0: cols 0, 1: col 1, 2: col 2, 3: col 3 of the lane's 4 columns; the 128-bit lanes
     * are then transposed across the four row groups q. */
    for (int j = 0; j < 4; j++) {
        const __m512i a = r[j], b = r[4 + j], c = r[8 + j], d = r[12 + j];
        const __m512i ab_lo = _mm512_shuffle_i32x4(a, b, 0x44), ab_hi = _mm512_shuffle_i32x4(a, b, 0xee);
        const __m512i cd_lo = _mm512_shuffle_i32x4(c, d, 0x44), cd_hi = _mm512_shuffle_i32x4(c, d, 0xee);
        t[j] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);      /* lane 0 of a, b, c, d */
        t[4 + j] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xdd);  /* lane 1 */
        t[8 + j] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);  /* lane 2 */
        t[12 + j] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xdd); /* lane 3 */
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_si512(dst + 16 * i, t[i]);
}

/* Online softmax of one row tile (16 rows in the lanes) over the chunk's nk keys: s (scaled,
 * log2 domain) is read from sbuf[k][col0 .. col0+16), masked to -inf past each row's visible
 * count vis (relative to the chunk), and replaced by p = 2^(s - m). Returns alpha (the factor
 * for the row's accumulator) and updates m / l; *resc = the rows whose accumulator needs it
 * (alpha != 1 and a finite maximum before: an accumulator with no key yet is zero, and a NaN row
 * is NaN through l). Keys nk..KC-1 get p = 0. p is split into two bf16 parts, p = hi + lo + e
 * with |e| <= 2^-17 p (hi = p rounded to bf16, lo = the rest rounded): one bf16 P alone loses
 * 2^-9 of p, which an output that cancels (a sum of V values of opposite signs) turns into an
 * error past the spec tolerance (fuzz_decode found one: -0.0078 for -0.0068). ptmp[k2][r] =
 * (hi p[2 k2][r], hi p[2 k2 + 1][r]), ptmp_lo the same for lo. */
INL __m512 softmax_tile(float (*sbuf)[RBMAX], int col0, int nk, __m512i vis, float sl2, float *m,
                        float *l, uint32_t (*ptmp)[16], uint32_t (*ptmp_lo)[16], __mmask16 *resc)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY), scale = _mm512_set1_ps(sl2);
    __m512 cm = ninf;
    __mmask16 nan = 0;
    for (int k = 0; k < nk; k++) {
        const __mmask16 v = _mm512_cmpgt_epi32_mask(vis, _mm512_set1_epi32(k));
        __m512 s = _mm512_mul_ps(_mm512_loadu_ps(&sbuf[k][col0]), scale);
        s = _mm512_mask_mov_ps(ninf, v, s);
        nan |= _mm512_cmp_ps_mask(s, s, _CMP_UNORD_Q);
        cm = _mm512_max_ps(cm, s);
        _mm512_storeu_ps(&sbuf[k][col0], s);
    }
    const __m512 m_old = _mm512_loadu_ps(m);
    nan |= _mm512_cmp_ps_mask(m_old, m_old, _CMP_UNORD_Q);
    __m512 m_new = _mm512_max_ps(m_old, cm);
    m_new = _mm512_mask_mov_ps(m_new, nan, _mm512_set1_ps(NAN)); /* a NaN score: the row is NaN */
    /* rows with no finite maximum yet subtract 0: 2^(-inf) = 0, never 2^(-inf - -inf) */
    const __m512 m_sub = _mm512_mask_mov_ps(m_new, _mm512_cmp_ps_mask(m_new, ninf, _CMP_EQ_OQ),
                                            _mm512_setzero_ps());
    const __m512 alpha = exp2v(_mm512_sub_ps(m_old, m_sub));
    *resc = _mm512_cmp_ps_mask(alpha, _mm512_set1_ps(1.0f), _CMP_NEQ_OQ) &
            _mm512_cmp_ps_mask(m_old, ninf, _CMP_GT_OQ);
    __m512 sum = _mm512_setzero_ps();
    __m512 prev = _mm512_setzero_ps();
    const __m512i il = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                        23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 prev_lo = _mm512_setzero_ps();
    const __m512i rnd = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1),
                  top = _mm512_set1_epi32((int)0xffff0000u);
    for (int k = 0; k < KC; k++) {
        __m512 p = _mm512_setzero_ps(), lo = _mm512_setzero_ps();
        if (k < nk) {
            p = exp2v(_mm512_sub_ps(_mm512_loadu_ps(&sbuf[k][col0]), m_sub));
            sum = _mm512_add_ps(sum, p);
            /* hi = p rounded to nearest even bf16 (what cvtne2ps gives), as fp32; lo = p - hi
             * (exact). p is in [0, 1] or NaN (a NaN row is NaN through l whatever hi is). */
            const __m512i u = _mm512_castps_si512(p);
            const __m512i h = _mm512_and_si512(
                _mm512_add_epi32(_mm512_add_epi32(u, rnd), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), top);
            lo = _mm512_sub_ps(p, _mm512_castsi512_ps(h));
        }
        if (k & 1) { /* keys k-1, k as one word per row: (bf16 p[k-1], bf16 p[k]) */
            const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(p, prev); /* lo 16: prev, hi 16: p */
            _mm512_storeu_si512(ptmp[k >> 1], _mm512_permutexvar_epi16(il, w));
            const __m512i wl = (__m512i)_mm512_cvtne2ps_pbh(lo, prev_lo);
            _mm512_storeu_si512(ptmp_lo[k >> 1], _mm512_permutexvar_epi16(il, wl));
        }
        prev = p;
        prev_lo = lo;
    }
    const __m512 l_new = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(l), alpha), sum);
    _mm512_storeu_ps(l, l_new);
    _mm512_storeu_ps(m, m_new);
    return alpha;
}

/* The K rows of a chunk as tile sources: key tile kt (keys 16 kt .. 16 kt + 15) is loaded from
 * kt_base[kt] with row stride kt_stride[kt] bytes: straight from the cache when the 16 keys
 * sit in one page of a bf16 cache, else from kbuf (gathered, converted, zero past nk). */
typedef struct chunk_src {
    const uint16_t *row[KC];   /* K row of each key (first DV dims = V), rows >= nk: zeros */
    const void *kt_base[KC / 16];
    int64_t kt_stride[KC / 16];
} chunk_src;

/* S^T for two row tiles (v, v + 1) and two key tiles (kt, kt + 1): C tiles 0-3 */
#define ST_PAIR_KK(kk)                                                        \
    do {                                                                      \
        _tile_loadd(4, (const char *)src->kt_base[kt] + 64 * (kk), src->kt_stride[kt]);         \
        _tile_loadd(5, (const char *)src->kt_base[kt + 1] + 64 * (kk), src->kt_stride[kt + 1]); \
        _tile_loadd(6, qp[v][kk], 64);                                        \
        _tile_loadd(7, qp[v + 1][kk], 64);                                    \
        _tile_dpbf16ps(0, 4, 6);                                              \
        _tile_dpbf16ps(1, 5, 6);                                              \
        _tile_dpbf16ps(2, 4, 7);                                              \
        _tile_dpbf16ps(3, 5, 7);                                              \
    } while (0)

INL void run_item(const amx_job *job, int64_t w)
{
    const mla_decode_shape *sh = job->shape;
    const mla_decode_args *a = job->args;
    const int64_t dqk = sh->d_qk, hpk = job->hpk;
    const int64_t blk = w % job->nblk;
    const int64_t g = (w / job->nblk) % sh->h_kv;
    const int64_t i = w / (job->nblk * sh->h_kv);

    int64_t n_i = sh->s_q;
    if (a->cu_seqlens_q) n_i = (int64_t)a->cu_seqlens_q[i + 1] - a->cu_seqlens_q[i];
    const int64_t r0 = blk * job->rb;
    const int64_t r1 = r0 + job->rb < n_i * hpk ? r0 + job->rb : n_i * hpk;
    if (r0 >= r1) return;
    const int nr = (int)(r1 - r0);
    const int nrt = (nr + 15) / 16;
    const int64_t L = a->cache_seqlens[i];
    const int64_t ps = sh->page_size;
    const int nkk = (int)(dqk / 32); /* 32-dim steps of the score tiles */

    uint32_t qp[RTMAX][DMAX / 32][16][16] __attribute__((aligned(64))); /* B tiles of Q^T      */
    uint16_t kbuf[KC][DMAX] __attribute__((aligned(64)));               /* gathered K rows      */
    uint32_t vp[KC / 32][NCT][16][16] __attribute__((aligned(64)));     /* B tiles of V         */
    float sbuf[KC][RBMAX] __attribute__((aligned(64)));                 /* S^T, then P^T        */
    uint32_t ptmp[2][KC / 2][16] __attribute__((aligned(64)));          /* P key pairs x rows,
                                                                           hi and lo parts      */
    uint32_t pa[RTMAX][2][KC / 32][16][16] __attribute__((aligned(64))); /* A tiles of P hi, lo */
    float acc[RBMAX][ACC_LD] __attribute__((aligned(64)));              /* O, un-normalised,
                                                                           columns permuted     */
    float m[RBMAX] __attribute__((aligned(64))), l[RBMAX] __attribute__((aligned(64)));
    int32_t lim[RBMAX] __attribute__((aligned(64)));
    chunk_src srcs, *src = &srcs;
    int64_t kmax = 0, kmin = INT64_MAX; /* most / fewest keys a row of the item sees */

    for (int r = 0; r < 16 * nrt; r++) { m[r] = -INFINITY; l[r] = 0.0f; lim[r] = 0; }
    memset(qp, 0, sizeof(qp[0]) * (size_t)nrt);
    for (int r = 0; r < nr; r++) {
        const int64_t rr = r0 + r, j = rr / hpk, h = g * hpk + rr % hpk;
        const int64_t lr = mla_visible_keys(L, n_i, j, sh->causal);
        lim[r] = (int32_t)lr;
        if (lr > kmax) kmax = lr;
        if (lr < kmin) kmin = lr;
        const char *qr = (const char *)a->q + (i * a->q_stride[0] + j * a->q_stride[1] +
                                               h * a->q_stride[2]) * (int64_t)job->nm.qsz;
        uint16_t row[DMAX];
        load_bf16_row(row, qr, dqk, job->nm.qdt, job->e4m3);
        for (int64_t d2 = 0; d2 < dqk / 2; d2++)
            qp[r >> 4][d2 >> 4][d2 & 15][r & 15] = (uint32_t)row[2 * d2] | (uint32_t)row[2 * d2 + 1] << 16;
    }
    for (int r = 0; r < 16 * nrt; r++) memset(acc[r], 0, DV * sizeof(float));

    tile_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);

    const int32_t *bt = a->block_table + i * a->block_table_stride;
    const char *kc = (const char *)a->k_cache;
    const int64_t ksz = (int64_t)job->nm.ksz;
    const int64_t krs = a->k_stride[1] * ksz; /* bytes between the rows of a page */
    const int direct = job->nm.kdt == MLA_DTYPE_BF16 && ps % 16 == 0;
#define KROW(t) (kc + ((int64_t)bt[(t) / ps] * a->k_stride[0] + ((t) % ps) * a->k_stride[1] + \
                       g * a->k_stride[2]) * ksz)

    for (int64_t c0 = 0; c0 < kmax; c0 += KC) {
        const int nk = (int)(kmax - c0 < KC ? kmax - c0 : KC);
        /* 1. the chunk's rows: whole 16-key tiles of a bf16 cache straight from their page,
         *    the rest gathered into kbuf (rows < kmax <= L only; zeros past nk) */
        for (int kt = 0; kt < KC / 16; kt++) {
            const int k0 = 16 * kt;
            if (direct && k0 + 16 <= nk) {
                const char *p0 = KROW(c0 + k0);
                src->kt_base[kt] = p0;
                src->kt_stride[kt] = krs;
                for (int k = 0; k < 16; k++) src->row[k0 + k] = (const uint16_t *)(p0 + k * krs);
            } else {
                for (int k = k0; k < k0 + 16; k++) {
                    if (k < nk) load_bf16_row(kbuf[k], KROW(c0 + k), dqk, job->nm.kdt, job->e4m3);
                    else memset(kbuf[k], 0, sizeof kbuf[k]);
                    src->row[k] = kbuf[k];
                }
                src->kt_base[kt] = kbuf[k0];
                src->kt_stride[kt] = DMAX * 2;
            }
        }
        /* the next chunk's rows are prefetched into L2 in four parts spread over this chunk's
         * steps, so that the requests overlap the tile work instead of stalling in one burst */
#define PREFETCH_PART(part)                                                                     \
        for (int64_t t = c0 + KC + 16 * (part); t < c0 + KC + 16 * (part) + 16 && t < kmax; t++) { \
            const char *p_ = KROW(t);                                                           \
            for (int64_t off = 0; off < dqk * ksz; off += 64) _mm_prefetch(p_ + off, _MM_HINT_T1); \
        }
        PREFETCH_PART(0)
        /* 2. V in key pairs: vp[kq][ct][k2][c] = (V[32 kq + 2 k2][col], V[32 kq + 2 k2 + 1][col])
         *    with col = perm(ct, c) (unpacklo / unpackhi within 128-bit lanes; see COL()).
         *    Where a row of the item does not see some of the chunk's keys (causal), its P is 0
         *    there, and 0 * (NaN or Inf) would reach it: such chunks get V's non-finite values
         *    as 0. Every row that sees such a key is NaN anyway (a non-finite value among the
         *    first 512 dims makes its score NaN or +-inf), as in the reference, which never
         *    multiplies by a masked key's V. */
        const int clean = c0 + nk > kmin;
        const __m512i expo = _mm512_set1_epi16(0x7f80);
        for (int kp = 0; kp < KC / 2; kp++) {
            const uint16_t *va = src->row[2 * kp], *vb = src->row[2 * kp + 1];
            uint32_t (*dst)[16][16] = vp[kp >> 4];
            const int k2 = kp & 15;
            for (int cb = 0; cb < DV / 32; cb++) {
                __m512i x = _mm512_loadu_si512(va + 32 * cb), y = _mm512_loadu_si512(vb + 32 * cb);
                if (clean) {
                    x = _mm512_mask_mov_epi16(x, _mm512_cmpeq_epi16_mask(_mm512_and_si512(x, expo), expo),
                                              _mm512_setzero_si512());
                    y = _mm512_mask_mov_epi16(y, _mm512_cmpeq_epi16_mask(_mm512_and_si512(y, expo), expo),
                                              _mm512_setzero_si512());
                }
                _mm512_store_si512(dst[2 * cb][k2], _mm512_unpacklo_epi16(x, y));
                _mm512_store_si512(dst[2 * cb + 1][k2], _mm512_unpackhi_epi16(x, y));
            }
        }
        PREFETCH_PART(1)
        /* 3. S^T = K Q^T into sbuf[key][row], C tiles 0-3, A = K tiles (4, 5 / 4, 5, 7),
         *    B = Q tiles (6, 7 / 6) */
        const int nkt = (nk + 15) / 16;
        for (int v = 0; v < nrt; v += 2) {
            if (v + 1 < nrt) { /* two row tiles x two key tiles */
                for (int kt = 0; kt < nkt; kt += 2) {
                    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                    for (int kk = 0; kk < nkk; kk++) ST_PAIR_KK(kk);
                    _tile_stored(0, &sbuf[16 * kt][16 * v], RBMAX * 4);
                    _tile_stored(1, &sbuf[16 * kt + 16][16 * v], RBMAX * 4);
                    _tile_stored(2, &sbuf[16 * kt][16 * v + 16], RBMAX * 4);
                    _tile_stored(3, &sbuf[16 * kt + 16][16 * v + 16], RBMAX * 4);
                }
            } else { /* one row tile x four key tiles */
                _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                for (int kk = 0; kk < nkk; kk++) {
                    _tile_loadd(6, qp[v][kk], 64);
                    _tile_loadd(4, (const char *)src->kt_base[0] + 64 * kk, src->kt_stride[0]);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_loadd(5, (const char *)src->kt_base[1] + 64 * kk, src->kt_stride[1]);
                    _tile_dpbf16ps(1, 5, 6);
                    if (nkt > 2) {
                        _tile_loadd(7, (const char *)src->kt_base[2] + 64 * kk, src->kt_stride[2]);
                        _tile_dpbf16ps(2, 7, 6);
                        _tile_loadd(4, (const char *)src->kt_base[3] + 64 * kk, src->kt_stride[3]);
                        _tile_dpbf16ps(3, 4, 6);
                    }
                }
                _tile_stored(0, &sbuf[0][16 * v], RBMAX * 4);
                _tile_stored(1, &sbuf[16][16 * v], RBMAX * 4);
                if (nkt > 2) {
                    _tile_stored(2, &sbuf[32][16 * v], RBMAX * 4);
                    _tile_stored(3, &sbuf[48][16 * v], RBMAX * 4);
                }
            }
        }
        PREFETCH_PART(2)
        /* 4. softmax per row tile; rows whose maximum moved rescale their accumulator; P as
         *    A tiles (pa[v][kq]: 16 rows x 32 keys) */
        for (int v = 0; v < nrt; v++) {
            const __m512i vis = _mm512_sub_epi32(_mm512_load_si512(&lim[16 * v]), _mm512_set1_epi32((int)c0));
            __mmask16 resc;
            const __m512 alpha = softmax_tile(sbuf, 16 * v, nk, vis, job->nm.scale_log2, &m[16 * v],
                                              &l[16 * v], ptmp[0], ptmp[1], &resc);
            float al[16];
            _mm512_storeu_ps(al, alpha);
            while (resc) {
                const int r = __builtin_ctz(resc);
                resc &= (__mmask16)(resc - 1);
                const __m512 f = _mm512_set1_ps(al[r]);
                float *o = acc[16 * v + r];
                for (int d = 0; d < DV; d += 16) _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), f));
            }
            for (int part = 0; part < 2; part++)
                for (int kq = 0; kq < KC / 32; kq++)
                    transpose16(&pa[v][part][kq][0][0], &ptmp[part][16 * kq][0]);
        }
        PREFETCH_PART(3)
        /* 5. O += P V with P = hi + lo (two passes over the same V tiles). Two row tiles:
         *    C = 2 rows x 2 column tiles (0-3), A = P hi then lo (4, 5), B = V (6, 7); one row
         *    tile: C = 4 column tiles, A = P hi / lo (4 / 5), B = V (6, 7 alternating). The C
         *    tiles stay in registers across the chunk's key halves. */
        const int nkq = (nk + 31) / 32;
        for (int v = 0; v < nrt; v += 2) {
            float *o0 = acc[16 * v], *o1 = acc[16 * v + 16];
            if (v + 1 < nrt) {
                for (int ct = 0; ct < NCT; ct += 2) {
                    _tile_loadd(0, o0 + 16 * ct, ACC_LD * 4);
                    _tile_loadd(1, o0 + 16 * ct + 16, ACC_LD * 4);
                    _tile_loadd(2, o1 + 16 * ct, ACC_LD * 4);
                    _tile_loadd(3, o1 + 16 * ct + 16, ACC_LD * 4);
                    for (int kq = 0; kq < nkq; kq++) {
                        _tile_loadd(6, vp[kq][ct], 64);
                        _tile_loadd(7, vp[kq][ct + 1], 64);
                        for (int part = 0; part < 2; part++) { /* P hi, then P lo */
                            _tile_loadd(4, pa[v][part][kq], 64);
                            _tile_loadd(5, pa[v + 1][part][kq], 64);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                    _tile_stored(0, o0 + 16 * ct, ACC_LD * 4);
                    _tile_stored(1, o0 + 16 * ct + 16, ACC_LD * 4);
                    _tile_stored(2, o1 + 16 * ct, ACC_LD * 4);
                    _tile_stored(3, o1 + 16 * ct + 16, ACC_LD * 4);
                }
            } else {
                for (int ct = 0; ct < NCT; ct += 4) {
                    _tile_loadd(0, o0 + 16 * ct, ACC_LD * 4);
                    _tile_loadd(1, o0 + 16 * ct + 16, ACC_LD * 4);
                    _tile_loadd(2, o0 + 16 * ct + 32, ACC_LD * 4);
                    _tile_loadd(3, o0 + 16 * ct + 48, ACC_LD * 4);
                    for (int kq = 0; kq < nkq; kq++) {
                        _tile_loadd(4, pa[v][0][kq], 64); /* P hi */
                        _tile_loadd(5, pa[v][1][kq], 64); /* P lo */
                        _tile_loadd(6, vp[kq][ct], 64);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(0, 5, 6);
                        _tile_loadd(7, vp[kq][ct + 1], 64);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(1, 5, 7);
                        _tile_loadd(6, vp[kq][ct + 2], 64);
                        _tile_dpbf16ps(2, 4, 6);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_loadd(7, vp[kq][ct + 3], 64);
                        _tile_dpbf16ps(3, 4, 7);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                    _tile_stored(0, o0 + 16 * ct, ACC_LD * 4);
                    _tile_stored(1, o0 + 16 * ct + 16, ACC_LD * 4);
                    _tile_stored(2, o0 + 16 * ct + 32, ACC_LD * 4);
                    _tile_stored(3, o0 + 16 * ct + 48, ACC_LD * 4);
                }
            }
        }
    }
#undef PREFETCH_PART
#undef KROW
    _tile_release();

    /* write out and lse (as the reference does); acc column 16 ct + c holds output column
     * 32 (ct / 2) + 8 (c / 4) + 4 (ct % 2) + c % 4 (the unpack order of step 2) */
    const mla_dtype dt = sh->dtype;
    for (int r = 0; r < nr; r++) {
        const int64_t rr = r0 + r, j = rr / hpk, h = g * hpk + rr % hpk;
        uint16_t *orow = (uint16_t *)a->out + i * a->out_stride[0] + j * a->out_stride[1] +
                         h * a->out_stride[2];
        float *lse = a->lse + i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2];
        if (l[r] > 0.0f || l[r] != l[r]) {
            const float inv = job->nm.out_scale / l[r];
            for (int x = 0; x < DV; x++) {
                const int ct = x >> 4, c = x & 15;
                orow[32 * (ct >> 1) + 8 * (c >> 2) + 4 * (ct & 1) + (c & 3)] =
                    mla_float_to_half(dt, acc[r][x] * inv);
            }
            *lse = (m[r] + log2f(l[r])) * 0.69314718055994530942f;
        } else {
            for (int d = 0; d < DV; d++) orow[d] = 0;
            *lse = INFINITY;
        }
    }
}

TGT static void run_item_fn(void *ctx, int64_t w) { run_item((const amx_job *)ctx, w); }

mla_status mla_cpu_amx_decode(const mla_decode_shape *shape, const mla_decode_args *args,
                              float softmax_scale, int num_threads)
{
    if (!mla_cpu_amx_available())
        return mla_set_error(MLA_ERR_UNSUPPORTED, "this CPU or OS does not run AMX bf16 tiles");
    amx_job job;
    job.shape = shape;
    job.args = args;
    job.nm = mla_dense_numerics_of(shape, args, softmax_scale);
    if (job.nm.qdt == MLA_DTYPE_FP16 || job.nm.kdt == MLA_DTYPE_FP16)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "the AMX path takes bf16 or FP8 q and k_cache, not fp16");
    for (int c = 0; c < 256; c++) job.e4m3[c] = mla_float_to_bf16(mla_e4m3_to_float((uint8_t)c));
    job.hpk = shape->h_q / shape->h_kv;
    /* rows per item: up to RTMAX tiles (K gathered and V re-laid once for all of them), fewer
     * when that would leave threads idle (fewer than two items per thread) */
    const int64_t rt_total = (shape->s_q * job.hpk + 15) / 16, groups = shape->b * shape->h_kv;
    int64_t rti = rt_total < RTMAX ? rt_total : RTMAX;
    while (rti > 1 && groups * ((rt_total + rti - 1) / rti) < 2 * (int64_t)num_threads) rti = (rti + 1) / 2;
    job.rb = 16 * rti;
    job.nblk = (rt_total + rti - 1) / rti;
    job.items = groups * job.nblk;
    mla_cpu_parallel(job.items, num_threads, run_item_fn, &job);
    return MLA_OK;
}

#endif /* MLA_AMX_BUILD */
