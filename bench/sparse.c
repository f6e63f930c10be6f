/* sparse.c — mla-bench --sparse-decode / --sparse-prefill / --sparse: DeepSeek sparse attention
 * through the public mla.h API, on the GPU when the build has CUDA and one is visible, else (or
 * with --device cpu) on the CPU path.
 * GPU: timed like the dense bench (spec §7): the whole call (sparse decode: scheduler + kernel +
 * combine; prefill: the kernel) captured in a CUDA graph and replayed, L2 flushed by a 256 MiB
 * memset before every replay (outside the timed region), CUDA events around each replay, median
 * after a warm-up.
 * CPU: wall clock (CLOCK_MONOTONIC) of the whole call (decode: mla_sparse_decode on a plan made
 * once, outside the timed runs; prefill: mla_sparse_prefill), median after a warm-up, on cases
 * that keep FlashMLA's shapes per token with b / s_q cut down (a CPU is ~1000x slower).
 * FlashMLA's formulas (dossier §5.3-5.4):
 *   decode:  flop = 2 * h_q * attended * (d_qk + d_v), attended = b * s_q * (topk + extra_topk)
 *            bytes = 2*b*s_q*h_q*d_qk + retrieved * kv_token_size + 2*b*s_q*h_q*d_v
 *            (retrieved = distinct positions read; kv_token_size 656 V32 / 576 MODEL1)
 *   prefill: flop = 2 * s_q * topk * h_q * (d_qk + d_v)
 *            bytes = 2*s_q*topk*d_qk + 2*s_q*h_q*(d_qk + d_v) (the gathered keys, q and out)
 * FlashMLA's figures (H800; H100 SXM has the same compute): 410 TFLOPS sparse decode (V32, b=128,
 * h_q=128, s_q=2, topk=2048), 640 TFLOPS sparse prefill. Decode indices are valid and distinct per
 * query token. Prefill rows name their indices: "FlashMLA's indices" are drawn the way FlashMLA's
 * prefill benchmark draws them (31 of 32 uniform with repeats over the last 20000 positions, see
 * pick_flashmla), and compare with FlashMLA's own H100 figure for that row (spec §7); "distinct
 * uniform" rows spread topk distinct positions over the whole s_kv, a larger working set than any
 * FlashMLA benchmark uses. */
#include "bench.h"
#include "internal.h" /* mla_cpu_sparse_kernel: which CPU kernel the sparse calls run */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mla_fp8.h"

#ifdef MLA_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

typedef struct sp_bcase {
    int prefill;
    /* decode */
    int64_t b, s_q, h_q, topk, s_k, page;
    mla_fp8_format fmt;
    int64_t extra_topk, extra_page, extra_s_k;
    /* prefill */
    int64_t s_kv, dqk;
    const char *note;
    double target_tflops; /* FlashMLA's published figure for this case, 0 if none */
    int flashmla_indices; /* prefill: indices drawn as FlashMLA's benchmark draws them */
    double h100_tflops; /* decode: FlashMLA's figure on one H100 (spec §7), timed from its sparse kernel's start to
                         * its combine's end (its schedule made once, outside): the GPU bench adds a row timed the
                         * same way, the schedule reused (MLA_SPARSE_DECODE_REUSE_SCHEDULE); 0: no such row */
} sp_bcase;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* uniform in [lo, lo + span) */
static float rnd_uniform(double lo, double span)
{
    return (float)(((double)(rnd() >> 11) / 9007199254740992.0) * span + lo);
}

/* topk distinct positions in [0, n) (n >= topk) into row; stamp[] marks picks of this row */
static void pick_distinct(int32_t *row, int64_t topk, int64_t n, int64_t base, uint32_t *stamp, uint32_t id)
{
    for (int64_t k = 0; k < topk;) {
        const int64_t t = (int64_t)(rnd() % (uint64_t)n);
        if (stamp[t] == id) continue;
        stamp[t] = id;
        row[k++] = (int32_t)(base + t);
    }
}

/* The prefill indices of FlashMLA's benchmark (its tests/test_flash_mla_prefill.py, described
 * here, not copied): n = min(topk, s_kv) distinct positions, each replaced with probability 31/32
 * by a uniform draw (repeats allowed) from [max(0, s_kv - 20000), s_kv - 1); the row's entries past
 * n are invalid (2147480000); the row is then shuffled. So ~97% of the keys lie in the last 20000
 * positions (23 MB of bf16 rows at d_qk 576), whatever s_kv is. */
static void pick_flashmla(int32_t *row, int64_t topk, int64_t s_kv, uint32_t *stamp, uint32_t id)
{
    const int64_t n = topk < s_kv ? topk : s_kv, lo = s_kv > 20000 ? s_kv - 20000 : 0,
                  span = s_kv - 1 - lo;
    pick_distinct(row, n, s_kv, 0, stamp, id);
    for (int64_t k = 0; k < n; k++)
        if (rnd() % 32 < 31 && span > 0) row[k] = (int32_t)(lo + (int64_t)(rnd() % (uint64_t)span));
    for (int64_t k = n; k < topk; k++) row[k] = 2147480000;
    for (int64_t k = topk - 1; k > 0; k--) {
        const int64_t r = (int64_t)(rnd() % (uint64_t)(k + 1));
        const int32_t x = row[k];
        row[k] = row[r];
        row[r] = x;
    }
}

/* min(topk, s_kv) distinct positions uniform over [0, s_kv); the rest of the row invalid (-1) */
static void pick_uniform(int32_t *row, int64_t topk, int64_t s_kv, uint32_t *stamp, uint32_t id)
{
    const int64_t n = topk < s_kv ? topk : s_kv;
    pick_distinct(row, n, s_kv, 0, stamp, id);
    for (int64_t k = n; k < topk; k++) row[k] = -1;
}

static FILE *g_json = NULL;

/* the indices of prefill row `id` (1-based token) of case c: FlashMLA's draw or distinct uniform */
static void pick_prefill_row(const sp_bcase *c, int32_t *row, uint32_t *stamp, uint32_t id)
{
    if (c->flashmla_indices)
        pick_flashmla(row, c->topk, c->s_kv, stamp, id);
    else
        pick_uniform(row, c->topk, c->s_kv, stamp, id);
}

/* --prefill-case rows (replace the prefill list when given) */
#define SP_MAX_CUSTOM 16
static sp_bcase g_custom[SP_MAX_CUSTOM];
static int g_ncustom = 0;

/* "s_q,s_kv,h_q,topk,d_qk,flashmla|uniform" -> a prefill case; 0 on success */
static int parse_prefill_case(const char *v, sp_bcase *c)
{
    long long sq, skv, hq, tk, d;
    char idx[16] = "";
    if (sscanf(v, "%lld,%lld,%lld,%lld,%lld,%15s", &sq, &skv, &hq, &tk, &d, idx) != 6) return 1;
    /* s_kv below 2^28: int32 indices, and FlashMLA's invalid marker 2147480000 stays out of range */
    if (sq < 1 || skv < 1 || skv > (1ll << 28) || hq < 1 || tk < 1 || (d != 576 && d != 512)) return 1;
    if (strcmp(idx, "flashmla") && strcmp(idx, "uniform")) return 1;
    memset(c, 0, sizeof *c);
    c->prefill = 1;
    c->s_q = sq; c->s_kv = skv; c->h_q = hq; c->topk = tk; c->dqk = d;
    c->fmt = MLA_FP8_FORMAT_INVALID;
    c->flashmla_indices = idx[0] == 'f';
    c->note = c->flashmla_indices ? "FlashMLA's indices (--prefill-case)" : "distinct uniform indices (--prefill-case)";
    return 0;
}

