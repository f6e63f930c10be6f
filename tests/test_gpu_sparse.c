/* test_gpu_sparse.c — the GPU suite of DeepSeek sparse attention (sparse decode on FP8 V32 /
 * MODEL1 caches, sparse prefill on bf16 kv), through the public C API: every GPU result is
 * compared with a CPU plan (ref/mla_ref_sparse.c, itself checked against an fp64 oracle by
 * tests/test_sparse.c) run on the same inputs, with FlashMLA's tolerances (docs/sparse.md).
 * NaN in every unused cache byte, weird invalid indices, clamped topk lengths, sinks of +-inf,
 * extra cache, page sizes 2..576, topk 64..2048 and non-multiples of 64, any h_q, padded strides
 * (nothing outside the outputs written), determinism, schedule reuse, CUDA-graph replay.
 *
 *   build/test_gpu_sparse           the whole suite
 *   build/test_gpu_sparse --quick   a small subset (compute-sanitizer)
 *
 * Without CUDA in the build, or without a visible GPU: prints "skipped: no CUDA GPU", exits 77
 * (a GPU below compute capability 9.0: checks the UNSUPPORTED answer only).
 * Last line: "<N> passed, <M> failed". */
#include "common.h"
#include "sparse_cases.h"

#if !defined(MLA_WITH_CUDA)

int main(void)
{
    printf("skipped: no CUDA GPU (this build has no CUDA kernels)\n");
    return 77;
}

#else

#include <cuda_runtime.h>

#include "../kernels/params.h" /* mla_ws_compute: the workspace layout (the reuse pass poisons its partials) */

