/* test_fp8_dense.c — dense decode on an FP8 e4m3 cache (issue 7 part 1; the semantics of vLLM's
 * flash_mla_with_kvcache_fp8, see include/mla.h and docs/fp8_dense.md) on the CPU path:
 *
 *   grid      a deterministic subsample of the spec §6 grid (b, s_q, s_k, h_q, h_kv, varlen,
 *             causal), FP8 q or bf16 q, descales != 1, page sizes 64/16/1, strided layouts and
 *             cu_seqlens_q, against an fp64 oracle written here (its own e4m3 decoding); unused
 *             cache rows and q rows hold NaN codes (0x7f / 0xff), unused block_table entries a
 *             huge value, pages shuffled; nothing outside the existing rows may be written
 *   corners   ~half empty requests, all empty, NaN code in a visible row, NaN / zero descale,
 *             raw codes over the whole e4m3 range, fp16 out
 *   exact     the FP8 path equals the bf16 path on the dequantised cache bit for bit when the
 *             descales are powers of two; determinism across runs and thread counts
 *   contract  kv_dtype / q_dtype combinations, missing / stray / misaligned descales, GPU plans
 *             (UNSUPPORTED; 16-element stride rule via a hand-made plan), older struct sizes */
#include "common.h"
#include "internal.h"
#include "mla_fp8.h"

#include <stddef.h>

/* ---- independent e4m3 decoding: (8 + m) * 2^(e - 10) for normals, m * 2^-9 subnormals ------ */

static double f8_formula(int code)
{
    const int neg = (code & 0x80) != 0, e = (code >> 3) & 0xf, m = code & 0x7;
    if (e == 0xf && m == 0x7) return NAN;
    const double mag = e ? (double)(8 + m) * pow(2.0, e - 10) : (double)m / 512.0;
    return neg ? -mag : mag;
}

static double f8_table[256];

static void f8_table_init(void)
{
    for (int c = 0; c < 256; c++) f8_table[c] = f8_formula(c);
}

static inline double f8_value(uint8_t code) { return f8_table[code]; }

/* ---- an FP8 problem built from a bf16 tc_case ---------------------------------------------- */

typedef struct f8_case {
    tc_case c;            /* shape / args point at the FP8 buffers below                   */
    uint8_t *q8, *k8;     /* e4m3 codes, same element strides as the bf16 buffers          */
    int q_fp8;            /* q is FP8 (else q stays in c.q, dtype)                          */
    int with_dq;          /* descale_q passed (always for an FP8 q)                         */
    float dq, dk;         /* the descales passed                                            */
} f8_case;

static void f8_free(f8_case *f)
{
    tc_case_free(&f->c);
    free(f->q8);
    free(f->k8);
    memset(f, 0, sizeof *f);
}

/* The quantisation scale for data ~ randn/10: the descale itself when usable, else 1. */
static float qscale(float d) { return (d > 0.0f && isfinite(d)) ? d : 1.0f; }

/* NaN (the bf16 poison of tc_case) -> a NaN code, alternating 0x7f / 0xff; else e4m3(x / s). */
static void to_codes(uint8_t *dst, const uint16_t *src, int64_t n, mla_dtype dt, float s)
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
    to_codes(f->k8, f->c.k_cache, f->c.k_elems, cfg->dtype, qscale(dk));
    f->c.shape.kv_dtype = MLA_DTYPE_FP8_E4M3;
    f->c.args.k_cache = f->k8;
    if (q_fp8) {
        f->q8 = (uint8_t *)malloc((size_t)f->c.q_elems);
        if (!f->q8) return -1;
        to_codes(f->q8, f->c.q, f->c.q_elems, cfg->dtype, qscale(dq));
        f->c.shape.q_dtype = MLA_DTYPE_FP8_E4M3;
        f->c.args.q = f->q8;
    }
    f->c.args.descale_q = f->with_dq ? &f->dq : NULL;
    f->c.args.descale_k = &f->dk;
    return 0;
}

/* fp64 oracle: dequantise (code value * descale; a 16-bit q times descale_q when given) and
 * decode naively (gather, full softmax, P @ V) for about one row in row_step, in the layout of
 * tc_naive_decode (dense [b, s_q, h_q, d_v] / [b, h_q, s_q]); rows not computed get lse NaN,
 * which tc_compare_case skips. A NaN score makes the row NaN: out and lse NaN, so such rows are
 * skipped too and the corner tests check them explicitly. */