static void decode_label(const sp_bcase *c, char *what, size_t n)
{
    snprintf(what, n, "sparse decode %s b=%lld s_q=%lld h_q=%lld topk=%lld%s page=%lld",
             c->fmt == MLA_FP8_FORMAT_V32 ? "V32" : "MODEL1", (long long)c->b, (long long)c->s_q,
             (long long)c->h_q, (long long)c->topk, c->extra_topk > 0 ? "+extra" : "",
             (long long)c->page);
    if (c->extra_topk > 0) {
        const size_t l = strlen(what);
        snprintf(what + l, n - l, " (extra %lld, page %lld)", (long long)c->extra_topk,
                 (long long)c->extra_page);
    }
}

static void prefill_label(const sp_bcase *c, char *what, size_t n)
{
    snprintf(what, n, "sparse prefill d_qk=%lld s_q=%lld s_kv=%lld h_q=%lld topk=%lld",
             (long long)c->dqk, (long long)c->s_q, (long long)c->s_kv, (long long)c->h_q,
             (long long)c->topk);
}

/* the watchdog's limit (bench/watchdog.c) counts from a case's start, under its name */
static void arm_case(const sp_bcase *c, int decode)
{
    char what[200];
    if (decode) decode_label(c, what, sizeof what);
    else prefill_label(c, what, sizeof what);
    bench_watchdog_arm(what);
}

/* The formulas at the top of this file; `retrieved`: distinct cache positions the case reads. */
static void decode_volume(const sp_bcase *c, double retrieved, double *flop, double *bytes)
{
    const int v32 = c->fmt == MLA_FP8_FORMAT_V32;
    const int64_t dqk = v32 ? 576 : 512, b = c->b, s_q = c->s_q, h_q = c->h_q;
    const double attended = (double)b * s_q * (c->topk + c->extra_topk);
    *flop = 2.0 * h_q * attended * (dqk + 512);
    *bytes = 2.0 * b * s_q * h_q * dqk + retrieved * (v32 ? 656 : 576) + 2.0 * b * s_q * h_q * 512;
}

static void prefill_volume(const sp_bcase *c, double *flop, double *bytes)
{
    const int64_t s_q = c->s_q, h_q = c->h_q, dqk = c->dqk, topk = c->topk;
    *flop = 2.0 * s_q * topk * h_q * (dqk + 512);
    *bytes = (double)s_q * topk * dqk * 2 + (double)s_q * h_q * (dqk + 512) * 2;
}

/* One result line (and JSON record). CPU rates are ~1000x below the GPU's: more digits. */
static void report(const char *what, const sp_bcase *c, double us, double flop, double bytes,
                   int cpu)
{
    const double tf = us > 0 ? flop / us * 1e-6 : 0, gbs = us > 0 ? bytes / us * 1e-3 : 0;
    if (cpu)
        printf("%-72s %9.1f us %7.3f TFLOPS %7.3f GB/s", what, us, tf, gbs);
    else
        printf("%-72s %9.1f us %7.1f TFLOPS %7.0f GB/s", what, us, tf, gbs);
    if (c->target_tflops > 0)
        printf("   FlashMLA %3.0f TFLOPS (%.2fx)", c->target_tflops, tf / c->target_tflops);
    if (c->note) printf("   %s", c->note);
    printf("\n");
    fflush(stdout);
    if (g_json && cpu)
        fprintf(g_json, "{\"case\": \"%s\", \"us\": %.3f, \"tflops\": %.4f, \"gbs\": %.3f, "
                        "\"flashmla_tflops\": %.0f}\n", what, us, tf, gbs, c->target_tflops);
    else if (g_json)
        fprintf(g_json, "{\"case\": \"%s\", \"us\": %.3f, \"tflops\": %.2f, \"gbs\": %.1f, "
                        "\"flashmla_tflops\": %.0f}\n", what, us, tf, gbs, c->target_tflops);
}

#ifdef MLA_WITH_CUDA

/* Fills `bytes` of device memory by repeating `pattern` (pat_bytes) and doubling. */
static int fill_dev(void *dst, size_t bytes, const void *pattern, size_t pat_bytes)
{
    size_t n = pat_bytes < bytes ? pat_bytes : bytes;
    if (cudaMemcpy(dst, pattern, n, cudaMemcpyHostToDevice) != cudaSuccess) return -1;
    while (n < bytes) {
        const size_t c = n < bytes - n ? n : bytes - n;
        if (cudaMemcpy((char *)dst + n, dst, c, cudaMemcpyDeviceToDevice) != cudaSuccess) return -1;
        n += c;
    }
    return 0;
}

typedef struct sp_timer {
    cudaStream_t s;
    void *flush;
    size_t flush_bytes;
} sp_timer;

/* median µs of `iters` replays of graph exec ge (after warmup), L2 flushed before each */
static double time_graph(sp_timer *t, cudaGraphExec_t ge, int warmup, int iters)
{
    double *us = malloc(sizeof(double) * (size_t)iters);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double med = -1;
    for (int i = -warmup; i < iters; i++) {
        cudaMemsetAsync(t->flush, i & 0xff, t->flush_bytes, t->s);
        cudaEventRecord(e0, t->s);
        cudaGraphLaunch(ge, t->s);
        cudaEventRecord(e1, t->s);
        if (cudaEventSynchronize(e1) != cudaSuccess) goto done;
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 0) us[i] = ms * 1e3;
    }
    for (int i = 1; i < iters; i++) /* insertion sort */
        for (int j = i; j > 0 && us[j] < us[j - 1]; j--) {
            const double x = us[j]; us[j] = us[j - 1]; us[j - 1] = x;
        }
    med = iters % 2 ? us[iters / 2] : 0.5 * (us[iters / 2 - 1] + us[iters / 2]);
done:
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    free(us);
    return med;
}

/* A paged FP8 cache of `pages` pages on the device (random tokens quantised on the host, tiled). */
static void *make_cache(mla_fp8_format fmt, int64_t pages, int64_t ps, int64_t *stride)
{
    const int64_t d = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512, bpt = fmt == MLA_FP8_FORMAT_V32 ? 656 : 584;
    *stride = (ps * bpt + 15) / 16 * 16;
    const int64_t pat_pages = pages < 64 ? pages : 64;
    uint16_t *bf = malloc((size_t)(pat_pages * ps * d) * 2);
    uint8_t *pat = malloc((size_t)(pat_pages * *stride));
    for (int64_t x = 0; x < pat_pages * ps * d; x++) {
        double u = ((double)(rnd() >> 11) / 9007199254740992.0) * 2 - 1;
        bf[x] = mla_float_to_bf16((float)u);
    }
    memset(pat, 0, (size_t)(pat_pages * *stride));
    void *dev = NULL;
    if (mla_fp8_quantize_cache(fmt, pat_pages, ps, bf, ps * d, d, pat, *stride, MLA_DEVICE_CPU, NULL) != MLA_OK ||
        cudaMalloc(&dev, (size_t)(pages * *stride)) != cudaSuccess ||
        fill_dev(dev, (size_t)(pages * *stride), pat, (size_t)(pat_pages * *stride))) {
        fprintf(stderr, "mla-bench: cache setup failed: %s\n", mla_last_error());
        if (dev) cudaFree(dev);
        dev = NULL;
    }
    free(bf);
    free(pat);
    return dev;
}

