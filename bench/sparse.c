/* sparse.c — mla-bench --sparse-decode / --sparse-prefill / --sparse: DeepSeek sparse attention on
 * the GPU through the public mla.h API, timed like the dense bench (spec §7): the whole call
 * (sparse decode: scheduler + kernel + combine; prefill: the kernel) captured in a CUDA graph and
 * replayed, L2 flushed by a 256 MiB memset before every replay (outside the timed region), CUDA
 * events around each replay, median after a warm-up. FlashMLA's formulas (dossier §5.3-5.4):
 *   decode:  flop = 2 * h_q * attended * (d_qk + d_v), attended = b * s_q * (topk + extra_topk)
 *            bytes = 2*b*s_q*h_q*d_qk + retrieved * kv_token_size + 2*b*s_q*h_q*d_v
 *            (retrieved = distinct positions read; kv_token_size 656 V32 / 576 MODEL1)
 *   prefill: flop = 2 * s_q * topk * h_q * (d_qk + d_v)
 * FlashMLA's figures (H800; H100 SXM has the same compute): 410 TFLOPS sparse decode (V32, b=128,
 * h_q=128, s_q=2, topk=2048), 640 TFLOPS sparse prefill. All indices are valid and distinct per
 * query token. */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mla_fp8.h"

#ifdef MLA_WITH_CUDA
#include <cuda_runtime_api.h>

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
} sp_bcase;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

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

static FILE *g_json = NULL;

static void report(const char *what, const sp_bcase *c, double us, double flop, double bytes)
{
    const double tf = us > 0 ? flop / us * 1e-6 : 0, gbs = us > 0 ? bytes / us * 1e-3 : 0;
    printf("%-72s %9.1f us %7.1f TFLOPS %7.0f GB/s", what, us, tf, gbs);
    if (c->target_tflops > 0) printf("   FlashMLA %3.0f TFLOPS (%.2fx)", c->target_tflops, tf / c->target_tflops);
    if (c->note) printf("   %s", c->note);
    printf("\n");
    fflush(stdout);
    if (g_json)
        fprintf(g_json, "{\"case\": \"%s\", \"us\": %.3f, \"tflops\": %.2f, \"gbs\": %.1f, \"flashmla_tflops\": %.0f}\n",
                what, us, tf, gbs, c->target_tflops);
}

static int run_decode_case(const sp_bcase *c, sp_timer *t, int warmup, int iters)
{
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
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
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
        const double attended = (double)b * s_q * (c->topk + c->extra_topk);
        const double flop = 2.0 * h_q * attended * (dqk + 512);
        const double bytes = 2.0 * b * s_q * h_q * dqk + retrieved * (v32 ? 656 : 576) + 2.0 * b * s_q * h_q * 512;
        char what[200];
        snprintf(what, sizeof what, "sparse decode %s b=%lld s_q=%lld h_q=%lld topk=%lld%s page=%lld", v32 ? "V32" : "MODEL1",
                 (long long)b, (long long)s_q, (long long)h_q, (long long)c->topk, c->extra_topk > 0 ? "+extra" : "",
                 (long long)ps);
        if (c->extra_topk > 0) {
            const size_t l = strlen(what);
            snprintf(what + l, sizeof what - l, " (extra %lld, page %lld)", (long long)c->extra_topk, (long long)c->extra_page);
        }
        report(what, c, us, flop, bytes);
        rc = us > 0 ? 0 : 1;
    }
done:
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    mla_sparse_decode_plan_destroy(plan);
    cudaFree(ws); cudaFree((void *)a.q); cudaFree(kc); cudaFree(ec); cudaFree(dind); cudaFree(deind);
    cudaFree(a.out); cudaFree(a.lse);
    free(ind); free(eind); free(stamp); free(seen);
    return rc;
}