static int f8_oracle(const f8_case *f, double *ref_out, double *ref_lse, int64_t row_step)
{
    const tc_case *c = &f->c;
    const tc_config *cfg = &c->cfg;
    const mla_decode_args *a = &c->args;
    const int64_t b = cfg->b, s_q = cfg->s_q, h_q = cfg->h_q, hpk = h_q / cfg->h_kv;
    const int64_t dqk = cfg->d_qk, dv = cfg->d_v, ps = cfg->page_size;
    const double scale = (cfg->softmax_scale > 0.0f && isfinite(cfg->softmax_scale))
                             ? (double)cfg->softmax_scale : 1.0 / sqrt((double)dqk);
    const double dq = f->with_dq ? (double)f->dq : 1.0, dk = (double)f->dk;
    int64_t max_len = 0;
    for (int64_t i = 0; i < b; i++) if (c->seqlens[i] > max_len) max_len = c->seqlens[i];
    double *sc = (double *)malloc((size_t)(max_len + 1) * sizeof(double));
    double *qd = (double *)malloc((size_t)dqk * sizeof(double));
    if (!sc || !qd) { free(sc); free(qd); return -1; }
    for (int64_t x = 0; x < b * s_q * h_q * dv; x++) ref_out[x] = NAN;
    for (int64_t x = 0; x < b * h_q * s_q; x++) ref_lse[x] = NAN;
    for (int64_t i = 0; i < b; i++) {
        const int64_t L = c->seqlens[i], n = c->q_lens[i];
        const int32_t *bt = c->block_table + i * a->block_table_stride;
        for (int64_t j = 0; j < n; j++) {
            int64_t vis = cfg->causal ? L - n + j + 1 : L;
            if (vis < 0) vis = 0;
            if (vis > L) vis = L;
            for (int64_t h = 0; h < h_q; h++) {
                const int64_t row = (i * s_q + j) * h_q + h;
                if (row_step > 1) {
                    uint64_t hx = (uint64_t)row ^ 0x5eedull;
                    if (tc_splitmix64(&hx) % (uint64_t)row_step != 0) continue;
                }
                const int64_t g = h / hpk;
                const int64_t qo = i * a->q_stride[0] + j * a->q_stride[1] + h * a->q_stride[2];
                for (int64_t d = 0; d < dqk; d++)
                    qd[d] = dq * (f->q_fp8 ? f8_value(f->q8[qo + d])
                                           : (double)mla_half_to_float(cfg->dtype, c->q[qo + d]));
                double *o = ref_out + row * dv;
                double *lse = ref_lse + (i * h_q + h) * s_q + j;
                for (int64_t d = 0; d < dv; d++) o[d] = 0.0;
                if (vis == 0) { *lse = INFINITY; continue; }
                double mx = -INFINITY;
                int nan = 0;
                for (int64_t t = 0; t < vis; t++) {
                    const uint8_t *kr = f->k8 + bt[t / ps] * a->k_stride[0] + (t % ps) * a->k_stride[1] + g * a->k_stride[2];
                    double acc = 0.0;
                    for (int64_t d = 0; d < dqk; d++) acc += qd[d] * (dk * f8_value(kr[d]));
                    sc[t] = acc * scale;
                    if (isnan(sc[t])) nan = 1;
                    else if (sc[t] > mx) mx = sc[t];
                }
                if (nan) {
                    for (int64_t d = 0; d < dv; d++) o[d] = NAN;
                    *lse = NAN;
                    continue;
                }
                double sum = 0.0;
                for (int64_t t = 0; t < vis; t++) { sc[t] = exp(sc[t] - mx); sum += sc[t]; }
                for (int64_t t = 0; t < vis; t++) {
                    const uint8_t *kr = f->k8 + bt[t / ps] * a->k_stride[0] + (t % ps) * a->k_stride[1] + g * a->k_stride[2];
                    const double p = sc[t] / sum;
                    for (int64_t d = 0; d < dv; d++) o[d] += p * (dk * f8_value(kr[d]));
                }
                *lse = mx + log(sum);
            }
        }
    }
    free(sc);
    free(qd);
    return 0;
}

/* Runs the case on the CPU and checks it against the oracle (rows sampled so that the oracle
 * does about `budget` key visits), plus unwritten / clobbered elements. Returns 1 if all pass. */
static int f8_run_check(f8_case *f, const char *label, double budget)
{
    const tc_config *cfg = &f->c.cfg;
    tc_case_poison(&f->c);
    mla_status st = tc_case_run_cpu(&f->c);
    if (!tc_expect(st == MLA_OK, "%s: mla_decode: %s (%s)", label, mla_status_string(st), mla_last_error()))
        return 0;
    const int64_t rows = cfg->b * cfg->s_q * cfg->h_q;
    double visits = (double)cfg->s_q * (double)cfg->h_q * (double)(f->c.total_k > 0 ? f->c.total_k : 1);
    int64_t step = (int64_t)(visits / budget);
    if (step < 1) step = 1;
    double *ro_ = (double *)malloc((size_t)(rows * cfg->d_v) * sizeof(double));
    double *rl_ = (double *)malloc((size_t)rows * sizeof(double));
    int ok = 0;
    if (ro_ && rl_ && f8_oracle(f, ro_, rl_, step) == 0) {
        tc_report r1, r2;
        ok = tc_compare_case(&f->c, ro_, rl_, &r1, &r2);
        tc_expect(ok, "%s: out/lse differ from the fp64 oracle", label);
        if (!ok) { tc_print_report("out", &r1); tc_print_report("lse", &r2); }
        const int64_t unw = tc_count_unwritten(&f->c), clob = tc_count_clobbered(&f->c);
        tc_expect(unw == 0, "%s: %lld elements of existing rows not written", label, (long long)unw);
        tc_expect(clob == 0, "%s: %lld elements outside the existing rows written", label, (long long)clob);
        ok = ok && unw == 0 && clob == 0;
    } else {
        tc_expect(0, "%s: out of memory", label);
    }
    free(ro_); free(rl_);
    return ok;
}

/* ---- the §6 grid, subsampled ------------------------------------------------------------- */

static const float DESCALES[] = {1.0f, 0.5f, 0.37f, 2.0f, 1.7f, 0.0625f, 3.1f};
#define N_DESCALES ((int)(sizeof DESCALES / sizeof DESCALES[0]))

