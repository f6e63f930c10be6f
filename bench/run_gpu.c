/* run_gpu.c — the GPU path of mla-bench (spec §7): the whole mla_decode call (schedule + decode +
 * combine) captured in a CUDA graph and replayed, the L2 flushed by a memset of at least twice
 * the L2 before every replay (outside the timed region), CUDA events around each replay, the
 * median of the replays after a warm-up; and the ceilings measured in the same process: a
 * device-to-device cudaMemcpyAsync (bytes read + written) and a cuBLAS bf16 GEMM 8192^3 with
 * fp32 compute. Built without CUDA (no MLA_WITH_CUDA), every entry point is a stub that says so. */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef MLA_WITH_CUDA

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#define PATTERN_BYTES ((size_t)48 << 20) /* random values on the device, tiled to fill buffers */
#define PATTERN_SPAN ((size_t)32 << 20)
#define GEMM_N 8192

static struct {
    int device;
    cudaStream_t stream;
    void *flush;
    size_t flush_bytes;
    void *pattern; /* PATTERN_BYTES of randn/10 values in the run's dtype */
} G = {-1, NULL, NULL, 0, NULL};

/* ---- small helpers ------------------------------------------------------------------------ */

#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            snprintf(err, errn, "%s: %s (%s)", #call, cudaGetErrorString(e_), cudaGetErrorName(e_)); \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)

static void version_string(int v, char *buf, size_t n)
{
    snprintf(buf, n, "%d.%d", v / 1000, (v % 1000) / 10);
}

/* A device buffer of random values (randn/10 clamped to ±1) in `dtype` (MLA_DTYPE_FP8_E4M3:
 * e4m3 codes). */
static void *make_pattern(mla_dtype dtype, uint64_t seed)
{
    size_t n = PATTERN_BYTES / 2;
    uint16_t *host = malloc(PATTERN_BYTES);
    void *dev = NULL;
    if (!host)
        return NULL;
    bench_rng rng;
    bench_rng_seed(&rng, seed);
    if (dtype == MLA_DTYPE_FP8_E4M3)
        bench_fill_fp8((uint8_t *)host, PATTERN_BYTES, &rng);
    else
        bench_fill_random(host, n, dtype, &rng);
    if (cudaMalloc(&dev, PATTERN_BYTES) != cudaSuccess ||
        cudaMemcpy(dev, host, PATTERN_BYTES, cudaMemcpyHostToDevice) != cudaSuccess) {
        cudaFree(dev);
        dev = NULL;
    }
    free(host);
    return dev;
}

/* Fills `bytes` of dst with PATTERN_SPAN windows of the pattern starting at shifting offsets
 * (`salt` picks another sequence of offsets), so neighbouring chunks and buffers differ. */
static cudaError_t fill_from_pattern(void *dst, size_t bytes, const void *pattern, unsigned salt)
{
    size_t off = 0;
    for (size_t k = salt; off < bytes; k++) {
        size_t n = bytes - off < PATTERN_SPAN ? bytes - off : PATTERN_SPAN;
        size_t src = (k * 1237u) % ((PATTERN_BYTES - PATTERN_SPAN) / 256 + 1) * 256; /* even */
        cudaError_t e = cudaMemcpyAsync((char *)dst + off, (const char *)pattern + src, n,
                                        cudaMemcpyDeviceToDevice, G.stream);
        if (e != cudaSuccess)
            return e;
        off += n;
    }
    return cudaSuccess;
}

/* ---- timing: op() between two events, before() outside them, for warmup + n runs --------- */

typedef int (*gpu_op)(void *ctx, int i, char *err, size_t errn);

static int flush_l2(void *ctx, int i, char *err, size_t errn)
{
    (void)ctx;
    cudaError_t e = cudaMemsetAsync(G.flush, i & 0xff, G.flush_bytes, G.stream);
    if (e != cudaSuccess)
        snprintf(err, errn, "L2 flush memset: %s", cudaGetErrorString(e));
    return e != cudaSuccess;
}