static int run_prefill_case(const sp_bcase *c, sp_timer *t, int warmup, int iters)
{
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
    for (int64_t s = 0; s < s_q; s++) pick_distinct(ind + s * topk, topk < s_kv ? topk : s_kv, s_kv, 0, stamp, (uint32_t)s + 1);
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
        const double flop = 2.0 * s_q * topk * h_q * (dqk + 512);
        const double bytes = (double)s_q * topk * dqk * 2 + (double)s_q * h_q * (dqk + 512) * 2;
        char what[200];
        snprintf(what, sizeof what, "sparse prefill d_qk=%lld s_q=%lld s_kv=%lld h_q=%lld topk=%lld", (long long)dqk,
                 (long long)s_q, (long long)s_kv, (long long)h_q, (long long)topk);
        report(what, c, us, flop, bytes);
        rc = us > 0 ? 0 : 1;
    }
done:
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    cudaFree((void *)a.q); cudaFree((void *)a.kv); cudaFree(dind); cudaFree(a.out); cudaFree(a.max_logits); cudaFree(a.lse);
    free(ind); free(stamp);
    return rc;
}

int bench_sparse_main(int argc, char **argv)
{
    int dec = 0, pre = 0, quick = 0, iters = 20, warmup = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sparse-decode")) dec = 1;
        else if (!strcmp(argv[i], "--sparse-prefill")) pre = 1;
        else if (!strcmp(argv[i], "--sparse")) dec = pre = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            g_json = fopen(argv[++i], "w");
            if (!g_json) { fprintf(stderr, "mla-bench: cannot write %s\n", argv[i]); return 2; }
        } else {
            fprintf(stderr, "usage: mla-bench --sparse-decode|--sparse-prefill|--sparse [--quick] [--iters N] [--json FILE]\n");
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    if (!mla_has_cuda()) {
        fprintf(stderr, "mla-bench: the sparse benchmarks need a CUDA GPU\n");
        return 2;
    }
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
            {0, 128, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "FlashMLA's headline case", 410},
            {0, 128, 2, 64, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "h_q=64 (= h_q=16 padded to 64)", 0},
            {0, 128, 2, 16, 2048, 32768, 64, V, 0, 0, 0, 0, 0, "h_q=16 (one 64-row block, 16 rows used)", 0},
            {0, 64, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, NULL, 0},
            {0, 74, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, NULL, 0},
            {0, 2, 2, 128, 2048, 32768, 64, V, 0, 0, 0, 0, 0, NULL, 0},
            {0, 128, 2, 128, 128, 32768, 256, M, 512, 64, 8192, 0, 0, "MODEL1 config", 0},
            {0, 128, 2, 64, 128, 32768, 256, M, 1024, 2, 8192, 0, 0, "MODEL1 config", 0},
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            if (quick && i > 2) break;
            fails += run_decode_case(&cs[i], &t, warmup, iters);
        }
    }
    if (pre) {
        sp_bcase cs[] = {
            {1, 0, 4096, 128, 2048, 0, 0, MLA_FP8_FORMAT_INVALID, 0, 0, 0, 32768, 576, "V3.2", 640},
            {1, 0, 4096, 128, 2048, 0, 0, MLA_FP8_FORMAT_INVALID, 0, 0, 0, 32768, 512, NULL, 640},
            {1, 0, 4096, 128, 2048, 0, 0, MLA_FP8_FORMAT_INVALID, 0, 0, 0, 131072, 576, "V3.2, s_kv 128K", 640},
            {1, 0, 4096, 64, 512, 0, 0, MLA_FP8_FORMAT_INVALID, 0, 0, 0, 32768, 512, "MODEL1 config", 0},
            {1, 0, 4096, 128, 1024, 0, 0, MLA_FP8_FORMAT_INVALID, 0, 0, 0, 32768, 512, "MODEL1 config", 0},
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            if (quick && i > 1) break;
            fails += run_prefill_case(&cs[i], &t, warmup, iters);
        }
    }
    cudaFree(t.flush);
    cudaStreamDestroy(t.s);
    if (g_json) fclose(g_json);
    return fails ? 1 : 0;
}

#else /* !MLA_WITH_CUDA */

int bench_sparse_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mla-bench: the sparse benchmarks need a build with CUDA kernels and a GPU\n");
    return 2;
}

#endif

int bench_sparse_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--sparse-decode") || !strcmp(argv[i], "--sparse-prefill") || !strcmp(argv[i], "--sparse"))
            return 1;
    return 0;
}