static void test_grid(void)
{
    printf("-- spec §6 grid (deterministic subsample), FP8 cache vs fp64 oracle\n");
    static const int64_t Bs[] = {1, 2, 6, 64}, SQs[] = {1, 2, 4}, SKs[] = {20, 140, 4096};
    static const int64_t HQs[] = {1, 3, 9, 63, 64, 126, 128}, HKVs[] = {1, 2, 3, 8};
    static const int64_t PSs[] = {64, 16, 64, 1, 64, 48};
    int n = 0, pass = 0;
    uint64_t combo = 0;
    const double t0 = tc_now();
    for (int ib = 0; ib < 4; ib++)
    for (int iq = 0; iq < 3; iq++)
    for (int ik = 0; ik < 3; ik++)
    for (int ih = 0; ih < 7; ih++)
    for (int ig = 0; ig < 4; ig++)
    for (int vc = 0; vc < 4; vc++) {
        const int64_t b = Bs[ib], s_q = SQs[iq], s_k = SKs[ik], h_q = HQs[ih], h_kv = HKVs[ig];
        if (h_q % h_kv) continue;
        combo++;
        uint64_t hx = combo * 0x2545f4914f6cdd1dull;
        const uint64_t r = tc_splitmix64(&hx);
        /* work of the CPU reference ~ b * s_q * h_q * s_k: keep about one combination in 24,
         * and only those the 2-core CI machine does in well under a second */
        const double work = (double)b * (double)s_q * (double)h_q * (double)s_k;
        if (r % 24 != 0 || work > 6e5) continue;
        tc_config cfg = tc_config_default();
        cfg.b = b; cfg.s_q = s_q; cfg.s_k = s_k; cfg.h_q = h_q; cfg.h_kv = h_kv;
        cfg.varlen = vc & 1; cfg.causal = (vc >> 1) & 1;
        cfg.page_size = PSs[(r >> 8) % 6];
        cfg.strided = ((r >> 12) % 5) == 0;
        cfg.cu_seqlens_q = s_q > 1 && ((r >> 16) % 4) == 0;
        cfg.seed = 1000 + combo;
        const int q_fp8 = ((r >> 20) % 4) != 0;           /* vLLM: FP8 q; also a bf16 q */
        const int with_dq = q_fp8 || ((r >> 24) & 1);
        const float dq = DESCALES[(r >> 28) % N_DESCALES], dk = DESCALES[(r >> 36) % N_DESCALES];
        char label[200];
        snprintf(label, sizeof label,
                 "b=%lld s_q=%lld s_k=%lld h_q=%lld h_kv=%lld %s%s page=%lld%s%s q=%s dq=%g%s dk=%g",
                 (long long)b, (long long)s_q, (long long)s_k, (long long)h_q, (long long)h_kv,
                 cfg.varlen ? "varlen" : "fixed", cfg.causal ? " causal" : "", (long long)cfg.page_size,
                 cfg.strided ? " strided" : "", cfg.cu_seqlens_q ? " cu_seqlens_q" : "",
                 q_fp8 ? "fp8" : "bf16", (double)dq, with_dq ? "" : "(NULL)", (double)dk);
        f8_case f;
        if (f8_build(&f, &cfg, q_fp8, with_dq, dq, dk)) {
            tc_expect(0, "%s: build failed", label);
            f8_free(&f);
            continue;
        }
        n++;
        const int ok = f8_run_check(&f, label, 4e5);
        pass += ok;
        printf("  %s %s\n", ok ? "ok  " : "FAIL", label);
        f8_free(&f);
    }
    printf("  %d grid cases, %d passed, %.1f s\n", n, pass, tc_now() - t0);
    tc_expect(n >= 40, "grid: only %d cases selected", n);
}

/* ---- corner cases ------------------------------------------------------------------------ */

/* Row r of the output (request i, token j, head h) as floats: 1 if any element is NaN. */
static int out_row_has_nan(const f8_case *f, int64_t i, int64_t j, int64_t h)
{
    const tc_case *c = &f->c;
    const uint16_t *o = c->out + i * c->args.out_stride[0] + j * c->args.out_stride[1] + h * c->args.out_stride[2];
    for (int64_t d = 0; d < c->cfg.d_v; d++)
        if (isnan(mla_half_to_float(c->cfg.dtype, o[d]))) return 1;
    return 0;
}

static float lse_at(const f8_case *f, int64_t i, int64_t j, int64_t h)
{
    const mla_decode_args *a = &f->c.args;
    return f->c.lse[i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2]];
}