static void *bf16_dev(size_t n)
{
    const size_t pn = (size_t)1 << 20;
    uint16_t *pat = malloc(pn * 2);
    for (size_t x = 0; x < pn; x++) pat[x] = mla_float_to_bf16((float)(((double)(rnd() >> 11) / 9007199254740992.0) * 0.2 - 0.1));
    void *d = NULL;
    if (cudaMalloc(&d, n * 2) != cudaSuccess || fill_dev(d, n * 2, pat, (n < pn ? n : pn) * 2)) d = NULL;
    free(pat);
    return d;
}

static void decode_timeline(const char *what, sp_timer *t, cudaGraphExec_t ge);
static int run_decode_case(const sp_bcase *c, sp_timer *t, int warmup, int iters)
{
    arm_case(c, 1);
    const int v32 = c->fmt == MLA_FP8_FORMAT_V32;
    const int64_t dqk = v32 ? 576 : 512, ps = c->page, b = c->b, s_q = c->s_q, h_q = c->h_q;
    const int64_t ppr = (c->s_k + ps - 1) / ps; /* pages per request */
    int64_t kstride = 0, estride = 0;
    int rc = 1;
    void *kc = make_cache(c->fmt, b * ppr, ps, &kstride), *ec = NULL;
    const int64_t eppr = c->extra_topk > 0 ? (c->extra_s_k + c->extra_page - 1) / c->extra_page : 0;
    if (c->extra_topk > 0) ec = make_cache(c->fmt, b * eppr, c->extra_page, &estride);
    int32_t *ind = malloc((size_t)(b * s_q * c->topk) * 4);
    int32_t *eind = c->extra_topk > 0 ? malloc((size_t)(b * s_q * c->extra_topk) * 4) : NULL;
    uint32_t *stamp = calloc((size_t)(c->s_k > c->extra_s_k ? c->s_k : c->extra_s_k), 4);
    unsigned char *seen = calloc((size_t)(b * ppr * ps + b * eppr * c->extra_page + 1), 1);
    double retrieved = 0;
    uint32_t id = 0;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < s_q; j++) {
            int32_t *row = ind + (i * s_q + j) * c->topk;
            pick_distinct(row, c->topk, c->s_k, i * ppr * ps, stamp, ++id);
            for (int64_t k = 0; k < c->topk; k++) if (!seen[row[k]]++) retrieved++;
            if (eind) {
                int32_t *er = eind + (i * s_q + j) * c->extra_topk;
                pick_distinct(er, c->extra_topk, c->extra_s_k, i * eppr * c->extra_page, stamp, ++id);
                for (int64_t k = 0; k < c->extra_topk; k++)
                    if (!seen[b * ppr * ps + er[k]]++) retrieved++;
            }
        }
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = b; sh.s_q = s_q; sh.h_q = h_q; sh.h_kv = 1; sh.d_qk = dqk; sh.d_v = 512; sh.topk = c->topk;
    sh.page_size = ps; sh.format = c->fmt; sh.extra_topk = c->extra_topk; sh.extra_page_size = c->extra_page;
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    void *ws = NULL;
    size_t wsb = 0;
    mla_sparse_decode_plan_t plan = NULL;
    cudaGraph_t g = NULL, g2 = NULL;
    cudaGraphExec_t ge = NULL, ge2 = NULL;
    a.q = bf16_dev((size_t)(b * s_q * h_q * dqk));
    a.q_stride[2] = dqk; a.q_stride[1] = h_q * dqk; a.q_stride[0] = s_q * h_q * dqk;
    a.k_cache = kc; a.num_pages = b * ppr; a.k_page_stride_bytes = kstride;
    int32_t *dind = NULL, *deind = NULL;
    cudaMalloc((void **)&dind, (size_t)(b * s_q * c->topk) * 4);
    cudaMemcpy(dind, ind, (size_t)(b * s_q * c->topk) * 4, cudaMemcpyHostToDevice);
    a.indices = dind; a.indices_stride[1] = c->topk; a.indices_stride[0] = s_q * c->topk;
    if (eind) {
        cudaMalloc((void **)&deind, (size_t)(b * s_q * c->extra_topk) * 4);
        cudaMemcpy(deind, eind, (size_t)(b * s_q * c->extra_topk) * 4, cudaMemcpyHostToDevice);
        a.extra_k_cache = ec; a.extra_num_pages = b * eppr; a.extra_k_page_stride_bytes = estride;
        a.extra_indices = deind; a.extra_indices_stride[1] = c->extra_topk; a.extra_indices_stride[0] = s_q * c->extra_topk;
    }
    cudaMalloc(&a.out, (size_t)(b * s_q * h_q * 512) * 2);
    cudaMalloc((void **)&a.lse, (size_t)(b * s_q * h_q) * 4);
    a.out_stride[2] = 512; a.out_stride[1] = h_q * 512; a.out_stride[0] = s_q * h_q * 512;
    a.lse_stride[2] = 1; a.lse_stride[1] = s_q; a.lse_stride[0] = h_q * s_q;
    if (!a.q || !kc || (c->extra_topk > 0 && !ec) || !a.out || !a.lse) {
        fprintf(stderr, "mla-bench: device allocation failed\n");
        goto done;
    }
    if (mla_sparse_decode_plan_create(&plan, &sh, 0) != MLA_OK || mla_sparse_decode_workspace_size(plan, &wsb) != MLA_OK) {
        fprintf(stderr, "mla-bench: sparse plan: %s\n", mla_last_error());
        goto done;
    }
    cudaMalloc(&ws, wsb);
    cudaStreamBeginCapture(t->s, cudaStreamCaptureModeThreadLocal);
    const mla_status st = mla_sparse_decode(plan, &a, ws, wsb, (struct CUstream_st *)t->s);
    cudaStreamEndCapture(t->s, &g);
    if (st != MLA_OK || !g || cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
        fprintf(stderr, "mla-bench: sparse decode capture: %s\n", mla_last_error());
        goto done;
    }
    {
        const double us = time_graph(t, ge, warmup, iters);
        double flop, bytes;
        decode_volume(c, retrieved, &flop, &bytes);
        char what[200];
        decode_label(c, what, sizeof what);
        report(what, c, us, flop, bytes, 0);
        rc = us > 0 ? 0 : 1;
        if (rc == 0 && c->h100_tflops > 0) {
            /* the schedule the replays above made stays in ws: the same call again without its scheduler */
            a.flags = MLA_SPARSE_DECODE_REUSE_SCHEDULE;
            cudaStreamBeginCapture(t->s, cudaStreamCaptureModeThreadLocal);
            const mla_status st2 = mla_sparse_decode(plan, &a, ws, wsb, (struct CUstream_st *)t->s);
            cudaStreamEndCapture(t->s, &g2);
            if (st2 != MLA_OK || !g2 || cudaGraphInstantiate(&ge2, g2, 0) != cudaSuccess) {
                fprintf(stderr, "mla-bench: sparse decode capture (schedule reused): %s\n", mla_last_error());
                rc = 1;
                goto done;
            }
            const double us2 = time_graph(t, ge2, warmup, iters);
            sp_bcase c2 = *c;
            c2.target_tflops = c->h100_tflops;
            c2.note = "schedule reused: kernel + combine, as FlashMLA's H100 figure (spec 7)";
            char what2[220];
            snprintf(what2, sizeof what2, "%s [reused]", what);
            report(what2, &c2, us2, flop, bytes, 0);
            rc = us2 > 0 ? 0 : 1;
            /* the same replays read by CUPTI's kernel records: the sparse kernel's start to the combine's
             * end, the clock of FlashMLA's figure (no launch gap in it); no row where CUPTI is missing.
             * MLA_BENCH_KSPAN=0: no span row */
            const char *ks = getenv("MLA_BENCH_KSPAN");
            double parts[8];
            int np = 0;
            const double us3 = rc == 0 && !(ks && ks[0] == '0')
                                   ? kspan_time_graph(t->s, t->flush, t->flush_bytes, g2, ge2, warmup, iters, parts, 8, &np)
                                   : -1;
            if (us3 > 0) {
                char note[200];
                int o = snprintf(note, sizeof note, "kernel span (CUPTI), FlashMLA's clock; kernels at");
                for (int j = 0; j + 1 < np && o < (int)sizeof note; j += 2)
                    o += snprintf(note + o, sizeof note - (size_t)o, " %.1f-%.1f", parts[j], parts[j + 1]);
                c2.note = note;
                snprintf(what2, sizeof what2, "%s [span]", what);
                report(what2, &c2, us3, flop, bytes, 0);
            }
            if (rc == 0) decode_timeline(what, t, ge2);
        }
    }