static int time_ops(gpu_op before, gpu_op op, void *ctx, int warmup, int n, double *us, char *err,
                    size_t errn)
{
    int rc = 1, made = 0;
    cudaEvent_t *ev = calloc((size_t)(2 * n), sizeof *ev);
    if (!ev) {
        snprintf(err, errn, "out of host memory");
        return 1;
    }
    for (; made < 2 * n; made++)
        CK(cudaEventCreate(&ev[made]));
    for (int i = -warmup; i < n; i++) {
        if (before && before(ctx, i, err, errn))
            goto done;
        if (i >= 0)
            CK(cudaEventRecord(ev[2 * i], G.stream));
        if (op(ctx, i, err, errn))
            goto done;
        if (i >= 0)
            CK(cudaEventRecord(ev[2 * i + 1], G.stream));
    }
    CK(cudaEventSynchronize(ev[2 * n - 1]));
    for (int i = 0; i < n; i++) {
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
        us[i] = (double)ms * 1e3;
    }
    rc = 0;
done:
    if (rc)
        cudaStreamSynchronize(G.stream);
    for (int i = 0; i < made; i++)
        cudaEventDestroy(ev[i]);
    free(ev);
    return rc;
}

/* ---- ceilings ------------------------------------------------------------------------------ */

typedef struct copy_ctx { void *a, *b; size_t bytes; } copy_ctx;

static int copy_op(void *p, int i, char *err, size_t errn)
{
    copy_ctx *c = p;
    cudaError_t e = cudaMemcpyAsync(i & 1 ? c->a : c->b, i & 1 ? c->b : c->a, c->bytes,
                                    cudaMemcpyDeviceToDevice, G.stream);
    if (e != cudaSuccess)
        snprintf(err, errn, "cudaMemcpyAsync: %s", cudaGetErrorString(e));
    return e != cudaSuccess;
}

/* Device-to-device copy of up to 1 GiB (bytes read + written), median of 20 after 3 warm-ups. */
static double measure_copy(char *note, size_t noten)
{
    char errbuf[256], *err = errbuf;
    size_t errn = sizeof errbuf;
    copy_ctx c = {NULL, NULL, (size_t)1 << 30};
    double us[20], gbs = 0;
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    while (c.bytes > ((size_t)64 << 20) && 4 * c.bytes > free_b)
        c.bytes /= 2;
    CK(cudaMalloc(&c.a, c.bytes));
    CK(cudaMalloc(&c.b, c.bytes));
    CK(cudaMemsetAsync(c.a, 1, c.bytes, G.stream));
    CK(cudaMemsetAsync(c.b, 2, c.bytes, G.stream));
    if (time_ops(NULL, copy_op, &c, 3, 20, us, err, errn))
        goto done;
    gbs = 2.0 * (double)c.bytes / (bench_median(us, 20) * 1e-6) / 1e9;
    snprintf(note, noten, "cudaMemcpyAsync D2D of %zu MiB, bytes read + written, median of 20",
             c.bytes >> 20);
done:
    if (gbs <= 0)
        snprintf(note, noten, "copy ceiling failed: %s", errbuf);
    cudaFree(c.a);
    cudaFree(c.b);
    return gbs;
}

typedef struct gemm_ctx { cublasHandle_t h; void *a, *b, *c; } gemm_ctx;