static void test_corners(void)
{
    printf("-- corner cases\n");
    f8_case f;
    tc_config cfg = tc_config_default();

    /* about half the requests empty (spec §6: b=128), causal s_q=2, FP8 q */
    cfg.b = 128; cfg.s_q = 2; cfg.s_k = 140; cfg.h_q = 16; cfg.varlen = 1; cfg.causal = 1;
    cfg.zero_half = 1; cfg.seed = 7;
    if (!f8_build(&f, &cfg, 1, 1, 0.37f, 1.7f)) f8_run_check(&f, "b=128 ~half empty", 4e5);
    int64_t empty_ok = 0, empties = 0;
    for (int64_t i = 0; i < cfg.b; i++)
        if (f.c.seqlens[i] == 0) {
            empties++;
            empty_ok += !out_row_has_nan(&f, i, 0, 0) && lse_at(&f, i, 1, 5) == INFINITY &&
                        f.c.out[i * f.c.args.out_stride[0]] == 0;
        }
    tc_expect(empties > 20 && empty_ok == empties, "empty requests: %lld of %lld give out 0, lse +inf",
              (long long)empty_ok, (long long)empties);
    f8_free(&f);

    /* every request empty */
    static const int32_t zeros[3] = {0, 0, 0};
    cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 2; cfg.h_q = 8; cfg.kv_lens = zeros; cfg.seed = 8;
    if (!f8_build(&f, &cfg, 1, 1, 1.0f, 1.0f)) f8_run_check(&f, "all requests empty", 4e5);
    tc_expect(lse_at(&f, 2, 1, 7) == INFINITY && f.c.out[0] == 0, "all empty: out 0, lse +inf");
    f8_free(&f);

    /* a NaN code in a visible cache row: the rows that see it are NaN, the others not */
    cfg = tc_config_default();
    cfg.b = 2; cfg.s_q = 2; cfg.s_k = 140; cfg.h_q = 16; cfg.causal = 1; cfg.seed = 9;
    if (!f8_build(&f, &cfg, 1, 1, 0.5f, 2.0f)) {
        const mla_decode_args *a = &f.c.args;
        /* request 0, token 139 (seen only by its last query row under causal), dim 100 */
        const int64_t t = 139, page = f.c.block_table[0 * a->block_table_stride + t / cfg.page_size];
        f.k8[page * a->k_stride[0] + (t % cfg.page_size) * a->k_stride[1] + 100] = 0x7f;
        /* request 1, query token 0, head 3: a NaN code in q */
        f.q8[1 * a->q_stride[0] + 3 * a->q_stride[2] + 7] = 0xff;
        f8_run_check(&f, "NaN codes in a visible K row and in a q row", 4e5);
        int reach = 1, stay = 1;
        for (int64_t h = 0; h < cfg.h_q; h++) {
            reach &= out_row_has_nan(&f, 0, 1, h) && isnan(lse_at(&f, 0, 1, h));
            stay &= !out_row_has_nan(&f, 0, 0, h) && isfinite(lse_at(&f, 0, 0, h));
        }
        tc_expect(reach, "K NaN reaches every head of row (0,1), which sees key 139");
        tc_expect(stay, "K NaN stays out of row (0,0), which does not see key 139");
        tc_expect(out_row_has_nan(&f, 1, 0, 3) && !out_row_has_nan(&f, 1, 0, 2) && !out_row_has_nan(&f, 1, 1, 3),
                  "q NaN stays in its row");
    }
    f8_free(&f);

    /* NaN descale_k: every row with a visible key is NaN, empty rows stay out 0 / lse +inf */
    cfg = tc_config_default();
    cfg.b = 16; cfg.s_q = 1; cfg.s_k = 70; cfg.h_q = 4; cfg.varlen = 1; cfg.zero_half = 1; cfg.seed = 10;
    if (!f8_build(&f, &cfg, 1, 1, 1.0f, NAN)) {
        f8_run_check(&f, "descale_k NaN", 4e5);
        int good = 1;
        for (int64_t i = 0; i < cfg.b; i++)
            good &= f.c.seqlens[i] ? (out_row_has_nan(&f, i, 0, 1) && isnan(lse_at(&f, i, 0, 1)))
                                   : (!out_row_has_nan(&f, i, 0, 1) && lse_at(&f, i, 0, 1) == INFINITY);
        tc_expect(good, "descale_k NaN: NaN rows, empty rows untouched by it");
    }
    f8_free(&f);

    /* descale_k 0: all scores 0 (uniform softmax, lse = log(L)), out 0 */
    cfg = tc_config_default();
    cfg.b = 3; cfg.h_q = 8; cfg.s_k = 100; cfg.seed = 11;
    if (!f8_build(&f, &cfg, 1, 1, 1.0f, 0.0f)) {
        f8_run_check(&f, "descale_k 0", 4e5);
        tc_expect(fabs(lse_at(&f, 1, 0, 2) - log(100.0)) < 1e-5, "descale_k 0: lse %g = log(100)",
                  (double)lse_at(&f, 1, 0, 2));
    }
    f8_free(&f);

    /* raw codes over the whole e4m3 range (subnormals to ±448), descales 2^-8 */
    cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 2; cfg.s_k = 150; cfg.h_q = 9; cfg.h_kv = 3; cfg.varlen = 1; cfg.seed = 12;
    if (!f8_build(&f, &cfg, 1, 1, 1.0f / 256, 1.0f / 256)) {
        tc_rng rng;
        tc_rng_seed(&rng, 99);
        for (int64_t x = 0; x < f.c.k_elems; x++)
            if ((f.k8[x] & 0x7f) != 0x7f) { uint8_t v; do v = (uint8_t)tc_randint(&rng, 256); while ((v & 0x7f) == 0x7f); f.k8[x] = v; }
        for (int64_t x = 0; x < f.c.q_elems; x++)
            if ((f.q8[x] & 0x7f) != 0x7f) { uint8_t v; do v = (uint8_t)tc_randint(&rng, 256); while ((v & 0x7f) == 0x7f); f.q8[x] = v; }
        f8_run_check(&f, "random raw codes, descales 2^-8", 4e5);
    }
    f8_free(&f);

    /* fp16 out with an FP8 q; fp16 q with an FP8 cache (descale_q given and not) */
    cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 2; cfg.s_k = 300; cfg.h_q = 32; cfg.h_kv = 2; cfg.dtype = MLA_DTYPE_FP16;
    cfg.causal = 1; cfg.varlen = 1; cfg.page_size = 16; cfg.seed = 13;
    if (!f8_build(&f, &cfg, 1, 1, 0.25f, 3.0f)) f8_run_check(&f, "fp16 out, FP8 q", 4e5);
    f8_free(&f);
    if (!f8_build(&f, &cfg, 0, 1, 1.5f, 0.75f)) f8_run_check(&f, "fp16 q and out, descale_q 1.5", 4e5);
    f8_free(&f);
    if (!f8_build(&f, &cfg, 0, 0, 1.0f, 0.75f)) f8_run_check(&f, "fp16 q and out, descale_q NULL", 4e5);
    f8_free(&f);
}

