/* cases.c — the benchmark cases: RNG, bf16/fp16 conversion, the paged-cache layout of spec §6/§7,
 * the spec §7 grid, --case parsing and FlashMLA's formulas (spec §7). */
#include "bench.h"
#include "mla_fp8.h" /* header-only e4m3 rounding (mla_float_to_e4m3) for FP8 test data */

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG: xoshiro256** seeded by splitmix64 --------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bench_rng_seed(bench_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bench_rng_next(bench_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double bench_rng_uniform(bench_rng *rng) { return (double)(bench_rng_next(rng) >> 11) * 0x1.0p-53; }

double bench_rng_normal(bench_rng *rng)
{
    double u1 = 1.0 - bench_rng_uniform(rng); /* (0, 1] */
    double u2 = bench_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- half-precision bits ------------------------------------------------------------------ */

static uint16_t f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static uint16_t f32_to_fp16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: fp16 subnormal or zero */
        if (a <= 0x33000000u)
            return (uint16_t)sign;
        uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (a - 0x38000000u) >> 13, rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

uint16_t bench_f32_to_half(float x, mla_dtype dtype)
{
    return dtype == MLA_DTYPE_FP16 ? f32_to_fp16(x) : f32_to_bf16(x);
}

uint16_t bench_nan_bits(mla_dtype dtype) { return dtype == MLA_DTYPE_FP16 ? 0x7e00u : 0x7fc0u; }

void bench_fill_random(uint16_t *dst, size_t n, mla_dtype dtype, bench_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        double v = bench_rng_normal(rng) / 10.0;
        v = v > 1.0 ? 1.0 : (v < -1.0 ? -1.0 : v);
        dst[i] = bench_f32_to_half((float)v, dtype);
    }
}

void bench_fill_fp8(uint8_t *dst, size_t n, bench_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        double v = bench_rng_normal(rng) / 10.0;
        v = v > 1.0 ? 1.0 : (v < -1.0 ? -1.0 : v);
        dst[i] = mla_float_to_e4m3((float)v);
    }
}

int64_t bench_count_nonfinite_half(const uint16_t *v, size_t n, mla_dtype dtype)
{
    uint16_t mask = dtype == MLA_DTYPE_FP16 ? 0x7c00u : 0x7f80u;
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += (v[i] & mask) == mask;
    return bad;
}

/* lse may be +inf (a row with no key); NaN and -inf are never right. */
int64_t bench_count_bad_lse(const float *v, size_t n)
{
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += isnan(v[i]) || v[i] == -INFINITY;
    return bad;
}

int64_t bench_count_pad_written(const bench_case *c, const bench_layout *lay, const uint16_t *out,
                                const float *lse)
{
    int64_t bad = 0;
    if (!lay->cu_seqlens_q)
        return 0;
    for (int64_t i = 0; i < c->b; i++)
        for (int64_t j = lay->cu_seqlens_q[i + 1] - lay->cu_seqlens_q[i]; j < c->s_q; j++)
            for (int64_t h = 0; h < c->h_q; h++) {
                const uint16_t *o = out + ((i * c->s_q + j) * c->h_q + h) * BENCH_D_V;
                for (int64_t d = 0; d < BENCH_D_V; d++)
                    bad += o[d] != 0;
                bad += lse[(i * c->h_q + h) * c->s_q + j] != 0.0f;
            }
    return bad;
}

/* ---- layout ------------------------------------------------------------------------------ */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static void draw_lengths(const bench_case *c, int32_t *len, bench_rng *rng)
{
    for (int64_t i = 0; i < c->b; i++) {
        int64_t l = c->s_k;
        if (c->varlen)
            l = llround((double)c->s_k + bench_rng_normal(rng) * (double)c->s_k / 2.0);
        if (c->varlen && l < c->s_q)
            l = c->s_q;
        if (l > INT32_MAX / 2)
            l = INT32_MAX / 2;
        len[i] = (int32_t)l;
    }
}

/* Fisher-Yates over [0, n). */
static void shuffle(int32_t *p, int64_t n, bench_rng *rng)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(bench_rng_next(rng) % (uint64_t)(i + 1));
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

/* Query lengths of a qmix case: uniform over the powers of two below s_q and s_q itself ({1, 2, 4}
 * for s_q = 4), from an RNG of their own, so that `rng` (hence the data drawn after the layout) and
 * the key lengths and pages stay exactly those of the same case padded to s_q (qmix 0). Fills
 * total_q and qk_sum for every case. */
static int draw_query_lengths(bench_layout *lay, const bench_case *c, const bench_rng *rng)
{
    lay->total_q = c->b * c->s_q;
    lay->qk_sum = (double)c->s_q * (double)lay->total_sk;
    if (!c->qmix)
        return 0;
    if (!(lay->cu_seqlens_q = malloc((size_t)(c->b + 1) * sizeof(int32_t)))) {
        bench_layout_free(lay);
        return -1;
    }
    int64_t choice[40];
    int nchoice = 0;
    for (int64_t v = 1; v < c->s_q && nchoice < 39; v *= 2)
        choice[nchoice++] = v;
    choice[nchoice++] = c->s_q;
    bench_rng q;
    bench_rng_seed(&q, rng->s[0] ^ 0x71e5u);
    lay->total_q = 0;
    lay->qk_sum = 0;
    lay->cu_seqlens_q[0] = 0;
    for (int64_t i = 0; i < c->b; i++) {
        int64_t n = choice[bench_rng_next(&q) % (uint64_t)nchoice];
        lay->total_q += n;
        lay->qk_sum += (double)n * (double)lay->seqlens[i];
        lay->cu_seqlens_q[i + 1] = (int32_t)lay->total_q;
    }
    return 0;
}

int bench_layout_build(bench_layout *lay, const bench_case *c, bench_rng *rng)
{
    memset(lay, 0, sizeof *lay);
    lay->seqlens = malloc((size_t)c->b * sizeof(int32_t));
    if (!lay->seqlens)
        return -1;
    draw_lengths(c, lay->seqlens, rng);
    for (int64_t i = 0; i < c->b; i++) {
        int64_t l = lay->seqlens[i];
        lay->total_sk += l;
        lay->num_pages += ceil_div(l, c->page);
        if (l > lay->max_sk)
            lay->max_sk = l;
    }
    lay->mean_sk = (double)lay->total_sk / (double)c->b;
    if (lay->num_pages < 1)
        lay->num_pages = 1;
    /* Like FlashMLA's test: the table is padded to 256 tokens, so rows have unused entries. */
    lay->max_pages = ceil_div(ceil_div(lay->max_sk, 256) * 256, c->page);
    if (lay->max_pages < 1)
        lay->max_pages = 1;
    int32_t *perm = malloc((size_t)lay->num_pages * sizeof(int32_t));
    lay->block_table = malloc((size_t)(c->b * lay->max_pages) * sizeof(int32_t));
    if (!perm || !lay->block_table) {
        free(perm);
        bench_layout_free(lay);
        return -1;
    }
    shuffle(perm, lay->num_pages, rng);
    int64_t next = 0;
    for (int64_t i = 0; i < c->b; i++) {
        int64_t used = ceil_div(lay->seqlens[i], c->page);
        int32_t *row = lay->block_table + i * lay->max_pages;
        for (int64_t j = 0; j < lay->max_pages; j++)
            row[j] = j < used ? perm[next++] : BENCH_UNUSED_PAGE;
    }
    free(perm);
    return draw_query_lengths(lay, c, rng);
}

void bench_layout_free(bench_layout *lay)
{
    free(lay->seqlens);
    free(lay->block_table);
    free(lay->cu_seqlens_q);
    lay->seqlens = NULL;
    lay->block_table = NULL;
    lay->cu_seqlens_q = NULL;
}

/* ---- case lists ---------------------------------------------------------------------------- */

static bench_case make_case(int64_t b, int64_t s_q, int64_t h_q, int64_t s_k, int varlen,
                            int64_t page)
{
    bench_case c = {b, s_q, h_q, 1, s_k, page, s_q > 1, varlen, 0, 0};
    return c;
}

/* Spec §7: b=128 varlen x s_q {1,2} (causal for 2) x h_q {16,32,64,128} x s_k {4K,8K,16K},
 * plus b=1 and b=8 at s_k 8192 and b=32 varlen at s_k 2048 (h_q=128, s_q=1). --quick keeps
 * the six cases whose L2-flushed FlashMLA figures spec §7 publishes. */
int bench_grid_cases(bench_case *out, int max, int quick, int64_t page)
{
    static const int64_t sqs[] = {1, 2}, hqs[] = {16, 32, 64, 128}, sks[] = {4096, 8192, 16384};
    int n = 0;
    if (quick) {
        bench_case q[] = {make_case(128, 1, 16, 16384, 1, page), make_case(128, 1, 128, 16384, 1, page),
                          make_case(128, 2, 128, 16384, 1, page), make_case(1, 1, 128, 8192, 0, page),
                          make_case(8, 1, 128, 8192, 0, page),    make_case(32, 1, 128, 2048, 1, page)};
        for (size_t i = 0; i < sizeof q / sizeof q[0] && n < max; i++)
            out[n++] = q[i];
        return n;
    }
    for (int a = 0; a < 2; a++)
        for (int h = 0; h < 4; h++)
            for (int k = 0; k < 3 && n < max; k++)
                out[n++] = make_case(128, sqs[a], hqs[h], sks[k], 1, page);
    bench_case tail[] = {make_case(1, 1, 128, 8192, 0, page), make_case(8, 1, 128, 8192, 0, page),
                         make_case(32, 1, 128, 2048, 1, page)};
    for (size_t i = 0; i < 3 && n < max; i++)
        out[n++] = tail[i];
    return n;
}

int bench_mixed_cases(bench_case *out, int max, int quick, int64_t page, int gpu)
{
    static const int64_t hqs[] = {16, 32, 64, 128};
    int n = 0;
    bench_case one[12];
    int m = 0;
    if (!gpu) {
        one[m++] = make_case(quick ? 2 : 4, 4, 16, quick ? 256 : 1024, 1, page);
        one[m++] = make_case(quick ? 2 : 4, 4, 128, quick ? 256 : 1024, 1, page);
    } else if (quick) {
        one[m++] = make_case(128, 4, 16, 8192, 1, page);
        one[m++] = make_case(128, 4, 128, 8192, 1, page);
    } else {
        for (int h = 0; h < 4; h++)
            one[m++] = make_case(128, 4, hqs[h], 8192, 1, page);
        one[m++] = make_case(128, 4, 128, 4096, 1, page);
        one[m++] = make_case(128, 4, 128, 16384, 1, page);
        one[m++] = make_case(128, 2, 128, 8192, 1, page);
        one[m++] = make_case(32, 4, 128, 8192, 1, page);
    }
    for (int i = 0; i < m && n + 2 <= max; i++) {
        out[n] = one[i];
        out[n++].qmix = 1;
        out[n++] = one[i];
    }
    return n;
}

/* The CPU default: small enough for a laptop-class CPU in seconds. */
int bench_cpu_cases(bench_case *out, int max, int quick, int64_t page)
{
    int64_t b = quick ? 2 : 4, s_k = quick ? 256 : 1024;
    int n = 0;
    if (n < max)
        out[n++] = make_case(b, 1, 16, s_k, 1, page);
    if (n < max)
        out[n++] = make_case(b, 1, 128, s_k, 1, page);
    return n;
}

static int parse_flag_word(const char *w, bench_case *c)
{
    if (!strcmp(w, "causal"))
        c->causal = 1;
    else if (!strcmp(w, "fixed"))
        c->varlen = 0;
    else if (!strcmp(w, "varlen"))
        c->varlen = 1;
    else if (!strcmp(w, "mixed"))
        c->qmix = 1;
    else
        return -1;
    return 0;
}

/* "b,s_q,h_q,h_kv,s_k[,page][,causal][,varlen]": the optional fields are numbers in that
 * order (causal and varlen 0/1), or the words causal / fixed / varlen / mixed anywhere after s_k
 * (mixed: per-request query lengths through cu_seqlens_q, see bench_case.qmix).
 * Defaults: page = default_page, causal 0, varlen 1 (lengths ~ N(s_k, s_k/2)). */
int bench_parse_case(const char *text, int64_t default_page, bench_case *c, char *err, size_t n)
{
    bench_case r = {0, 0, 0, 0, 0, default_page, 0, 1, 0, 0};
    int64_t *num[] = {&r.b, &r.s_q, &r.h_q, &r.h_kv, &r.s_k, &r.page};
    int field = 0;
    const char *p = text;
    while (*p) {
        char tok[64];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof tok) {
            snprintf(err, n, "--case '%s': empty or overlong field", text);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = 0;
        p += len + (p[len] == ',');
        if (isalpha((unsigned char)tok[0])) {
            if (field < 5 || parse_flag_word(tok, &r)) {
                snprintf(err, n, "--case '%s': unexpected '%s'", text, tok);
                return -1;
            }
            continue;
        }
        char *end;
        long long v = strtoll(tok, &end, 10);
        if (*end || v < 0 || field > 7) {
            snprintf(err, n, "--case '%s': bad field '%s'", text, tok);
            return -1;
        }
        if (field < 6)
            *num[field] = v;
        else if (field == 6)
            r.causal = v != 0;
        else
            r.varlen = v != 0;
        field++;
    }
    if (field < 5 || r.b < 1 || r.s_q < 1 || r.h_q < 1 || r.h_kv < 1 || (field > 5 && r.page < 1)) {
        snprintf(err, n, "--case '%s': want b,s_q,h_q,h_kv,s_k[,page][,causal][,varlen] "
                         "with b, s_q, h_q, h_kv, page >= 1", text);
        return -1;
    }
    *c = r;
    return 0;
}

void bench_case_label(const bench_case *c, char *buf, size_t n)
{
    int k = snprintf(buf, n, "b=%lld s_q=%lld h_q=%lld", (long long)c->b, (long long)c->s_q,
                     (long long)c->h_q);
    if (c->h_kv != 1 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " h_kv=%lld", (long long)c->h_kv);
    if (k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " s_k=%lld%s", (long long)c->s_k,
                      c->varlen ? " varlen" : "");
    if (c->causal && c->s_q > 1 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " causal");
    if (c->page != 64 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " page=%lld", (long long)c->page);
    if (c->qmix && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " mixed");
    if (c->kv_fp8 && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " fp8");
}

/* qmix is left out: a mixed case and its padded twin get the same lengths, pages and data. */
uint64_t bench_case_seed(const bench_case *c, uint64_t seed)
{
    uint64_t x = seed;
    /* the page size enters as 64 whatever it is: a case at pages 16 / 64 / 128 draws the same lengths,
     * so that page-size rows compare the same work (the seeds of page-64 cases are unchanged) */
    int64_t f[] = {c->b, c->s_q, c->h_q, c->h_kv, c->s_k, 64, c->causal, c->varlen};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        x ^= (uint64_t)f[i] + 0x9e3779b97f4a7c15ull + (x << 6) + (x >> 2);
        x = splitmix64(&x);
    }
    return x;
}

