/* test_gpu.c — the GPU suite of mla.c, through the public C API: every GPU result is compared
 * with a CPU plan (the reference) run on the same inputs, with spec §6 tolerances.
 *
 *   build/test_gpu            the whole suite (a few minutes on a 16-core host + H100)
 *   build/test_gpu --quick    a small subset for compute-sanitizer (memcheck/racecheck/synccheck)
 *   build/test_gpu --grid-all run every case of the spec §6 grid (no subsampling; slow)
 *   build/test_gpu --no-grid  every section except the spec §6 grid (a short device call for a change
 *                            that the grid cannot reach)
 *   build/test_gpu --devices  only the device-placement checks (second GPU when present)
 *   build/test_gpu --fp8      only the FP8 sections (for a change confined to the FP8 kernels)
 *
 * Without CUDA in the build, or without a visible GPU: prints "skipped: no CUDA GPU", exits 77.
 * Last line: "<N> passed, <M> failed".
 */
#include "common.h"
#include "mla_fp8.h" /* mla_float_to_e4m3: FP8 test data */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(MLA_WITH_CUDA)

int main(void)
{
    printf("skipped: no CUDA GPU (this build has no CUDA kernels)\n");
    return 77;
}

#else

#include <cuda_runtime.h>

#include "../kernels/params.h" /* mla_ws_compute: the workspace layout (the reuse pass poisons its partials) */

static int g_quick = 0, g_grid_all = 0, g_devices_only = 0, g_fp8_only = 0, g_no_grid = 0;
static int g_dev = 0;

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            printf("  CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__,     \
                   #call);                                                                         \
            tc_expect(0, "CUDA call failed");                                                      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Device copies of a case                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct dev_case {
    void *q, *k, *out;
    float *lse;
    int32_t *bt, *seqlens, *cu;
    void *ws;
    size_t ws_bytes;
    float *desc;          /* FP8 cases: [descale_q, descale_k] */
    mla_decode_args args; /* device pointers */
} dev_case;

static void dev_free(dev_case *d)
{
    cudaFree(d->q); cudaFree(d->k); cudaFree(d->out); cudaFree(d->lse);
    cudaFree(d->bt); cudaFree(d->seqlens); cudaFree(d->cu); cudaFree(d->ws); cudaFree(d->desc);
    memset(d, 0, sizeof *d);
}

/* Uploads the case (out/lse as currently in host memory, i.e. poisoned) on the current device. */
static int dev_upload(dev_case *d, const tc_case *c, size_t ws_bytes)
{
    memset(d, 0, sizeof *d);
    CK(cudaMalloc(&d->q, (size_t)c->q_elems * 2));
    CK(cudaMalloc(&d->k, (size_t)c->k_elems * 2));
    CK(cudaMalloc(&d->out, (size_t)c->out_elems * 2));
    CK(cudaMalloc((void **)&d->lse, (size_t)c->lse_elems * 4));
    CK(cudaMalloc((void **)&d->bt, (size_t)c->bt_elems * 4));
    CK(cudaMalloc((void **)&d->seqlens, (size_t)c->cfg.b * 4));
    if (c->cu_seqlens_q) CK(cudaMalloc((void **)&d->cu, (size_t)(c->cfg.b + 1) * 4));
    d->ws_bytes = ws_bytes;
    if (ws_bytes) {
        CK(cudaMalloc(&d->ws, ws_bytes));
        CK(cudaMemset(d->ws, 0xAB, ws_bytes));
    }
    CK(cudaMemcpy(d->q, c->q, (size_t)c->q_elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->k, c->k_cache, (size_t)c->k_elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->out, c->out, (size_t)c->out_elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->lse, c->lse, (size_t)c->lse_elems * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->bt, c->block_table, (size_t)c->bt_elems * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->seqlens, c->seqlens, (size_t)c->cfg.b * 4, cudaMemcpyHostToDevice));
    if (c->cu_seqlens_q)
        CK(cudaMemcpy(d->cu, c->cu_seqlens_q, (size_t)(c->cfg.b + 1) * 4, cudaMemcpyHostToDevice));
    d->args = c->args;
    d->args.q = d->q;
    d->args.k_cache = d->k;
    d->args.block_table = d->bt;
    d->args.cache_seqlens = d->seqlens;
    d->args.cu_seqlens_q = c->cu_seqlens_q ? d->cu : NULL;
    d->args.out = d->out;
    d->args.lse = d->lse;
    return 0;
}

static int dev_download(const dev_case *d, tc_case *c)
{
    CK(cudaMemcpy(c->out, d->out, (size_t)c->out_elems * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(c->lse, d->lse, (size_t)c->lse_elems * 4, cudaMemcpyDeviceToHost));
    return 0;
}

/* Host snapshot of a case's out/lse buffers (raw bytes). */
typedef struct snap {
    uint16_t *out;
    float *lse;
} snap;

static int snap_take(snap *s, const tc_case *c)
{
    s->out = (uint16_t *)malloc((size_t)c->out_elems * 2);
    s->lse = (float *)malloc((size_t)c->lse_elems * 4);
    if (!s->out || !s->lse) return -1;
    memcpy(s->out, c->out, (size_t)c->out_elems * 2);
    memcpy(s->lse, c->lse, (size_t)c->lse_elems * 4);
    return 0;
}
static void snap_free(snap *s) { free(s->out); free(s->lse); s->out = NULL; s->lse = NULL; }

/* Dense fp64 copies of a reference result held in the case's (strided) buffers `ref`. */
static int dense_ref(const tc_case *c, const snap *ref, double **ro, double **rl)
{
    const tc_config *cfg = &c->cfg;
    const mla_decode_args *a = &c->args;
    const int64_t b = cfg->b, s_q = cfg->s_q, h_q = cfg->h_q, dv = cfg->d_v;
    double *o = (double *)malloc((size_t)(b * s_q * h_q * dv) * sizeof(double));
    double *l = (double *)malloc((size_t)(b * h_q * s_q) * sizeof(double));
    if (!o || !l) { free(o); free(l); return -1; }
    for (int64_t x = 0; x < b * s_q * h_q * dv; x++) o[x] = NAN;
    for (int64_t x = 0; x < b * h_q * s_q; x++) l[x] = NAN;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < c->q_lens[i]; j++)
            for (int64_t h = 0; h < h_q; h++) {
                const uint16_t *orow = ref->out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                double *dst = o + ((i * s_q + j) * h_q + h) * dv;
                for (int64_t d = 0; d < dv; d++) dst[d] = mla_half_to_float(cfg->dtype, orow[d]);
                l[(i * h_q + h) * s_q + j] = ref->lse[i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2]];
            }
    *ro = o;
    *rl = l;
    return 0;
}

/* Compares the GPU result now in c->out/c->lse with the CPU snapshot; counts one check. */
static int compare_to(const char *name, tc_case *c, const snap *cpu)
{
    double *ro = NULL, *rl = NULL;
    if (dense_ref(c, cpu, &ro, &rl)) return tc_expect(0, "%s: out of host memory", name);
    tc_report orp, lrp;
    int ok = tc_compare_case(c, ro, rl, &orp, &lrp);
    int64_t clob = tc_count_clobbered(c);
    free(ro);
    free(rl);
    if (!ok || clob != 0) {
        printf("  %s\n", name);
        tc_print_report("out", &orp);
        tc_print_report("lse", &lrp);
        if (clob) printf("    %lld elements outside the existing rows were written\n", (long long)clob);
    }
    return tc_expect(ok && clob == 0, "%s: GPU differs from the CPU plan", name);
}

static mla_status gpu_plan(const tc_case *c, int dev, mla_decode_plan_t *plan, size_t *ws)
{
    mla_status st = mla_decode_plan_create(plan, &c->shape, dev);
    if (st) return st;
    return mla_decode_workspace_size(*plan, ws);
}

static void case_name(char *buf, size_t n, const tc_config *g)
{
    snprintf(buf, n, "b=%lld s_q=%lld s_k=%lld h_q=%lld h_kv=%lld d_qk=%lld page=%lld %s%s%s%s%s seed=%llu",
             (long long)g->b, (long long)g->s_q, (long long)g->s_k, (long long)g->h_q, (long long)g->h_kv,
             (long long)g->d_qk, (long long)g->page_size, g->dtype == MLA_DTYPE_FP16 ? "fp16" : "bf16",
             g->causal ? " causal" : "", g->varlen ? " varlen" : "", g->cu_seqlens_q ? " cu_seqlens_q" : "",
             g->strided ? " strided" : "", (unsigned long long)g->seed);
}

/* Builds the case, runs the CPU plan, runs the GPU plan (optionally twice for determinism),
 * compares. The host-side GPU seqlens may differ from the CPU ones through `gpu_seqlens`
 * (clamp / negative tests) and the GPU block table through `gpu_bt`. */
typedef struct run_opts {
    int determinism; /* n > 0: n more runs, each byte-identical to the first */
    const int32_t *gpu_seqlens;
    const int32_t *gpu_bt;
    int reuse_schedule; /* mla_decode_schedule + MLA_DECODE_REUSE_SCHEDULE */
} run_opts;

static int run_case_opts(const tc_config *cfg, const run_opts *o)
{
    char name[256];
    case_name(name, sizeof name, cfg);
    tc_case c;
    if (tc_case_build(&c, cfg)) return tc_expect(0, "%s: case build failed", name);
    mla_status st = tc_case_run_cpu(&c);
    if (st) {
        tc_expect(0, "%s: CPU plan failed: %s", name, mla_last_error());
        tc_case_free(&c);
        return 0;
    }
    snap cpu;
    snap_take(&cpu, &c);
    tc_case_poison(&c);
    mla_decode_plan_t plan = NULL;
    size_t ws = 0;
    int ok = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    if ((st = gpu_plan(&c, g_dev, &plan, &ws))) {
        tc_expect(0, "%s: GPU plan failed: %s", name, mla_last_error());
        goto done;
    }
    if (dev_upload(&d, &c, ws)) goto done;
    if (o && o->gpu_seqlens) cudaMemcpy(d.seqlens, o->gpu_seqlens, (size_t)cfg->b * 4, cudaMemcpyHostToDevice);
    if (o && o->gpu_bt) cudaMemcpy(d.bt, o->gpu_bt, (size_t)c.bt_elems * 4, cudaMemcpyHostToDevice);
    if (o && o->reuse_schedule) {
        st = mla_decode_schedule(plan, d.args.cache_seqlens, d.ws, ws, NULL);
        if (st) { tc_expect(0, "%s: mla_decode_schedule: %s", name, mla_last_error()); goto done; }
        d.args.flags = MLA_DECODE_REUSE_SCHEDULE;
    }
    st = mla_decode(plan, &d.args, d.ws, ws, NULL);
    if (st) { tc_expect(0, "%s: mla_decode: %s", name, mla_last_error()); goto done; }
    if (cudaDeviceSynchronize() != cudaSuccess) {
        tc_expect(0, "%s: kernel failed: %s", name, cudaGetErrorString(cudaGetLastError()));
        goto done;
    }
    if (dev_download(&d, &c)) goto done;
    ok = compare_to(name, &c, &cpu);
    if (o && o->determinism) {
        snap first;
        snap_take(&first, &c);
        int same = 1, i = 0;
        for (; i < o->determinism && same; i++) {
            /* different workspace garbage and poisoned outputs, same inputs */
            cudaMemset(d.ws, 0x5A + i, ws);
            tc_case_poison(&c);
            cudaMemcpy(d.out, c.out, (size_t)c.out_elems * 2, cudaMemcpyHostToDevice);
            cudaMemcpy(d.lse, c.lse, (size_t)c.lse_elems * 4, cudaMemcpyHostToDevice);
            st = mla_decode(plan, &d.args, d.ws, ws, NULL);
            const cudaError_t ke = cudaDeviceSynchronize();
            dev_download(&d, &c);
            same = st == MLA_OK && ke == cudaSuccess && !memcmp(first.out, c.out, (size_t)c.out_elems * 2) &&
                   !memcmp(first.lse, c.lse, (size_t)c.lse_elems * 4);
        }
        tc_expect(same, "%s: run %d of %d gave different bytes (or failed)", name, i + 1, o->determinism + 1);
        snap_free(&first);
    }
done:
    dev_free(&d);
    mla_decode_plan_destroy(plan);
    snap_free(&cpu);
    tc_case_free(&c);
    return ok;
}