done:
    if (ge2) cudaGraphExecDestroy(ge2);
    if (g2) cudaGraphDestroy(g2);
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    mla_sparse_decode_plan_destroy(plan);
    cudaFree(ws); cudaFree((void *)a.q); cudaFree(kc); cudaFree(ec); cudaFree(dind); cudaFree(deind);
    cudaFree(a.out); cudaFree(a.lse);
    free(ind); free(eind); free(stamp); free(seen);
    return rc;
}

/* MLA_SP_DIAG=10 builds only (kernels/sparse_sm90.cu): the producer-warpgroup decode's per-CTA timeline of one
 * more L2-flushed replay of graph ge (MLA_BENCH_TIMELINE=1): for each slot the median over the CTAs that wrote
 * it, in µs from the CTA's entry (clock64 / SM clock, the clock from globaltimer), and the grid's first entry
 * to last exit by %globaltimer */
extern int mla_diag_spd_io(void *host, int reset) __attribute__((weak));
/* one L2-flushed replay of ge between a reset of a diag array and its copy into host (io: its reader) */
static int diag_replay(int (*io)(void *, int), sp_timer *t, cudaGraphExec_t ge, void *host)
{
    return io(NULL, 1) || cudaMemsetAsync(t->flush, 1, t->flush_bytes, t->s) != cudaSuccess ||
           cudaGraphLaunch(ge, t->s) != cudaSuccess || cudaStreamSynchronize(t->s) != cudaSuccess || io(host, 0);
}
static void decode_timeline(const char *what, sp_timer *t, cudaGraphExec_t ge)
{
    static unsigned long long d[4096][24];
    static double v[4096];
    static const char *const names[] = {"sync", "Q ready", "tile 0 full", "tiles done", "epilogue done", "exit"};
    static const int slot[] = {1, 2, 3, 4, 5, 10};
    if (!mla_diag_spd_io || !getenv("MLA_BENCH_TIMELINE"))
        return;
    if (diag_replay(mla_diag_spd_io, t, ge, d)) {
        printf("decode timeline: failed\n");
        return;
    }
    int n = 0;
    unsigned long long g0 = ~0ull, g1 = 0;
    for (int i = 0; i < 4096; i++) {
        if (!d[i][16] || !d[i][17] || d[i][17] <= d[i][16] || d[i][10] <= d[i][0]) continue;
        v[n++] = (double)(d[i][10] - d[i][0]) / (double)(d[i][17] - d[i][16]); /* cycles per ns */
        if (d[i][16] < g0) g0 = d[i][16];
        if (d[i][17] > g1) g1 = d[i][17];
    }
    if (n == 0) {
        printf("decode timeline %s: no CTA wrote its slots\n", what);
        return;
    }
    const double ghz = bench_median(v, n);
    printf("decode timeline %s: %d CTAs, SM clock %.3f GHz, grid first entry to last exit %.1f us; median us from entry:",
           what, n, ghz, (double)(g1 - g0) * 1e-3);
    for (int k = 0; k < (int)(sizeof slot / sizeof slot[0]); k++) {
        int m = 0;
        for (int i = 0; i < 4096; i++)
            if (d[i][16] && d[i][slot[k]] >= d[i][0] && d[i][slot[k]])
                v[m++] = (double)(d[i][slot[k]] - d[i][0]) / ghz * 1e-3;
        if (m == 0) continue;
        const double med = bench_median(v, m); /* v sorted from here on */
        printf(" %s %.2f (max %.2f);", names[k], med, v[m - 1]);
    }
    int m = 0;
    for (int i = 0; i < 4096; i++)
        if (d[i][16]) v[m++] = (double)d[i][6];
    const double tiles = m ? bench_median(v, m) : 0.;
    printf(" tiles per CTA median %.0f (max %.0f)\n", tiles, m ? v[m - 1] : 0.);
}

/* MLA_SP_DIAG=9 builds only (kernels/sparse_sm90.cu): SSF's per-warpgroup cycle accounts of one more
 * L2-flushed replay (MLA_BENCH_TIMELINE=1), summed over the first 4096 CTAs, printed per pair */
extern int mla_diag_ssf_io(void *host, int reset) __attribute__((weak));
static void ssf_accounts(const char *what, sp_timer *t, cudaGraphExec_t ge)
{
    static unsigned long long d[4096][24];
    static const char *const names[3][7] = {
        {"K waits + QK issue", "barrier syncs", "wgmma waits", "softmax", "pair", "P0 store", "rescale + PV issue"},
        {"K waits + QK issue", "barrier syncs", "wgmma waits", "max + softmax", "pair", "P1 store", "rescale + PV issue"},
        {"wait A0 free", "wait B1 free", "wait B0 free", "wait A1 free", "pair", "cp.async issue", "index loads"}};
    if (!mla_diag_ssf_io || !getenv("MLA_BENCH_TIMELINE"))
        return;
    if (diag_replay(mla_diag_ssf_io, t, ge, d)) {
        printf("SSF accounts: failed\n");
        return;
    }
    bench_print_wg_accounts(&d[0][0], 4096, 24, 3, names, "SSF accounts", what, "pair");
}