/* ---- bit-exactness against the bf16 path, determinism -------------------------------------- */

static void test_exact(void)
{
    printf("-- FP8 path == bf16 path on the dequantised data (power-of-two descales); determinism\n");
    static const float pairs[][2] = {{1.0f, 1.0f}, {0.5f, 4.0f}, {0.0625f, 2.0f}};
    for (int k = 0; k < 3; k++) {
        tc_config cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 2; cfg.s_k = 200; cfg.h_q = 24; cfg.h_kv = 2; cfg.varlen = 1;
        cfg.causal = k != 1; cfg.cu_seqlens_q = k == 2; cfg.strided = k == 1; cfg.page_size = k ? 16 : 64;
        cfg.seed = 20 + k;
        const int q_fp8 = k != 2;
        f8_case f;
        if (f8_build(&f, &cfg, q_fp8, 1, pairs[k][0], pairs[k][1])) { tc_expect(0, "exact: build"); f8_free(&f); continue; }
        tc_case *c = &f.c;
        tc_case_poison(c);
        mla_status st = tc_case_run_cpu(c);
        uint16_t *out8 = (uint16_t *)malloc((size_t)c->out_elems * 2);
        float *lse8 = (float *)malloc((size_t)c->lse_elems * 4);
        uint16_t *kb = (uint16_t *)malloc((size_t)c->k_elems * 2);
        uint16_t *qb = (uint16_t *)malloc((size_t)c->q_elems * 2);
        if (!out8 || !lse8 || !kb || !qb || st != MLA_OK) {
            tc_expect(0, "exact %d: %s", k, mla_last_error());
        } else {
            memcpy(out8, c->out, (size_t)c->out_elems * 2);
            memcpy(lse8, c->lse, (size_t)c->lse_elems * 4);
            /* same problem, 16-bit: q * descale_q and k * descale_k are exact in bf16 here */
            for (int64_t x = 0; x < c->k_elems; x++)
                kb[x] = mla_float_to_bf16((float)(f8_value(f.k8[x]) * f.dk));
            for (int64_t x = 0; x < c->q_elems; x++)
                qb[x] = mla_float_to_bf16(q_fp8 ? (float)(f8_value(f.q8[x]) * f.dq)
                                                : mla_bf16_to_float(c->q[x]) * f.dq);
            mla_decode_shape sh = c->shape;
            mla_decode_args a = c->args;
            sh.kv_dtype = MLA_DTYPE_INVALID;
            sh.q_dtype = MLA_DTYPE_INVALID;
            a.k_cache = kb; a.q = qb; a.descale_q = NULL; a.descale_k = NULL;
            tc_case_poison(c);
            mla_decode_plan_t plan = NULL;
            st = mla_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU);
            if (st == MLA_OK) st = mla_decode(plan, &a, NULL, 0, NULL);
            mla_decode_plan_destroy(plan);
            tc_expect(st == MLA_OK, "exact %d: bf16 run: %s", k, mla_last_error());
            tc_expect(memcmp(out8, c->out, (size_t)c->out_elems * 2) == 0 &&
                      memcmp(lse8, c->lse, (size_t)c->lse_elems * 4) == 0,
                      "exact %d (dq %g, dk %g): FP8 and bf16 paths differ", k, (double)f.dq, (double)f.dk);
            /* determinism: again with 1 and with 3 threads, identical bytes */
            for (int th = 1; th <= 3; th += 2) {
                c->shape.cpu_threads = th;
                tc_case_poison(c);
                st = tc_case_run_cpu(c);
                tc_expect(st == MLA_OK && memcmp(out8, c->out, (size_t)c->out_elems * 2) == 0 &&
                          memcmp(lse8, c->lse, (size_t)c->lse_elems * 4) == 0,
                          "exact %d: %d threads give other bytes", k, th);
            }
        }
        free(out8); free(lse8); free(kb); free(qb);
        f8_free(&f);
    }
}

/* ---- API contract ------------------------------------------------------------------------ */

static int msg_has(const char *k1, const char *k2)
{
    const char *m = mla_last_error();
    return (!k1 || strstr(m, k1)) && (!k2 || strstr(m, k2));
}