static int gemm_op(void *p, int i, char *err, size_t errn)
{
    (void)i;
    gemm_ctx *g = p;
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t s = cublasGemmEx(g->h, CUBLAS_OP_N, CUBLAS_OP_N, GEMM_N, GEMM_N, GEMM_N, &alpha,
                                    g->a, CUDA_R_16BF, GEMM_N, g->b, CUDA_R_16BF, GEMM_N, &beta, g->c,
                                    CUDA_R_16BF, GEMM_N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        snprintf(err, errn, "cublasGemmEx: %s", cublasGetStatusString(s));
    return s != CUBLAS_STATUS_SUCCESS;
}

/* cuBLAS bf16 GEMM 8192^3 (bf16 in and out, fp32 compute) on random data, median of 20. */
static double measure_gemm(mla_dtype run_dtype, char *note, size_t noten)
{
    char errbuf[256], *err = errbuf;
    size_t errn = sizeof errbuf, bytes = (size_t)GEMM_N * GEMM_N * 2;
    gemm_ctx g = {NULL, NULL, NULL, NULL};
    void *pattern = run_dtype == MLA_DTYPE_BF16 ? G.pattern : make_pattern(MLA_DTYPE_BF16, 7);
    double us[20], tflops = 0;
    snprintf(errbuf, sizeof errbuf, "no bf16 pattern");
    if (!pattern)
        goto done;
    cublasStatus_t s = cublasCreate(&g.h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(errbuf, sizeof errbuf, "cublasCreate: %s", cublasGetStatusString(s));
        g.h = NULL;
        goto done;
    }
    cublasSetStream(g.h, G.stream);
    CK(cudaMalloc(&g.a, bytes));
    CK(cudaMalloc(&g.b, bytes));
    CK(cudaMalloc(&g.c, bytes));
    CK(fill_from_pattern(g.a, bytes, pattern, 0));
    CK(fill_from_pattern(g.b, bytes, pattern, 5));
    if (time_ops(NULL, gemm_op, &g, 3, 20, us, err, errn))
        goto done;
    tflops = 2.0 * GEMM_N * (double)GEMM_N * GEMM_N / (bench_median(us, 20) * 1e-6) / 1e12;
    snprintf(note, noten, "cublasGemmEx %d^3, bf16 in/out, fp32 compute, random data, median of 20",
             GEMM_N);
done:
    if (tflops <= 0)
        snprintf(note, noten, "GEMM ceiling failed: %s", errbuf);
    if (g.h)
        cublasDestroy(g.h);
    cudaFree(g.a);
    cudaFree(g.b);
    cudaFree(g.c);
    if (pattern != G.pattern)
        cudaFree(pattern);
    return tflops;
}

/* ---- environment ------------------------------------------------------------------------------ */

int bench_gpu_available(int device, char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(why, n, "no CUDA GPU visible (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    if (count == 0 || device < 0 || device >= count) {
        snprintf(why, n, "CUDA GPU %d requested, %d visible", device, count);
        return 0;
    }
    if (!mla_has_cuda()) {
        snprintf(why, n, "libmla has no CUDA support (mla_has_cuda() == 0)");
        return 0;
    }
    return 1;
}

int bench_gpu_env(bench_env *env, const bench_options *o, char *err, size_t errn)
{
    struct cudaDeviceProp p;
    int rc = 1;
    env->is_gpu = 1;
    env->device = G.device = o->gpu;
    CK(cudaSetDevice(o->gpu));
    CK(cudaGetDeviceProperties(&p, o->gpu));
    snprintf(env->name, sizeof env->name, "%s", p.name);
    env->num_sms = p.multiProcessorCount;
    env->cc_major = p.major;
    env->cc_minor = p.minor;
    env->l2_bytes = (size_t)p.l2CacheSize;
    env->mem_bytes = p.totalGlobalMem;
    CK(cudaRuntimeGetVersion(&env->runtime_version));
    CK(cudaDriverGetVersion(&env->driver_version));
    CK(cudaStreamCreateWithFlags(&G.stream, cudaStreamNonBlocking));
    G.flush_bytes = 4 * env->l2_bytes > ((size_t)128 << 20) ? 4 * env->l2_bytes : (size_t)128 << 20;
    env->flush_bytes = o->flush ? G.flush_bytes : 0;
    if (o->flush)
        CK(cudaMalloc(&G.flush, G.flush_bytes));
    G.pattern = make_pattern(o->kv_fp8 ? MLA_DTYPE_FP8_E4M3 : o->dtype, o->seed ^ 0x5eedu);
    if (!G.pattern) {
        snprintf(err, errn, "could not make the %zu MiB random pattern on the GPU", PATTERN_BYTES >> 20);
        goto done;
    }
    if (o->ceilings) {
        env->copy_gbs = measure_copy(env->copy_note, sizeof env->copy_note);
        env->gemm_tflops = measure_gemm(o->kv_fp8 ? MLA_DTYPE_FP8_E4M3 : o->dtype, env->gemm_note,
                                        sizeof env->gemm_note); /* FP8 runs: own bf16 pattern */
    } else {
        snprintf(env->copy_note, sizeof env->copy_note, "not measured (--no-ceilings)");
        snprintf(env->gemm_note, sizeof env->gemm_note, "not measured (--no-ceilings)");
    }
    rc = 0;
done:
    return rc;
}

int bench_gpu_broken(char *err, size_t n)
{
    cudaError_t e = cudaDeviceSynchronize();
    cudaGetLastError(); /* clear a non-sticky error left by a failed case */
    if (e == cudaSuccess)
        return 0;
    snprintf(err, n, "the CUDA context is unusable: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    return 1;
}

void bench_gpu_shutdown(void)
{
    cudaFree(G.flush);
    cudaFree(G.pattern);
    if (G.stream)
        cudaStreamDestroy(G.stream);
    G.flush = G.pattern = NULL;
    G.stream = NULL;
}

void bench_env_versions(const bench_env *env, char *rt, char *drv, size_t n)
{
    version_string(env->runtime_version, rt, n);
    version_string(env->driver_version, drv, n);
}

/* ---- one case ------------------------------------------------------------------------------- */

typedef struct gpu_case {
    void *q, *k, *out, *ws;
    int32_t *bt, *sl, *cuq; /* cuq: cu_seqlens_q of a qmix case, else NULL */
    float *lse;
    float *descale; /* [2] device floats: descale_q, descale_k (FP8 cases)               */
    size_t nq, nk, no, nl, ws_bytes;
    mla_decode_plan_t plan;
    mla_decode_args args;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
} gpu_case;

static void gpu_case_free(gpu_case *g)
{
    if (g->exec)
        cudaGraphExecDestroy(g->exec);
    if (g->graph)
        cudaGraphDestroy(g->graph);
    mla_decode_plan_destroy(g->plan);
    cudaFree(g->q);
    cudaFree(g->k);
    cudaFree(g->out);
    cudaFree(g->ws);
    cudaFree(g->bt);
    cudaFree(g->sl);
    cudaFree(g->cuq);
    cudaFree(g->lse);
    cudaFree(g->descale);
}

static int decode_op(void *p, int i, char *err, size_t errn)
{
    (void)i;
    gpu_case *g = p;
    mla_status st = mla_decode(g->plan, &g->args, g->ws, g->ws_bytes, (struct CUstream_st *)G.stream);
    if (st != MLA_OK)
        snprintf(err, errn, "mla_decode: %s: %s", mla_status_string(st), mla_last_error());
    return st != MLA_OK;
}

static int replay_op(void *p, int i, char *err, size_t errn)
{
    (void)i;
    gpu_case *g = p;
    cudaError_t e = cudaGraphLaunch(g->exec, G.stream);
    if (e != cudaSuccess)
        snprintf(err, errn, "cudaGraphLaunch: %s", cudaGetErrorString(e));
    return e != cudaSuccess;
}

/* ---- MLA_DIAG=7 builds only: one more L2-flushed call with the per-CTA timeline printed ---------
 * (kernels/common.cuh; the library exports the readers only in such builds, hence the weak refs) */
extern int mla_diag_dec_io(void *host, int reset) __attribute__((weak));
extern int mla_diag_cmb_io(void *host, int reset) __attribute__((weak));

#define TL_CTAS 4096
#define TL_SLOTS 24

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void timeline_print(const bench_case *c, const unsigned long long (*d)[TL_SLOTS], int n,
                           const unsigned long long *cmb)
{
    static const char *names[TL_SLOTS] = {"entry", "past PDL wait", "part bounds", "r0 prepared", "r0 Q ready",
                                          "r0 tile 0 landed", "r0 tiles done", "r0 epilogue done", "r1 prepared",
                                          "r1 Q ready", "r1 tile 0 landed", "r1 tiles done", "r1 epilogue done",
                                          "", "", "exit", "", "", "", "r0 WG1 tiles done", "", "r1 WG1 tiles done"};
    static const int order[] = {0, 1, 2, 3, 4, 5, 6, 19, 7, 8, 9, 10, 11, 21, 12, 15};
    const int norder = (int)(sizeof order / sizeof order[0]);
    char label[160];
    bench_case_label(c, label, sizeof label);
    double *v = malloc(sizeof(double) * (size_t)n * 2), *f = v + n;
    if (!v)
        return;
    int nf = 0;
    unsigned long long t0 = ~0ull;
    for (int i = 0; i < n; i++) { /* SM clock (cycles per ns) from each CTA's clock64 / globaltimer pair */
        if (d[i][16] && d[i][16] < t0)
            t0 = d[i][16];
        if (d[i][17] > d[i][16] + 2000 && d[i][15] > d[i][0])
            f[nf++] = (double)(d[i][15] - d[i][0]) / (double)(d[i][17] - d[i][16]);
    }
    if (cmb[4] && cmb[4] < t0)
        t0 = cmb[4];
    qsort(f, (size_t)nf, sizeof *f, cmp_double);
    const double ghz = nf ? f[nf / 2] : 1.98;
    printf("timeline %s: %d CTAs, SM clock %.3f GHz (median of clock64 / globaltimer), times in us from "
           "the first kernel entry\n", label, n, ghz);
    if (cmb[4])
        printf("  scheduler kernel: entry %.2f, exit %.2f\n", (cmb[4] - t0) * 1e-3, (cmb[5] - t0) * 1e-3);
    for (int oi = 0; oi < norder; oi++) {
        const int s = order[oi];
        int m = 0;
        for (int i = 0; i < n; i++)
            if (d[i][16] && d[i][s])
                v[m++] = ((double)(d[i][16] - t0) + (double)(d[i][s] - d[i][0]) / ghz) * 1e-3;
        if (!m)
            continue;
        qsort(v, (size_t)m, sizeof *v, cmp_double);
        printf("  decode %-18s CTAs %4d  min %7.2f  p10 %7.2f  med %7.2f  p90 %7.2f  max %7.2f\n", names[s], m,
               v[0], v[m / 10], v[m / 2], v[(m * 9) / 10], v[m - 1]);
    }
    /* per-tile time of one request's loop: (tiles done - tile 0 landed) / (tiles - 1), one-request CTAs */
    int m = 0;
    for (int i = 0; i < n; i++)
        if (d[i][14] == 1 && d[i][13] > 1 && d[i][6] > d[i][5])
            v[m++] = (double)(d[i][6] - d[i][5]) / ghz * 1e-3 / (double)(d[i][13] - 1);
    if (m) {
        qsort(v, (size_t)m, sizeof *v, cmp_double);
        printf("  decode us per tile (one-request CTAs, %d): min %.3f  med %.3f  max %.3f\n", m, v[0], v[m / 2],
               v[m - 1]);
    }
    int last = -1;
    for (int i = 0; i < n; i++)
        if (d[i][16] && (last < 0 || d[i][17] > d[last][17]))
            last = i;
    if (last >= 0) {
        const unsigned long long *e = d[last];
        printf("  last CTA to exit: #%d (SM %llu), %llu tiles, %llu requests:", last, e[18], e[13], e[14]);
        for (int oi = 0; oi < norder; oi++)
            if (e[order[oi]])
                printf(" %s %.2f;", names[order[oi]], ((double)(e[16] - t0) + (double)(e[order[oi]] - e[0]) / ghz) * 1e-3);
        printf("\n");
    }
    if (cmb[1] != ~0ull)
        printf("  combine: first entry %.2f, first past PDL wait %.2f, last past wait %.2f, last exit %.2f\n",
               (cmb[0] - t0) * 1e-3, (cmb[1] - t0) * 1e-3, (cmb[3] - t0) * 1e-3,
               cmb[2] ? (cmb[2] - t0) * 1e-3 : -1.0);
    free(v);
}

static void timeline_run(gpu_case *g, const bench_case *c, int graph)
{
    static unsigned long long d[TL_CTAS][TL_SLOTS];
    unsigned long long cmb[8];
    char err[256];
    size_t errn = sizeof err;
    if (!mla_diag_dec_io || !mla_diag_cmb_io || !getenv("MLA_BENCH_TIMELINE"))
        return;
    for (int rep = 0; rep < 2; rep++) { /* the second call is printed */
        /* the L2 flush as in the timed replays: none with --no-flush (G.flush unallocated) */
        if (mla_diag_dec_io(NULL, 1) || mla_diag_cmb_io(NULL, 1) || (G.flush && flush_l2(NULL, 0, err, errn)) ||
            (graph ? replay_op(g, 0, err, errn) : decode_op(g, 0, err, errn)) ||
            cudaStreamSynchronize(G.stream) != cudaSuccess || mla_diag_dec_io(d, 0) || mla_diag_cmb_io(cmb, 0)) {
            printf("timeline: failed\n");
            return;
        }
    }
    int n = TL_CTAS;
    while (n > 0 && !d[n - 1][16])
        n--;
    timeline_print(c, (const unsigned long long (*)[TL_SLOTS])d, n, cmb);
}

/* ---- MLA_DIAG=8 / 9 builds only: per-warpgroup cycle accounts of v6 (kernels/decode_seesaw2.cu) and v3
 * (kernels/decode_sm90.cu), summed over the CTAs of one more L2-flushed call (MLA_BENCH_TIMELINE=1; the
 * call must take that kernel: MLA_GPU_KERNEL=12 / 4). Per CTA 16 counters, 8 per warpgroup: 7 parts,
 * slot 4 the whole loop (the percentages' base), slot 7 the number of units (pairs / tiles). ---------- */
extern int mla_diag_ss2_io(void *host, int reset) __attribute__((weak));
extern int mla_diag_v3_io(void *host, int reset) __attribute__((weak));

static void wg_diag_run(gpu_case *g, const bench_case *c, int graph, int (*io)(void *, int), const char *what,
                        const char *unit, const char *const names[2][7])
{
    static unsigned long long d[TL_CTAS][16];
    char err[256], label[160];
    if (!io || !getenv("MLA_BENCH_TIMELINE"))
        return;
    if (io(NULL, 1) || flush_l2(NULL, 0, err, sizeof err) ||
        (graph ? replay_op(g, 0, err, sizeof err) : decode_op(g, 0, err, sizeof err)) ||
        cudaStreamSynchronize(G.stream) != cudaSuccess || io(d, 0)) {
        printf("%s: failed\n", what);
        return;
    }
    bench_case_label(c, label, sizeof label);
    bench_print_wg_accounts(&d[0][0], TL_CTAS, 16, 2, names, what, label, unit);
}

static void diag_accounts(gpu_case *g, const bench_case *c, int graph)
{
#define SS2_NAMES {"chunk waits in QK^T", "named-barrier syncs", "wgmma waits", "softmax", "tile loop", "TMA issue", \
                   "P store / pack"}
    static const char *const ss2[2][7] = {SS2_NAMES, SS2_NAMES};
#undef SS2_NAMES
    static const char *const v3[2][7] = {
        {"tile wait", "PFREE sync", "QK^T", "softmax", "iteration", "PV_L", "P store + rescale"},
        {"tile wait", "P sync", "SFREE sync", "P read + rescale", "iteration", "refill issue", "PV_R"}};
    wg_diag_run(g, c, graph, mla_diag_ss2_io, "v6 wait accounting", "pair", ss2);
    wg_diag_run(g, c, graph, mla_diag_v3_io, "v3 tile accounting", "tile", v3);
}

/* Device tensors of one case: random q and cache (tail rows NaN), the layout's tables. */
static int gpu_case_alloc(gpu_case *g, const bench_case *c, const bench_layout *lay, char *err,
                          size_t errn)
{
    int rc = 1;
    size_t row = (size_t)(c->h_kv * BENCH_D_QK);
    g->nq = (size_t)(c->b * c->s_q * c->h_q) * BENCH_D_QK;
    g->nk = (size_t)(lay->num_pages * c->page) * row;
    g->no = (size_t)(c->b * c->s_q * c->h_q) * BENCH_D_V;
    g->nl = (size_t)(c->b * c->h_q * c->s_q);
    size_t nbt = (size_t)(c->b * lay->max_pages);
    const size_t esz = c->kv_fp8 ? 1 : 2; /* q / cache element bytes */
    CK(cudaMalloc(&g->q, g->nq * esz));
    CK(cudaMalloc(&g->k, g->nk * esz));
    CK(cudaMalloc(&g->out, g->no * 2));
    CK(cudaMalloc((void **)&g->lse, g->nl * sizeof(float)));
    CK(cudaMalloc((void **)&g->bt, nbt * sizeof(int32_t)));
    CK(cudaMalloc((void **)&g->sl, (size_t)c->b * sizeof(int32_t)));
    CK(fill_from_pattern(g->q, g->nq * esz, G.pattern, 0));
    CK(fill_from_pattern(g->k, g->nk * esz, G.pattern, 3));
    for (int64_t i = 0; i < c->b; i++) { /* 0xffff is NaN in bf16 and fp16, 0xff in e4m3 */
        int64_t page, first, rows = bench_tail_rows(c, lay, i, &page, &first);
        if (rows)
            CK(cudaMemsetAsync((uint8_t *)g->k + (size_t)(page * c->page + first) * row * esz, 0xff,
                               (size_t)rows * row * esz, G.stream));
    }
    if (c->kv_fp8) { /* descale_q, descale_k = 1 (device memory, read by the kernel) */
        static const float ones[2] = {1.0f, 1.0f};
        CK(cudaMalloc((void **)&g->descale, sizeof ones));
        CK(cudaMemcpyAsync(g->descale, ones, sizeof ones, cudaMemcpyHostToDevice, G.stream));
    }
    CK(cudaMemsetAsync(g->out, 0, g->no * 2, G.stream));
    CK(cudaMemsetAsync(g->lse, 0, g->nl * sizeof(float), G.stream));
    CK(cudaMemcpyAsync(g->bt, lay->block_table, nbt * sizeof(int32_t), cudaMemcpyHostToDevice, G.stream));
    CK(cudaMemcpyAsync(g->sl, lay->seqlens, (size_t)c->b * sizeof(int32_t), cudaMemcpyHostToDevice,
                       G.stream));
    if (lay->cu_seqlens_q) { /* qmix: the per-request query lengths */
        CK(cudaMalloc((void **)&g->cuq, (size_t)(c->b + 1) * sizeof(int32_t)));
        CK(cudaMemcpyAsync(g->cuq, lay->cu_seqlens_q, (size_t)(c->b + 1) * sizeof(int32_t),
                           cudaMemcpyHostToDevice, G.stream));
    }
    CK(cudaStreamSynchronize(G.stream));
    rc = 0;
done:
    return rc;
}

static int gpu_case_plan(gpu_case *g, const bench_options *o, const bench_case *c,
                         const bench_layout *lay, bench_result *r, char *err, size_t errn)
{
    int rc = 1;
    mla_decode_shape shape = bench_make_shape(c, o->dtype, 0);
    mla_status st = mla_decode_plan_create(&g->plan, &shape, o->gpu);
    if (st == MLA_OK)
        st = mla_decode_workspace_size(g->plan, &g->ws_bytes);
    if (st != MLA_OK) {
        snprintf(err, errn, "plan: %s: %s", mla_status_string(st), mla_last_error());
        return 1;
    }
    mla_decode_plan_info(g->plan, NULL, &r->num_sm_parts);
    r->workspace_bytes = g->ws_bytes;
    if (g->ws_bytes)
        CK(cudaMalloc(&g->ws, g->ws_bytes));
    g->args = bench_make_args(c, lay, g->q, g->k, g->bt, g->sl, g->out, g->lse);
    g->args.cu_seqlens_q = g->cuq; /* NULL unless c->qmix */
    if (c->kv_fp8) {
        g->args.descale_q = g->descale;
        g->args.descale_k = g->descale + 1;
    }
    if (o->reuse_schedule) { /* one schedule for every timed call, as for the layers of a step */
        st = mla_decode_schedule(g->plan, g->sl, g->ws, g->ws_bytes, (struct CUstream_st *)G.stream);
        if (st != MLA_OK) {
            snprintf(err, errn, "mla_decode_schedule: %s: %s", mla_status_string(st), mla_last_error());
            return 1;
        }
        g->args.flags |= MLA_DECODE_REUSE_SCHEDULE;
    }
    rc = 0;
done:
    return rc;
}

/* Captures one mla_decode in a graph; on failure says why in `note` and returns 1. */
static int gpu_case_capture(gpu_case *g, char *note, size_t noten)
{
    char msg[BENCH_ERR_LEN / 2] = "";
    cudaError_t e = cudaStreamBeginCapture(G.stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        decode_op(g, 0, msg, sizeof msg);
        e = cudaStreamEndCapture(G.stream, &g->graph);
        if (e == cudaSuccess && !msg[0])
            e = cudaGraphInstantiateWithFlags(&g->exec, g->graph, 0);
    }
    if (e == cudaSuccess && !msg[0])
        return 0;
    snprintf(note, noten, "graph capture failed (%s%s%s); timed plain launches",
             msg[0] ? msg : "", msg[0] && e != cudaSuccess ? "; " : "",
             e != cudaSuccess ? cudaGetErrorString(e) : "");
    cudaGetLastError();
    return 1;
}

void bench_gpu_run(const bench_env *env, const bench_options *o, const bench_case *c,
                   bench_result *r)
{
    char *err = r->error;
    size_t errn = sizeof r->error;
    gpu_case g;
    bench_layout lay;
    bench_rng rng;
    double *us = NULL;
    memset(&g, 0, sizeof g);
    bench_rng_seed(&rng, bench_case_seed(c, o->seed));
    if (bench_layout_build(&lay, c, &rng)) {
        snprintf(err, errn, "out of host memory (layout)");
        return;
    }
    r->mean_sk = lay.mean_sk;
    r->max_sk = lay.max_sk;
    r->num_pages = lay.num_pages;
    r->total_q = lay.total_q;
    r->qk_sum = lay.qk_sum;
    if (!(us = malloc((size_t)o->iters * sizeof *us))) {
        snprintf(err, errn, "out of host memory");
        goto done;
    }
    if (gpu_case_alloc(&g, c, &lay, err, errn) || gpu_case_plan(&g, o, c, &lay, r, err, errn))
        goto done;
    /* warm-up with plain launches: first-call costs stay out of the capture */
    for (int i = 0; i < 2; i++)
        if (decode_op(&g, i, err, errn))
            goto done;
    CK(cudaStreamSynchronize(G.stream));
    int graph = o->graph && !gpu_case_capture(&g, r->error, sizeof r->error);
    static const char *modes[2][2][2] = {
        {{"stream launches", "stream launches, L2 flushed"},
         {"CUDA graph replay", "CUDA graph replay, L2 flushed"}},
        {{"stream launches, schedule reused", "stream launches, L2 flushed, schedule reused"},
         {"CUDA graph replay, schedule reused", "CUDA graph replay, L2 flushed, schedule reused"}}};
    r->timing = modes[o->reuse_schedule != 0][graph][o->flush != 0];
    char note[BENCH_ERR_LEN];
    snprintf(note, sizeof note, "%s", r->error); /* a capture failure, kept as a note */
    r->error[0] = 0;
    if (time_ops(o->flush ? flush_l2 : NULL, graph ? replay_op : decode_op, &g, o->warmup, o->iters,
                 us, err, errn))
        goto done;
    timeline_run(&g, c, graph);
    diag_accounts(&g, c, graph);
    /* sanity: NaN-poisoned tail rows must not leak; no row is empty, so lse is finite; the query
     * rows past a qmix request's length stay as zeroed (never written) */
    uint16_t *out = malloc(g.no * 2);
    float *lse = malloc(g.nl * sizeof(float));
    if (out && lse && cudaMemcpy(out, g.out, g.no * 2, cudaMemcpyDeviceToHost) == cudaSuccess &&
        cudaMemcpy(lse, g.lse, g.nl * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess)
        r->nonfinite = bench_count_nonfinite_half(out, g.no, o->dtype) + bench_count_bad_lse(lse, g.nl) +
                       bench_count_pad_written(c, &lay, out, lse);
    free(out);
    free(lse);
    bench_finish_result(r, env, us, o->iters);
    snprintf(r->error, sizeof r->error, "%s", note);
done:
    free(us);
    gpu_case_free(&g);
    bench_layout_free(&lay);
}

#else /* !MLA_WITH_CUDA: the CPU-only build */

int bench_gpu_available(int device, char *why, size_t n)
{
    (void)device;
    snprintf(why, n, "mla-bench was built without CUDA (MLA_CUDA=0)");
    return 0;
}

int bench_gpu_env(bench_env *env, const bench_options *o, char *err, size_t n)
{
    (void)env;
    (void)o;
    snprintf(err, n, "mla-bench was built without CUDA (MLA_CUDA=0)");
    return 1;
}

void bench_gpu_run(const bench_env *env, const bench_options *o, const bench_case *c,
                   bench_result *r)
{
    (void)env;
    (void)o;
    (void)c;
    snprintf(r->error, sizeof r->error, "mla-bench was built without CUDA (MLA_CUDA=0)");
}

int bench_gpu_broken(char *err, size_t n)
{
    (void)err;
    (void)n;
    return 0;
}

void bench_gpu_shutdown(void) {}

void bench_env_versions(const bench_env *env, char *rt, char *drv, size_t n)
{
    (void)env;
    snprintf(rt, n, "-");
    snprintf(drv, n, "-");
}

#endif