static int g_quick = 0;
/* largest deviations seen (printed at the end) */
static double g_dec_out = 0, g_dec_out_amp1 = 0, g_dec_lse = 0, g_pf_out = 0, g_pf_lse = 0, g_pf_ml = 0;
static double g_dec_cos = 0, g_pf_cos = 0;

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            printf("  CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__,     \
                   cudaGetErrorString(e_));                                                        \
            tc_expect(0, "CUDA call failed: %s", #call);                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *dup_dev(const void *h, size_t bytes)
{
    void *d = NULL;
    if (!h) return NULL;
    CK(cudaMalloc(&d, bytes ? bytes : 16));
    if (bytes) CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void expect_err(mla_status st, mla_status want, const char *needle, const char *what)
{
    tc_expect(st == want && strstr(mla_last_error(), needle) != NULL,
              "%s: want %s containing '%s', got %s: '%s'", what, mla_status_string(want), needle,
              mla_status_string(st), mla_last_error());
}

/* ---------------------------------------------------------------------------------------- */
/* Sparse decode                                                                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct dcfg {
    int64_t b, s_q, h_q, topk, ps, s_k;
    int full_amp; /* cache values clamp(N(0,1)) instead of clamp(N(0,1)) / 10 (looser out check) */
    int odd_scales; /* scales that are not powers of two in [2^-100, 2^100] (the fp32 dequant path) */
    mla_fp8_format fmt;
    int64_t extra_topk, extra_ps, extra_s_k;
    int topk_len, extra_topk_len, sink, weird, all_invalid;
    int nonfinite; /* NaN in q row (0, 0, 0), +Inf in the last q row; V32: a NaN in the bf16 RoPE part of
                      the first valid key of (b=0, s_q=0) (docs/guarantees.md F6-F8: such rows are NaN) */
    uint64_t seed;
} dcfg;

/* One decode problem: host inputs, CPU reference outputs, device copies. */
typedef struct dcase {
    dcfg c;
    int64_t dqk;
    fcache kc, ec;
    int32_t *ind, *eind, *tl, *etl;
    float *sink;
    uint16_t *q;
    int64_t is0, is1, es0, es1, qs0, qs1, qs2, os0, os1, os2, ls0, ls1, ls2;
    int64_t out_n, lse_n;
    uint16_t *ref_out;
    float *ref_lse;
    mla_sparse_decode_shape sh;
    mla_sparse_decode_args ha; /* host pointers */
    mla_sparse_decode_args da; /* device pointers */
    void *ws;
    size_t ws_bytes;
    mla_sparse_decode_plan_t plan;
} dcase;

static int dcase_build(dcase *d, const dcfg *cfg)
{
    memset(d, 0, sizeof *d);
    d->c = *cfg;
    tc_rng rng;
    tc_rng_seed(&rng, cfg->seed * 7919 + 17);
    const mla_fp8_format fmt = cfg->fmt;
    const int64_t b = cfg->b, s_q = cfg->s_q, h_q = cfg->h_q;
    d->dqk = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512;
    const int has_extra = cfg->extra_topk > 0;
    const double amp = cfg->full_amp ? 1.0 : 0.1;
    if (make_fcache_amp(&d->kc, fmt, cfg->s_k, cfg->ps, amp, &rng) ||
        (has_extra && make_fcache_amp(&d->ec, fmt, cfg->extra_s_k, cfg->extra_ps, amp, &rng)))
        return -1;
    if (cfg->odd_scales) { /* V32: fp32 scales times 1.37 / 0.71 / 3; MODEL1: e8m0 2^-101 / 2^-107 */
        for (int64_t pg = 0; pg < d->kc.pages; pg++)
            for (int64_t r = 0; r < d->kc.ps; r++) {
                const int64_t u = (int64_t)tc_randint(&rng, 10);
                if (u >= 4) continue;
                uint8_t *page = d->kc.bytes + pg * d->kc.stride;
                if (fmt == MLA_FP8_FORMAT_V32) {
                    for (int t = 0; t < 4; t++) {
                        float f;
                        memcpy(&f, page + r * 656 + 512 + 4 * t, 4);
                        f *= u == 0 ? 1.37f : u == 1 ? 0.71f : u == 2 ? 3.0f : 1.0f;
                        memcpy(page + r * 656 + 512 + 4 * t, &f, 4);
                    }
                } else {
                    page[d->kc.ps * 576 + r * 8 + (u % 7)] = u < 2 ? 26 : 20;
                }
            }
    }
    d->ind = make_indices(&d->kc, b, s_q, cfg->topk, cfg->weird, cfg->all_invalid, &rng, &d->is0, &d->is1);
    if (has_extra)
        d->eind = make_indices(&d->ec, b, s_q, cfg->extra_topk, cfg->weird, cfg->all_invalid, &rng, &d->es0, &d->es1);
    d->tl = cfg->topk_len ? make_lengths(b, cfg->topk, &rng) : NULL;
    d->etl = has_extra && cfg->extra_topk_len ? make_lengths(b, cfg->extra_topk, &rng) : NULL;
    d->sink = cfg->sink ? make_sinks(h_q, &rng) : NULL;
    d->qs2 = d->dqk + 64; d->qs1 = h_q * d->qs2 + 8; d->qs0 = s_q * d->qs1;
    d->q = malloc((size_t)(b * d->qs0) * 2);
    for (int64_t x = 0; x < b * d->qs0; x++) {
        double v = tc_randn(&rng);
        d->q[x] = mla_float_to_bf16((float)(v > 1 ? 1 : v < -1 ? -1 : v));
    }
    if (cfg->nonfinite) {
        d->q[3] = mla_float_to_bf16(NAN);
        d->q[(b - 1) * d->qs0 + (s_q - 1) * d->qs1 + (h_q - 1) * d->qs2 + 7] = mla_float_to_bf16(INFINITY);
        if (fmt == MLA_FP8_FORMAT_V32)
            for (int64_t k = 0; k < cfg->topk; k++) { /* the first valid index of (0, 0) */
                const int64_t pos = d->ind[k]; /* indices are flat cache positions */
                if (pos < 0 || pos >= d->kc.pages * cfg->ps) continue;
                const uint16_t nanh = mla_float_to_bf16(NAN); /* V32 token: 512 codes, 16 B scales, RoPE */
                memcpy(d->kc.bytes + (pos / cfg->ps) * d->kc.stride + (pos % cfg->ps) * 656 + 528, &nanh, 2);
                break;
            }
    }
    d->os2 = 512 + 32; d->os1 = h_q * d->os2; d->os0 = s_q * d->os1 + 16;
    d->ls1 = 1; d->ls2 = h_q; d->ls0 = s_q * h_q + 1; /* lse [b, h_q, s_q] as a transposed view */
    d->out_n = b * d->os0;
    d->lse_n = b * d->ls0;
    d->ref_out = malloc((size_t)d->out_n * 2);
    d->ref_lse = malloc((size_t)d->lse_n * 4);
    for (int64_t x = 0; x < d->out_n; x++) d->ref_out[x] = TC_POISON_HALF;
    for (int64_t x = 0; x < d->lse_n; x++) d->ref_lse[x] = mla_bits_f32(0x7fc00123u);

    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = b; sh.s_q = s_q; sh.h_q = h_q; sh.h_kv = 1; sh.d_qk = d->dqk; sh.d_v = 512;
    sh.topk = cfg->topk; sh.page_size = cfg->ps; sh.format = fmt;
    sh.extra_topk = cfg->extra_topk; sh.extra_page_size = cfg->extra_ps;
    d->sh = sh;
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    a.q = d->q; a.q_stride[0] = d->qs0; a.q_stride[1] = d->qs1; a.q_stride[2] = d->qs2;
    a.k_cache = d->kc.bytes; a.num_pages = d->kc.pages; a.k_page_stride_bytes = d->kc.stride;
    a.indices = d->ind; a.indices_stride[0] = d->is0; a.indices_stride[1] = d->is1;
    a.topk_length = d->tl; a.attn_sink = d->sink;
    if (has_extra) {
        a.extra_k_cache = d->ec.bytes; a.extra_num_pages = d->ec.pages; a.extra_k_page_stride_bytes = d->ec.stride;
        a.extra_indices = d->eind; a.extra_indices_stride[0] = d->es0; a.extra_indices_stride[1] = d->es1;
        a.extra_topk_length = d->etl;
    }
    a.out = d->ref_out; a.out_stride[0] = d->os0; a.out_stride[1] = d->os1; a.out_stride[2] = d->os2;
    a.lse = d->ref_lse; a.lse_stride[0] = d->ls0; a.lse_stride[1] = d->ls1; a.lse_stride[2] = d->ls2;
    a.softmax_scale = (float)pow((double)d->dqk, -0.55);
    d->ha = a;
    /* the CPU reference */
    mla_sparse_decode_plan_t cp = NULL;
    mla_status st = mla_sparse_decode_plan_create(&cp, &sh, MLA_DEVICE_CPU);
    if (st == MLA_OK) st = mla_sparse_decode(cp, &a, NULL, 0, NULL);
    mla_sparse_decode_plan_destroy(cp);
    if (st != MLA_OK) {
        printf("  CPU reference failed: %s\n", mla_last_error());
        return -1;
    }
    /* device copies (outputs poisoned) */
    mla_sparse_decode_args g = a;
    g.q = dup_dev(d->q, (size_t)(b * d->qs0) * 2);
    g.k_cache = dup_dev(d->kc.bytes, (size_t)(d->kc.pages * d->kc.stride));
    g.indices = dup_dev(d->ind, (size_t)(b * d->is0) * 4);
    g.topk_length = dup_dev(d->tl, (size_t)b * 4);
    g.attn_sink = dup_dev(d->sink, (size_t)h_q * 4);
    if (has_extra) {
        g.extra_k_cache = dup_dev(d->ec.bytes, (size_t)(d->ec.pages * d->ec.stride));
        g.extra_indices = dup_dev(d->eind, (size_t)(b * d->es0) * 4);
        g.extra_topk_length = dup_dev(d->etl, (size_t)b * 4);
    }
    CK(cudaMalloc(&g.out, (size_t)d->out_n * 2));
    CK(cudaMalloc((void **)&g.lse, (size_t)d->lse_n * 4));
    d->da = g;
    st = mla_sparse_decode_plan_create(&d->plan, &sh, 0);
    if (st != MLA_OK) {
        printf("  GPU plan failed: %s\n", mla_last_error());
        return -1;
    }
    mla_sparse_decode_workspace_size(d->plan, &d->ws_bytes);
    CK(cudaMalloc(&d->ws, d->ws_bytes ? d->ws_bytes : 256));
    return 0;
}

static void dcase_poison_dev(dcase *d)
{
    uint16_t *po = malloc((size_t)d->out_n * 2);
    float *pl = malloc((size_t)d->lse_n * 4);
    for (int64_t x = 0; x < d->out_n; x++) po[x] = TC_POISON_HALF;
    for (int64_t x = 0; x < d->lse_n; x++) pl[x] = mla_bits_f32(0x7fc00123u);
    CK(cudaMemcpy(d->da.out, po, (size_t)d->out_n * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d->da.lse, pl, (size_t)d->lse_n * 4, cudaMemcpyHostToDevice));
    free(po);
    free(pl);
}

/* Poisons the split partials of d's workspace ([lacc, total) of mla_ws_compute), keeping its schedule, so
 * that a call reusing the schedule cannot pass on the previous call's partials. The sparse plan does not
 * report its part count: it is the one whose layout has the plan's workspace size (total grows strictly
 * with it). Returns 0, or -1 (and a failed expectation) if no part count gives that size. */
static int dcase_poison_partials(dcase *d)
{
    for (int parts = 1; parts <= 4096; parts++) {
        const mla_ws_layout w = mla_ws_compute(d->sh.b * d->sh.s_q, 1, d->sh.h_q, parts);
        if (w.total > d->ws_bytes) break;
        if (w.total == d->ws_bytes) {
            CK(cudaMemset((char *)d->ws + w.lacc, 0xAB, w.total - w.lacc));
            return 0;
        }
    }
    tc_expect(0, "reuse pass: no workspace layout of %zu bytes", d->ws_bytes);
    return -1;
}

static void dcase_free(dcase *d)
{
    mla_sparse_decode_plan_destroy(d->plan);
    cudaFree((void *)d->da.q); cudaFree((void *)d->da.k_cache); cudaFree((void *)d->da.indices);
    cudaFree((void *)d->da.topk_length); cudaFree((void *)d->da.attn_sink);
    cudaFree((void *)d->da.extra_k_cache); cudaFree((void *)d->da.extra_indices);
    cudaFree((void *)d->da.extra_topk_length); cudaFree(d->da.out); cudaFree(d->da.lse); cudaFree(d->ws);
    free(d->q); free(d->ref_out); free(d->ref_lse); free(d->ind); free(d->eind); free(d->tl); free(d->etl);
    free(d->sink);
    free_fcache(&d->kc);
    if (d->c.extra_topk > 0) free_fcache(&d->ec);
}

/* Copies the GPU outputs back and compares them with the reference; prints on failure. */
static int dcase_check(const dcase *d, const char *label, uint16_t *out, float *lse)
{
    CK(cudaMemcpy(out, d->da.out, (size_t)d->out_n * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(lse, d->da.lse, (size_t)d->lse_n * 4, cudaMemcpyDeviceToHost));
    tc_allclose so, sl;
    /* FlashMLA's tolerances. With full-amplitude V (|v| up to 1) the bf16 rounding of P (as in
     * FlashMLA's kernel) moves outputs of ~0.05 by 3-4 bf16 ulps (~2e-3) on ~1e-5 of the elements
     * (seen on an H100), so those cases get abs 4e-3 (cos_diff unchanged). */
    tc_allclose_begin(&so, d->c.full_amp ? 4e-3 : TC_TOL_SPARSE_OUT_ABS, TC_TOL_OUT_REL, TC_TOL_OUT_COS);
    tc_allclose_begin(&sl, TC_TOL_LSE_ABS, TC_TOL_LSE_REL, TC_TOL_LSE_COS);
    const int64_t b = d->c.b, s_q = d->c.s_q, h_q = d->c.h_q;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < s_q; j++)
            for (int64_t h = 0; h < h_q; h++) {
                const int64_t o = i * d->os0 + j * d->os1 + h * d->os2;
                for (int dd = 0; dd < 512; dd++)
                    tc_allclose_add(&so, o + dd, mla_bf16_to_float(out[o + dd]), mla_bf16_to_float(d->ref_out[o + dd]));
                const int64_t l = i * d->ls0 + h * d->ls1 + j * d->ls2;
                tc_allclose_add(&sl, l, lse[l], d->ref_lse[l]);
            }
    tc_report ro = tc_allclose_end(&so), rl = tc_allclose_end(&sl);
    if (d->c.full_amp) g_dec_out_amp1 = fmax(g_dec_out_amp1, ro.max_abs);
    else g_dec_out = fmax(g_dec_out, ro.max_abs);
    g_dec_lse = fmax(g_dec_lse, rl.max_abs);
    g_dec_cos = fmax(g_dec_cos, ro.cos_diff);
    int64_t clob = 0;
    for (int64_t x = 0; x < d->out_n; x++) {
        const int64_t r = x % d->os0, j = r / d->os1, h = (r % d->os1) / d->os2, dd = (r % d->os1) % d->os2;
        if ((j >= s_q || h >= h_q || dd >= 512) && out[x] != TC_POISON_HALF) clob++;
    }
    for (int64_t x = 0; x < d->lse_n; x++)
        if (x % d->ls0 == d->ls0 - 1 && mla_f32_bits(lse[x]) != 0x7fc00123u) clob++;
    const int good = ro.ok && rl.ok && clob == 0;
    tc_expect(good, "%s: GPU out / lse match the CPU plan, nothing written outside (%lld clobbered)", label,
              (long long)clob);
    if (!ro.ok || !rl.ok) {
        tc_print_report("out", &ro);
        tc_print_report("lse", &rl);
    }
    return good;
}

static int run_decode(const char *label, const dcfg *cfg)
{
    dcase d;
    if (dcase_build(&d, cfg)) {
        tc_expect(0, "%s: setup failed", label);
        return 0;
    }
    const double t0 = tc_now();
    dcase_poison_dev(&d);
    mla_status st = mla_sparse_decode(d.plan, &d.da, d.ws, d.ws_bytes, NULL);
    cudaError_t ce = cudaDeviceSynchronize();
    const double t_gpu = tc_now() - t0;
    int ok = tc_expect(st == MLA_OK && ce == cudaSuccess, "%s: %s: %s / %s", label, mla_status_string(st),
                       mla_last_error(), cudaGetErrorString(ce));
    if (ce != cudaSuccess) exit(1);
    uint16_t *out = malloc((size_t)d.out_n * 2), *out2 = malloc((size_t)d.out_n * 2);
    float *lse = malloc((size_t)d.lse_n * 4), *lse2 = malloc((size_t)d.lse_n * 4);
    if (ok) ok = dcase_check(&d, label, out, lse);
    if (ok && !g_quick) { /* determinism + schedule reuse: the same bytes again */
        dcase_poison_dev(&d);
        if (dcase_poison_partials(&d)) exit(1);
        mla_sparse_decode_args a2 = d.da;
        a2.flags = MLA_SPARSE_DECODE_REUSE_SCHEDULE;
        st = mla_sparse_decode(d.plan, &a2, d.ws, d.ws_bytes, NULL);
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(out2, d.da.out, (size_t)d.out_n * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(lse2, d.da.lse, (size_t)d.lse_n * 4, cudaMemcpyDeviceToHost));
        tc_expect(st == MLA_OK && !memcmp(out, out2, (size_t)d.out_n * 2) && !memcmp(lse, lse2, (size_t)d.lse_n * 4),
                  "%s: a second call (schedule reused) gives identical bytes", label);
    }
    printf("  %-78s gpu %6.3f s %s\n", label, t_gpu, ok ? "ok" : "FAIL");
    fflush(stdout);
    free(out); free(out2); free(lse); free(lse2);
    dcase_free(&d);
    return ok;
}

static void decode_label(char *buf, size_t n, const dcfg *c)
{
    snprintf(buf, n, "decode %s b=%lld s_q=%lld h_q=%lld topk=%lld ps=%lld s_k=%lld%s%s%s%s%s",
             c->fmt == MLA_FP8_FORMAT_V32 ? "V32" : "MODEL1", (long long)c->b, (long long)c->s_q, (long long)c->h_q,
             (long long)c->topk, (long long)c->ps, (long long)c->s_k, c->topk_len ? " +len" : "",
             c->sink ? " +sink" : "", c->weird ? (c->full_amp ? " +weird +amp1" : " +weird") : (c->full_amp ? " +amp1" : (c->odd_scales ? " +odd-scales" : "")), c->all_invalid ? " ALL-INVALID" : "",
             c->extra_topk > 0 ? " +extra" : "");
    if (c->extra_topk > 0) {
        const size_t l = strlen(buf);
        snprintf(buf + l, n - l, "(%lld,ps%lld%s)", (long long)c->extra_topk, (long long)c->extra_ps,
                 c->extra_topk_len ? ",len" : "");
    }
}

static void test_decode_grid(void)
{
    printf("sparse decode: FlashMLA's grid (dossier 5.3), GPU vs CPU plan\n");
    static const int64_t combos[][3] = {{512, 64, 2},   {512, 64, 64},   {512, 64, 69},    {1024, 576, 2},
                                        {1024, 576, 61}, {2046, 2048, 2}, {2046, 2048, 64}, {2046, 2048, 576}};
    uint64_t seed = 1;
    char label[256];
    for (int f = 0; f < 2; f++)
        for (int hh = 0; hh < 2; hh++)
            for (int k = 0; k < 8; k++)
                for (int bi = 0; bi < 2; bi++)
                    for (int sq = 0; sq < 2; sq++) {
                        dcfg c;
                        memset(&c, 0, sizeof c);
                        c.fmt = f ? MLA_FP8_FORMAT_MODEL1 : MLA_FP8_FORMAT_V32;
                        c.h_q = hh ? 128 : 64;
                        c.s_k = combos[k][0]; c.topk = combos[k][1]; c.ps = combos[k][2];
                        c.b = bi ? 74 : 4;
                        c.s_q = sq ? 3 : 1;
                        c.sink = 1;
                        c.weird = (int)(seed % 2);
                        c.seed = seed++;
                        if (f == 1 && k % 2 == 0) { /* MODEL1: topk_length and the extra cache */
                            c.topk_len = 1;
                            c.extra_topk = k < 4 ? 64 : 512;
                            c.extra_ps = k < 4 ? 2 : 64;
                            c.extra_s_k = 700;
                            c.extra_topk_len = (int)(seed % 2);
                        }
                        if (g_quick && (bi || sq || (k != 0 && k != 5))) continue;
                        decode_label(label, sizeof label, &c);
                        run_decode(label, &c);
                    }
}

static void test_decode_corners(void)
{
    printf("sparse decode: corners\n");
    char label[256];
    dcfg base;
    memset(&base, 0, sizeof base);
    base.fmt = MLA_FP8_FORMAT_V32; base.b = 3; base.s_q = 2; base.h_q = 64; base.topk = 256; base.ps = 64;
    base.s_k = 1000; base.sink = 1; base.seed = 900;
    struct { const char *what; int64_t h_q, topk, ps, b, s_q; int fmt, tlen, weird, all_inv, sink, extra; } v[] = {
        {"all invalid, sinks", 64, 256, 64, 3, 2, 0, 0, 1, 1, 1, 0},
        {"all invalid MODEL1 + extra", 128, 128, 64, 3, 1, 1, 1, 1, 1, 1, 1},
        {"h_q=16 (padded to 64)", 16, 2048, 64, 4, 2, 0, 0, 1, 0, 1, 0},
        {"h_q=1", 1, 512, 16, 5, 1, 0, 1, 1, 0, 1, 0},
        {"h_q=100 (64 + 36)", 100, 320, 7, 3, 2, 1, 1, 1, 0, 1, 1},
        {"h_q=192", 192, 256, 64, 2, 1, 0, 0, 0, 0, 0, 0},
        {"topk=100 (tail of 36)", 64, 100, 3, 6, 2, 0, 0, 1, 0, 1, 0},
        {"topk=1000 MODEL1 tail", 128, 1000, 33, 4, 3, 1, 1, 1, 0, 1, 0},
        {"topk=1", 64, 1, 2, 7, 1, 0, 1, 0, 0, 1, 0},
        {"topk_length, no sink", 64, 640, 128, 9, 3, 0, 1, 1, 0, 0, 0},
        {"V32 with extra cache + lengths", 64, 256, 16, 5, 2, 0, 1, 1, 0, 1, 1},
        {"page 576 MODEL1", 64, 2048, 576, 3, 2, 1, 0, 1, 0, 1, 0},
        {"page 1 V32", 64, 128, 1, 3, 1, 0, 0, 1, 0, 1, 0},
        {"b=321 s_q=3 topk 64", 64, 64, 64, 321, 3, 0, 0, 1, 0, 1, 0},
        {"b=321 s_q=1 h128 topk 576 MODEL1", 128, 576, 61, 321, 1, 1, 1, 1, 0, 1, 1},
        {"b=1 s_q=1 h128 topk 2048 (many splits)", 128, 2048, 64, 1, 1, 0, 0, 1, 0, 1, 0},
        {"b=2 s_q=2 h64 topk 8192 (long)", 64, 8192, 64, 2, 2, 1, 1, 1, 0, 1, 0},
        {"full-amplitude V, b=74 s_q=3 h128 topk 64", 128, 64, 2, 74, 3, 0, 0, 0, 0, 1, 0},
        {"odd scales V32 (fp32 dequant path)", 64, 512, 16, 6, 2, 0, 0, 1, 0, 1, 0},
        {"odd scales MODEL1 (fp32 dequant path)", 128, 512, 17, 6, 2, 1, 1, 1, 0, 1, 1},
        {"full-amplitude V, MODEL1 b=74 h64 topk 576", 64, 576, 61, 74, 3, 1, 1, 1, 0, 1, 1},
    };
    for (size_t x = 0; x < sizeof v / sizeof v[0]; x++) {
        if (g_quick && x % 3) continue;
        dcfg c = base;
        c.h_q = v[x].h_q; c.topk = v[x].topk; c.ps = v[x].ps; c.b = v[x].b; c.s_q = v[x].s_q;
        c.fmt = v[x].fmt ? MLA_FP8_FORMAT_MODEL1 : MLA_FP8_FORMAT_V32;
        c.topk_len = v[x].tlen; c.weird = v[x].weird; c.all_invalid = v[x].all_inv; c.sink = v[x].sink;
        c.s_k = c.topk * 2 > 300 ? c.topk * 2 : 300;
        if (v[x].extra) { c.extra_topk = 192; c.extra_ps = 5; c.extra_s_k = 400; c.extra_topk_len = 1; }
        c.seed = 1000 + x;
        c.full_amp = strstr(v[x].what, "full-amplitude") != NULL;
        c.odd_scales = strstr(v[x].what, "odd scales") != NULL;
        char l2[200];
        decode_label(l2, sizeof l2, &c);
        snprintf(label, sizeof label, "%s: %s", v[x].what, l2);
        run_decode(label, &c);
    }
}

/* Non-finite input (docs/guarantees.md F6-F8) on the GPU path: the rows that see a NaN / Inf come
 * out as the CPU plan makes them (NaN), every other row matches as usual. The reference is checked
 * to really hold NaN in row (0, 0, 0), so the case cannot pass by matching finite values. */
static void test_decode_nonfinite(void)
{
    printf("sparse decode: non-finite q / cache (F6-F8), GPU vs CPU plan\n");
    static const struct { int fmt; int64_t b, s_q, h_q, topk, ps; int extra; } v[] = {
        {0, 3, 2, 64, 256, 64, 0}, {0, 2, 1, 128, 2048, 64, 0}, {1, 3, 2, 128, 512, 17, 1}, {0, 4, 1, 16, 128, 2, 0}};
    for (size_t x = 0; x < sizeof v / sizeof v[0]; x++) {
        if (g_quick && x > 1) continue;
        dcfg c;
        memset(&c, 0, sizeof c);
        c.fmt = v[x].fmt ? MLA_FP8_FORMAT_MODEL1 : MLA_FP8_FORMAT_V32;
        c.b = v[x].b; c.s_q = v[x].s_q; c.h_q = v[x].h_q; c.topk = v[x].topk; c.ps = v[x].ps;
        c.s_k = c.topk * 2; c.sink = 1; c.nonfinite = 1; c.seed = 3000 + x;
        if (v[x].extra) { c.extra_topk = 64; c.extra_ps = 5; c.extra_s_k = 300; c.extra_topk_len = 1; }
        dcase d;
        if (dcase_build(&d, &c)) {
            tc_expect(0, "non-finite case %zu: setup failed", x);
            continue;
        }
        const float r0 = mla_bf16_to_float(d.ref_out[0]);
        tc_expect(r0 != r0, "non-finite case %zu: the CPU plan's row (0, 0, 0) is NaN (got %g)", x, r0);
        dcase_free(&d);
        char l2[200], label[256];
        decode_label(l2, sizeof l2, &c);
        snprintf(label, sizeof label, "NaN q row, +Inf q row%s: %s", c.fmt == MLA_FP8_FORMAT_V32 ? ", NaN key (RoPE)" : "", l2);
        run_decode(label, &c);
    }
}

/* The combine's five entries (S = 1, 2, 4, 8, 16 column slices, forced through the
 * MLA_GPU_COMBINE_SLICES testing hook, read at plan creation): split-heavy cases with sinks, an
 * all-invalid row set, MODEL1 with an extra cache, and the non-finite case (NaN pieces). */
static void test_decode_combine_slices(void)
{
    printf("sparse decode: combine with forced column slices\n");
    static const char *sl[] = {"1", "2", "4", "8", "16"};
    for (int s = 0; s < 5; s++) {
        if (g_quick && s != 0 && s != 4) continue;
        setenv("MLA_GPU_COMBINE_SLICES", sl[s], 1);
        for (int x = 0; x < 4; x++) {
            dcfg c;
            memset(&c, 0, sizeof c);
            c.fmt = x == 2 ? MLA_FP8_FORMAT_MODEL1 : MLA_FP8_FORMAT_V32;
            c.b = x == 0 ? 1 : 2; c.s_q = x == 0 ? 1 : 2; c.h_q = x == 3 ? 64 : 128;
            c.topk = x == 2 ? 512 : 2048; c.ps = x == 2 ? 17 : 64; c.s_k = 2 * c.topk;
            c.sink = 1; c.weird = x == 1; c.all_invalid = 0; c.nonfinite = x == 3; c.seed = 3100 + 10 * s + x;
            if (x == 2) { c.extra_topk = 64; c.extra_ps = 5; c.extra_s_k = 300; c.extra_topk_len = 1; }
            char l2[200], label[256];
            decode_label(l2, sizeof l2, &c);
            snprintf(label, sizeof label, "combine S=%s%s: %s", sl[s], c.nonfinite ? " (non-finite)" : "", l2);
            run_decode(label, &c);
        }
        unsetenv("MLA_GPU_COMBINE_SLICES");
    }
}

/* The split schedule the scheduler kernel should make for d (parts P), by the rule of mla_sp_sched_kernel
 * mirrored on the host: a token's cost is its tiles (clamped topk_length, + the extra cache's) + F; payload
 * ceil(total / P), or k = ceil(tokens / P) whole tokens a part when every token costs the same c0 and
 * k c0 <= payload + MLA_SP_SCHED_SPLIT_COST; part i begins at cost i * payload, at tile max(0, o - F) of the
 * token it falls in (o: its offset there). Returns the number of tokens some part begins inside (tile > 0). */
static int64_t whole_rule_splits(const dcase *d, int P, int *whole)
{
    const int64_t n = d->sh.b * d->sh.s_q, F = MLA_SCHED_FIXED_COST;
    int64_t *cost = malloc((size_t)n * sizeof *cost), total = 0;
    for (int64_t r = 0; r < n; r++) {
        const int64_t i = r / d->sh.s_q;
        int64_t n0 = d->c.topk, n1 = d->c.extra_topk;
        if (d->tl) n0 = d->tl[i] < 0 ? 0 : d->tl[i] > n0 ? n0 : d->tl[i];
        if (d->etl) n1 = d->etl[i] < 0 ? 0 : d->etl[i] > n1 ? n1 : d->etl[i];
        cost[r] = (n0 + 63) / 64 + (n1 + 63) / 64 + F;
        total += cost[r];
    }
    int same = 1;
    for (int64_t r = 1; r < n; r++) same &= cost[r] == cost[0];
    int64_t payload = total > 0 ? (total + P - 1) / P : 1;
    *whole = 0;
    if (same && total > 0 && MLA_SP_SCHED_SPLIT_COST > 0) {
        const int64_t k = (n + P - 1) / P;
        if (k * cost[0] <= payload + MLA_SP_SCHED_SPLIT_COST) {
            payload = k * cost[0];
            *whole = 1;
        }
    }
    int64_t splits = 0, C = 0;
    for (int64_t r = 0; r < n; r++) {
        int split = 0;
        for (int64_t i = (C + payload - 1) / payload; i * payload < C + cost[r] && i < P; i++)
            split |= i * payload - C > F; /* begins past the token's tile 0 */
        splits += split;
        C += cost[r];
    }
    free(cost);
    return splits;
}

/* The whole-token schedule (kernels/params.h MLA_SP_SCHED_SPLIT_COST): on uniform tokens that nearly fill
 * the parts (b = 64 / 128 at s_q = 2 on 66 or 132 parts) the scheduler splits nothing; elsewhere it splits
 * as before. Each case's output is checked against the CPU plan, and its split count (the workspace's
 * num_split) against the host mirror of the rule. */
static void test_decode_whole_tokens(void)
{
    printf("sparse decode: whole-token schedule (split count vs the host mirror of the rule)\n");
    static const struct { mla_fp8_format fmt; int64_t b, h_q, topk, extra; int len; } cs[] = {
        {MLA_FP8_FORMAT_V32, 64, 128, 256, 0, 0},   {MLA_FP8_FORMAT_V32, 128, 128, 128, 0, 0},
        {MLA_FP8_FORMAT_V32, 74, 128, 512, 0, 0},   {MLA_FP8_FORMAT_V32, 2, 128, 2048, 0, 0},
        {MLA_FP8_FORMAT_V32, 64, 128, 256, 0, 1},   {MLA_FP8_FORMAT_V32, 128, 64, 128, 0, 0},
        {MLA_FP8_FORMAT_MODEL1, 64, 128, 128, 64, 0},
    };
    int n_whole = 0, n_split = 0;
    for (size_t x = 0; x < sizeof cs / sizeof cs[0]; x++) {
        if (g_quick && x > 3) break;
        dcfg c;
        memset(&c, 0, sizeof c);
        c.fmt = cs[x].fmt; c.b = cs[x].b; c.s_q = 2; c.h_q = cs[x].h_q; c.topk = cs[x].topk; c.ps = 64;
        c.s_k = 2 * c.topk; c.topk_len = cs[x].len; c.seed = 3300 + x;
        if (cs[x].extra) { c.extra_topk = cs[x].extra; c.extra_ps = 64; c.extra_s_k = 2 * cs[x].extra; }
        char l2[200], label[256];
        decode_label(l2, sizeof l2, &c);
        snprintf(label, sizeof label, "whole-token schedule: %s", l2);
        dcase d;
        if (dcase_build(&d, &c)) {
            tc_expect(0, "%s: setup failed", label);
            continue;
        }
        dcase_poison_dev(&d);
        mla_status st = mla_sparse_decode(d.plan, &d.da, d.ws, d.ws_bytes, NULL);
        cudaError_t ce = cudaDeviceSynchronize();
        int ok = tc_expect(st == MLA_OK && ce == cudaSuccess, "%s: %s: %s / %s", label, mla_status_string(st),
                           mla_last_error(), cudaGetErrorString(ce));
        if (ce != cudaSuccess) exit(1);
        uint16_t *out = malloc((size_t)d.out_n * 2);
        float *lse = malloc((size_t)d.lse_n * 4);
        if (ok) ok = dcase_check(&d, label, out, lse);
        /* the plan's part count: the one whose workspace layout has the plan's size (dcase_poison_partials) */
        int P = 0;
        mla_ws_layout w;
        for (int parts = 1; parts <= 4096; parts++) {
            w = mla_ws_compute(d.sh.b * d.sh.s_q, 1, d.sh.h_q, parts);
            if (w.total > d.ws_bytes) break;
            if (w.total == d.ws_bytes) { P = parts; break; }
        }
        ok &= tc_expect(P > 0, "%s: a workspace layout of %zu bytes", label, d.ws_bytes);
        if (P > 0) {
            int32_t nsplit = -1, whole = 0;
            CK(cudaMemcpy(&nsplit, (char *)d.ws + w.num_split, 4, cudaMemcpyDeviceToHost));
            const int64_t want = whole_rule_splits(&d, P, &whole);
            ok &= tc_expect(nsplit == want, "%s: %d parts, %s schedule: %d split tokens (want %lld)", label, P,
                            whole ? "whole-token" : "split", nsplit, (long long)want);
            n_whole += whole;
            n_split += !whole && want > 0;
            printf("  %-78s P=%d %s, split tokens %d %s\n", label, P, whole ? "whole" : "split", nsplit,
                   ok ? "ok" : "FAIL");
        }
        fflush(stdout);
        free(out);
        free(lse);
        dcase_free(&d);
    }
    /* the grid above must exercise both schedules on a 132-SM card (66 crossover clusters / 132 parts) */
    tc_expect(n_whole > 0 && n_split > 0, "whole-token schedule: both schedules exercised (%d whole, %d split)",
              n_whole, n_split);
}

/* Bad input on the GPU path: alignment, strides, workspace. Nothing is written. */
static void test_decode_bad(void)
{
    printf("sparse decode: GPU-only validation\n");
    dcfg c;
    memset(&c, 0, sizeof c);
    c.fmt = MLA_FP8_FORMAT_V32; c.b = 2; c.s_q = 1; c.h_q = 64; c.topk = 128; c.ps = 64; c.s_k = 300; c.seed = 5;
    dcase d;
    if (dcase_build(&d, &c)) {
        tc_expect(0, "bad-input setup");
        return;
    }
    dcase_poison_dev(&d);
    mla_sparse_decode_args a = d.da;
    a.q = (const char *)d.da.q + 2;
    expect_err(mla_sparse_decode(d.plan, &a, d.ws, d.ws_bytes, NULL), MLA_ERR_INVALID_ARGUMENT, "16-byte aligned", "q misaligned");
    a = d.da; a.out_stride[2] = 516;
    expect_err(mla_sparse_decode(d.plan, &a, d.ws, d.ws_bytes, NULL), MLA_ERR_INVALID_ARGUMENT, "out_stride[2] (516) must be a multiple of 8", "out stride");
    a = d.da; a.k_cache = (const char *)d.da.k_cache + 8;
    expect_err(mla_sparse_decode(d.plan, &a, d.ws, d.ws_bytes, NULL), MLA_ERR_INVALID_ARGUMENT, "k_cache", "k_cache misaligned");
    a = d.da; a.k_page_stride_bytes += 8;
    expect_err(mla_sparse_decode(d.plan, &a, d.ws, d.ws_bytes, NULL), MLA_ERR_INVALID_ARGUMENT, "multiple of 16 bytes", "page stride");
    a = d.da;
    expect_err(mla_sparse_decode(d.plan, &a, d.ws, d.ws_bytes - 1, NULL), MLA_ERR_WORKSPACE_TOO_SMALL, "workspace", "workspace small");
    expect_err(mla_sparse_decode(d.plan, &a, (char *)d.ws + 16, d.ws_bytes, NULL), MLA_ERR_INVALID_ARGUMENT, "256-byte", "workspace misaligned");
    tc_expect(d.ws_bytes > 0, "GPU plan needs a workspace (%zu bytes)", d.ws_bytes);
    CK(cudaDeviceSynchronize());
    uint16_t *out = malloc((size_t)d.out_n * 2);
    CK(cudaMemcpy(out, d.da.out, (size_t)d.out_n * 2, cudaMemcpyDeviceToHost));
    int64_t touched = 0;
    for (int64_t x = 0; x < d.out_n; x++) touched += out[x] != TC_POISON_HALF;
    tc_expect(touched == 0, "failed GPU calls wrote nothing (%lld elements)", (long long)touched);
    free(out);
    /* MODEL1 pages only need 8-byte alignment (page_size * 584 with an odd page size) */
    dcase_free(&d);
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = 1; sh.h_q = 64; sh.topk = 64; sh.h_kv = 2;
    mla_sparse_decode_plan_t p = NULL;
    expect_err(mla_sparse_decode_plan_create(&p, &sh, 0), MLA_ERR_INVALID_ARGUMENT, "h_kv (2)", "GPU plan validates the shape");
    sh.h_kv = 1;
    expect_err(mla_sparse_decode_plan_create(&p, &sh, 97), MLA_ERR_INVALID_ARGUMENT, "device (97)", "no such device");
}

/* CUDA graph: capture one decode call, replay it with new topk_length values in device memory. */
static void test_decode_graph(void)
{
    printf("sparse decode: CUDA graph capture + replay with new topk lengths\n");
    dcfg c;
    memset(&c, 0, sizeof c);
    c.fmt = MLA_FP8_FORMAT_MODEL1; c.b = 6; c.s_q = 2; c.h_q = 64; c.topk = 512; c.ps = 64; c.s_k = 2000;
    c.topk_len = 1; c.sink = 1; c.extra_topk = 128; c.extra_ps = 16; c.extra_s_k = 300; c.extra_topk_len = 1;
    c.seed = 77;
    dcase d;
    if (dcase_build(&d, &c)) {
        tc_expect(0, "graph setup");
        return;
    }
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    mla_status st = mla_sparse_decode(d.plan, &d.da, d.ws, d.ws_bytes, (struct CUstream_st *)s);
    CK(cudaStreamEndCapture(s, &g));
    tc_expect(st == MLA_OK, "captured decode: %s", mla_last_error());
    CK(cudaGraphInstantiate(&ge, g, 0));
    uint16_t *out = malloc((size_t)d.out_n * 2);
    float *lse = malloc((size_t)d.lse_n * 4);
    tc_rng rng;
    tc_rng_seed(&rng, 4242);
    for (int rep = 0; rep < 4; rep++) {
        /* new lengths: host reference recomputed, device buffers updated before the replay */
        if (rep > 0) {
            for (int64_t i = 0; i < c.b; i++) {
                d.tl[i] = (int32_t)tc_randint(&rng, c.topk + 20) - 10;
                d.etl[i] = (int32_t)tc_randint(&rng, c.extra_topk + 1);
            }
            if (rep == 3) for (int64_t i = 0; i < c.b; i++) d.tl[i] = d.etl[i] = 0; /* all empty */
            mla_sparse_decode_plan_t cp = NULL;
            st = mla_sparse_decode_plan_create(&cp, &d.sh, MLA_DEVICE_CPU);
            if (st == MLA_OK) st = mla_sparse_decode(cp, &d.ha, NULL, 0, NULL);
            mla_sparse_decode_plan_destroy(cp);
            CK(cudaMemcpy((void *)d.da.topk_length, d.tl, (size_t)c.b * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy((void *)d.da.extra_topk_length, d.etl, (size_t)c.b * 4, cudaMemcpyHostToDevice));
        }
        dcase_poison_dev(&d);
        CK(cudaGraphLaunch(ge, s));
        CK(cudaStreamSynchronize(s));
        char label[64];
        snprintf(label, sizeof label, "graph replay %d", rep);
        dcase_check(&d, label, out, lse);
    }
    free(out);
    free(lse);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    dcase_free(&d);
}

/* ---------------------------------------------------------------------------------------- */
/* Sparse prefill                                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct pcfg {
    int64_t s_q, s_kv, h_q, h_kv, dqk, topk;
    int topk_len, sink, all_invalid;
    int64_t check_tokens; /* 0: compare every token; else this many (spread) */
    uint64_t seed;
} pcfg;

static int run_prefill(const char *label, const pcfg *cfg)
{
    tc_rng rng;
    tc_rng_seed(&rng, cfg->seed * 104729 + 3);
    const int64_t s_q = cfg->s_q, s_kv = cfg->s_kv, h_q = cfg->h_q, h_kv = cfg->h_kv, dqk = cfg->dqk, topk = cfg->topk;
    const double qoff = tc_randn(&rng) / 10.0, koff = tc_randn(&rng) / 10.0;
    const int64_t qs1 = dqk + 16, qs0 = h_q * qs1 + 8;
    const int64_t ks1 = dqk + 8, ks0 = h_kv * ks1;
    uint16_t *q = malloc((size_t)(s_q * qs0) * 2), *kv = malloc((size_t)(s_kv * ks0) * 2);
    for (int64_t x = 0; x < s_q * qs0; x++) q[x] = mla_float_to_bf16((float)(tc_randn(&rng) / 10.0 + qoff));
    for (int64_t x = 0; x < s_kv * ks0; x++) kv[x] = mla_float_to_bf16((float)(tc_randn(&rng) / 10.0 + koff));
    for (int64_t t = 0; t < s_kv; t++) /* NaN in the padding between kv rows */
        for (int64_t x = dqk; x < ks1; x++) kv[t * ks0 + (h_kv - 1) * ks1 + x] = TC_POISON_HALF;
    const int64_t is1 = topk + 1, is0 = h_kv * is1;
    int32_t *ind = malloc((size_t)(s_q * is0) * 4);
    int32_t *tok = malloc((size_t)s_kv * 4);
    for (int64_t s = 0; s < s_q; s++)
        for (int64_t g = 0; g < h_kv; g++) {
            int32_t *row = ind + s * is0 + g * is1;
            row[topk] = 0;
            const int64_t nv = cfg->all_invalid ? 0 : (s_kv < topk ? s_kv : topk) * (3 + (int64_t)tc_randint(&rng, 2)) / 4;
            if (s_kv <= 4 * topk) {
                for (int64_t t = 0; t < s_kv; t++) tok[t] = (int32_t)t;
                for (int64_t k = 0; k < nv; k++) {
                    const int64_t r = k + tc_randint(&rng, s_kv - k);
                    const int32_t t = tok[r]; tok[r] = tok[k]; tok[k] = t;
                    row[k] = t;
                }
            } else { /* long kv: random positions (repeats allowed: they count as often) */
                for (int64_t k = 0; k < nv; k++) row[k] = (int32_t)tc_randint(&rng, s_kv);
            }
            for (int64_t k = nv; k < topk; k++) row[k] = weird_invalid(&rng, s_kv);
            for (int64_t k = topk - 1; k > 0; k--) {
                const int64_t r = tc_randint(&rng, k + 1);
                const int32_t t = row[r]; row[r] = row[k]; row[k] = t;
            }
        }
    free(tok);
    int32_t *tl = cfg->topk_len ? make_lengths(s_q, topk, &rng) : NULL;
    float *sink = cfg->sink ? make_sinks(h_q, &rng) : NULL;
    const int64_t os1 = 512 + 16, os0 = h_q * os1;
    const int64_t out_n = s_q * os0, ml_n = s_q * h_q, lse_n = s_q * (h_q + 1);
    uint16_t *out = malloc((size_t)out_n * 2), *rout = malloc((size_t)out_n * 2);
    float *ml = malloc((size_t)ml_n * 4), *lse = malloc((size_t)lse_n * 4);
    float *rml = malloc((size_t)ml_n * 4), *rlse = malloc((size_t)lse_n * 4);
    for (int64_t x = 0; x < out_n; x++) out[x] = rout[x] = TC_POISON_HALF;
    for (int64_t x = 0; x < ml_n; x++) ml[x] = rml[x] = mla_bits_f32(0x7fc00123u);
    for (int64_t x = 0; x < lse_n; x++) lse[x] = rlse[x] = mla_bits_f32(0x7fc00123u);

    mla_sparse_prefill_args a = mla_sparse_prefill_args_default();
    a.s_q = s_q; a.s_kv = s_kv; a.h_q = h_q; a.h_kv = h_kv; a.d_qk = dqk; a.d_v = 512; a.topk = topk;
    a.q_stride[0] = qs0; a.q_stride[1] = qs1;
    a.kv_stride[0] = ks0; a.kv_stride[1] = ks1;
    a.indices_stride[0] = is0; a.indices_stride[1] = is1;
    a.out_stride[0] = os0; a.out_stride[1] = os1;
    a.max_logits_stride[0] = 1; a.max_logits_stride[1] = s_q; /* transposed */
    a.lse_stride[0] = h_q + 1; a.lse_stride[1] = 1;
    a.softmax_scale = 0.5f;
    /* GPU */
    mla_sparse_prefill_args g = a;
    g.q = dup_dev(q, (size_t)(s_q * qs0) * 2);
    g.kv = dup_dev(kv, (size_t)(s_kv * ks0) * 2);
    g.indices = dup_dev(ind, (size_t)(s_q * is0) * 4);
    g.topk_length = dup_dev(tl, (size_t)s_q * 4);
    g.attn_sink = dup_dev(sink, (size_t)h_q * 4);
    g.out = dup_dev(out, (size_t)out_n * 2);
    g.max_logits = dup_dev(ml, (size_t)ml_n * 4);
    g.lse = dup_dev(lse, (size_t)lse_n * 4);
    size_t ws = 1;
    mla_status st = mla_sparse_prefill_workspace_size(&g, 0, &ws);
    tc_expect(st == MLA_OK && ws == 0, "%s: GPU prefill workspace is 0 (%s)", label, mla_last_error());
    const double t0 = tc_now();
    st = mla_sparse_prefill(&g, 0, NULL, 0, NULL);
    cudaError_t ce = cudaDeviceSynchronize();
    const double t_gpu = tc_now() - t0;
    int ok = tc_expect(st == MLA_OK && ce == cudaSuccess, "%s: %s: %s / %s", label, mla_status_string(st),
                       mla_last_error(), cudaGetErrorString(ce));
    if (ce != cudaSuccess) exit(1);
    CK(cudaMemcpy(out, g.out, (size_t)out_n * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(ml, g.max_logits, (size_t)ml_n * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(lse, g.lse, (size_t)lse_n * 4, cudaMemcpyDeviceToHost));
    /* CPU reference over the checked tokens (each as a 1-token prefill: same rows) */
    const int64_t nchk = cfg->check_tokens > 0 && cfg->check_tokens < s_q ? cfg->check_tokens : s_q;
    tc_allclose so, sl, sm;
    tc_allclose_begin(&so, 8e-4, 3.01 / 128, 7e-6);
    /* lse / max_logits: FlashMLA's rel 2.01/65536, abs 1e-5 instead of 1e-6: where few keys are
     * valid (topk_length) lse is near 0, the relative bound does not help, and the fp32 sums of
     * 576 products of ~0.15-sized values (partial sums ~10) differ by up to ~5e-6 between the
     * tensor cores and the CPU's order (seen on an H100). */
    tc_allclose_begin(&sl, 1e-5, 2.01 / 65536, 7e-6);
    tc_allclose_begin(&sm, 1e-5, 2.01 / 65536, 7e-6);
    if (ok) {
        mla_sparse_prefill_args r = a;
        r.q = q; r.kv = kv; r.indices = ind; r.topk_length = tl; r.attn_sink = sink;
        r.out = rout; r.max_logits = rml; r.lse = rlse;
        if (nchk == s_q) {
            st = mla_sparse_prefill(&r, MLA_DEVICE_CPU, NULL, 0, NULL);
        } else { /* only tokens s = k * s_q / nchk, as one-token problems (topk_length: its entry) */
            for (int64_t k = 0; k < nchk && st == MLA_OK; k++) {
                const int64_t s = k * s_q / nchk;
                mla_sparse_prefill_args r1 = r;
                r1.s_q = 1;
                r1.q = q + s * qs0;
                r1.indices = ind + s * is0;
                r1.topk_length = tl ? tl + s : NULL;
                r1.out = rout + s * os0;
                r1.max_logits = rml + s;
                r1.lse = rlse + s * (h_q + 1);
                r1.max_logits_stride[0] = 1;
                st = mla_sparse_prefill(&r1, MLA_DEVICE_CPU, NULL, 0, NULL);
            }
        }
        ok = tc_expect(st == MLA_OK, "%s: CPU reference: %s", label, mla_last_error());
    }
    if (ok) {
        for (int64_t k = 0; k < nchk; k++) {
            const int64_t s = nchk == s_q ? k : k * s_q / nchk;
            for (int64_t h = 0; h < h_q; h++) {
                for (int dd = 0; dd < 512; dd++) {
                    const int64_t o = s * os0 + h * os1 + dd;
                    tc_allclose_add(&so, o, mla_bf16_to_float(out[o]), mla_bf16_to_float(rout[o]));
                }
                tc_allclose_add(&sl, s * (h_q + 1) + h, lse[s * (h_q + 1) + h], rlse[s * (h_q + 1) + h]);
                tc_allclose_add(&sm, h * s_q + s, ml[h * s_q + s], rml[h * s_q + s]);
            }
        }
        tc_report ro = tc_allclose_end(&so), rl = tc_allclose_end(&sl), rm = tc_allclose_end(&sm);
        g_pf_out = fmax(g_pf_out, ro.max_abs);
        g_pf_lse = fmax(g_pf_lse, rl.max_abs);
        g_pf_ml = fmax(g_pf_ml, rm.max_abs);
        g_pf_cos = fmax(g_pf_cos, ro.cos_diff);
        int64_t clob = 0;
        for (int64_t x = 0; x < out_n; x++) if (x % os1 >= 512 && out[x] != TC_POISON_HALF) clob++;
        for (int64_t s = 0; s < s_q; s++) if (mla_f32_bits(lse[s * (h_q + 1) + h_q]) != 0x7fc00123u) clob++;
        ok = ro.ok && rl.ok && rm.ok && clob == 0;
        tc_expect(ok, "%s: GPU out / max_logits / lse match the CPU (%lld of %lld tokens), %lld clobbered", label,
                  (long long)nchk, (long long)s_q, (long long)clob);
        if (!ro.ok || !rl.ok || !rm.ok) {
            tc_print_report("out", &ro);
            tc_print_report("lse", &rl);
            tc_print_report("max_logits", &rm);
        }
    }
    printf("  %-78s gpu %6.3f s %s\n", label, t_gpu, ok ? "ok" : "FAIL");
    fflush(stdout);
    cudaFree((void *)g.q); cudaFree((void *)g.kv); cudaFree((void *)g.indices); cudaFree((void *)g.topk_length);
    cudaFree((void *)g.attn_sink); cudaFree(g.out); cudaFree(g.max_logits); cudaFree(g.lse);
    free(q); free(kv); free(ind); free(tl); free(sink); free(out); free(rout); free(ml); free(lse); free(rml); free(rlse);
    return ok;
}

static void prefill_label(char *buf, size_t n, const pcfg *c)
{
    snprintf(buf, n, "prefill d=%lld h_q=%lld h_kv=%lld s_q=%lld s_kv=%lld topk=%lld%s%s%s", (long long)c->dqk,
             (long long)c->h_q, (long long)c->h_kv, (long long)c->s_q, (long long)c->s_kv, (long long)c->topk,
             c->topk_len ? " +len" : "", c->sink ? " +sink" : "", c->all_invalid ? " ALL-INVALID" : "");
}

static void test_prefill(void)
{
    printf("sparse prefill: FlashMLA's grid (dossier 5.4) and corners, GPU vs CPU\n");
    static const int64_t combos[][2] = {{128, 128},  {256, 256},  {512, 512}, {592, 128}, {1840, 256},
                                        {1592, 384}, {1521, 512}, {95, 128},  {153, 256}, {114, 384}};
    static const int64_t sqs[3] = {1, 62, 213};
    char label[200];
    uint64_t seed = 1;
    for (int d = 0; d < 2; d++)
        for (int hh = 0; hh < 2; hh++)
            for (int k = 0; k < 10; k++)
                for (int sq = 0; sq < 3; sq++) {
                    pcfg c;
                    memset(&c, 0, sizeof c);
                    c.dqk = d ? 512 : 576;
                    c.h_q = hh ? 64 : 128;
                    c.h_kv = 1;
                    c.s_kv = combos[k][0];
                    c.topk = combos[k][1];
                    c.s_q = sqs[sq];
                    c.sink = (int)(seed % 2);
                    c.topk_len = (int)((seed / 2) % 2);
                    c.seed = seed++;
                    if (sq == 2 && k % 3) continue; /* s_q 213 on a third of the combos */
                    if (g_quick && (sq != 1 || k % 4)) continue;
                    prefill_label(label, sizeof label, &c);
                    run_prefill(label, &c);
                }
    struct { const char *what; int64_t dqk, h_q, h_kv, s_q, s_kv, topk; int tlen, sink, all_inv; int64_t chk; } v[] = {
        {"all invalid + sinks", 576, 64, 1, 40, 300, 256, 0, 1, 1, 0},
        {"s_kv < topk", 576, 128, 1, 20, 32, 2048, 1, 1, 0, 0},
        {"s_kv < topk 512", 512, 64, 1, 9, 64, 8192, 0, 1, 0, 0},
        {"h_q=16", 576, 16, 1, 50, 1000, 512, 1, 1, 0, 0},
        {"h_q=1", 512, 1, 1, 33, 700, 256, 0, 1, 0, 0},
        {"h_q=100", 576, 100, 1, 17, 900, 320, 1, 1, 0, 0},
        {"h_kv=2 (h_q=128)", 576, 128, 2, 21, 800, 256, 1, 1, 0, 0},
        {"h_kv=4 (h_q=16)", 512, 16, 4, 13, 500, 128, 0, 1, 0, 0},
        {"topk=100 (tail)", 512, 64, 1, 30, 400, 100, 1, 1, 0, 0},
        {"topk=1", 576, 64, 1, 12, 50, 1, 0, 0, 0, 0},
        {"topk 2048 long kv 128K", 576, 128, 1, 256, 131072, 2048, 0, 1, 0, 12},
        {"topk 1024 long kv 64K d512", 512, 128, 1, 300, 65536, 1024, 1, 1, 0, 12},
        {"s_q=70000 (grid x > 65535)", 512, 1, 1, 70000, 5000, 64, 0, 1, 0, 64},
    };
    for (size_t x = 0; x < sizeof v / sizeof v[0]; x++) {
        if (g_quick && (x % 3 || v[x].chk > 0)) continue; /* quick: no long / huge cases */
        pcfg c;
        memset(&c, 0, sizeof c);
        c.dqk = v[x].dqk; c.h_q = v[x].h_q; c.h_kv = v[x].h_kv; c.s_q = v[x].s_q; c.s_kv = v[x].s_kv;
        c.topk = v[x].topk; c.topk_len = v[x].tlen; c.sink = v[x].sink; c.all_invalid = v[x].all_inv;
        c.check_tokens = v[x].chk; c.seed = 500 + x;
        char l2[160];
        prefill_label(l2, sizeof l2, &c);
        snprintf(label, sizeof label, "%s: %s", v[x].what, l2);
        run_prefill(label, &c);
    }
}

int main(int argc, char **argv)
{
    /* line-buffered even into a file: a run cut by a device-session timeout keeps its sections */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) g_quick = 1;
        else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (!mla_has_cuda()) {
        printf("skipped: no CUDA GPU\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("GPU 0: %s, cc %d.%d, %d SMs; MLA_SPARSE_SPLIT_QK=%s MLA_SPARSE_SEESAW=%s\n", prop.name, prop.major,
           prop.minor, prop.multiProcessorCount, getenv("MLA_SPARSE_SPLIT_QK") ? getenv("MLA_SPARSE_SPLIT_QK") : "(unset)",
           getenv("MLA_SPARSE_SEESAW") ? getenv("MLA_SPARSE_SEESAW") : "(unset)");
    CK(cudaSetDevice(0));
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    mla_sparse_decode_plan_t p = NULL;
    const mla_status st = mla_sparse_decode_plan_create(&p, &sh, 0);
    if (prop.major != 9 || prop.minor != 0) { /* the sparse kernels are sm_90a code */
        expect_err(st, MLA_ERR_UNSUPPORTED, "compute capability 9.0", "GPU plan below/above cc 9.0");
        printf("sparse GPU kernels need compute capability 9.0: only the refusal was checked\n");
        return tc_summary();
    }
    tc_expect(st == MLA_OK, "GPU sparse plan: %s", mla_last_error());
    size_t ws = 0;
    mla_sparse_decode_workspace_size(p, &ws);
    printf("default sparse plan (h_q=128): workspace %zu bytes\n", ws);
    mla_sparse_decode_plan_destroy(p);
    const double t0 = tc_now();
    test_decode_bad();
    test_decode_corners();
    test_decode_nonfinite();
    test_decode_combine_slices();
    test_decode_whole_tokens();
    test_decode_graph();
    test_decode_grid();
    test_prefill();
    if (!getenv("MLA_SPARSE_SEESAW") && !getenv("MLA_SPARSE_SPLIT_QK")) {
        /* the other prefill kernels (kernels/sparse_sm90.cu) on the same grid */
        printf("sparse prefill again with MLA_SPARSE_SEESAW=1 (the seesaw kernel)\n");
        setenv("MLA_SPARSE_SEESAW", "1", 1);
        test_prefill();
        printf("sparse prefill again with MLA_SPARSE_SEESAW=0 (the 256-thread kernel; the default is SSF)\n");
        setenv("MLA_SPARSE_SEESAW", "0", 1);
        test_prefill();
        printf("sparse prefill again with MLA_SPARSE_PF_ORDER=0 (the M blocks of a token far apart in the grid)\n");
        unsetenv("MLA_SPARSE_SEESAW");
        setenv("MLA_SPARSE_PF_ORDER", "0", 1);
        test_prefill();
        unsetenv("MLA_SPARSE_PF_ORDER");
    }
    printf("largest |GPU - CPU|: decode out %.3g (full-amplitude V %.3g), lse %.3g, out cos_diff %.3g; "
           "prefill out %.3g, lse %.3g, max_logits %.3g, out cos_diff %.3g\n",
           g_dec_out, g_dec_out_amp1, g_dec_lse, g_dec_cos, g_pf_out, g_pf_lse, g_pf_ml, g_pf_cos);
    printf("total time %.1f s\n", tc_now() - t0);
    return tc_summary();
}
#endif