static void expect_create(const char *label, const mla_decode_shape *sh, int device, mla_status want,
                          const char *k1, const char *k2)
{
    mla_decode_plan_t plan = (mla_decode_plan_t)(uintptr_t)1;
    const mla_status st = mla_decode_plan_create(&plan, sh, device);
    tc_expect(st == want && (want != MLA_OK || plan) && (want == MLA_OK || !plan) && (want == MLA_OK || msg_has(k1, k2)),
              "%s: got %s (%s), want %s", label, mla_status_string(st), mla_last_error(), mla_status_string(want));
    if (st == MLA_OK) mla_decode_plan_destroy(plan);
}

/* Runs the decode with `a` on a fresh CPU plan of `sh`; on an expected error the outputs
 * must be untouched. */
static void expect_decode(const char *label, f8_case *f, const mla_decode_shape *sh, const mla_decode_args *a,
                          mla_status want, const char *k1, const char *k2)
{
    tc_case *c = &f->c;
    tc_case_poison(c);
    mla_decode_plan_t plan = NULL;
    mla_status st = mla_decode_plan_create(&plan, sh, MLA_DEVICE_CPU);
    if (st == MLA_OK) st = mla_decode(plan, a, NULL, 0, NULL);
    mla_decode_plan_destroy(plan);
    int untouched = 1;
    if (want != MLA_OK) {
        for (int64_t x = 0; x < c->out_elems; x++) untouched &= c->out[x] == TC_POISON_HALF;
        for (int64_t x = 0; x < c->lse_elems; x++) untouched &= mla_f32_bits(c->lse[x]) == 0x7fc00123u;
    }
    tc_expect(st == want && (want == MLA_OK || (msg_has(k1, k2) && untouched)),
              "%s: got %s (%s), want %s%s", label, mla_status_string(st), mla_last_error(),
              mla_status_string(want), untouched ? "" : "; outputs were written");
}