static int run_prefill_case(const sp_bcase *c, sp_timer *t, int warmup, int iters)
{
    arm_case(c, 0);
    const int64_t s_q = c->s_q, h_q = c->h_q, dqk = c->dqk, topk = c->topk, s_kv = c->s_kv;
    int rc = 1;
    mla_sparse_prefill_args a = mla_sparse_prefill_args_default();
    a.s_q = s_q; a.s_kv = s_kv; a.h_q = h_q; a.h_kv = 1; a.d_qk = dqk; a.d_v = 512; a.topk = topk;
    a.q = bf16_dev((size_t)(s_q * h_q * dqk));
    a.q_stride[1] = dqk; a.q_stride[0] = h_q * dqk;
    a.kv = bf16_dev((size_t)(s_kv * dqk));
    a.kv_stride[1] = dqk; a.kv_stride[0] = dqk;
    int32_t *ind = malloc((size_t)(s_q * topk) * 4);
    uint32_t *stamp = calloc((size_t)s_kv, 4);
    for (int64_t s = 0; s < s_q; s++) pick_prefill_row(c, ind + s * topk, stamp, (uint32_t)s + 1);
    int32_t *dind = NULL;
    cudaMalloc((void **)&dind, (size_t)(s_q * topk) * 4);
    cudaMemcpy(dind, ind, (size_t)(s_q * topk) * 4, cudaMemcpyHostToDevice);
    a.indices = dind; a.indices_stride[1] = topk; a.indices_stride[0] = topk;
    cudaMalloc(&a.out, (size_t)(s_q * h_q * 512) * 2);
    cudaMalloc((void **)&a.max_logits, (size_t)(s_q * h_q) * 4);
    cudaMalloc((void **)&a.lse, (size_t)(s_q * h_q) * 4);
    a.out_stride[1] = 512; a.out_stride[0] = h_q * 512;
    a.max_logits_stride[1] = 1; a.max_logits_stride[0] = h_q;
    a.lse_stride[1] = 1; a.lse_stride[0] = h_q;
    a.softmax_scale = (float)(1.0 / sqrt((double)dqk));
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    if (!a.q || !a.kv || !a.out) {
        fprintf(stderr, "mla-bench: device allocation failed\n");
        goto done;
    }
    cudaStreamBeginCapture(t->s, cudaStreamCaptureModeThreadLocal);
    const mla_status st = mla_sparse_prefill(&a, 0, NULL, 0, (struct CUstream_st *)t->s);
    cudaStreamEndCapture(t->s, &g);
    if (st != MLA_OK || !g || cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
        fprintf(stderr, "mla-bench: sparse prefill capture: %s\n", mla_last_error());
        goto done;
    }
    {
        const double us = time_graph(t, ge, warmup, iters);
        double flop, bytes;
        prefill_volume(c, &flop, &bytes);
        char what[200];
        prefill_label(c, what, sizeof what);
        report(what, c, us, flop, bytes, 0);
        rc = us > 0 ? 0 : 1;
        ssf_accounts(what, t, ge);
    }
done:
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    cudaFree((void *)a.q); cudaFree((void *)a.kv); cudaFree(dind); cudaFree(a.out); cudaFree(a.max_logits); cudaFree(a.lse);
    free(ind); free(stamp);
    return rc;
}

/* The GPU path (device 0): FlashMLA's full-size cases. */
static int sparse_gpu_main(int dec, int pre, int quick, int iters)
{
    const int warmup = 3;
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    cudaSetDevice(0);
    printf("mla-bench sparse: %s (%d SMs), mla.c %s, CUDA graph replay, L2 flushed, median of %d%s%s\n", prop.name,
           prop.multiProcessorCount, MLA_GIT_COMMIT, iters, getenv("MLA_SPARSE_SPLIT_QK") ? ", MLA_SPARSE_SPLIT_QK=" : "",
           getenv("MLA_SPARSE_SPLIT_QK") ? getenv("MLA_SPARSE_SPLIT_QK") : "");
    sp_timer t;
    t.flush_bytes = (size_t)256 << 20;
    if (cudaStreamCreateWithFlags(&t.s, cudaStreamNonBlocking) != cudaSuccess ||
        cudaMalloc(&t.flush, t.flush_bytes) != cudaSuccess) {
        fprintf(stderr, "mla-bench: CUDA setup failed\n");
        return 2;
    }
    int fails = 0;
    if (dec) {
        const mla_fp8_format V = MLA_FP8_FORMAT_V32, M = MLA_FP8_FORMAT_MODEL1;
        sp_bcase cs[] = {
            {0, 128, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "FlashMLA's headline case", 410, 0, 394},
            {0, 128, 2, 64, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "h_q=64 (= h_q=16 padded to 64)", 0, 0, 0},
            {0, 128, 2, 16, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "h_q=16 (one 64-row block, 16 rows used)", 0, 0, 0},
            {0, 64, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, NULL, 0, 0, 385},
            {0, 74, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, NULL, 0, 0, 366},
            {0, 2, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, NULL, 0, 0, 107},
            {0, 128, 2, 128, 128, 32768, 256, M, 512, 64, 8192, 0, 0, "MODEL1 config", 0, 0, 0},
            {0, 128, 2, 64, 128, 32768, 256, M, 1024, 2, 8192, 0, 0, "MODEL1 config", 0, 0, 0},
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            if (quick && i > 2) break;
            fails += run_decode_case(&cs[i], &t, warmup, iters);
        }
    }
    if (pre) {
        /* FlashMLA's own figures are its benchmark on one H100 (spec §7), with its indices */
        const mla_fp8_format X = MLA_FP8_FORMAT_INVALID;
        sp_bcase cs[] = {
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 32768, 576, "V3.2, FlashMLA's indices", 626, 1, 0},
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 32768, 576, "V3.2, distinct uniform indices (vs FlashMLA's H800 640)", 640, 0, 0},
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 8192, 576, "V3.2, FlashMLA's indices", 677, 1, 0},
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 65536, 576, "V3.2, FlashMLA's indices", 583, 1, 0},
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 131072, 576, "V3.2, FlashMLA's indices", 545, 1, 0},
            {1, 0, 4096, 64, 512, 0, 0, X, 0, 0, 0, 8192, 512, "MODEL1 config, FlashMLA's indices", 514, 1, 0},
            {1, 0, 4096, 64, 512, 0, 0, X, 0, 0, 0, 65536, 512, "MODEL1 config, FlashMLA's indices", 393, 1, 0},
            {1, 0, 4096, 128, 1024, 0, 0, X, 0, 0, 0, 8192, 512, "MODEL1 config, FlashMLA's indices", 623, 1, 0},
            {1, 0, 4096, 128, 1024, 0, 0, X, 0, 0, 0, 65536, 512, "MODEL1 config, FlashMLA's indices", 545, 1, 0},
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 32768, 512, "distinct uniform indices", 0, 0, 0},
            {1, 0, 4096, 128, 2048, 0, 0, X, 0, 0, 0, 131072, 576, "V3.2, distinct uniform indices", 0, 0, 0},
            {1, 0, 4096, 64, 512, 0, 0, X, 0, 0, 0, 32768, 512, "MODEL1 config, distinct uniform indices", 0, 0, 0},
            {1, 0, 4096, 128, 1024, 0, 0, X, 0, 0, 0, 32768, 512, "MODEL1 config, distinct uniform indices", 0, 0, 0},
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0] && !g_ncustom; i++) {
            if (quick && i > 1) break;
            fails += run_prefill_case(&cs[i], &t, warmup, iters);
        }
        for (int i = 0; i < g_ncustom; i++) fails += run_prefill_case(&g_custom[i], &t, warmup, iters);
    }
    cudaFree(t.flush);
    cudaStreamDestroy(t.s);
    return fails ? 1 : 0;
}

#endif /* MLA_WITH_CUDA */

/* ---- the CPU path --------------------------------------------------------------------------- */

static double wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* A paged FP8 cache of `pages` pages on the host, every token random (uniform in [-1, 1)
 * before quantisation), built 64 pages at a time so the bf16 staging buffer stays small. */