/* ---- FlashMLA's formulas (spec §7) --------------------------------------------------------- */

double bench_flops(const bench_case *c, double mean_sk)
{
    return (double)c->b * (double)c->h_q * (double)c->s_q * mean_sk * 2.0 * (BENCH_D_QK + BENCH_D_V);
}

double bench_bytes(const bench_case *c, double mean_sk)
{
    const double e = c->kv_fp8 ? 1.0 : 2.0; /* bytes per q / cache element; out stays 16-bit */
    double q = (double)c->s_q * (double)c->h_q * BENCH_D_QK * e;
    double kv = mean_sk * (double)c->h_kv * BENCH_D_QK * e;
    double o = (double)c->s_q * (double)c->h_q * BENCH_D_V * 2.0;
    return (double)c->b * (q + kv + o);
}

void bench_work(const bench_result *r, double *flops, double *bytes)
{
    const bench_case *c = &r->c;
    if (!c->qmix) {
        *flops = bench_flops(c, r->mean_sk);
        *bytes = bench_bytes(c, r->mean_sk);
        return;
    }
    const double e = c->kv_fp8 ? 1.0 : 2.0;
    const double rows = (double)r->total_q * (double)c->h_q;
    *flops = (double)c->h_q * r->qk_sum * 2.0 * (BENCH_D_QK + BENCH_D_V);
    *bytes = rows * BENCH_D_QK * e + (double)c->b * r->mean_sk * (double)c->h_kv * BENCH_D_QK * e +
             rows * BENCH_D_V * 2.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    if (n <= 0)
        return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_finish_result(bench_result *r, const bench_env *env, double *samples_us, int n)
{
    r->iters = n;
    r->us = bench_median(samples_us, n); /* sorted from here on */
    r->us_min = samples_us[0];
    r->us_max = samples_us[n - 1];
    bench_work(r, &r->flops, &r->bytes);
    r->gbs = r->bytes / (r->us * 1e-6) / 1e9;
    r->tflops = r->flops / (r->us * 1e-6) / 1e12;
    r->pct_copy = env->copy_gbs > 0 ? 100.0 * r->gbs / env->copy_gbs : NAN;
    r->pct_gemm = env->gemm_tflops > 0 ? 100.0 * r->tflops / env->gemm_tflops : NAN;
    r->ok = 1;
}

/* ---- API structs ----------------------------------------------------------------------------- */

int64_t bench_tail_rows(const bench_case *c, const bench_layout *lay, int64_t i, int64_t *page_id,
                        int64_t *first_row)
{
    int64_t len = lay->seqlens[i], rem = len % c->page;
    if (len == 0 || rem == 0)
        return 0;
    *page_id = lay->block_table[i * lay->max_pages + len / c->page];
    *first_row = rem;
    return c->page - rem;
}

mla_decode_shape bench_make_shape(const bench_case *c, mla_dtype dtype, int cpu_threads)
{
    mla_decode_shape s = mla_decode_shape_default();
    s.b = c->b;
    s.s_q = c->s_q;
    s.h_q = c->h_q;
    s.h_kv = c->h_kv;
    s.d_qk = BENCH_D_QK;
    s.d_v = BENCH_D_V;
    s.page_size = c->page;
    s.dtype = dtype;
    if (c->kv_fp8)
        s.kv_dtype = s.q_dtype = MLA_DTYPE_FP8_E4M3;
    s.causal = c->causal;
    s.cpu_threads = cpu_threads;
    return s;
}

mla_decode_args bench_make_args(const bench_case *c, const bench_layout *lay, const void *q,
                                const void *k_cache, const int32_t *block_table,
                                const int32_t *seqlens, void *out, float *lse)
{
    mla_decode_args a = mla_decode_args_default();
    a.q = q;
    a.q_stride[2] = BENCH_D_QK;
    a.q_stride[1] = c->h_q * a.q_stride[2];
    a.q_stride[0] = c->s_q * a.q_stride[1];
    a.k_cache = k_cache;
    a.num_pages = lay->num_pages;
    a.k_stride[2] = BENCH_D_QK;
    a.k_stride[1] = c->h_kv * a.k_stride[2];
    a.k_stride[0] = c->page * a.k_stride[1];
    a.block_table = block_table;
    a.max_pages = lay->max_pages;
    a.block_table_stride = lay->max_pages;
    a.cache_seqlens = seqlens;
    a.cu_seqlens_q = NULL;
    a.out = out;
    a.out_stride[2] = BENCH_D_V;
    a.out_stride[1] = c->h_q * a.out_stride[2];
    a.out_stride[0] = c->s_q * a.out_stride[1];
    a.lse = lse;
    a.lse_stride[2] = 1;
    a.lse_stride[1] = c->s_q;
    a.lse_stride[0] = c->h_q * c->s_q;
    a.softmax_scale = 0.0f; /* the default d_qk ** -0.5 */
    return a;
}