static void test_contract(void)
{
    printf("-- API contract: dtypes, descales, GPU plans\n");
    tc_config cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 2; cfg.h_q = 4; cfg.h_kv = 2; cfg.s_k = 40; cfg.page_size = 16; cfg.varlen = 1;
    cfg.seed = 30;
    f8_case f;
    if (f8_build(&f, &cfg, 1, 1, 0.5f, 2.0f)) { tc_expect(0, "contract: build"); f8_free(&f); return; }
    const mla_decode_shape S = f.c.shape; /* FP8 q and cache */
    const mla_decode_args A = f.c.args;
    mla_decode_shape sh;

    /* defaults */
    const mla_decode_shape d = mla_decode_shape_default();
    const mla_decode_args da = mla_decode_args_default();
    tc_expect(d.kv_dtype == MLA_DTYPE_INVALID && d.q_dtype == MLA_DTYPE_INVALID && !da.descale_q && !da.descale_k,
              "defaults: kv_dtype / q_dtype 0, descales NULL");

    /* shapes */
    expect_create("FP8 q + FP8 cache", &S, MLA_DEVICE_CPU, MLA_OK, NULL, NULL);
    sh = S; sh.q_dtype = MLA_DTYPE_INVALID;
    expect_create("bf16 q + FP8 cache", &sh, MLA_DEVICE_CPU, MLA_OK, NULL, NULL);
    sh = S; sh.q_dtype = MLA_DTYPE_BF16;
    expect_create("explicit bf16 q + FP8 cache", &sh, MLA_DEVICE_CPU, MLA_OK, NULL, NULL);
    sh = S; sh.dtype = MLA_DTYPE_FP16;
    expect_create("FP8 q + FP8 cache, fp16 out", &sh, MLA_DEVICE_CPU, MLA_OK, NULL, NULL);
    sh = S; sh.kv_dtype = MLA_DTYPE_BF16; sh.q_dtype = MLA_DTYPE_BF16;
    expect_create("explicit bf16 everywhere", &sh, MLA_DEVICE_CPU, MLA_OK, NULL, NULL);
    sh = S; sh.kv_dtype = MLA_DTYPE_INVALID;
    expect_create("FP8 q, bf16 cache", &sh, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "q_dtype", "needs kv_dtype");
    sh = S; sh.kv_dtype = MLA_DTYPE_BF16;
    expect_create("FP8 q, explicit bf16 cache", &sh, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "q_dtype", "needs kv_dtype");
    static const mla_dtype bad[] = {MLA_DTYPE_FP16, MLA_DTYPE_FP32, MLA_DTYPE_INT32, MLA_DTYPE_UINT8, (mla_dtype)77};
    for (int k = 0; k < 5; k++) {
        char label[64];
        snprintf(label, sizeof label, "kv_dtype %d with dtype bf16", (int)bad[k]);
        sh = S; sh.kv_dtype = bad[k];
        expect_create(label, &sh, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "kv_dtype", "not supported");
        snprintf(label, sizeof label, "q_dtype %d with dtype bf16", (int)bad[k]);
        sh = S; sh.q_dtype = bad[k];
        expect_create(label, &sh, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "q_dtype", "not supported");
    }
    sh = S; sh.dtype = MLA_DTYPE_FP8_E4M3;
    expect_create("FP8 out (dtype)", &sh, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "dtype", "MLA_DTYPE_BF16");
    sh = S;
    if (!mla_has_cuda()) {
        expect_create("FP8 on a GPU device (no CUDA build)", &sh, 0, MLA_ERR_UNSUPPORTED, "CUDA", NULL);
    } else {
        mla_decode_plan_t plan = NULL;
        const mla_status st = mla_decode_plan_create(&plan, &sh, 0);
        tc_expect(st == MLA_OK || st == MLA_ERR_UNSUPPORTED || st == MLA_ERR_CUDA, "FP8 on GPU 0: %s (%s)",
                  mla_status_string(st), mla_last_error());
        mla_decode_plan_destroy(plan);
    }
    sh = S; sh.kv_dtype = MLA_DTYPE_FP16; /* validated before the device is looked at */
    expect_create("bad kv_dtype on a GPU device", &sh, 0, MLA_ERR_INVALID_ARGUMENT, "kv_dtype", NULL);

    /* descales */
    mla_decode_args a = A;
    expect_decode("valid", &f, &S, &a, MLA_OK, NULL, NULL);
    a = A; a.descale_k = NULL;
    expect_decode("descale_k NULL", &f, &S, &a, MLA_ERR_INVALID_ARGUMENT, "descale_k is NULL", NULL);
    a = A; a.descale_q = NULL;
    expect_decode("FP8 q, descale_q NULL", &f, &S, &a, MLA_ERR_INVALID_ARGUMENT, "descale_q is NULL", NULL);
    static float dbuf[4];
    a = A; a.descale_k = (const float *)((const char *)dbuf + 1);
    expect_decode("descale_k misaligned", &f, &S, &a, MLA_ERR_INVALID_ARGUMENT, "descale_k", "4-byte aligned");
    a = A; a.descale_q = (const float *)((const char *)dbuf + 2);
    expect_decode("descale_q misaligned", &f, &S, &a, MLA_ERR_INVALID_ARGUMENT, "descale_q", "4-byte aligned");
    /* bf16 q on the FP8 cache: descale_q optional */
    sh = S; sh.q_dtype = MLA_DTYPE_INVALID;
    a = A; a.q = f.c.q; a.descale_q = NULL;
    expect_decode("bf16 q, descale_q NULL", &f, &sh, &a, MLA_OK, NULL, NULL);
    a.descale_k = NULL;
    expect_decode("bf16 q, descale_k NULL", &f, &sh, &a, MLA_ERR_INVALID_ARGUMENT, "descale_k is NULL", NULL);
    /* a 16-bit cache takes no descales */
    sh = S; sh.q_dtype = MLA_DTYPE_INVALID; sh.kv_dtype = MLA_DTYPE_INVALID;
    a = A; a.q = f.c.q; a.k_cache = f.c.k_cache; a.descale_q = NULL; a.descale_k = NULL;
    expect_decode("bf16 plan, no descales", &f, &sh, &a, MLA_OK, NULL, NULL);
    a.descale_k = &f.dk;
    expect_decode("bf16 plan, descale_k set", &f, &sh, &a, MLA_ERR_INVALID_ARGUMENT, "descale_k is set", "NULL otherwise");
    a.descale_k = NULL; a.descale_q = &f.dq;
    expect_decode("bf16 plan, descale_q set", &f, &sh, &a, MLA_ERR_INVALID_ARGUMENT, "descale_q is set", NULL);

    /* FP8 tensors need only 1-byte alignment on the CPU: the same codes one byte further */
    uint8_t *q8b = (uint8_t *)malloc((size_t)f.c.q_elems + 1), *k8b = (uint8_t *)malloc((size_t)f.c.k_elems + 3);
    uint16_t *ref_out = (uint16_t *)malloc((size_t)f.c.out_elems * 2);
    if (q8b && k8b && ref_out) {
        a = A;
        expect_decode("reference run", &f, &S, &a, MLA_OK, NULL, NULL);
        memcpy(ref_out, f.c.out, (size_t)f.c.out_elems * 2);
        memcpy(q8b + 1, f.q8, (size_t)f.c.q_elems);
        memcpy(k8b + 3, f.k8, (size_t)f.c.k_elems);
        a.q = q8b + 1; a.k_cache = k8b + 3;
        expect_decode("odd addresses", &f, &S, &a, MLA_OK, NULL, NULL);
        tc_expect(memcmp(ref_out, f.c.out, (size_t)f.c.out_elems * 2) == 0, "odd addresses: same bytes");
    }
    free(q8b); free(k8b); free(ref_out);

    /* GPU-only rules on a hand-made GPU plan (nothing is dereferenced before they pass):
     * q / k_cache 16-byte aligned and their strides multiples of 16 FP8 elements */
    struct mla_decode_plan fake;
    memset(&fake, 0, sizeof fake);
    fake.magic = MLA_PLAN_MAGIC_LIVE;
    fake.shape = S;
    fake.device = 0;
    fake.gpu.workspace_bytes = 4096;
    fake.gpu.num_sm_parts = 4;
    mla_decode_args g = A; /* cfg not strided: every stride is a multiple of 16 (d_qk 576) */
    g.q = (const void *)(uintptr_t)0x100000; g.k_cache = (const void *)(uintptr_t)0x200000;
    g.out = (void *)(uintptr_t)0x300000;
    mla_status st = mla_decode(&fake, &g, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_WORKSPACE_TOO_SMALL, "GPU FP8: strides of 16 elements pass validation: %s (%s)",
              mla_status_string(st), mla_last_error());
    mla_decode_args g2 = g; g2.q_stride[0] += 8;
    st = mla_decode(&fake, &g2, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && msg_has("q_stride[0]", "multiple of 16"), "GPU FP8: q stride of 8: %s",
              mla_last_error());
    g2 = g; g2.k_stride[1] += 8;
    st = mla_decode(&fake, &g2, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && msg_has("k_stride[1]", "multiple of 16"), "GPU FP8: k stride of 8: %s",
              mla_last_error());
    g2 = g; g2.k_cache = (const void *)(uintptr_t)0x200008;
    st = mla_decode(&fake, &g2, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && msg_has("k_cache", "16-byte aligned"), "GPU FP8: k_cache 8-byte aligned: %s",
              mla_last_error());
    g2 = g; g2.descale_k = NULL;
    st = mla_decode(&fake, &g2, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && msg_has("descale_k is NULL", NULL), "GPU FP8: descale_k NULL: %s",
              mla_last_error());
    f8_free(&f);
}