static uint8_t *make_cache_cpu(mla_fp8_format fmt, int64_t pages, int64_t ps, int64_t *stride)
{
    const int v32 = fmt == MLA_FP8_FORMAT_V32;
    const int64_t d = v32 ? 576 : 512, bpt = v32 ? 656 : 584, chunk = pages < 64 ? pages : 64;
    *stride = (ps * bpt + 15) / 16 * 16;
    uint16_t *bf = malloc((size_t)(chunk * ps * d) * 2);
    uint8_t *cache = calloc((size_t)pages, (size_t)*stride);
    for (int64_t p0 = 0; bf && cache && p0 < pages; p0 += chunk) {
        const int64_t n = pages - p0 < chunk ? pages - p0 : chunk;
        for (int64_t x = 0; x < n * ps * d; x++) bf[x] = mla_float_to_bf16(rnd_uniform(-1, 2));
        if (mla_fp8_quantize_cache(fmt, n, ps, bf, ps * d, d, cache + p0 * *stride, *stride,
                                   MLA_DEVICE_CPU, NULL) != MLA_OK) {
            fprintf(stderr, "mla-bench: cache setup failed: %s\n", mla_last_error());
            free(cache);
            cache = NULL;
        }
    }
    if (!bf) { /* a cache left all zeros would still run: fail instead */
        free(cache);
        cache = NULL;
    }
    free(bf);
    return cache;
}

/* n bf16 values uniform in [-0.1, 0.1) (the GPU path's q / kv data) */
static uint16_t *bf16_host(size_t n)
{
    uint16_t *v = malloc(n * 2);
    for (size_t x = 0; v && x < n; x++) v[x] = mla_float_to_bf16(rnd_uniform(-0.1, 0.2));
    return v;
}

/* A random permutation of [0, n): logical page p of the cache lives at physical page perm[p],
 * so a request's pages are scattered over the cache as a block table would scatter them. */
static int64_t *shuffled_pages(int64_t n)
{
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    for (int64_t p = 0; perm && p < n; p++) perm[p] = p;
    for (int64_t p = n - 1; perm && p > 0; p--) {
        const int64_t r = (int64_t)(rnd() % (uint64_t)(p + 1)), x = perm[p];
        perm[p] = perm[r];
        perm[r] = x;
    }
    return perm;
}

/* The [b, s_q, topk] indices of one cache: for each query token, topk distinct positions among
 * request i's s_k tokens (its logical pages i*ppr .. i*ppr+ppr-1, placed by perm). Positions
 * read for the first time (seen[]) add to *retrieved. */
static void make_indices_cpu(int32_t *ind, const sp_bcase *c, int64_t topk, int64_t s_k,
                             int64_t ps, const int64_t *perm, uint32_t *stamp, uint32_t *id,
                             unsigned char *seen, double *retrieved)
{
    const int64_t ppr = (s_k + ps - 1) / ps;
    for (int64_t i = 0; i < c->b; i++)
        for (int64_t j = 0; j < c->s_q; j++) {
            int32_t *row = ind + (i * c->s_q + j) * topk;
            pick_distinct(row, topk, s_k, 0, stamp, ++*id);
            for (int64_t k = 0; k < topk; k++) {
                row[k] = (int32_t)(perm[i * ppr + row[k] / ps] * ps + row[k] % ps);
                if (!seen[row[k]]++) *retrieved += 1;
            }
        }
}

/* Values no kernel may leave: NaN / inf in out (bf16) or in the float outputs f and g (g may be
 * NULL). Every row of every case has valid keys, so an lse of +inf is wrong too. */
static int64_t count_bad(const uint16_t *out, size_t n_out, const float *f, const float *g,
                         size_t n_f)
{
    int64_t bad = bench_count_nonfinite_half(out, n_out, MLA_DTYPE_BF16);
    for (size_t x = 0; x < n_f; x++) bad += !isfinite(f[x]) + (g && !isfinite(g[x]));
    return bad;
}

/* What one timed CPU call runs: sparse decode on `plan`, or (plan NULL) sparse prefill. */
typedef struct sp_cpu_call {
    mla_sparse_decode_plan_t plan;
    const mla_sparse_decode_args *dec;
    void *ws;
    size_t ws_bytes;
    const mla_sparse_prefill_args *pre;
} sp_cpu_call;

/* Median µs of `iters` calls after `warmup` untimed ones; -1 (message printed) on an error. */
static double time_cpu(const sp_cpu_call *k, int warmup, int iters, const char *what)
{
    double *us = malloc(sizeof(double) * (size_t)iters), med = -1;
    for (int i = -warmup; us && i < iters; i++) {
        const double t0 = wall_us();
        const mla_status st = k->plan ? mla_sparse_decode(k->plan, k->dec, k->ws, k->ws_bytes, NULL)
                                      : mla_sparse_prefill(k->pre, MLA_DEVICE_CPU, NULL, 0, NULL);
        const double t1 = wall_us();
        if (st != MLA_OK) {
            fprintf(stderr, "mla-bench: %s: %s: %s\n", what, mla_status_string(st),
                    mla_last_error());
            goto done;
        }
        if (i >= 0) us[i] = t1 - t0;
    }
    if (us) med = bench_median(us, iters);
done:
    free(us);
    return med;
}

/* Prints the row of a case (or that it failed); 0 if it ran and every output is finite. */
static int finish_cpu_case(const char *what, const sp_bcase *c, double us, double flop,
                           double bytes, int64_t bad, const char *outputs)
{
    if (us <= 0) {
        printf("%-72s FAILED (see the message above)\n", what);
        fflush(stdout);
        return 1;
    }
    report(what, c, us, flop, bytes, 1);
    if (bad > 0) {
        printf("  !! %lld bad values in %s (NaN/inf): the result is wrong\n", (long long)bad,
               outputs);
        fflush(stdout);
    }
    return bad > 0;
}