static int run_case(const tc_config *cfg) { return run_case_opts(cfg, NULL); }

/* ---------------------------------------------------------------------------------------- */
/* Sections                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* spec §6 grid. Cases cost b*s_q*s_k*h_q on the CPU reference; the biggest ones are
 * subsampled (every 5th, deterministic) unless --grid-all. Returns the number run. */
static void test_grid(void)
{
    static const int64_t bs[] = {1, 2, 6, 64}, sqs[] = {1, 2, 4}, sks[] = {20, 140, 4096};
    static const int64_t hqs[] = {1, 3, 9, 63, 64, 126, 128}, hkvs[] = {1, 2, 3, 8};
    int total = 0, run = 0, skipped = 0, pass0 = tc_passed, fail0 = tc_failed;
    double t0 = tc_now();
    uint64_t seed = 1000;
    for (int ib = 0; ib < 4; ib++)
        for (int iq = 0; iq < 3; iq++)
            for (int ik = 0; ik < 3; ik++)
                for (int ih = 0; ih < 7; ih++)
                    for (int ikv = 0; ikv < 4; ikv++) {
                        if (hqs[ih] % hkvs[ikv]) continue;
                        for (int varlen = 0; varlen < 2; varlen++)
                            for (int causal = 0; causal < 2; causal++) {
                                total++;
                                seed++;
                                /* estimated host seconds: case build (randn for the cache, one
                                 * thread) + the CPU reference (16 threads) */
                                const double est = (double)bs[ib] * sks[ik] * hkvs[ikv] * 576 / 34e6 +
                                                   (double)bs[ib] * sqs[iq] * sks[ik] * hqs[ih] / 15e6 + 0.01;
                                const int canon = bs[ib] == 64 && sks[ik] == 4096 && hqs[ih] == 128 &&
                                                  hkvs[ikv] == 1 && varlen && sqs[iq] <= 2;
                                if (!g_grid_all && !(est <= 0.15 || (est <= 3.0 && total % 6 == 0) || canon)) {
                                    skipped++;
                                    continue;
                                }
                                tc_config cfg = tc_config_default();
                                cfg.b = bs[ib]; cfg.s_q = sqs[iq]; cfg.s_k = sks[ik];
                                cfg.h_q = hqs[ih]; cfg.h_kv = hkvs[ikv];
                                cfg.varlen = varlen; cfg.causal = causal;
                                cfg.seed = seed;
                                run++;
                                run_case(&cfg);
                            }
                    }
    printf("grid: %d of %d spec §6 cases run (%d skipped: cases over 0.15 s of estimated host time run 1 in 6 "
           "up to 3 s, plus b=64 s_k=4096 h_q=128 varlen s_q 1-2), "
           "%d passed, %d failed, %.1f s\n",
           run, total, skipped, tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

static void test_corners(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    /* explicit lengths with zeros and tile edges */
    static const int32_t lens1[] = {0, 1, 0, 63, 64, 65, 0, 127, 128, 129, 4097, 0};
    static const int32_t zeros[] = {0, 0, 0, 0};
    for (int causal = 0; causal < 2; causal++)
        for (int sq = 1; sq <= 2; sq++) {
            tc_config cfg = tc_config_default();
            cfg.b = 12; cfg.s_q = sq; cfg.h_q = 16; cfg.causal = causal; cfg.kv_lens = lens1;
            cfg.seed = 77 + sq + 2 * causal;
            run_case(&cfg);
        }
    {
        tc_config cfg = tc_config_default();
        cfg.b = 4; cfg.h_q = 128; cfg.kv_lens = zeros;
        run_case(&cfg);
        cfg.s_q = 3; cfg.causal = 1;
        run_case(&cfg);
    }
    /* s_q > L with causal: some rows see nothing */
    {
        static const int32_t small[] = {1, 2, 3, 0, 5};
        tc_config cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 8; cfg.h_q = 16; cfg.causal = 1; cfg.kv_lens = small;
        run_case(&cfg);
    }
    /* b=128, about half empty */
    for (int hq = 16; hq <= 128; hq *= 8) {
        tc_config cfg = tc_config_default();
        cfg.b = 128; cfg.s_q = 1; cfg.s_k = 1024; cfg.h_q = hq; cfg.varlen = 1; cfg.zero_half = 1;
        cfg.seed = 5 + hq;
        run_case(&cfg);
    }
    /* one huge request among many short ones */
    {
        int32_t lens[64];
        for (int i = 0; i < 64; i++) lens[i] = 1 + (i * 37) % 90;
        lens[17] = 60000;
        tc_config cfg = tc_config_default();
        cfg.b = 64; cfg.h_q = 16; cfg.kv_lens = lens; cfg.seed = 9;
        run_case(&cfg);
    }
    printf("corners: %d passed, %d failed, %.1f s\n", tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

static void test_variants(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    static const int64_t pages[] = {16, 32, 64, 128, 256, 48};
    for (int i = 0; i < 6; i++)
        for (int hq = 16; hq <= 128; hq *= 8) {
            tc_config cfg = tc_config_default();
            cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = hq;
            cfg.page_size = pages[i]; cfg.seed = 100 + i + hq;
            run_case(&cfg);
        }
    /* fp16, d_qk 512, both */
    for (int v = 0; v < 4; v++)
        for (int sq = 1; sq <= 2; sq++) {
            tc_config cfg = tc_config_default();
            cfg.b = 5; cfg.s_q = sq; cfg.causal = sq > 1; cfg.s_k = 900; cfg.varlen = 1; cfg.h_q = 64;
            cfg.h_kv = v == 3 ? 2 : 1;
            cfg.dtype = (v & 1) ? MLA_DTYPE_FP16 : MLA_DTYPE_BF16;
            cfg.d_qk = (v & 2) ? 512 : 576;
            cfg.seed = 200 + v * 2 + sq;
            run_case(&cfg);
        }
    /* cu_seqlens_q (per-request query lengths, some 0), causal and not */
    for (int causal = 0; causal < 2; causal++)
        for (int hq = 16; hq <= 128; hq *= 8) {
            tc_config cfg = tc_config_default();
            cfg.b = 9; cfg.s_q = 4; cfg.causal = causal; cfg.s_k = 300; cfg.varlen = 1; cfg.h_q = hq;
            cfg.cu_seqlens_q = 1; cfg.seed = 300 + causal + hq;
            run_case(&cfg);
        }
    /* cu_seqlens_q with several m-blocks per request: kernels/common.cuh req_mblk hands a part's
     * (request, m-block) units round robin to the part's CTAs, so a CTA computes m-blocks other than
     * its blockIdx.x, and the scheduler weights requests by their m-blocks. The library does so with
     * >= 8 requests per scheduler part (src/gpu.cu); each case runs with that rule and with the round
     * robin forced (MLA_GPU_QMIX_RR=1). Many requests per part, random lengths (some 0), explicit
     * mixes of 1 / 2 / 4 tokens, all-1 batches (every unit moves), 16 m-blocks (s_q 8), h_kv 2, both
     * loaders (page 64: TMA for b >= 16; page 16: cp.async), the fused schedule (b <= 3) */
    {
        static int32_t mix[160], ones[160];
        static const int32_t pat[8] = {1, 2, 4, 0, 4, 1, 2, 1};
        for (int i = 0; i < 160; i++) mix[i] = pat[(i * 5 + i / 8) % 8], ones[i] = 1;
        const struct { int64_t b, s_q, h_q, h_kv, s_k, page; int causal; const int32_t *ql; } rr[] = {
            {64, 4, 128, 1, 900, 64, 1, NULL}, {64, 8, 128, 1, 700, 64, 0, NULL}, {40, 4, 128, 1, 1500, 64, 1, mix},
            {40, 4, 128, 1, 600, 16, 1, ones}, {3, 4, 128, 1, 2000, 64, 1, mix},  {24, 4, 64, 1, 800, 64, 1, NULL},
            {24, 2, 128, 2, 800, 64, 1, NULL}, {17, 4, 128, 1, 5000, 64, 0, mix}, {64, 4, 32, 1, 700, 64, 1, mix},
            {160, 4, 128, 1, 300, 64, 1, mix}, {130, 4, 128, 1, 200, 16, 1, NULL}};
        for (int force = 0; force < 2; force++) {
            if (force) setenv("MLA_GPU_QMIX_RR", "1", 1);
            for (size_t i = 0; i < sizeof rr / sizeof rr[0]; i++) {
                tc_config cfg = tc_config_default();
                cfg.b = rr[i].b; cfg.s_q = rr[i].s_q; cfg.h_q = rr[i].h_q; cfg.h_kv = rr[i].h_kv; cfg.s_k = rr[i].s_k;
                cfg.page_size = rr[i].page; cfg.causal = rr[i].causal; cfg.varlen = 1;
                cfg.cu_seqlens_q = rr[i].ql == NULL; cfg.q_lens = rr[i].ql; cfg.seed = 320 + i + 20 * force;
                run_case(&cfg);
            }
            unsetenv("MLA_GPU_QMIX_RR");
        }
    }
    /* s_q up to 8 with causal, h_kv > 1 */
    {
        tc_config cfg = tc_config_default();
        cfg.b = 3; cfg.s_q = 8; cfg.causal = 1; cfg.s_k = 500; cfg.h_q = 32; cfg.h_kv = 2; cfg.seed = 400;
        run_case(&cfg);
        cfg.s_q = 5; cfg.h_q = 128; cfg.h_kv = 1; cfg.seed = 401;
        run_case(&cfg);
    }
    /* padded strides, transposed lse, padded cache heads; explicit softmax_scale */
    for (int fp16 = 0; fp16 < 2; fp16++) {
        tc_config cfg = tc_config_default();
        cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 333; cfg.varlen = 1; cfg.h_q = 24; cfg.h_kv = 3;
        cfg.strided = 1; cfg.softmax_scale = 0.0625f;
        cfg.dtype = fp16 ? MLA_DTYPE_FP16 : MLA_DTYPE_BF16;
        cfg.seed = 500 + fp16;
        run_case(&cfg);
    }
    /* h_q beyond 128 */
    {
        tc_config cfg = tc_config_default();
        cfg.b = 2; cfg.s_q = 2; cfg.s_k = 400; cfg.h_q = 256; cfg.causal = 1; cfg.seed = 600;
        run_case(&cfg);
    }
    printf("variants (pages, fp16, d_qk 512, cu_seqlens_q, s_q 8, strides, h_q 256): %d passed, %d failed, %.1f s\n",
           tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

/* Out-of-range values the host never sees: negative lengths, lengths past the block table,
 * invalid page ids inside the used range. */
static void test_device_values(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    /* negative seqlens act as 0 */
    {
        static const int32_t lens[] = {0, 200, 0, 70};
        const int32_t gl[] = {-5, 200, INT32_MIN, 70};
        tc_config cfg = tc_config_default();
        cfg.b = 4; cfg.h_q = 16; cfg.kv_lens = lens;
        run_opts o = {0, gl, NULL, 0};
        run_case_opts(&cfg, &o);
    }
    /* seqlens past max_pages * page_size clamp (no garbage columns: the longest request fills
     * its row of the block table) */
    {
        static const int32_t lens[] = {256, 100, 256};
        const int32_t gl[] = {256 + 12345, 100, INT32_MAX};
        tc_config cfg = tc_config_default();
        cfg.b = 3; cfg.h_q = 16; cfg.kv_lens = lens; cfg.extra_cols = 0;
        run_opts o = {0, gl, NULL, 0};
        run_case_opts(&cfg, &o);
    }
    /* invalid page ids inside the used range make those keys invisible: the GPU sees lengths
     * {300, 250} with the last used page of each request replaced by a bad id; the CPU sees
     * the lengths cut at that page */
    {
        const int64_t ps = 64;
        static const int32_t lens[] = {256, 192};     /* CPU: pages 0..3 / 0..2 */
        const int32_t gl[] = {300, 250};              /* GPU: one more (partial) page each */
        tc_config cfg = tc_config_default();
        cfg.b = 2; cfg.h_q = 16; cfg.kv_lens = lens; cfg.extra_cols = 2; cfg.page_size = ps;
        tc_case c;
        tc_case_build(&c, &cfg);
        int32_t *bt = (int32_t *)malloc((size_t)c.bt_elems * 4);
        memcpy(bt, c.block_table, (size_t)c.bt_elems * 4);
        bt[0 * c.max_pages + 4] = -1;
        bt[1 * c.max_pages + 3] = (int32_t)c.num_pages; /* one past the pool */
        tc_case_free(&c);
        run_opts o = {0, gl, bt, 0};
        run_case_opts(&cfg, &o);
        free(bt);
    }
    printf("device values (negative/clamped lengths, invalid page ids): %d passed, %d failed, %.1f s\n",
           tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

static void test_determinism_and_reuse(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    run_opts det = {1, NULL, NULL, 0};
    tc_config cfg = tc_config_default();
    cfg.b = 64; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 2000; cfg.varlen = 1; cfg.h_q = 128; cfg.seed = 700;
    run_case_opts(&cfg, &det);
    cfg.b = 1; cfg.s_q = 1; cfg.causal = 0; cfg.s_k = 20000; cfg.varlen = 0; cfg.h_q = 16; cfg.seed = 701;
    run_case_opts(&cfg, &det);
    run_opts reuse = {0, NULL, NULL, 1};
    cfg.b = 16; cfg.s_q = 1; cfg.s_k = 3000; cfg.varlen = 1; cfg.h_q = 64; cfg.seed = 702;
    run_case_opts(&cfg, &reuse);
    printf("determinism + schedule reuse: %d passed, %d failed, %.1f s\n", tc_passed - pass0,
           tc_failed - fail0, tc_now() - t0);
}

/* The v3 hand-offs under load: memory-bound page-16 / 64 calls (the K tiles land late, so WG0 can run
 * a tile ahead of WG1; MLA_V3_SFREE2 in kernels/decode_sm90.cu), each run 41 times with the first
 * compared to the CPU plan and the other 40 byte-identical to it; a deadlock shows as the suite's
 * step timeout. Default kernel choice, then v3 (TMA) forced. */
static void kernel_env_push(const char *k);
static void kernel_env_pop(void);
static void test_handoff_stress(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    run_opts rep = {40, NULL, NULL, 0};
    for (int k = 0; k < 2; k++) {
        if (k) kernel_env_push("4");
        tc_config cfg = tc_config_default();
        cfg.b = 64; cfg.s_q = 1; cfg.s_k = 4096; cfg.varlen = 1; cfg.h_q = 64; cfg.page_size = 16; cfg.seed = 1500 + k;
        run_case_opts(&cfg, &rep);
        cfg.b = 32; cfg.s_k = 8192; cfg.h_q = 16; cfg.seed = 1502 + k;
        run_case_opts(&cfg, &rep);
        cfg.b = 64; cfg.s_k = 4096; cfg.h_q = 64; cfg.page_size = 64; cfg.seed = 1504 + k;
        run_case_opts(&cfg, &rep);
        cfg.b = 16; cfg.s_k = 4096; cfg.h_q = 128; cfg.page_size = 32; cfg.seed = 1506 + k;
        run_case_opts(&cfg, &rep);
        if (k) kernel_env_pop();
    }
    printf("hand-off stress (41 runs each, byte-identical): %d passed, %d failed, %.1f s\n", tc_passed - pass0,
           tc_failed - fail0, tc_now() - t0);
}

/* b = 16384: the scheduler loops over the batch; mixed lengths with zeros and one long one. */
static void test_big_batch(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    const int64_t b = 16384;
    int32_t *lens = (int32_t *)malloc((size_t)b * 4);
    for (int64_t i = 0; i < b; i++) lens[i] = (int32_t)((i * 7919) % 97);
    lens[12345] = 30000;
    tc_config cfg = tc_config_default();
    cfg.b = b; cfg.h_q = 2; cfg.kv_lens = lens; cfg.page_size = 16; cfg.seed = 800;
    run_case(&cfg);
    free(lens);
    printf("b=16384: %d passed, %d failed, %.1f s\n", tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

/* MLA_GPU_KERNEL for one test, then back to what the run was started with (a whole run under
 * MLA_GPU_KERNEL=N checks variant N on every case, the forced-variant tests included around it) */
static char g_kernel_env[16];
static int g_kernel_env_set = -1;
static void kernel_env_push(const char *k)
{
    if (g_kernel_env_set < 0) {
        const char *e = getenv("MLA_GPU_KERNEL");
        g_kernel_env_set = e != NULL;
        if (e) snprintf(g_kernel_env, sizeof g_kernel_env, "%s", e);
    }
    setenv("MLA_GPU_KERNEL", k, 1);
}
static void kernel_env_pop(void)
{
    if (g_kernel_env_set > 0) setenv("MLA_GPU_KERNEL", g_kernel_env, 1);
    else unsetenv("MLA_GPU_KERNEL");
}

/* The other kernel variants, forced through the MLA_GPU_KERNEL testing hook (src/gpu.cu):
 * "1" mma.sync with 2 K stages (sm_80+ portable path), "2" mma.sync with 1 stage (what an A100
 * runs), "3" wgmma with cp.async loads (sm_90: the default below b=64 or on pages not a multiple of
 * 64), "4" wgmma with TMA loads (the default on sm_90 otherwise),
 * "6" the warp-specialised TMA pipeline (v4), "7" the seesaw kernel (v5), "12" the seesaw in FlashMLA's
 * order (v6), "13" v3's hand-offs with K tiles gathered by cp.async (the default on pages of 16 / 32
 * tokens where v3 is chosen). */
static const char *forced_kernel_name(const char *k)
{
    static const char *names[14] = {NULL, "mma.sync 2-stage", "mma.sync 1-stage", "wgmma cp.async", "wgmma TMA", NULL,
                                    "wgmma warp-specialised", "wgmma seesaw v5", NULL, NULL, NULL, NULL,
                                    "wgmma seesaw v6", "wgmma v3 cp.async tiles"};
    const int i = atoi(k);
    return i > 0 && i < 14 && names[i] ? names[i] : "unknown variant";
}
static void test_forced_kernel(const char *k)
{
    int pass0 = tc_passed, fail0 = tc_failed;
    double t0 = tc_now();
    kernel_env_push(k);
    static const int32_t lens[] = {0, 1, 0, 63, 64, 65, 0, 127, 128, 129, 4097, 0};
    tc_config cfg = tc_config_default();
    cfg.b = 12; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 16; cfg.kv_lens = lens; cfg.seed = 950;
    run_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 1500; cfg.varlen = 1; cfg.h_q = 128; cfg.seed = 900;
    run_case(&cfg);
    cfg.b = 1; cfg.s_q = 1; cfg.causal = 0; cfg.s_k = 5000; cfg.varlen = 0; cfg.h_q = 16; cfg.seed = 901;
    run_case(&cfg);
    cfg.b = 5; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 24; cfg.h_kv = 3;
    cfg.page_size = 16; cfg.dtype = MLA_DTYPE_FP16; cfg.cu_seqlens_q = 1; cfg.seed = 902;
    run_case(&cfg);
    cfg.d_qk = 512; cfg.dtype = MLA_DTYPE_BF16; cfg.strided = 1; cfg.page_size = 32; cfg.seed = 903;
    run_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 64; cfg.s_q = 1; cfg.s_k = 2000; cfg.varlen = 1; cfg.h_q = 64; cfg.h_kv = 2; cfg.seed = 904;
    run_case(&cfg);
    /* per-request query lengths with the m-block round robin forced (req_mblk; v6 keeps its fixed
     * mapping, src/gpu.cu): 1, 2, 4 or 0 tokens over 8 m-blocks, some empty requests */
    {
        static int32_t ql[24];
        for (int i = 0; i < 24; i++) ql[i] = (int32_t[]){4, 1, 2, 0, 1, 4, 1, 2}[(i * 3) % 8];
        setenv("MLA_GPU_QMIX_RR", "1", 1);
        cfg = tc_config_default();
        cfg.b = 24; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 600; cfg.varlen = 1; cfg.h_q = 128; cfg.q_lens = ql;
        cfg.seed = 905;
        run_case(&cfg);
        unsetenv("MLA_GPU_QMIX_RR");
    }
    kernel_env_pop();
    printf("kernel variant %s (MLA_GPU_KERNEL=%s): %d passed, %d failed, %.1f s\n",
           forced_kernel_name(k), k, tc_passed - pass0,
           tc_failed - fail0, tc_now() - t0);
}

/* CUDA graph: capture one mla_decode, replay with new cache_seqlens values. */
static void test_graph(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    const int64_t b = 8;
    int32_t cap[8] = {3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000};
    tc_config cfg = tc_config_default();
    cfg.b = b; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 64; cfg.kv_lens = cap; cfg.seed = 1100;
    tc_case c;
    if (tc_case_build(&c, &cfg)) { tc_expect(0, "graph: build failed"); return; }
    mla_decode_plan_t plan = NULL;
    size_t ws = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    cudaStream_t stream = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (gpu_plan(&c, g_dev, &plan, &ws)) { tc_expect(0, "graph: plan: %s", mla_last_error()); goto done; }
    if (dev_upload(&d, &c, ws)) goto done;
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    if (!tc_expect(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess,
                   "graph: begin capture"))
        goto done;
    mla_status st = mla_decode(plan, &d.args, d.ws, ws, (struct CUstream_st *)stream);
    cudaError_t e = cudaStreamEndCapture(stream, &graph);
    if (!tc_expect(st == MLA_OK && e == cudaSuccess, "graph: capture of mla_decode (%s / %s)",
                   st ? mla_last_error() : "ok", cudaGetErrorString(e)))
        goto done;
    if (!tc_expect(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess, "graph: instantiate")) goto done;
    static const int32_t sets[4][8] = {
        {3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000},
        {1, 0, 2999, 64, 65, 0, 1000, 17},
        {0, 0, 0, 0, 0, 0, 0, 0},
        {2500, 10, 10, 10, 10, 10, 10, 3000},
    };
    for (int rep = 0; rep < 4; rep++) {
        char name[96];
        snprintf(name, sizeof name, "graph replay %d (new cache_seqlens)", rep);
        /* the CPU reference for these lengths on the same cache (rows past a shorter length are
         * real data now, which the CPU ignores too) */
        memcpy(c.seqlens, sets[rep], sizeof sets[rep]);
        tc_case_poison(&c);
        if (tc_case_run_cpu(&c)) { tc_expect(0, "%s: CPU: %s", name, mla_last_error()); continue; }
        snap cpu;
        snap_take(&cpu, &c);
        tc_case_poison(&c);
        cudaMemcpyAsync(d.seqlens, sets[rep], sizeof sets[rep], cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d.out, c.out, (size_t)c.out_elems * 2, cudaMemcpyHostToDevice, stream);
        cudaMemcpyAsync(d.lse, c.lse, (size_t)c.lse_elems * 4, cudaMemcpyHostToDevice, stream);
        e = cudaGraphLaunch(exec, stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
        if (tc_expect(e == cudaSuccess, "%s: %s", name, cudaGetErrorString(e))) {
            dev_download(&d, &c);
            compare_to(name, &c, &cpu);
        }
        snap_free(&cpu);
    }
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (stream) cudaStreamDestroy(stream);
    dev_free(&d);
    mla_decode_plan_destroy(plan);
    tc_case_free(&c);
    printf("CUDA graph capture + replay with new lengths: %d passed, %d failed, %.1f s\n", tc_passed - pass0,
           tc_failed - fail0, tc_now() - t0);
}

/* A plan on another device than the current one. */
static void test_devices(void)
{
    int pass0 = tc_passed, fail0 = tc_failed;
    int n = 0;
    cudaGetDeviceCount(&n);
    mla_decode_shape sh = mla_decode_shape_default();
    sh.b = 1; sh.h_q = 16; sh.page_size = 64;
    mla_decode_plan_t plan = NULL;
    mla_status st = mla_decode_plan_create(&plan, &sh, n);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && plan == NULL, "plan on device %d (absent) must fail, got %d", n,
              (int)st);
    if (n < 2) {
        printf("devices: one GPU only, second-device test not run (absent-device check done)\n");
        return;
    }
    /* buffers and plan on device 1 while device 0 is current */
    int cur = -1;
    g_dev = 1;
    cudaSetDevice(1);
    tc_config cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 800; cfg.varlen = 1; cfg.h_q = 32; cfg.seed = 1200;
    /* run_case allocates on the current device: make device 1 current for the allocations, then
     * the library is called with device 0 current through the hook below */
    cudaSetDevice(0);
    {
        char name[64] = "second device (plan on 1, device 0 current)";
        tc_case c;
        tc_case_build(&c, &cfg);
        tc_case_run_cpu(&c);
        snap cpu;
        snap_take(&cpu, &c);
        tc_case_poison(&c);
        mla_decode_plan_t p1 = NULL;
        size_t ws = 0;
        dev_case d;
        memset(&d, 0, sizeof d);
        cudaSetDevice(1);
        int up = dev_upload(&d, &c, 0);
        void *wsp = NULL;
        cudaSetDevice(0);
        if (!up && gpu_plan(&c, 1, &p1, &ws) == MLA_OK) {
            cudaSetDevice(1);
            cudaMalloc(&wsp, ws);
            cudaSetDevice(0);
            st = mla_decode(p1, &d.args, wsp, ws, NULL);
            cudaGetDevice(&cur);
            tc_expect(cur == 0, "current device changed by mla_decode (now %d)", cur);
            tc_expect(st == MLA_OK, "%s: %s", name, mla_last_error());
            cudaSetDevice(1);
            cudaDeviceSynchronize();
            dev_download(&d, &c);
            compare_to(name, &c, &cpu);
            cudaFree(wsp);
        } else {
            tc_expect(0, "%s: setup failed: %s", name, mla_last_error());
        }
        cudaSetDevice(1);
        dev_free(&d);
        cudaSetDevice(0);
        mla_decode_plan_destroy(p1);
        snap_free(&cpu);
        tc_case_free(&c);
    }
    g_dev = 0;
    printf("devices: %d passed, %d failed\n", tc_passed - pass0, tc_failed - fail0);
}

/* Bad input on a GPU plan: errors, and nothing written (out, lse, workspace). */
static void test_bad_input(void)
{
    int pass0 = tc_passed, fail0 = tc_failed;
    tc_config cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 2; cfg.h_q = 16; cfg.s_k = 200; cfg.seed = 1300;
    tc_case c;
    tc_case_build(&c, &cfg);
    mla_decode_plan_t plan = NULL;
    size_t ws = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    if (gpu_plan(&c, g_dev, &plan, &ws) || dev_upload(&d, &c, ws)) {
        tc_expect(0, "bad input: setup: %s", mla_last_error());
        goto done;
    }
    {
        mla_decode_args a;
        mla_status st;
        a = d.args; a.q = (const char *)d.q + 2;
        st = mla_decode(plan, &a, d.ws, ws, NULL);
        tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "q"), "misaligned q: %d %s", st, mla_last_error());
        a = d.args; a.k_cache = NULL;
        st = mla_decode(plan, &a, d.ws, ws, NULL);
        tc_expect(st == MLA_ERR_INVALID_ARGUMENT, "NULL k_cache: %d %s", st, mla_last_error());
        a = d.args; a.k_stride[1] = 100; /* not a multiple of 8, and overlapping */
        st = mla_decode(plan, &a, d.ws, ws, NULL);
        tc_expect(st == MLA_ERR_INVALID_ARGUMENT, "bad k_stride: %d %s", st, mla_last_error());
        a = d.args; a.flags = 0x80;
        st = mla_decode(plan, &a, d.ws, ws, NULL);
        tc_expect(st == MLA_ERR_INVALID_ARGUMENT, "unknown flags: %d %s", st, mla_last_error());
        st = mla_decode(plan, &d.args, d.ws, ws - 1, NULL);
        tc_expect(st == MLA_ERR_WORKSPACE_TOO_SMALL, "small workspace: %d %s", st, mla_last_error());
        st = mla_decode(plan, &d.args, (char *)d.ws + 16, ws, NULL);
        tc_expect(st == MLA_ERR_INVALID_ARGUMENT, "unaligned workspace: %d %s", st, mla_last_error());
        cudaDeviceSynchronize();
        /* nothing written: out/lse still poisoned, workspace still 0xAB */
        uint16_t *o = (uint16_t *)malloc((size_t)c.out_elems * 2);
        float *l = (float *)malloc((size_t)c.lse_elems * 4);
        unsigned char *w = (unsigned char *)malloc(ws);
        cudaMemcpy(o, d.out, (size_t)c.out_elems * 2, cudaMemcpyDeviceToHost);
        cudaMemcpy(l, d.lse, (size_t)c.lse_elems * 4, cudaMemcpyDeviceToHost);
        cudaMemcpy(w, d.ws, ws, cudaMemcpyDeviceToHost);
        int64_t bad = 0;
        for (int64_t x = 0; x < c.out_elems; x++) bad += o[x] != TC_POISON_HALF;
        for (int64_t x = 0; x < c.lse_elems; x++) bad += mla_f32_bits(l[x]) != 0x7fc00123u;
        for (size_t x = 0; x < ws; x++) bad += w[x] != 0xAB;
        tc_expect(bad == 0, "rejected calls wrote %lld bytes/elements", (long long)bad);
        free(o); free(l); free(w);
        /* a GPU shape the device rejects: page_size not a multiple of 16 */
        mla_decode_shape sh = c.shape;
        sh.page_size = 24;
        mla_decode_plan_t p2 = NULL;
        st = mla_decode_plan_create(&p2, &sh, g_dev);
        tc_expect(st != MLA_OK && p2 == NULL && strstr(mla_last_error(), "page_size"),
                  "page_size 24 on the GPU must be rejected: %d %s", st, mla_last_error());
        /* a valid call after the failures still works */
        st = mla_decode(plan, &d.args, d.ws, ws, NULL);
        tc_expect(st == MLA_OK && cudaDeviceSynchronize() == cudaSuccess, "valid call after errors: %s",
                  mla_last_error());
        int info_dev = -2, parts = 0;
        mla_decode_plan_info(plan, &info_dev, &parts);
        tc_expect(info_dev == g_dev && parts >= 1, "plan_info: device %d parts %d", info_dev, parts);
    }
done:
    dev_free(&d);
    mla_decode_plan_destroy(plan);
    tc_case_free(&c);
    printf("bad input on a GPU plan: %d passed, %d failed\n", tc_passed - pass0, tc_failed - fail0);
}

/* ---------------------------------------------------------------------------------------- */
/* Dense FP8 e4m3 cache (issue 7 part 1): GPU vs the CPU plan on the same codes and descales  */
/* ---------------------------------------------------------------------------------------- */

typedef struct f8_case {
    tc_case c;            /* shape / args: host FP8 buffers below, host descales           */
    uint8_t *q8, *k8;     /* e4m3 codes, same element strides as the 16-bit buffers         */
    int q_fp8, with_dq;
    float dq, dk;
} f8_case;

static void f8_free(f8_case *f)
{
    tc_case_free(&f->c);
    free(f->q8);
    free(f->k8);
    memset(f, 0, sizeof *f);
}

/* NaN (the 16-bit poison of tc_case: unused cache rows, q padding) -> NaN codes 0x7f / 0xff,
 * else e4m3(x / s) */
static void f8_codes(uint8_t *dst, const uint16_t *src, int64_t n, mla_dtype dt, float s)
{
    for (int64_t x = 0; x < n; x++) {
        const float v = mla_half_to_float(dt, src[x]);
        dst[x] = v != v ? (uint8_t)((x & 1) ? 0xff : 0x7f) : mla_float_to_e4m3(v / s);
    }
}

static int f8_build(f8_case *f, const tc_config *cfg, int q_fp8, int with_dq, float dq, float dk)
{
    memset(f, 0, sizeof *f);
    if (tc_case_build(&f->c, cfg)) return -1;
    f->q_fp8 = q_fp8;
    f->with_dq = with_dq || q_fp8;
    f->dq = dq;
    f->dk = dk;
    f->k8 = (uint8_t *)malloc((size_t)f->c.k_elems);
    if (!f->k8) return -1;
    f8_codes(f->k8, f->c.k_cache, f->c.k_elems, cfg->dtype, dk > 0.f ? dk : 1.f);
    f->c.shape.kv_dtype = MLA_DTYPE_FP8_E4M3;
    f->c.args.k_cache = f->k8;
    if (q_fp8) {
        f->q8 = (uint8_t *)malloc((size_t)f->c.q_elems);
        if (!f->q8) return -1;
        f8_codes(f->q8, f->c.q, f->c.q_elems, cfg->dtype, dq > 0.f ? dq : 1.f);
        f->c.shape.q_dtype = MLA_DTYPE_FP8_E4M3;
        f->c.args.q = f->q8;
    }
    f->c.args.descale_q = f->with_dq ? &f->dq : NULL;
    f->c.args.descale_k = &f->dk;
    return 0;
}

/* dev_upload, then the cache (and an FP8 q) replaced by exactly-sized code buffers, and the
 * descales in device memory */
static int f8_upload(dev_case *d, const f8_case *f, size_t ws)
{
    if (dev_upload(d, &f->c, ws)) return -1;
    cudaFree(d->k);
    d->k = NULL;
    CK(cudaMalloc(&d->k, (size_t)f->c.k_elems));
    CK(cudaMemcpy(d->k, f->k8, (size_t)f->c.k_elems, cudaMemcpyHostToDevice));
    d->args.k_cache = d->k;
    if (f->q_fp8) {
        cudaFree(d->q);
        d->q = NULL;
        CK(cudaMalloc(&d->q, (size_t)f->c.q_elems));
        CK(cudaMemcpy(d->q, f->q8, (size_t)f->c.q_elems, cudaMemcpyHostToDevice));
        d->args.q = d->q;
    }
    const float h[2] = {f->dq, f->dk};
    CK(cudaMalloc((void **)&d->desc, sizeof h));
    CK(cudaMemcpy(d->desc, h, sizeof h, cudaMemcpyHostToDevice));
    d->args.descale_q = f->with_dq ? d->desc : NULL;
    d->args.descale_k = d->desc + 1;
    return 0;
}

/* MLA_GPU_KERNEL=1/2 (the portable mma.sync path) has no FP8 variant: plans are UNSUPPORTED; so
 * under CUDA_FORCE_PTX_JIT=1, where the library must not use the wgmma kernels (their compute_80
 * PTX bodies are empty) and falls back to mma.sync */
static int fp8_forced_portable(void)
{
    const char *k = getenv("MLA_GPU_KERNEL"), *jit = getenv("CUDA_FORCE_PTX_JIT");
    return (k && (!strcmp(k, "1") || !strcmp(k, "2"))) || (jit && !strcmp(jit, "1"));
}

static int run_fp8_case(const tc_config *cfg, int q_fp8, int with_dq, float dq, float dk, int determinism)
{
    char name[320], base[256];
    case_name(base, sizeof base, cfg);
    snprintf(name, sizeof name, "FP8 cache, %s q%s, descale_k %g: %s", q_fp8 ? "e4m3" : "16-bit",
             with_dq || q_fp8 ? (dq == 1.f ? " descale_q 1" : " descale_q set") : "", (double)dk, base);
    f8_case f;
    if (f8_build(&f, cfg, q_fp8, with_dq, dq, dk)) { f8_free(&f); return tc_expect(0, "%s: build failed", name); }
    mla_decode_plan_t plan = NULL;
    size_t ws = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    int ok = 0;
    snap cpu;
    memset(&cpu, 0, sizeof cpu);
    mla_status st = gpu_plan(&f.c, g_dev, &plan, &ws);
    if (fp8_forced_portable()) {
        ok = tc_expect(st == MLA_ERR_UNSUPPORTED && plan == NULL && strstr(mla_last_error(), "FP8"),
                       "%s: MLA_GPU_KERNEL=%s must give UNSUPPORTED, got %d (%s)", name, getenv("MLA_GPU_KERNEL"),
                       (int)st, mla_last_error());
        goto done;
    }
    if (st) { tc_expect(0, "%s: GPU plan failed: %s", name, mla_last_error()); goto done; }
    tc_case_poison(&f.c);
    if ((st = tc_case_run_cpu(&f.c))) { tc_expect(0, "%s: CPU plan failed: %s", name, mla_last_error()); goto done; }
    snap_take(&cpu, &f.c);
    tc_case_poison(&f.c);
    if (f8_upload(&d, &f, ws)) goto done;
    st = mla_decode(plan, &d.args, d.ws, ws, NULL);
    if (st) { tc_expect(0, "%s: mla_decode: %s", name, mla_last_error()); goto done; }
    if (cudaDeviceSynchronize() != cudaSuccess) {
        tc_expect(0, "%s: kernel failed: %s", name, cudaGetErrorString(cudaGetLastError()));
        goto done;
    }
    if (dev_download(&d, &f.c)) goto done;
    ok = compare_to(name, &f.c, &cpu);
    if (determinism) {
        snap first;
        snap_take(&first, &f.c);
        cudaMemset(d.ws, 0x5A, ws);
        tc_case_poison(&f.c);
        cudaMemcpy(d.out, f.c.out, (size_t)f.c.out_elems * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(d.lse, f.c.lse, (size_t)f.c.lse_elems * 4, cudaMemcpyHostToDevice);
        st = mla_decode(plan, &d.args, d.ws, ws, NULL);
        cudaDeviceSynchronize();
        dev_download(&d, &f.c);
        int same = st == MLA_OK && !memcmp(first.out, f.c.out, (size_t)f.c.out_elems * 2) &&
                   !memcmp(first.lse, f.c.lse, (size_t)f.c.lse_elems * 4);
        tc_expect(same, "%s: two runs gave different bytes", name);
        snap_free(&first);
    }
done:
    dev_free(&d);
    mla_decode_plan_destroy(plan);
    snap_free(&cpu);
    f8_free(&f);
    return ok;
}

/* A reduced spec §6 grid on an FP8 cache: e4m3 and 16-bit q, descales != 1, NaN codes in
 * unused rows, garbage block_table tails, shuffled pages, pages 16/32/64/128, h_kv > 1, s_q up to
 * 4 causal, cu_seqlens_q, zero lengths, fp16 out, d_qk 512, strides, long (split) requests. */
static void test_fp8(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    static const int32_t lens1[] = {0, 1, 0, 63, 64, 65, 0, 127, 128, 129, 4097, 0};
    static const int32_t zeros[] = {0, 0, 0, 0};
    tc_config cfg = tc_config_default();
    cfg.b = 2; cfg.s_q = 1; cfg.s_k = 140; cfg.h_q = 16; cfg.seed = 2000;
    run_fp8_case(&cfg, 1, 1, 0.5f, 2.0f, 0);
    cfg = tc_config_default();
    cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 128; cfg.page_size = 16;
    cfg.seed = 2001;
    run_fp8_case(&cfg, 0, 0, 1.f, 0.37f, 0);
    cfg = tc_config_default();
    cfg.b = 6; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.h_q = 64;
    cfg.h_kv = 2; cfg.page_size = 128; cfg.seed = 2002;
    run_fp8_case(&cfg, 1, 1, 1.7f, 0.0625f, 1);
    cfg = tc_config_default();
    cfg.b = 12; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 16; cfg.kv_lens = lens1; cfg.seed = 2003;
    run_fp8_case(&cfg, 1, 1, 3.1f, 0.5f, 0);
    cfg = tc_config_default();
    cfg.b = 1; cfg.s_q = 1; cfg.s_k = 20000; cfg.h_q = 16; cfg.seed = 2004;
    run_fp8_case(&cfg, 0, 1, 2.0f, 1.7f, 1);
    cfg = tc_config_default();
    cfg.b = 64; cfg.s_q = 1; cfg.s_k = 4096; cfg.varlen = 1; cfg.h_q = 128; cfg.seed = 2005;
    run_fp8_case(&cfg, 1, 1, 1.f, 1.f, 0);
    cfg = tc_config_default();
    cfg.b = 5; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 900; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.h_q = 24;
    cfg.h_kv = 3; cfg.page_size = 16; cfg.dtype = MLA_DTYPE_FP16; cfg.seed = 2006;
    run_fp8_case(&cfg, 1, 1, 0.37f, 3.1f, 0);
    cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 333; cfg.varlen = 1; cfg.h_q = 24; cfg.h_kv = 3;
    cfg.strided = 1; cfg.d_qk = 512; cfg.page_size = 32; cfg.softmax_scale = 0.0625f; cfg.seed = 2007;
    run_fp8_case(&cfg, 0, 1, 2.0f, 0.5f, 0); /* 16-bit q: the strided layout pads q by 8 elements */
    cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 128; cfg.kv_lens = zeros; cfg.seed = 2008;
    run_fp8_case(&cfg, 1, 1, 1.f, 2.f, 0);
    cfg = tc_config_default();
    cfg.b = 128; cfg.s_q = 1; cfg.s_k = 1024; cfg.varlen = 1; cfg.zero_half = 1; cfg.h_q = 64; cfg.seed = 2009;
    run_fp8_case(&cfg, 0, 0, 1.f, 0.5f, 0);
    cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 500; cfg.h_q = 32; cfg.h_kv = 2; cfg.page_size = 128;
    cfg.d_qk = 512; cfg.dtype = MLA_DTYPE_FP16; cfg.seed = 2010;
    run_fp8_case(&cfg, 0, 0, 1.f, 2.f, 0);
    for (int hq = 16; hq <= 128; hq *= 8) {
        cfg = tc_config_default();
        cfg.b = 9; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 300; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.h_q = hq;
        cfg.seed = 2011 + hq;
        run_fp8_case(&cfg, 1, 1, 0.5f, 0.37f, 0);
    }
    /* m-blocks handed round robin (req_mblk), FP8: 48 requests with it forced, 136 by the rule */
    setenv("MLA_GPU_QMIX_RR", "1", 1);
    cfg = tc_config_default();
    cfg.b = 48; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 900; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.h_q = 128;
    cfg.seed = 2013;
    run_fp8_case(&cfg, 1, 1, 0.5f, 0.37f, 1);
    unsetenv("MLA_GPU_QMIX_RR");
    cfg.b = 136; cfg.s_k = 300; cfg.seed = 2014;
    run_fp8_case(&cfg, 1, 1, 0.5f, 0.37f, 0);
    cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 8; cfg.causal = 1; cfg.s_k = 500; cfg.h_q = 32; cfg.h_kv = 2; cfg.page_size = 64;
    cfg.seed = 2012;
    run_fp8_case(&cfg, 1, 1, 1.f, 0.0625f, 0);
    /* the narrow FP8 kernels (s_q * h_q / h_kv <= 32): each case through the default (<= 16 rows
     * kernels/decode_narrow.cu, 17..32 kernels/decode_narrow32.cu), MLA_GPU_FP8T=0 (the same, set
     * explicitly), MLA_GPU_FP8T=1 (kernels/decode_fp8t.cu for both) and MLA_GPU_NARROW=0 (the 64-row
     * FP8 kernel) */
    for (int nw = 0; nw < 4; nw++) {
        if (nw == 1) setenv("MLA_GPU_FP8T", "0", 1);
        if (nw == 2) setenv("MLA_GPU_FP8T", "1", 1);
        if (nw == 3) {
            unsetenv("MLA_GPU_FP8T");
            setenv("MLA_GPU_NARROW", "0", 1);
        }
        static const int32_t lens2[] = {0, 1, 63, 64, 65, 0, 127, 129, 4097, 5000, 0, 2};
        cfg = tc_config_default();
        cfg.b = 12; cfg.s_q = 1; cfg.h_q = 16; cfg.kv_lens = lens2; cfg.page_size = 16; cfg.seed = 2020;
        run_fp8_case(&cfg, 1, 1, 0.5f, 2.0f, 1);
        cfg = tc_config_default();
        cfg.b = 128; cfg.s_q = 1; cfg.s_k = 2048; cfg.varlen = 1; cfg.h_q = 16; cfg.seed = 2021;
        run_fp8_case(&cfg, 0, 1, 1.7f, 0.37f, 0);
        cfg = tc_config_default();
        cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 900; cfg.varlen = 1; cfg.h_q = 8; cfg.page_size = 32;
        cfg.seed = 2022;
        run_fp8_case(&cfg, 1, 1, 1.f, 0.5f, 0);
        cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 600; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.h_q = 8;
        cfg.h_kv = 2; cfg.page_size = 128; cfg.dtype = MLA_DTYPE_FP16; cfg.seed = 2023;
        run_fp8_case(&cfg, 0, 0, 1.f, 3.1f, 0);
        cfg = tc_config_default();
        cfg.b = 7; cfg.s_q = 1; cfg.s_k = 1000; cfg.varlen = 1; cfg.h_q = 32; cfg.h_kv = 2; cfg.d_qk = 512;
        cfg.strided = 1; cfg.seed = 2024;
        run_fp8_case(&cfg, 0, 1, 2.0f, 0.0625f, 0); /* 16-bit q: the strided layout pads q by 8 elements */
        cfg = tc_config_default();
        cfg.b = 3; cfg.s_q = 1; cfg.s_k = 3000; cfg.h_q = 1; cfg.page_size = 64; cfg.seed = 2025;
        run_fp8_case(&cfg, 0, 1, 1.f, 1.f, 0);
        cfg = tc_config_default();
        cfg.b = 9; cfg.s_q = 1; cfg.s_k = 1500; cfg.varlen = 1; cfg.h_q = 16; cfg.zero_half = 1; cfg.d_qk = 512;
        cfg.dtype = MLA_DTYPE_FP16; cfg.seed = 2026;
        run_fp8_case(&cfg, 1, 1, 0.37f, 1.7f, 0);
        /* 17..32 rows per KV head: the two-warpgroup narrow kernel */
        cfg = tc_config_default();
        cfg.b = 12; cfg.s_q = 1; cfg.h_q = 32; cfg.kv_lens = lens2; cfg.page_size = 16; cfg.seed = 2027;
        run_fp8_case(&cfg, 1, 1, 0.5f, 2.0f, 1);
        cfg = tc_config_default();
        cfg.b = 128; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 2048; cfg.varlen = 1; cfg.h_q = 16; cfg.seed = 2028;
        run_fp8_case(&cfg, 0, 1, 1.7f, 0.37f, 0);
        cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 600; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.h_q = 8;
        cfg.page_size = 128; cfg.dtype = MLA_DTYPE_FP16; cfg.seed = 2029;
        run_fp8_case(&cfg, 0, 0, 1.f, 3.1f, 0);
        cfg = tc_config_default();
        cfg.b = 7; cfg.s_q = 1; cfg.s_k = 1000; cfg.varlen = 1; cfg.h_q = 64; cfg.h_kv = 2; cfg.d_qk = 512;
        cfg.strided = 1; cfg.seed = 2030;
        run_fp8_case(&cfg, 0, 1, 2.0f, 0.0625f, 0);
        cfg = tc_config_default();
        cfg.b = 3; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 5000; cfg.h_q = 10; cfg.page_size = 32; cfg.seed = 2031;
        run_fp8_case(&cfg, 1, 1, 1.f, 1.f, 1);
        unsetenv("MLA_GPU_FP8T");
        unsetenv("MLA_GPU_NARROW");
    }
    /* FP8 through the TMA testing hook: the plan still takes the FP8 kernel */
    kernel_env_push("4");
    cfg = tc_config_default();
    cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 1500; cfg.varlen = 1; cfg.h_q = 128; cfg.seed = 2013;
    run_fp8_case(&cfg, 1, 1, 0.5f, 1.7f, 0);
    /* the portable path has no FP8 variant: UNSUPPORTED with a message */
    kernel_env_push("1");
    run_fp8_case(&cfg, 1, 1, 0.5f, 1.7f, 0);
    kernel_env_pop();
    printf("FP8 cache (e4m3 / 16-bit q, descales, pages 16-128, h_kv>1, causal s_q<=8, cu_seqlens_q, zeros, fp16, "
           "d_qk 512, strides, split, forced kernels): %d passed, %d failed, %.1f s\n",
           tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

/* CUDA graph on an FP8 cache: capture once; between replays change the descale values (device
 * memory, read by the kernel) and cache_seqlens. */
static void test_fp8_graph(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    int32_t cap[8] = {3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000};
    tc_config cfg = tc_config_default();
    cfg.b = 8; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 64; cfg.kv_lens = cap; cfg.seed = 2100;
    f8_case f;
    mla_decode_plan_t plan = NULL;
    size_t ws = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    cudaStream_t stream = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (f8_build(&f, &cfg, 1, 1, 1.f, 1.f)) { tc_expect(0, "fp8 graph: build failed"); goto done; }
    if (gpu_plan(&f.c, g_dev, &plan, &ws)) { tc_expect(0, "fp8 graph: plan: %s", mla_last_error()); goto done; }
    if (f8_upload(&d, &f, ws)) goto done;
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    if (!tc_expect(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess,
                   "fp8 graph: begin capture"))
        goto done;
    {
        mla_status st = mla_decode(plan, &d.args, d.ws, ws, (struct CUstream_st *)stream);
        cudaError_t e = cudaStreamEndCapture(stream, &graph);
        if (!tc_expect(st == MLA_OK && e == cudaSuccess, "fp8 graph: capture of mla_decode (%s / %s)",
                       st ? mla_last_error() : "ok", cudaGetErrorString(e)))
            goto done;
        if (!tc_expect(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess, "fp8 graph: instantiate")) goto done;
        static const int32_t sets[4][8] = {
            {3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000},
            {1, 0, 2999, 64, 65, 0, 1000, 17},
            {0, 0, 0, 0, 0, 0, 0, 0},
            {2500, 10, 10, 10, 10, 10, 10, 3000},
        };
        static const float dqs[4] = {1.f, 0.5f, 2.f, 3.1f}, dks[4] = {1.f, 1.7f, 0.37f, 0.0625f};
        for (int rep = 0; rep < 4; rep++) {
            char name[128];
            snprintf(name, sizeof name, "fp8 graph replay %d (descale_q %g, descale_k %g, new cache_seqlens)", rep,
                     (double)dqs[rep], (double)dks[rep]);
            memcpy(f.c.seqlens, sets[rep], sizeof sets[rep]);
            f.dq = dqs[rep];
            f.dk = dks[rep];
            tc_case_poison(&f.c);
            if (tc_case_run_cpu(&f.c)) { tc_expect(0, "%s: CPU: %s", name, mla_last_error()); continue; }
            snap cpu;
            snap_take(&cpu, &f.c);
            tc_case_poison(&f.c);
            const float h[2] = {f.dq, f.dk};
            cudaMemcpyAsync(d.desc, h, sizeof h, cudaMemcpyHostToDevice, stream);
            cudaMemcpyAsync(d.seqlens, sets[rep], sizeof sets[rep], cudaMemcpyHostToDevice, stream);
            cudaMemcpyAsync(d.out, f.c.out, (size_t)f.c.out_elems * 2, cudaMemcpyHostToDevice, stream);
            cudaMemcpyAsync(d.lse, f.c.lse, (size_t)f.c.lse_elems * 4, cudaMemcpyHostToDevice, stream);
            e = cudaGraphLaunch(exec, stream);
            if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
            if (tc_expect(e == cudaSuccess, "%s: %s", name, cudaGetErrorString(e))) {
                dev_download(&d, &f.c);
                compare_to(name, &f.c, &cpu);
            }
            snap_free(&cpu);
        }
    }
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (stream) cudaStreamDestroy(stream);
    dev_free(&d);
    mla_decode_plan_destroy(plan);
    f8_free(&f);
    printf("FP8 CUDA graph replay with new descales and lengths: %d passed, %d failed, %.1f s\n",
           tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
}

/* Fault cases F6-F8 on the GPU (docs/guarantees.md): NaN in one q row, +Inf in another, NaN in one
 * visible cache row. Every result element must match the CPU plan's: NaN where the CPU gives NaN,
 * +inf lse where the CPU gives +inf, else within the suite's tolerance (abs 1/64 + rel 1/64, loose
 * on purpose: the other rows are checked exactly by the grid; here what matters is where NaN goes).
 * The CPU answer itself is checked against the documented rule: exactly the rows that see a
 * non-finite input are NaN. Run with the default kernel and each forced variant. */
static void nonfinite_case(const char *kernel)
{
    char name[160];
    snprintf(name, sizeof name, "non-finite inputs (F6-F8), MLA_GPU_KERNEL=%s", kernel ? kernel : "default");
    if (kernel) kernel_env_push(kernel);
    tc_config cfg = tc_config_default();
    static const int32_t lens[] = {300, 300, 300, 70};
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 16; cfg.kv_lens = lens; cfg.seed = 77;
    tc_case c;
    if (tc_case_build(&c, &cfg)) { tc_expect(0, "%s: build failed", name); goto out; }
    const mla_decode_args *a = &c.args;
    const uint16_t NANH = 0x7fc0, PINF = 0x7f80; /* bf16 */
    c.q[0 * a->q_stride[0] + 0 * a->q_stride[1] + 3 * a->q_stride[2] + 5] = NANH;   /* F6: req 0, token 0, head 3 */
    c.q[1 * a->q_stride[0] + 1 * a->q_stride[1] + 7 * a->q_stride[2] + 100] = PINF; /* F7: req 1, token 1, head 7 */
    {   /* F8: key 10 of request 2 (visible to both of its query tokens) */
        const int64_t page = c.block_table[2 * a->block_table_stride + 10 / cfg.page_size];
        c.k_cache[page * a->k_stride[0] + (10 % cfg.page_size) * a->k_stride[1] + 200] = NANH;
    }
    mla_status st = tc_case_run_cpu(&c);
    if (st) { tc_expect(0, "%s: CPU plan failed: %s", name, mla_last_error()); tc_case_free(&c); goto out; }
    snap cpu;
    snap_take(&cpu, &c);
    /* the CPU answer follows the documented rule */
    int rule_ok = 1;
    for (int64_t i = 0; i < cfg.b; i++)
        for (int64_t j = 0; j < cfg.s_q; j++)
            for (int64_t h = 0; h < cfg.h_q; h++) {
                const int want_nan = (i == 0 && j == 0 && h == 3) || (i == 1 && j == 1 && h == 7) || i == 2;
                const uint16_t *o = cpu.out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                for (int64_t d = 0; d < cfg.d_v; d++)
                    if (isnan(mla_half_to_float(cfg.dtype, o[d])) != want_nan) rule_ok = 0;
            }
    tc_expect(rule_ok, "%s: the CPU plan does not follow the documented NaN rule", name);
    tc_case_poison(&c);
    mla_decode_plan_t plan = NULL;
    size_t ws = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    if ((st = gpu_plan(&c, g_dev, &plan, &ws))) { tc_expect(0, "%s: GPU plan: %s", name, mla_last_error()); goto done; }
    if (dev_upload(&d, &c, ws)) goto done;
    st = mla_decode(plan, &d.args, d.ws, ws, NULL);
    if (st || cudaDeviceSynchronize() != cudaSuccess) { tc_expect(0, "%s: GPU call failed", name); goto done; }
    if (dev_download(&d, &c)) goto done;
    {
        int64_t bad = 0, nan_rows = 0;
        for (int64_t i = 0; i < cfg.b; i++)
            for (int64_t j = 0; j < cfg.s_q; j++)
                for (int64_t h = 0; h < cfg.h_q; h++) {
                    const int64_t off = i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                    int row_nan = 0;
                    for (int64_t x = 0; x < cfg.d_v; x++) {
                        const float r = mla_half_to_float(cfg.dtype, cpu.out[off + x]);
                        const float g = mla_half_to_float(cfg.dtype, c.out[off + x]);
                        row_nan |= isnan(g);
                        if (isnan(r) ? !isnan(g) : !(fabsf(g - r) <= 1.f / 64 + fabsf(r) / 64)) bad++;
                    }
                    nan_rows += row_nan;
                    const int64_t lo = i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2];
                    const float r = cpu.lse[lo], g = c.lse[lo];
                    if (isnan(r) ? !isnan(g) : isinf(r) ? g != r : !(fabsf(g - r) <= 1e-3f + fabsf(r) * 1e-4f)) bad++;
                }
        tc_expect(bad == 0 && nan_rows == 2 + 2 * cfg.h_q, "%s: %lld elements differ from the CPU plan, %lld NaN rows "
                  "(want %lld)", name, (long long)bad, (long long)nan_rows, (long long)(2 + 2 * cfg.h_q));
    }
done:
    dev_free(&d);
    mla_decode_plan_destroy(plan);
    snap_free(&cpu);
    tc_case_free(&c);
out:
    if (kernel) kernel_env_pop();
}
static void test_nonfinite(void)
{
    int pass0 = tc_passed, fail0 = tc_failed;
    nonfinite_case(NULL);
    nonfinite_case("1");
    nonfinite_case("4");
    nonfinite_case("6");
    nonfinite_case("7");
    printf("non-finite q / cache (F6-F8) vs the CPU plan, default + forced kernels: %d passed, %d failed\n",
           tc_passed - pass0, tc_failed - fail0);
}

/* One mla_decode of `plan` on the uploaded case with the workspace first set to 0xAB; out, lse and
 * the whole workspace come back in *o (malloc'ed). flags: mla_decode_args.flags. */
typedef struct run_bytes { uint16_t *out; float *lse; unsigned char *ws; } run_bytes;
static void run_bytes_free(run_bytes *r) { free(r->out); free(r->lse); free(r->ws); memset(r, 0, sizeof *r); }
/* One decode into poisoned out / lse / workspace. With MLA_DECODE_REUSE_SCHEDULE only the schedule part
 * of the workspace is kept ([0, lacc)): its split partials (lacc, oacc) are poisoned too, so that a reuse
 * call whose decode kernel wrote nothing cannot pass on the previous call's partials. */
static int decode_bytes(mla_decode_plan_t plan, dev_case *d, tc_case *c, uint32_t flags, run_bytes *o)
{
    memset(o, 0, sizeof *o);
    tc_case_poison(c);
    CK(cudaMemcpy(d->out, c->out, (size_t)c->out_elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->lse, c->lse, (size_t)c->lse_elems * 4, cudaMemcpyHostToDevice));
    if (!(flags & MLA_DECODE_REUSE_SCHEDULE)) {
        CK(cudaMemset(d->ws, 0xAB, d->ws_bytes));
    } else {
        int dev = 0, parts = 0;
        if (mla_decode_plan_info(plan, &dev, &parts)) return -1;
        mla_ws_layout w = mla_ws_compute(c->shape.b, c->shape.s_q, c->shape.h_q, parts);
        if (w.total != d->ws_bytes) {
            tc_expect(0, "reuse pass: workspace layout %zu bytes, plan %zu", w.total, d->ws_bytes);
            return -1;
        }
        CK(cudaMemset((char *)d->ws + w.lacc, 0xAB, w.total - w.lacc));
    }
    mla_decode_args a = d->args;
    a.flags = flags;
    if (mla_decode(plan, &a, d->ws, d->ws_bytes, NULL)) return -1;
    CK(cudaDeviceSynchronize());
    o->out = (uint16_t *)malloc((size_t)c->out_elems * 2);
    o->lse = (float *)malloc((size_t)c->lse_elems * 4);
    o->ws = (unsigned char *)malloc(d->ws_bytes);
    if (!o->out || !o->lse || !o->ws) return -1;
    CK(cudaMemcpy(o->out, d->out, (size_t)c->out_elems * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(o->lse, d->lse, (size_t)c->lse_elems * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(o->ws, d->ws, d->ws_bytes, cudaMemcpyDeviceToHost));
    return 0;
}

/* Fused schedule (the v2 kernel's entries without a scheduler launch, every decode CTA computes its
 * part; MLA_GPU_FUSED_SCHED=1: up to b = 512, with MLA_GPU_KERNEL=3 so that large b use v2 too)
 * against the scheduler kernel (MLA_GPU_FUSED_SCHED=0): the same bytes in the whole workspace (schedule and
 * fp32 partials), out and lse; the fused call's result matches the CPU plan; and a following call
 * with MLA_DECODE_REUSE_SCHEDULE on the fused call's workspace gives the same bytes again (the fused
 * call stored the full schedule). */
static void fused_sched_case(const tc_config *cfg)
{
    char name[256];
    case_name(name, sizeof name, cfg);
    tc_case c;
    if (tc_case_build(&c, cfg)) { tc_expect(0, "fused schedule %s: case build failed", name); return; }
    mla_status st = tc_case_run_cpu(&c);
    snap cpu;
    memset(&cpu, 0, sizeof cpu);
    mla_decode_plan_t pf = NULL, pk = NULL;
    size_t wf = 0, wk = 0;
    dev_case d;
    memset(&d, 0, sizeof d);
    run_bytes rf, rk, rr;
    memset(&rf, 0, sizeof rf); memset(&rk, 0, sizeof rk); memset(&rr, 0, sizeof rr);
    if (st) { tc_expect(0, "fused schedule %s: CPU plan failed: %s", name, mla_last_error()); goto done; }
    snap_take(&cpu, &c);
    setenv("MLA_GPU_FUSED_SCHED", "1", 1); /* fused up to b = 512 (by default only for the smallest b) */
    st = gpu_plan(&c, g_dev, &pf, &wf);
    if (st) { tc_expect(0, "fused schedule %s: plan: %s", name, mla_last_error()); unsetenv("MLA_GPU_FUSED_SCHED"); goto done; }
    setenv("MLA_GPU_FUSED_SCHED", "0", 1);
    st = gpu_plan(&c, g_dev, &pk, &wk);
    unsetenv("MLA_GPU_FUSED_SCHED");
    if (st || wk != wf) { tc_expect(0, "fused schedule %s: second plan: %s", name, mla_last_error()); goto done; }
    if (dev_upload(&d, &c, wf)) goto done;
    if (decode_bytes(pk, &d, &c, 0, &rk) || decode_bytes(pf, &d, &c, 0, &rf)) {
        tc_expect(0, "fused schedule %s: decode failed: %s", name, mla_last_error());
        goto done;
    }
    /* rf's result is in d (last call): check it against the CPU plan */
    memcpy(c.out, rf.out, (size_t)c.out_elems * 2);
    memcpy(c.lse, rf.lse, (size_t)c.lse_elems * 4);
    compare_to(name, &c, &cpu);
    size_t first_diff = wf;
    for (size_t i = 0; i < wf; i++)
        if (rf.ws[i] != rk.ws[i]) { first_diff = i; break; }
    tc_expect(first_diff == wf, "fused schedule %s: workspace differs from the scheduler kernel's at byte %zu of %zu",
              name, first_diff, wf);
    tc_expect(!memcmp(rf.out, rk.out, (size_t)c.out_elems * 2) && !memcmp(rf.lse, rk.lse, (size_t)c.lse_elems * 4),
              "fused schedule %s: out/lse differ from the scheduler kernel's", name);
    if (decode_bytes(pf, &d, &c, MLA_DECODE_REUSE_SCHEDULE, &rr)) {
        tc_expect(0, "fused schedule %s: reuse decode failed: %s", name, mla_last_error());
        goto done;
    }
    tc_expect(!memcmp(rf.out, rr.out, (size_t)c.out_elems * 2) && !memcmp(rf.lse, rr.lse, (size_t)c.lse_elems * 4),
              "fused schedule %s: a reuse call on the fused call's workspace gives other bytes", name);
done:
    run_bytes_free(&rf); run_bytes_free(&rk); run_bytes_free(&rr);
    dev_free(&d);
    mla_decode_plan_destroy(pf);
    mla_decode_plan_destroy(pk);
    snap_free(&cpu);
    tc_case_free(&c);
}

static void test_fused_schedule(void)
{
    double t0 = tc_now();
    int pass0 = tc_passed, fail0 = tc_failed;
    kernel_env_push("3");
    static const int32_t lens[] = {0, 1, 0, 63, 64, 65, 0, 127, 128, 129, 4097, 0};
    static const int32_t zeros[] = {0, 0, 0, 0};
    tc_config cfg = tc_config_default();
    cfg.b = 1; cfg.s_q = 1; cfg.s_k = 20000; cfg.h_q = 16; cfg.seed = 1400;
    fused_sched_case(&cfg);
    cfg.b = 1; cfg.s_k = 8192; cfg.h_q = 128; cfg.seed = 1401;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 12; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 16; cfg.kv_lens = lens; cfg.seed = 1402;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 64; cfg.kv_lens = zeros; cfg.seed = 1403;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 64; cfg.s_q = 1; cfg.s_k = 2000; cfg.varlen = 1; cfg.h_q = 64; cfg.h_kv = 2; cfg.seed = 1404;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 5; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 24; cfg.h_kv = 3;
    cfg.page_size = 16; cfg.dtype = MLA_DTYPE_FP16; cfg.cu_seqlens_q = 1; cfg.seed = 1405;
    fused_sched_case(&cfg);
    for (int b = 255; b <= 513; b += 129) { /* 255, 384 (past one request per thread), 513 (not fused) */
        cfg = tc_config_default();
        cfg.b = b; cfg.s_q = 1; cfg.s_k = 300; cfg.varlen = 1; cfg.zero_half = 1;
        cfg.h_q = 16; cfg.seed = 1410 + b;
        fused_sched_case(&cfg);
    }
    cfg = tc_config_default();
    cfg.b = 512; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 200; cfg.varlen = 1; cfg.h_q = 16; cfg.seed = 1420;
    fused_sched_case(&cfg);
    kernel_env_pop();
    printf("fused schedule vs the scheduler kernel (workspace bytes, out, lse, reuse): %d passed, %d failed, %.1f s\n",
           tc_passed - pass0, tc_failed - fail0, tc_now() - t0);

    /* the same for v3 (MLA_GPU_KERNEL=4, TMA tiles: pages of 64k tokens), whose fused entries are used
     * by default up to b = MLA_FUSED_SCHED_TMA_B: the small batches of issue #4, one and two M blocks,
     * d_qk 576 and 512, fp16, empty requests, cu_seqlens_q, h_kv > 1, and b past the default */
    t0 = tc_now();
    pass0 = tc_passed;
    fail0 = tc_failed;
    kernel_env_push("4");
    cfg = tc_config_default();
    cfg.b = 8; cfg.s_q = 1; cfg.s_k = 3000; cfg.h_q = 128; cfg.seed = 1430;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 32; cfg.s_q = 1; cfg.s_k = 2048; cfg.varlen = 1; cfg.h_q = 128; cfg.seed = 1431;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 12; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 128; cfg.kv_lens = lens; cfg.seed = 1432;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 64; cfg.kv_lens = zeros; cfg.seed = 1433;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 16; cfg.s_q = 1; cfg.s_k = 1500; cfg.varlen = 1; cfg.zero_half = 1; cfg.h_q = 128; cfg.d_qk = 512;
    cfg.page_size = 128; cfg.seed = 1434;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 5; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 48; cfg.h_kv = 3;
    cfg.dtype = MLA_DTYPE_FP16; cfg.cu_seqlens_q = 1; cfg.seed = 1435;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 64; cfg.s_q = 1; cfg.s_k = 2000; cfg.varlen = 1; cfg.h_q = 64; cfg.h_kv = 2; cfg.seed = 1436;
    fused_sched_case(&cfg);
    cfg = tc_config_default();
    cfg.b = 300; cfg.s_q = 1; cfg.s_k = 300; cfg.varlen = 1; cfg.zero_half = 1; cfg.h_q = 128; cfg.seed = 1437;
    fused_sched_case(&cfg);
    kernel_env_pop();
    printf("fused schedule, v3 (TMA) entries, vs the scheduler kernel: %d passed, %d failed, %.1f s\n",
           tc_passed - pass0, tc_failed - fail0, tc_now() - t0);

    /* and on pages of 16 / 32 tokens: v3 with cp.async tiles (MLA_GPU_KERNEL=13), then v3 with TMA tiles
     * (4), whose page slices are issued by one thread each */
    for (int kv = 0; kv < 2; kv++) {
        t0 = tc_now();
        pass0 = tc_passed;
        fail0 = tc_failed;
        kernel_env_push(kv ? "4" : "13");
        cfg = tc_config_default();
        cfg.b = 1; cfg.s_q = 1; cfg.s_k = 5000; cfg.h_q = 128; cfg.page_size = 16; cfg.seed = 1440;
        fused_sched_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 8; cfg.s_q = 1; cfg.s_k = 2000; cfg.h_q = 64; cfg.page_size = 32; cfg.seed = 1441;
        fused_sched_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 12; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 64; cfg.kv_lens = lens; cfg.page_size = 16; cfg.seed = 1442;
        fused_sched_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 40; cfg.s_q = 1; cfg.s_k = 1500; cfg.varlen = 1; cfg.zero_half = 1; cfg.h_q = 128; cfg.d_qk = 512;
        cfg.dtype = MLA_DTYPE_FP16; cfg.page_size = 16; cfg.seed = 1443;
        fused_sched_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 24; cfg.h_kv = 3;
        cfg.page_size = 32; cfg.cu_seqlens_q = 1; cfg.seed = 1444;
        fused_sched_case(&cfg);
        kernel_env_pop();
        printf("fused schedule, v3 %s entries on pages of 16 / 32, vs the scheduler kernel: %d passed, %d failed, %.1f s\n",
               kv ? "TMA" : "cp.async-tile", tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
    }
}

/* The combine's five entries (column slices S = 1, 2, 4, 8, 16; the launcher picks S from the grid
 * size), each forced through the MLA_GPU_COMBINE_SLICES testing hook on split-heavy cases: one
 * long request, causal s_q 2 with 128 heads (two M blocks), empty and 1-token requests next to a
 * 4097-token one, fp16 with h_kv 3 and cu_seqlens_q, and the non-finite case (NaN pieces). */
static void test_combine_slices(void)
{
    static const char *sl[] = {"1", "2", "4", "8", "16"};
    static const int32_t lens[] = {0, 1, 0, 63, 64, 65, 0, 127, 128, 129, 4097, 0};
    for (int i = 0; i < 5; i++) {
        int pass0 = tc_passed, fail0 = tc_failed;
        double t0 = tc_now();
        setenv("MLA_GPU_COMBINE_SLICES", sl[i], 1);
        tc_config cfg = tc_config_default();
        cfg.b = 1; cfg.s_q = 1; cfg.s_k = 5000; cfg.h_q = 16; cfg.seed = 1300 + i;
        run_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 1500; cfg.varlen = 1; cfg.h_q = 128; cfg.seed = 1310 + i;
        run_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 12; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 16; cfg.kv_lens = lens; cfg.seed = 1320 + i;
        run_case(&cfg);
        cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 24; cfg.h_kv = 3;
        cfg.page_size = 16; cfg.dtype = MLA_DTYPE_FP16; cfg.cu_seqlens_q = 1; cfg.seed = 1330 + i;
        run_case(&cfg);
        nonfinite_case(NULL);
        unsetenv("MLA_GPU_COMBINE_SLICES");
        printf("combine with %s column slice(s) (MLA_GPU_COMBINE_SLICES=%s): %d passed, %d failed, %.1f s\n", sl[i],
               sl[i], tc_passed - pass0, tc_failed - fail0, tc_now() - t0);
    }
}

static void test_quick(void)
{
    /* small, split-heavy cases for compute-sanitizer */
    static const int32_t lens[] = {0, 1, 130, 700};
    tc_config cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.causal = 1; cfg.h_q = 16; cfg.kv_lens = lens; cfg.seed = 1;
    run_case(&cfg);
    cfg.kv_lens = NULL; cfg.b = 1; cfg.s_q = 1; cfg.causal = 0; cfg.s_k = 1500; cfg.h_q = 64; cfg.seed = 2;
    run_case(&cfg);
    cfg.b = 3; cfg.s_q = 3; cfg.causal = 1; cfg.s_k = 400; cfg.h_q = 9; cfg.h_kv = 3; cfg.page_size = 16;
    cfg.dtype = MLA_DTYPE_FP16; cfg.d_qk = 512; cfg.varlen = 1; cfg.cu_seqlens_q = 1; cfg.seed = 3;
    run_case(&cfg);
    /* FP8 cache: e4m3 q, descales, split request, h_kv 2, causal s_q 2 (UNSUPPORTED asserted
     * under MLA_GPU_KERNEL=1/2) */
    {
        static const int32_t lens8[] = {0, 1, 130, 1700};
        tc_config c8 = tc_config_default();
        c8.b = 4; c8.s_q = 2; c8.causal = 1; c8.h_q = 32; c8.h_kv = 2; c8.kv_lens = lens8; c8.page_size = 16;
        c8.seed = 4;
        run_fp8_case(&c8, 1, 1, 0.5f, 1.7f, 0);
        c8.d_qk = 512; c8.dtype = MLA_DTYPE_FP16; c8.page_size = 64; c8.seed = 5;
        run_fp8_case(&c8, 0, 0, 1.f, 0.37f, 0);
        /* the narrow FP8 kernels (16 and 32 rows per KV head) through kernels/decode_fp8t.cu, then
         * kernels/decode_narrow.cu / decode_narrow32.cu */
        for (int nw = 0; nw < 2; nw++) {
            setenv("MLA_GPU_FP8T", nw ? "0" : "1", 1);
            c8.d_qk = 576; c8.dtype = MLA_DTYPE_BF16; c8.h_q = 16; c8.page_size = 16; c8.seed = 8;
            run_fp8_case(&c8, 1, 1, 0.5f, 1.7f, 0);
            c8.h_q = 32; c8.h_kv = 1; c8.s_q = 1; c8.seed = 9;
            run_fp8_case(&c8, 1, 1, 0.5f, 1.7f, 0);
            c8.h_kv = 2; c8.s_q = 2;
        }
        unsetenv("MLA_GPU_FP8T");
    }
    /* per-request query lengths over 8 m-blocks, many requests per part (req_mblk's round robin,
     * forced by MLA_GPU_QMIX_RR=1 at 40 requests; the rule takes it at 128) */
    {
        static int32_t ql[128];
        for (int i = 0; i < 128; i++) ql[i] = (int32_t[]){1, 4, 2, 1, 0, 2, 4, 1}[i % 8];
        setenv("MLA_GPU_QMIX_RR", "1", 1);
        cfg = tc_config_default();
        cfg.b = 40; cfg.s_q = 4; cfg.causal = 1; cfg.s_k = 700; cfg.varlen = 1; cfg.h_q = 128; cfg.q_lens = ql;
        cfg.seed = 12;
        run_opts det = {1, NULL, NULL, 0};
        run_case_opts(&cfg, &det); /* twice, for determinism */
        /* a schedule from mla_decode_schedule (it sees no cu_seqlens_q: unweighted) reused by the call
         * (no determinism run here: that one poisons the workspace, schedule included) */
        run_opts ro = {0, NULL, NULL, 1};
        cfg.seed = 13;
        run_case_opts(&cfg, &ro);
        unsetenv("MLA_GPU_QMIX_RR");
        cfg.b = 128; cfg.s_k = 200; cfg.seed = 14;
        run_case(&cfg);
    }
    /* the combine's widest and narrowest column slices (the launcher's pick above is 16 here) */
    for (int i = 0; i < 2; i++) {
        setenv("MLA_GPU_COMBINE_SLICES", i ? "2" : "1", 1);
        cfg = tc_config_default();
        cfg.b = 1; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 1500; cfg.h_q = 64; cfg.seed = 6 + i;
        run_case(&cfg);
        unsetenv("MLA_GPU_COMBINE_SLICES");
    }
    printf("quick: %d passed, %d failed\n", tc_passed, tc_failed);
}

int main(int argc, char **argv)
{
    /* line-buffered even into a file: a run cut by a device-session timeout keeps its sections */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) g_quick = 1;
        else if (!strcmp(argv[i], "--grid-all")) g_grid_all = 1;
        else if (!strcmp(argv[i], "--devices")) g_devices_only = 1;
        else if (!strcmp(argv[i], "--fp8")) g_fp8_only = 1;
        else if (!strcmp(argv[i], "--no-grid")) g_no_grid = 1; /* every section but the spec §6 grid */
        else {
            fprintf(stderr, "usage: %s [--quick] [--grid-all] [--devices] [--fp8] [--no-grid]\n", argv[0]);
            return 2;
        }
    }
    if (!mla_has_cuda()) {
        printf("skipped: no CUDA GPU\n");
        return 77;
    }
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        printf("skipped: no CUDA GPU\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("GPU 0: %s, cc %d.%d, %d SMs (%d device(s))\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, n);
    cudaSetDevice(0);
    {
        mla_decode_shape sh = mla_decode_shape_default();
        sh.b = 1; sh.h_q = 16; sh.page_size = 64;
        mla_decode_plan_t pl = NULL;
        int parts = 0;
        const char *k = getenv("MLA_GPU_KERNEL");
        if (mla_decode_plan_create(&pl, &sh, 0) == MLA_OK && mla_decode_plan_info(pl, NULL, &parts) == MLA_OK)
            printf("default plan: %d scheduler parts (h_q=16); MLA_GPU_KERNEL=%s\n", parts, k ? k : "(unset)");
        mla_decode_plan_destroy(pl);
    }
    if (g_quick) {
        test_quick();
        test_nonfinite();
        return tc_summary();
    }
    if (g_devices_only) {
        test_devices();
        return tc_summary();
    }
    if (g_fp8_only) { /* the FP8 sections only (a change confined to the FP8 kernels) */
        test_fp8();
        test_fp8_graph();
        return tc_summary();
    }
    double t0 = tc_now();
    test_bad_input();
    test_nonfinite();
    test_corners();
    test_device_values();
    test_variants();
    test_determinism_and_reuse();
    test_handoff_stress();
    test_combine_slices();
    test_fused_schedule();
    test_graph();
    test_fp8();
    test_fp8_graph();
    test_devices();
    test_forced_kernel("1");
    test_forced_kernel("2");
    test_forced_kernel("3");
    test_forced_kernel("4");
    test_forced_kernel("6");
    test_forced_kernel("7");
    test_forced_kernel("12");
    test_forced_kernel("13");
    test_big_batch();
    if (g_no_grid) printf("grid: not run (--no-grid)\n");
    else test_grid();
    printf("total time %.1f s\n", tc_now() - t0);
    return tc_summary();
}

#endif