/* ---- callers built against the older, smaller structs ------------------------------------ */

static void test_old_sizes(void)
{
    printf("-- callers with the 0.1.0 struct sizes\n");
    /* sizeof(mla_decode_shape) before kv_dtype: its tail padding sits where kv_dtype is now */
    const size_t al = _Alignof(mla_decode_shape);
    const size_t shape_v1 = (offsetof(mla_decode_shape, kv_dtype) + al - 1) / al * al;
    const size_t args_v1 = offsetof(mla_decode_args, descale_q);
    tc_expect(shape_v1 < sizeof(mla_decode_shape) && args_v1 < sizeof(mla_decode_args),
              "struct sizes grew: shape %zu -> %zu, args %zu -> %zu", shape_v1, sizeof(mla_decode_shape),
              args_v1, sizeof(mla_decode_args));
    tc_config cfg = tc_config_default();
    cfg.b = 2; cfg.h_q = 8; cfg.s_k = 90; cfg.seed = 40;
    tc_case c;
    if (tc_case_build(&c, &cfg)) { tc_expect(0, "old sizes: build"); tc_case_free(&c); return; }
    mla_status st = tc_case_run_cpu(&c);
    uint16_t *ref = (uint16_t *)malloc((size_t)c.out_elems * 2);
    if (!ref || st != MLA_OK) { tc_expect(0, "old sizes: %s", mla_last_error()); free(ref); tc_case_free(&c); return; }
    memcpy(ref, c.out, (size_t)c.out_elems * 2);

    /* old shape: garbage in the bytes past its struct_size (padding then, kv_dtype / q_dtype now) */
    mla_decode_shape sh = c.shape;
    memset((char *)&sh + offsetof(mla_decode_shape, kv_dtype), 0xff, sizeof sh - offsetof(mla_decode_shape, kv_dtype));
    sh.struct_size = shape_v1;
    /* old args: garbage where the descale pointers are now */
    mla_decode_args a = c.args;
    memset((char *)&a + args_v1, 0x5a, sizeof a - args_v1);
    a.struct_size = args_v1;
    tc_case_poison(&c);
    mla_decode_plan_t plan = NULL;
    st = mla_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU);
    tc_expect(st == MLA_OK, "old-size shape with garbage tail accepted: %s", mla_last_error());
    if (st == MLA_OK) {
        st = mla_decode(plan, &a, NULL, 0, NULL);
        tc_expect(st == MLA_OK && memcmp(ref, c.out, (size_t)c.out_elems * 2) == 0,
                  "old-size args with garbage tail: same result as today's structs (%s)", mla_last_error());
        mla_decode_plan_destroy(plan);
    }
    /* the same garbage with today's struct_size is read (and rejected) */
    sh.struct_size = sizeof sh;
    plan = NULL;
    st = mla_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && msg_has("kv_dtype", NULL), "full-size shape reads kv_dtype: %s",
              mla_last_error());
    mla_decode_plan_destroy(plan);
    /* an old-size args on an FP8 plan has no descale_k */
    sh = c.shape;
    sh.kv_dtype = MLA_DTYPE_FP8_E4M3;
    plan = NULL;
    st = mla_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU);
    if (tc_expect(st == MLA_OK, "FP8 plan: %s", mla_last_error())) {
        st = mla_decode(plan, &a, NULL, 0, NULL);
        tc_expect(st == MLA_ERR_INVALID_ARGUMENT && msg_has("descale_k is NULL", NULL),
                  "old-size args on an FP8 plan: %s", mla_last_error());
        mla_decode_plan_destroy(plan);
    }
    free(ref);
    tc_case_free(&c);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    f8_table_init();
    /* the oracle's e4m3 table against the library's decoder (NaN at the same codes) */
    int same = 0;
    for (int v = 0; v < 256; v++) {
        const double x = f8_table[v], y = (double)mla_e4m3_to_float((uint8_t)v);
        same += (isnan(x) && isnan(y)) || x == y;
    }
    tc_expect(same == 256 && isnan(f8_table[0x7f]) && isnan(f8_table[0xff]) && f8_table[0x7e] == 448.0 &&
              f8_table[0x01] == 1.0 / 512, "e4m3 decoding: %d of 256 codes agree", same);
    const double t0 = tc_now();
    test_contract();
    test_old_sizes();
    test_exact();
    test_corners();
    test_grid();
    printf("total %.1f s\n", tc_now() - t0);
    return tc_summary();
}