static int run_decode_cpu(const sp_bcase *c, int threads, int warmup, int iters)
{
    arm_case(c, 1);
    const int v32 = c->fmt == MLA_FP8_FORMAT_V32, extra = c->extra_topk > 0;
    const int64_t dqk = v32 ? 576 : 512, ps = c->page, b = c->b, s_q = c->s_q, h_q = c->h_q;
    const int64_t ppr = (c->s_k + ps - 1) / ps;
    const int64_t eppr = extra ? (c->extra_s_k + c->extra_page - 1) / c->extra_page : 0;
    const size_t n_out = (size_t)(b * s_q * h_q * 512), n_lse = (size_t)(b * s_q * h_q);
    char what[200];
    decode_label(c, what, sizeof what);
    int64_t kstride = 0, estride = 0;
    uint8_t *kc = make_cache_cpu(c->fmt, b * ppr, ps, &kstride);
    uint8_t *ec = extra ? make_cache_cpu(c->fmt, b * eppr, c->extra_page, &estride) : NULL;
    int64_t *perm = shuffled_pages(b * ppr), *eperm = extra ? shuffled_pages(b * eppr) : NULL;
    int32_t *ind = malloc((size_t)(b * s_q * c->topk) * 4);
    int32_t *eind = extra ? malloc((size_t)(b * s_q * c->extra_topk) * 4) : NULL;
    uint32_t *stamp = calloc((size_t)(c->s_k > c->extra_s_k ? c->s_k : c->extra_s_k), 4);
    unsigned char *seen = calloc((size_t)(b * ppr * ps), 1);
    unsigned char *eseen = calloc((size_t)(b * eppr * c->extra_page + 1), 1);
    uint16_t *q = bf16_host((size_t)(b * s_q * h_q * dqk)), *out = malloc(n_out * 2);
    float *lse = malloc(n_lse * 4);
    mla_sparse_decode_plan_t plan = NULL;
    void *ws = NULL;
    size_t wsb = 0;
    double us = -1, flop = 0, bytes = 0, retrieved = 0;
    int64_t bad = 0;
    if (!kc || (extra && (!ec || !eperm || !eind)) || !perm || !ind || !stamp || !seen ||
        !eseen || !q || !out || !lse) {
        fprintf(stderr, "mla-bench: %s: out of host memory\n", what);
        goto done;
    }
    uint32_t id = 0;
    make_indices_cpu(ind, c, c->topk, c->s_k, ps, perm, stamp, &id, seen, &retrieved);
    if (extra)
        make_indices_cpu(eind, c, c->extra_topk, c->extra_s_k, c->extra_page, eperm, stamp, &id,
                         eseen, &retrieved);
    decode_volume(c, retrieved, &flop, &bytes);
    /* poisoned (NaN), so an output the kernel never writes counts as bad */
    memset(out, 0xff, n_out * 2);
    for (size_t x = 0; x < n_lse; x++) lse[x] = NAN;

    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = b; sh.s_q = s_q; sh.h_q = h_q; sh.h_kv = 1; sh.d_qk = dqk; sh.d_v = 512;
    sh.topk = c->topk; sh.page_size = ps; sh.format = c->fmt;
    sh.extra_topk = c->extra_topk; sh.extra_page_size = c->extra_page;
    sh.cpu_threads = threads;
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    a.q = q; a.q_stride[2] = dqk; a.q_stride[1] = h_q * dqk; a.q_stride[0] = s_q * h_q * dqk;
    a.k_cache = kc; a.num_pages = b * ppr; a.k_page_stride_bytes = kstride;
    a.indices = ind; a.indices_stride[1] = c->topk; a.indices_stride[0] = s_q * c->topk;
    if (extra) {
        a.extra_k_cache = ec; a.extra_num_pages = b * eppr; a.extra_k_page_stride_bytes = estride;
        a.extra_indices = eind;
        a.extra_indices_stride[1] = c->extra_topk; a.extra_indices_stride[0] = s_q * c->extra_topk;
    }
    a.out = out; a.out_stride[2] = 512; a.out_stride[1] = h_q * 512;
    a.out_stride[0] = s_q * h_q * 512;
    a.lse = lse; a.lse_stride[2] = 1; a.lse_stride[1] = s_q; a.lse_stride[0] = h_q * s_q;
    mla_status st;
    if ((st = mla_sparse_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU)) != MLA_OK ||
        (st = mla_sparse_decode_workspace_size(plan, &wsb)) != MLA_OK) {
        fprintf(stderr, "mla-bench: %s: sparse plan: %s: %s\n", what, mla_status_string(st),
                mla_last_error());
        goto done;
    }
    if (wsb && !(ws = malloc(wsb))) { /* the key splits' partial rows (calls of few row tiles) */
        fprintf(stderr, "mla-bench: %s: out of host memory (workspace)\n", what);
        goto done;
    }
    const sp_cpu_call k = {plan, &a, ws, wsb, NULL};
    us = time_cpu(&k, warmup, iters, what);
    bad = count_bad(out, n_out, lse, NULL, n_lse);
done:
    mla_sparse_decode_plan_destroy(plan);
    free(ws); free(kc); free(ec); free(perm); free(eperm); free(ind); free(eind); free(stamp);
    free(seen); free(eseen); free(q); free(out); free(lse);
    return finish_cpu_case(what, c, us, flop, bytes, bad, "out/lse");
}

static int run_prefill_cpu(const sp_bcase *c, int threads, int warmup, int iters)
{
    arm_case(c, 0);
    const int64_t s_q = c->s_q, h_q = c->h_q, dqk = c->dqk, topk = c->topk, s_kv = c->s_kv;
    const size_t n_out = (size_t)(s_q * h_q * 512), n_row = (size_t)(s_q * h_q);
    char what[200];
    prefill_label(c, what, sizeof what);
    uint16_t *q = bf16_host((size_t)(s_q * h_q * dqk)), *kv = bf16_host((size_t)(s_kv * dqk));
    uint16_t *out = malloc(n_out * 2);
    int32_t *ind = malloc((size_t)(s_q * topk) * 4);
    uint32_t *stamp = calloc((size_t)s_kv, 4);
    float *ml = malloc(n_row * 4), *lse = malloc(n_row * 4);
    double us = -1, flop = 0, bytes = 0;
    int64_t bad = 0;
    prefill_volume(c, &flop, &bytes);
    if (!q || !kv || !out || !ind || !stamp || !ml || !lse) {
        fprintf(stderr, "mla-bench: %s: out of host memory\n", what);
        goto done;
    }
    for (int64_t s = 0; s < s_q; s++)
        pick_prefill_row(c, ind + s * topk, stamp, (uint32_t)s + 1);
    memset(out, 0xff, n_out * 2); /* poisoned (NaN), as for decode */
    for (size_t x = 0; x < n_row; x++) ml[x] = lse[x] = NAN;
    mla_sparse_prefill_args a = mla_sparse_prefill_args_default();
    a.s_q = s_q; a.s_kv = s_kv; a.h_q = h_q; a.h_kv = 1; a.d_qk = dqk; a.d_v = 512; a.topk = topk;
    a.q = q; a.q_stride[1] = dqk; a.q_stride[0] = h_q * dqk;
    a.kv = kv; a.kv_stride[1] = dqk; a.kv_stride[0] = dqk;
    a.indices = ind; a.indices_stride[1] = topk; a.indices_stride[0] = topk;
    a.out = out; a.out_stride[1] = 512; a.out_stride[0] = h_q * 512;
    a.max_logits = ml; a.max_logits_stride[1] = 1; a.max_logits_stride[0] = h_q;
    a.lse = lse; a.lse_stride[1] = 1; a.lse_stride[0] = h_q;
    a.softmax_scale = (float)(1.0 / sqrt((double)dqk));
    a.cpu_threads = threads;
    const sp_cpu_call k = {NULL, NULL, NULL, 0, &a};
    us = time_cpu(&k, warmup, iters, what);
    bad = count_bad(out, n_out, lse, ml, n_row);
done:
    free(q); free(kv); free(out); free(ind); free(stamp); free(ml); free(lse);
    return finish_cpu_case(what, c, us, flop, bytes, bad, "out/lse/max_logits");
}

/* The CPU path: FlashMLA's shapes per token with b (decode) and s_q (prefill) cut so that a call
 * takes well under 2 s on 2 cores with a fast kernel. `why`: the reason it runs on the CPU. */
static int sparse_cpu_main(int dec, int pre, int quick, int iters, int threads, const char *why)
{
    const int warmup = 1;
    int kernel = MLA_CPU_KERNEL_REF;
    if (mla_cpu_sparse_kernel(&kernel) != MLA_OK) {
        fprintf(stderr, "mla-bench: %s\n", mla_last_error());
        return 2;
    }
    static bench_options bo; /* what bench_cpu_env reads: ceilings 0, no copy ceiling measured */
    bench_env env;
    memset(&env, 0, sizeof env);
    bench_cpu_env(&env, &bo);
    char nthreads[32];
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    printf("mla-bench: CPU path, because: %s\n", why);
    printf("mla-bench sparse: CPU: %s, %d cores online, CPU path threads: %s, mla.c %s, CPU wall "
           "clock (clock_gettime) of the whole call, median of %d after %d warm-up(s)\n",
           env.name, env.cpu_cores, threads ? nthreads : "all cores", bench_git_commit(), iters,
           warmup);
    const mla_cpu_path *cp = mla_cpu_path_of(kernel);
    printf("kernel: %s\n", cp ? cp->what : "C reference (ref/mla_ref_sparse.c)");
    printf("cases: FlashMLA's shapes per token, b / s_q scaled down for a CPU; decode: the plan "
           "made once, outside the timed calls\n");
    fflush(stdout);
    int fails = 0;
    if (dec) {
        const mla_fp8_format V = MLA_FP8_FORMAT_V32, M = MLA_FP8_FORMAT_MODEL1;
        const char *hl = "FlashMLA's headline case, b scaled 128 -> 4", *b4 = "b scaled 128 -> 4";
        const char *m1 = "MODEL1 config, b scaled 128 -> 4";
        const sp_bcase cs[] = {
            {0, 4, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, hl, 0, 0, 0},
            {0, 4, 2, 64, 2048, 32768, 64, V, 0, 0, 0, 0, 0, b4, 0, 0, 0},
            {0, 4, 2, 16, 2048, 32768, 64, V, 0, 0, 0, 0, 0, b4, 0, 0, 0},
            {0, 1, 1, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "one query token", 0, 0, 0},
            {0, 1, 1, 64, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "one query token", 0, 0, 0},
            {0, 1, 1, 16, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "one query token", 0, 0, 0},
            {0, 4, 2, 128, 128, 32768, 256, M, 512, 64, 8192, 0, 0, m1, 0, 0, 0},
            {0, 4, 2, 64, 128, 32768, 256, M, 1024, 2, 8192, 0, 0, m1, 0, 0, 0},
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0] && !(quick && i >= 2); i++)
            fails += run_decode_cpu(&cs[i], threads, warmup, iters);
    }
    if (pre) {
        const mla_fp8_format N = MLA_FP8_FORMAT_INVALID;
        const char *s64 = "s_q scaled 4096 -> 64", *m1 = "MODEL1 config, s_q scaled 4096 -> 64";
        const sp_bcase cs[] = {
            {1, 0, 64, 128, 2048, 0, 0, N, 0, 0, 0, 32768, 576, "V3.2, FlashMLA's indices, s_q scaled 4096 -> 64", 0, 1, 0},
            {1, 0, 64, 128, 2048, 0, 0, N, 0, 0, 0, 32768, 512, s64, 0, 0, 0},
            {1, 0, 64, 64, 512, 0, 0, N, 0, 0, 0, 32768, 512, m1, 0, 0, 0},
            {1, 0, 64, 128, 1024, 0, 0, N, 0, 0, 0, 32768, 512, m1, 0, 0, 0},
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0] && !(quick && i >= 2) && !g_ncustom; i++)
            fails += run_prefill_cpu(&cs[i], threads, warmup, iters);
        for (int i = 0; i < g_ncustom; i++) fails += run_prefill_cpu(&g_custom[i], threads, warmup, iters);
    }
    return fails ? 1 : 0;
}

static int sparse_usage(void)
{
    fprintf(stderr,
            "usage: mla-bench --sparse-decode|--sparse-prefill|--sparse [--quick] [--iters N]\n"
            "                 [--json FILE] [--device cpu|gpu|auto] [--threads N]\n"
            "                 [--prefill-case S_Q,S_KV,H_Q,TOPK,D_QK,flashmla|uniform]... (prefill rows of\n"
            "                 your own instead of the list; indices drawn FlashMLA's way or distinct uniform)\n");
    return 2;
}

int bench_sparse_main(int argc, char **argv)
{
    int dec = 0, pre = 0, quick = 0, iters = 0, threads = 0, rc;
    bench_device_choice device = BENCH_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sparse-decode")) dec = 1;
        else if (!strcmp(argv[i], "--sparse-prefill")) pre = 1;
        else if (!strcmp(argv[i], "--sparse")) dec = pre = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = atoi(argv[++i]);
            if (iters < 1) iters = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            const long x = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || x < 0 || x > 1 << 20) {
                fprintf(stderr, "mla-bench: --threads wants an integer >= 0, got '%s'\n", argv[i]);
                return sparse_usage();
            }
            threads = (int)x;
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "cpu") && strcmp(v, "gpu") && strcmp(v, "auto")) {
                fprintf(stderr, "mla-bench: --device wants cpu, gpu or auto\n");
                return sparse_usage();
            }
            device = !strcmp(v, "cpu") ? BENCH_CPU : !strcmp(v, "gpu") ? BENCH_GPU : BENCH_AUTO;
        } else if (!strcmp(argv[i], "--prefill-case") && i + 1 < argc) {
            if (g_ncustom == SP_MAX_CUSTOM || parse_prefill_case(argv[++i], &g_custom[g_ncustom])) {
                fprintf(stderr, "mla-bench: --prefill-case wants S_Q,S_KV,H_Q,TOPK,D_QK,flashmla|uniform "
                                "(positive sizes, S_KV <= 2^28, D_QK 576 or 512, at most %d rows), got '%s'\n", SP_MAX_CUSTOM, argv[i]);
                return sparse_usage();
            }
            g_ncustom++;
            pre = 1;
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            g_json = fopen(argv[++i], "w");
            if (!g_json) { fprintf(stderr, "mla-bench: cannot write %s\n", argv[i]); return 2; }
        } else {
            if (g_json) fclose(g_json);
            const char *a = argv[i];
            if (!strcmp(a, "--iters") || !strcmp(a, "--threads") || !strcmp(a, "--device") || !strcmp(a, "--json") ||
                !strcmp(a, "--prefill-case"))
                fprintf(stderr, "mla-bench: %s needs a value\n", a);
            else
                fprintf(stderr, "mla-bench: '%s' is not an option of the sparse benchmark (FlashMLA's sparse cases: "
                                "no --case, no ceilings)\n", a);
            return sparse_usage();
        }
    }
    /* the dense bench's rule (bench/main.c choose_device): the GPU when the build has CUDA and
     * one is visible, unless --device cpu; --device gpu without one is an error */
    char why[256] = "";
    const int gpu_ok = device != BENCH_CPU && bench_gpu_available(0, why, sizeof why);
    if (bench_watchdog_start(gpu_ok) < 0) {
        if (g_json) fclose(g_json);
        return 2;
    }
    if (device == BENCH_GPU && !gpu_ok) {
        fprintf(stderr, "mla-bench: --device gpu: %s\n", why);
        rc = 2;
    } else if (!gpu_ok) {
        rc = sparse_cpu_main(dec, pre, quick, iters ? iters : quick ? 3 : 5, threads,
                             device == BENCH_CPU ? "--device cpu" : why);
    } else {
#ifdef MLA_WITH_CUDA
        rc = sparse_gpu_main(dec, pre, quick, iters ? iters : 20);
#else
        rc = 2; /* not reached: bench_gpu_available is 0 without CUDA */
#endif
    }
    bench_watchdog_disarm();
    if (g_json) fclose(g_json);
    return rc;
}

int bench_sparse_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--sparse-decode") || !strcmp(argv[i], "--sparse-prefill") || !strcmp(argv[i], "--sparse") ||
            !strcmp(argv[i], "--prefill-case"))
            return 1;
    return 0;
}
