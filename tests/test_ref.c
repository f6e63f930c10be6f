/* test_ref.c — the CPU reference, called through the public API (mla_decode on a CPU plan),
 * against an independent naive fp64 implementation (tests/common.h: tc_naive_decode_rows —
 * gathers the keys, full softmax, no online tricks), with spec §6 data and tolerances.
 *
 * Groups: the spec §6 grid (subsampled deterministically to stay CPU-sized; the output says
 * what ran), b=128 with ~half the sequences empty, page sizes, d_qk 512, fp16, cu_seqlens_q,
 * softmax_scale, empty causal windows, NaN poisoning, garbage block tables, page-permutation
 * invariance, zero lengths, determinism across runs and thread counts, untouched outputs, and
 * the timing of one b=128 s_k=4096 h_q=128 call. The bf16 CPU plans run the kernel MLA_CPU_KERNEL
 * picks (default: the first of AMX, src/cpu_amx.c, AVX512-BF16, src/cpu_avx512bf16.c, AVX-512
 * FMA, src/cpu_avx512.c, and AVX2 FMA, src/cpu_avx2.c, that runs here, else the C reference); the
 * first line says which. With
 * MLA_CPU_KERNEL unset, every other kernel that runs here then runs again, corner groups and the
 * quick grid, so each meets the oracle; with it set, only the kernel it names runs.
 *
 * Every case also checks that every existing output row was written and that nothing outside
 * them (rows past a request's cu_seqlens_q length, padding of strided layouts) changed.
 *
 * Usage: test_ref [--full | --quick] [-v]
 *   --full   the whole grid (tens of minutes on 2 cores)
 *   --quick  corner groups and the cheapest grid cases only (for sanitizer / valgrind runs)
 *   -v       print the error report of every case */
#include <unistd.h>

#include "common.h"
#include "internal.h"
#include "cpu_kernels.h"

static int g_verbose = 0;
static int g_no_ws = 0; /* run_case: call without the plan's workspace (no key split) */

/* Oracle rows: all of them when that is at most ~200k (row, key) pairs, else about that many
 * rows' worth, picked by a hash of the row index (tc_naive_decode_rows). */
static int64_t oracle_step(const tc_case *c)
{
    int64_t pairs = 0;
    for (int64_t i = 0; i < c->cfg.b; i++) pairs += c->q_lens[i] * c->cfg.h_q * (c->seqlens[i] + 1);
    const int64_t budget = 200000;
    return pairs <= budget ? 1 : (pairs + budget - 1) / budget;
}

/* Builds, runs and checks one case. Returns 1 if everything passed. If keep != NULL the built
 * case (with the library's outputs) is handed back instead of freed. */
static int run_case_keep(const char *label, const tc_config *cfg, tc_case *keep)
{
    tc_case c;
    if (tc_case_build(&c, cfg)) {
        tc_expect(0, "%s: allocation failed", label);
        return 0;
    }
    mla_status st = tc_case_run_cpu_ws(&c, g_no_ws);
    int ok = tc_expect(st == MLA_OK, "%s: mla_decode returned %s: %s", label,
                       mla_status_string(st), mla_last_error());
    if (ok) {
        const int64_t no = cfg->b * cfg->s_q * cfg->h_q * cfg->d_v, nl = cfg->b * cfg->h_q * cfg->s_q;
        double *ro = (double *)malloc((size_t)no * 8), *rl = (double *)malloc((size_t)nl * 8);
        if (!ro || !rl || tc_naive_decode_rows(&c, ro, rl, oracle_step(&c))) {
            tc_expect(0, "%s: oracle allocation failed", label);
            ok = 0;
        } else {
            tc_report orep, lrep;
            int good = tc_compare_case(&c, ro, rl, &orep, &lrep);
            ok &= tc_expect(good, "%s: mismatch against the fp64 oracle", label);
            if (!good || g_verbose) {
                tc_print_report("out", &orep);
                tc_print_report("lse", &lrep);
            }
            const int64_t unw = tc_count_unwritten(&c), clob = tc_count_clobbered(&c);
            ok &= tc_expect(unw == 0, "%s: %lld existing output elements not written", label, (long long)unw);
            ok &= tc_expect(clob == 0, "%s: %lld elements outside the existing rows changed", label, (long long)clob);
        }
        free(ro);
        free(rl);
    }
    if (keep) *keep = c;
    else tc_case_free(&c);
    return ok;
}

static int run_case(const char *label, const tc_config *cfg) { return run_case_keep(label, cfg, NULL); }

static void describe(char *buf, size_t n, const tc_config *c)
{
    snprintf(buf, n, "b=%lld s_q=%lld s_k=%lld h_q=%lld h_kv=%lld d_qk=%lld page=%lld %s%s%s%s%s%s",
             (long long)c->b, (long long)c->s_q, (long long)c->s_k, (long long)c->h_q,
             (long long)c->h_kv, (long long)c->d_qk, (long long)c->page_size,
             c->dtype == MLA_DTYPE_FP16 ? "fp16" : "bf16", c->varlen ? " varlen" : "",
             c->causal ? " causal" : "", c->strided ? " strided" : "",
             c->zero_half ? " zero-half" : "", c->cu_seqlens_q ? " cu_seqlens_q" : "");
}

/* ---- the spec §6 grid ----------------------------------------------------------------------- */

/* Estimated seconds of one grid case on this kind of machine (data generation + library +
 * oracle); only used to pick the subsample, so a fixed formula keeps the choice deterministic. */
static double est_cost(int64_t b, int64_t s_q, int64_t s_k, int64_t h_q, int64_t h_kv)
{
    const double rows = (double)(b * s_q * h_q);
    return rows * (double)s_k * 1088 * 2 / 25e9            /* library, ~25 GFLOP/s        */
           + (double)(b * s_k * h_kv) * 576 * 15e-9        /* random data                 */
           + fmin(rows * (double)s_k, 2e5) * 1088 * 0.5e-9;  /* oracle (row, key) pairs */
}

static int g_quick = 0;

static void test_grid(int full)
{
    static const int64_t bs[] = {1, 2, 6, 64}, sqs[] = {1, 2, 4}, sks[] = {20, 140, 4096};
    static const int64_t hqs[] = {1, 3, 9, 63, 64, 126, 128}, hkvs[] = {1, 2, 3, 8};
    /* all cases <= cheap; 1 in 8 of (cheap, cap]; above cap: the two listed below */
    const double cheap = g_quick ? 0.005 : 0.1, cap = g_quick ? 0.005 : 2.0;
    int total = 0, ran = 0, ran_cheap = 0, ran_sampled = 0, ran_big = 0, idx_mid = 0, failed_cases = 0;
    const double t0 = tc_now();
    printf("-- grid (spec 6): b {1,2,6,64} x s_q {1,2,4} x s_k {20,140,4096} x h_q {1,3,9,63,64,126,128}"
           " x h_kv {1,2,3,8} | h_q x varlen x causal%s\n", full ? " [--full]" : "");
    for (size_t ib = 0; ib < 4; ib++)
        for (size_t isq = 0; isq < 3; isq++)
            for (size_t isk = 0; isk < 3; isk++)
                for (size_t ihq = 0; ihq < 7; ihq++)
                    for (size_t ihk = 0; ihk < 4; ihk++)
                        for (int varlen = 0; varlen < 2; varlen++)
                            for (int causal = 0; causal < 2; causal++) {
                                const int64_t b = bs[ib], s_q = sqs[isq], s_k = sks[isk];
                                const int64_t h_q = hqs[ihq], h_kv = hkvs[ihk];
                                if (h_q % h_kv) continue;
                                total++;
                                const double cost = est_cost(b, s_q, s_k, h_q, h_kv);
                                int run = full, kind = 0;
                                if (cost <= cheap) { run = 1; kind = 0; }
                                else if (cost <= cap) { if (idx_mid++ % 8 == 3) { run = 1; kind = 1; } }
                                else if (!g_quick && b == 64 && s_k == 4096 && h_kv == 1 && varlen &&
                                         ((s_q == 1 && h_q == 128 && !causal) ||
                                          (s_q == 2 && h_q == 64 && causal))) { run = 1; kind = 2; }
                                if (!run) continue;
                                tc_config cfg = tc_config_default();
                                cfg.b = b; cfg.s_q = s_q; cfg.s_k = s_k; cfg.h_q = h_q; cfg.h_kv = h_kv;
                                cfg.varlen = varlen; cfg.causal = causal;
                                cfg.strided = (total % 3) == 0;
                                if (total % 4 == 1) cfg.dtype = MLA_DTYPE_FP16;
                                if (total % 7 == 2) cfg.d_qk = 512;
                                cfg.seed = 1000 + (uint64_t)total;
                                char label[200];
                                describe(label, sizeof label, &cfg);
                                const double tc0 = tc_now();
                                if (!run_case(label, &cfg)) failed_cases++;
                                if (kind == 2 || g_verbose || tc_now() - tc0 > 3.0)
                                    printf("    %s: %.1f s\n", label, tc_now() - tc0);
                                ran++;
                                ran_cheap += kind == 0;
                                ran_sampled += kind == 1;
                                ran_big += kind == 2;
                            }
    printf("   grid: %d of %d cases ran (%d with estimated cost <= %.3g s: all of them; %d: every 8th of "
           "the %d in (%.3g, %.3g] s; %d of the largest, b=64 s_k=4096 varlen h_kv=1 with "
           "(s_q=1 h_q=128) or (s_q=2 h_q=64 causal)); strided layouts every 3rd case, fp16 every 4th, d_qk 512 every 7th; oracle "
           "checks <= ~200k (row, key) pairs per case; %d failed; %.1f s\n",
           ran, total, ran_cheap, cheap, ran_sampled, idx_mid, cheap, cap, ran_big, failed_cases,
           tc_now() - t0);
}

/* ---- corner groups -------------------------------------------------------------------------- */

static void test_half_empty(void)
{
    printf("-- b=128 with about half the sequences empty\n");
    const double t0 = tc_now();
    tc_config cfg = tc_config_default();
    cfg.b = 128; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 1024; cfg.h_q = 16; cfg.varlen = 1;
    cfg.zero_half = 1; cfg.seed = 77;
    tc_case c;
    if (run_case_keep("b=128 s_q=2 causal s_k=1024 h_q=16 varlen zero-half", &cfg, &c)) {
        int64_t zeros = 0, bad = 0;
        for (int64_t i = 0; i < cfg.b; i++) {
            if (c.seqlens[i] != 0) continue;
            zeros++;
            for (int64_t j = 0; j < cfg.s_q; j++)
                for (int64_t h = 0; h < cfg.h_q; h++) {
                    const uint16_t *o = c.out + i * c.args.out_stride[0] + j * c.args.out_stride[1] + h * c.args.out_stride[2];
                    for (int d = 0; d < 512; d++) bad += o[d] != 0;
                    const float l = c.lse[i * c.args.lse_stride[0] + h * c.args.lse_stride[1] + j * c.args.lse_stride[2]];
                    bad += !(isinf(l) && l > 0);
                }
        }
        tc_expect(zeros > 30 && zeros < 98, "about half empty: %lld of 128", (long long)zeros);
        tc_expect(bad == 0, "empty requests: %lld elements not out=+0 / lse=+inf", (long long)bad);
        printf("   %lld of 128 requests empty\n", (long long)zeros);
    }
    tc_case_free(&c);
    cfg.s_k = 4096; cfg.h_q = 128; cfg.seed = 78; cfg.cpu_threads = 0;
    run_case("b=128 s_q=2 causal s_k=4096 h_q=128 varlen zero-half (FlashMLA's corner)", &cfg);
    printf("   %.1f s\n", tc_now() - t0);
}

static void test_page_sizes(void)
{
    printf("-- page sizes 1, 7, 16, 32, 64, 128, 256, 1000\n");
    static const int64_t ps[] = {1, 7, 16, 32, 64, 128, 256, 1000};
    for (size_t x = 0; x < sizeof ps / sizeof ps[0]; x++) {
        tc_config cfg = tc_config_default();
        cfg.b = 5; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 300; cfg.varlen = 1; cfg.h_q = 16;
        cfg.h_kv = 2; cfg.page_size = ps[x]; cfg.strided = (int)(x & 1); cfg.seed = 200 + x;
        char label[200];
        describe(label, sizeof label, &cfg);
        run_case(label, &cfg);
    }
}

static void test_variants(void)
{
    printf("-- d_qk 512, fp16, explicit softmax_scale\n");
    for (int v = 0; v < 8; v++) {
        tc_config cfg = tc_config_default();
        cfg.b = 3; cfg.s_q = 1 + (v & 3); cfg.causal = v & 1; cfg.s_k = 200; cfg.varlen = 1;
        cfg.h_q = v < 4 ? 16 : 9; cfg.h_kv = v < 4 ? 2 : 3; cfg.seed = 300 + v;
        cfg.d_qk = (v & 2) ? 512 : 576;
        cfg.dtype = (v & 4) ? MLA_DTYPE_FP16 : MLA_DTYPE_BF16;
        cfg.strided = v & 1;
        char label[200];
        describe(label, sizeof label, &cfg);
        run_case(label, &cfg);
    }
    static const float scales[] = {0.3f, 1.0f, 0.01f, 1.0f / 24.0f};
    for (int v = 0; v < 4; v++) {
        tc_config cfg = tc_config_default();
        cfg.b = 2; cfg.s_q = 2; cfg.causal = 1; cfg.s_k = 100; cfg.h_q = 8; cfg.seed = 400 + v;
        cfg.softmax_scale = scales[v];
        cfg.dtype = v & 1 ? MLA_DTYPE_FP16 : MLA_DTYPE_BF16;
        char label[64];
        snprintf(label, sizeof label, "softmax_scale %g", (double)scales[v]);
        run_case(label, &cfg);
    }
    /* scale <= 0, NaN and inf mean the default: bytes equal to softmax_scale = 0 */
    tc_config cfg = tc_config_default();
    cfg.b = 2; cfg.s_q = 2; cfg.s_k = 90; cfg.h_q = 4; cfg.seed = 410;
    tc_case c;
    if (tc_case_build(&c, &cfg)) return;
    tc_expect(tc_case_run_cpu(&c) == MLA_OK, "default scale run");
    uint16_t *o0 = (uint16_t *)malloc((size_t)c.out_elems * 2);
    memcpy(o0, c.out, (size_t)c.out_elems * 2);
    static const float dflt[] = {-1.0f, NAN, INFINITY, 1.0f / 24.0f};
    for (int v = 0; v < 4; v++) {
        tc_case_poison(&c);
        c.args.softmax_scale = dflt[v];
        tc_expect(tc_case_run_cpu(&c) == MLA_OK, "scale %g run", (double)dflt[v]);
        tc_expect(memcmp(o0, c.out, (size_t)c.out_elems * 2) == 0,
                  "softmax_scale %g gives the same bytes as the default (576^-0.5)", (double)dflt[v]);
    }
    /* a different scale must change the result */
    tc_case_poison(&c);
    c.args.softmax_scale = 0.5f;
    tc_case_run_cpu(&c);
    tc_expect(memcmp(o0, c.out, (size_t)c.out_elems * 2) != 0, "softmax_scale 0.5 changes the output");
    free(o0);
    tc_case_free(&c);
}

static void test_cu_seqlens(void)
{
    printf("-- cu_seqlens_q (per-request query lengths 0/1/2/4)\n");
    static const int32_t ql[8] = {0, 1, 2, 4, 4, 0, 2, 1};
    static const int32_t kl[8] = {50, 3, 1, 3, 200, 0, 64, 0};
    for (int v = 0; v < 4; v++) {
        tc_config cfg = tc_config_default();
        cfg.b = 8; cfg.s_q = 4; cfg.h_q = 6; cfg.h_kv = (v & 2) ? 3 : 1; cfg.causal = v & 1;
        cfg.q_lens = ql; cfg.kv_lens = kl; cfg.strided = 1; cfg.page_size = 16;
        cfg.seed = 500 + v;
        char label[200];
        describe(label, sizeof label, &cfg);
        snprintf(label + strlen(label), sizeof label - strlen(label), " q_lens 0,1,2,4,4,0,2,1");
        tc_case c;
        if (run_case_keep(label, &cfg, &c)) {
            /* causal with the request's own length: request 3 has L=3 < n=4, so its row 0 sees
             * keys [0, L - n + 0] = nothing: out 0, lse +inf; row 1 sees key 0 only */
            if (cfg.causal) {
                const float l0 = c.lse[3 * c.args.lse_stride[0] + 0 * c.args.lse_stride[2]];
                const float l1 = c.lse[3 * c.args.lse_stride[0] + 1 * c.args.lse_stride[2]];
                tc_expect(isinf(l0) && l0 > 0, "request 3 row 0 (empty causal window): lse %g", (double)l0);
                tc_expect(isfinite(l1), "request 3 row 1 (one key): lse %g", (double)l1);
            }
        }
        tc_case_free(&c);
    }
    tc_config cfg = tc_config_default();
    cfg.b = 16; cfg.s_q = 4; cfg.h_q = 16; cfg.h_kv = 2; cfg.causal = 1; cfg.cu_seqlens_q = 1;
    cfg.varlen = 1; cfg.s_k = 150; cfg.zero_half = 1; cfg.seed = 510;
    run_case("random cu_seqlens_q, varlen, zero-half, causal", &cfg);
}

static void test_empty_windows(void)
{
    printf("-- empty causal windows and zero lengths\n");
    static const int32_t kl[4] = {2, 0, 1, 4};
    tc_config cfg = tc_config_default();
    cfg.b = 4; cfg.s_q = 4; cfg.causal = 1; cfg.h_q = 3; cfg.kv_lens = kl; cfg.page_size = 16;
    cfg.seed = 600;
    tc_case c;
    if (run_case_keep("s_q=4 causal with lengths 2,0,1,4", &cfg, &c)) {
        /* request 0: L=2, n=4: rows 0,1 see nothing; rows 2,3 see 1 and 2 keys */
        for (int64_t j = 0; j < 4; j++)
            for (int64_t h = 0; h < 3; h++) {
                const float l = c.lse[0 * c.args.lse_stride[0] + h * c.args.lse_stride[1] + j * c.args.lse_stride[2]];
                const uint16_t *o = c.out + j * c.args.out_stride[1] + h * c.args.out_stride[2];
                int zero = 1;
                for (int d = 0; d < 512; d++) zero &= o[d] == 0;
                if (j < 2) tc_expect(isinf(l) && l > 0 && zero, "req 0 row %lld head %lld: empty window gives out=+0 lse=+inf", (long long)j, (long long)h);
                else tc_expect(isfinite(l) && !zero, "req 0 row %lld head %lld: visible keys give finite lse", (long long)j, (long long)h);
            }
        /* request 2: L=1: only row 3 sees key 0, where lse = its score */
    }
    tc_case_free(&c);
    static const int32_t zl[3] = {0, 0, 0};
    cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 2; cfg.h_q = 5; cfg.kv_lens = zl; cfg.seed = 601;
    if (run_case_keep("all lengths zero", &cfg, &c)) {
        int64_t bad = 0;
        for (int64_t x = 0; x < 3 * 2 * 5; x++) {
            const int64_t i = x / 10, j = (x / 5) % 2, h = x % 5;
            const uint16_t *o = c.out + i * c.args.out_stride[0] + j * c.args.out_stride[1] + h * c.args.out_stride[2];
            for (int d = 0; d < 512; d++) bad += o[d] != 0;
            const float l = c.lse[i * c.args.lse_stride[0] + h * c.args.lse_stride[1] + j * c.args.lse_stride[2]];
            bad += !(isinf(l) && l > 0);
        }
        tc_expect(bad == 0, "all-zero lengths: %lld elements not out=+0 / lse=+inf", (long long)bad);
    }
    tc_case_free(&c);
    cfg = tc_config_default();
    cfg.b = 1; cfg.s_q = 1; cfg.h_q = 1; cfg.s_k = 1; cfg.page_size = 1; cfg.seed = 602;
    run_case("b=1 h_q=1 one key, page 1", &cfg);
}

/* Key splits (internal.h mla_cpu_split): a call with few items cuts each item's keys into ranges
 * of whole 64-key chunks, runs every range as an item of its own and merges the partial rows.
 * MLA_CPU_SPLIT_CHUNKS=1 (set here; the caller's value is given back) makes every chunk a range
 * (up to 64 per item): empty ranges, ranges that end inside a chunk, causal rows that see only
 * the first ranges, a request of length 0, per-request query lengths, strided layouts. Each case
 * meets the oracle with the plan's workspace (split) and without it (unsplit); a NaN key in one
 * range makes every row NaN, as unsplit; the split call writes its workspace (it did split) and
 * gives the same bytes for any thread count. */
static void test_split(void)
{
    printf("-- key splits: few items, up to 64 ranges each (MLA_CPU_SPLIT_CHUNKS=1), with and without the workspace\n");
    const char *prev = getenv("MLA_CPU_SPLIT_CHUNKS");
    char saved[32] = "";
    if (prev) snprintf(saved, sizeof saved, "%s", prev);
    setenv("MLA_CPU_SPLIT_CHUNKS", "1", 1);
    static const int32_t kl2[2] = {3001, 70};
    static const int32_t kl3[3] = {0, 777, 64};
    static const int32_t ql1[1] = {3};
    tc_config cfgs[4];
    for (int v = 0; v < 4; v++) cfgs[v] = tc_config_default();
    cfgs[0].b = 1; cfgs[0].s_k = 5000; cfgs[0].seed = 900; /* 79 chunks: 64 ranges of 2, the last 24 empty */
    cfgs[1].b = 2; cfgs[1].s_q = 2; cfgs[1].h_q = 32; cfgs[1].causal = 1; cfgs[1].kv_lens = kl2; cfgs[1].seed = 901;
    cfgs[2].b = 3; cfgs[2].h_q = 64; cfgs[2].h_kv = 2; cfgs[2].kv_lens = kl3; cfgs[2].strided = 1; cfgs[2].seed = 902;
    cfgs[3].b = 1; cfgs[3].s_q = 4; cfgs[3].causal = 1; cfgs[3].q_lens = ql1; cfgs[3].s_k = 300;
    cfgs[3].page_size = 16; cfgs[3].seed = 903;
    for (int v = 0; v < 4; v++)
        for (int nows = 0; nows < 2; nows++) {
            char label[240];
            describe(label, sizeof label, &cfgs[v]);
            snprintf(label + strlen(label), sizeof label - strlen(label), "%s",
                     nows ? " (no workspace: unsplit)" : " (split)");
            g_no_ws = nows;
            run_case(label, &cfgs[v]);
            g_no_ws = 0;
        }

    /* the split call uses its workspace and is deterministic; a NaN key makes the rows NaN */
    tc_case c;
    tc_config cfg = cfgs[1];
    if (!tc_expect(tc_case_build(&c, &cfg) == 0, "split: allocation")) goto out;
    mla_decode_plan_t plan = NULL;
    size_t wsb = 0;
    unsigned char *ws = NULL;
    if (tc_expect(mla_decode_plan_create(&plan, &c.shape, MLA_DEVICE_CPU) == MLA_OK, "split plan: %s", mla_last_error()) &&
        tc_expect(mla_decode_workspace_size(plan, &wsb) == MLA_OK, "workspace size")) {
        const int fast = plan->cpu_kernel != MLA_CPU_KERNEL_REF;
        tc_expect(fast ? wsb > 0 : wsb == 0, "CPU workspace: %zu bytes (%s)", wsb,
                  fast ? "a fast kernel: the split's partial rows" : "the reference never splits");
        if (wsb > 0 && (ws = (unsigned char *)malloc(wsb))) {
            memset(ws, 0xa5, wsb);
            tc_expect(mla_decode(plan, &c.args, ws, wsb, NULL) == MLA_OK, "split call: %s", mla_last_error());
            int64_t used = 0;
            for (size_t x = 0; x < wsb; x++) used += ws[x] != 0xa5;
            tc_expect(used > 0, "the split call wrote its workspace (%lld bytes changed)", (long long)used);
            memset(ws, 0xa5, wsb); /* one byte short: never touched (runs unsplit) */
            tc_expect(mla_decode(plan, &c.args, ws, wsb - 1, NULL) == MLA_OK, "short workspace call");
            used = 0;
            for (size_t x = 0; x < wsb; x++) used += ws[x] != 0xa5;
            tc_expect(used == 0, "a workspace one byte short of the size was written (%lld bytes)", (long long)used);
            const size_t ob = (size_t)c.out_elems * 2, lb = (size_t)c.lse_elems * 4;
            uint16_t *o0 = (uint16_t *)malloc(ob);
            float *l0 = (float *)malloc(lb);
            /* 1 chunk per range (32 ranges: the row blocks stay whole) and the default (2 ranges:
             * more threads cut the rows into smaller blocks) */
            for (int dflt = 0; dflt < 2 && o0 && l0; dflt++) {
                if (dflt) unsetenv("MLA_CPU_SPLIT_CHUNKS");
                static const int threads[] = {1, 2, 3, 8};
                for (int t = 0; t < 4; t++) {
                    mla_decode_plan_t p2 = NULL;
                    c.shape.cpu_threads = threads[t];
                    tc_case_poison(&c);
                    memset(ws, 0x5a, wsb);
                    if (!tc_expect(mla_decode_plan_create(&p2, &c.shape, MLA_DEVICE_CPU) == MLA_OK, "plan")) continue;
                    const mla_status st2 = mla_decode(p2, &c.args, ws, wsb, NULL);
                    mla_decode_plan_destroy(p2);
                    if (t == 0) {
                        memcpy(o0, c.out, ob);
                        memcpy(l0, c.lse, lb);
                        tc_expect(st2 == MLA_OK, "split, 1 thread: %s", mla_last_error());
                        continue;
                    }
                    tc_expect(st2 == MLA_OK && memcmp(o0, c.out, ob) == 0 && memcmp(l0, c.lse, lb) == 0,
                              "split (%s), %d threads: bytes differ from 1 thread",
                              dflt ? "default ranges" : "1 chunk per range", threads[t]);
                }
                setenv("MLA_CPU_SPLIT_CHUNKS", "1", 1);
            }
            c.shape.cpu_threads = 0;
            free(o0);
            free(l0);
            /* a NaN in key 1500 of request 0 (a middle range): every row of request 0 NaN, with
             * and without the split; request 1 unaffected (finite lse) */
            const int64_t ps = c.cfg.page_size;
            const int64_t page = c.block_table[0 * c.args.block_table_stride + 1500 / ps];
            c.k_cache[page * c.args.k_stride[0] + (1500 % ps) * c.args.k_stride[1] + 7] = 0x7fc0;
            for (int nows = 0; nows < 2; nows++) {
                tc_case_poison(&c);
                tc_expect(mla_decode(plan, &c.args, nows ? NULL : ws, nows ? 0 : wsb, NULL) == MLA_OK, "NaN key call");
                int64_t bad0 = 0, bad1 = 0;
                for (int64_t j = 0; j < 2; j++)
                    for (int64_t h = 0; h < c.cfg.h_q; h++) {
                        const float l0v = c.lse[0 * c.args.lse_stride[0] + h * c.args.lse_stride[1] + j * c.args.lse_stride[2]];
                        const float l1v = c.lse[1 * c.args.lse_stride[0] + h * c.args.lse_stride[1] + j * c.args.lse_stride[2]];
                        bad0 += !isnan(l0v);
                        bad1 += !isfinite(l1v);
                    }
                tc_expect(bad0 == 0 && bad1 == 0, "NaN key in a middle range (%s): %lld rows of request 0 not NaN, "
                          "%lld of request 1 not finite", nows ? "unsplit" : "split", (long long)bad0, (long long)bad1);
            }
        }
    }
    free(ws);
    mla_decode_plan_destroy(plan);
    tc_case_free(&c);
out:
    if (prev) setenv("MLA_CPU_SPLIT_CHUNKS", saved, 1);
    else unsetenv("MLA_CPU_SPLIT_CHUNKS");
}

/* NaN in every byte the library must not read; garbage block tables; page permutations. */
static void test_poison(void)
{
    printf("-- NaN poisoning, garbage block tables, page permutation invariance\n");
    tc_config cfg = tc_config_default();
    cfg.b = 6; cfg.s_q = 2; cfg.causal = 1; cfg.varlen = 1; cfg.s_k = 130; cfg.h_q = 8;
    cfg.h_kv = 2; cfg.page_size = 16; cfg.strided = 1; cfg.extra_pages = 9; cfg.extra_cols = 5;
    cfg.seed = 700;
    tc_case c;
    if (!run_case_keep("NaN-filled unused rows/pages/padding, strided", &cfg, &c)) {
        tc_case_free(&c);
        return;
    }
    const int64_t ob = c.out_elems * 2, lb = c.lse_elems * 4;
    uint16_t *o0 = (uint16_t *)malloc((size_t)ob);
    float *l0 = (float *)malloc((size_t)lb);
    memcpy(o0, c.out, (size_t)ob);
    memcpy(l0, c.lse, (size_t)lb);
    /* inf instead of NaN in all unused cache rows, and every unused block-table entry garbage */
    const int64_t ps = cfg.page_size;
    int64_t unused_rows = 0;
    for (int64_t p = 0; p < c.num_pages; p++)
        for (int64_t r = 0; r < ps; r++) {
            int used = 0;
            for (int64_t i = 0; i < cfg.b && !used; i++)
                for (int64_t t = 0; t < c.seqlens[i] && !used; t++)
                    used = c.block_table[i * c.max_pages + t / ps] == p && t % ps == r;
            if (used) continue;
            unused_rows++;
            for (int64_t g = 0; g < cfg.h_kv; g++)
                for (int64_t d = 0; d < cfg.d_qk; d++)
                    c.k_cache[p * c.args.k_stride[0] + r * c.args.k_stride[1] + g * c.args.k_stride[2] + d] =
                        (d & 1) ? 0x7f80 : 0xff80; /* ±inf */
        }
    static const int32_t garbage[] = {-1, INT32_MIN, INT32_MAX, 2147480000, -2147480000};
    int64_t gi = 0;
    for (int64_t i = 0; i < cfg.b; i++)
        for (int64_t j = (c.seqlens[i] + ps - 1) / ps; j < c.max_pages; j++)
            c.block_table[i * c.max_pages + j] = garbage[gi++ % 5];
    tc_case_poison(&c);
    tc_expect(tc_case_run_cpu(&c) == MLA_OK, "garbage run: %s", mla_last_error());
    tc_expect(memcmp(o0, c.out, (size_t)ob) == 0 && memcmp(l0, c.lse, (size_t)lb) == 0,
              "±inf in %lld unused cache rows and garbage block-table entries change nothing",
              (long long)unused_rows);
    /* permute the physical pages (and the block table with them): identical bytes */
    tc_rng rng;
    tc_rng_seed(&rng, 701);
    int64_t *perm = (int64_t *)malloc((size_t)c.num_pages * sizeof(int64_t));
    for (int64_t p = 0; p < c.num_pages; p++) perm[p] = p;
    for (int64_t p = c.num_pages - 1; p > 0; p--) {
        int64_t j = tc_randint(&rng, p + 1), t = perm[p];
        perm[p] = perm[j];
        perm[j] = t;
    }
    uint16_t *k2 = (uint16_t *)malloc((size_t)c.k_elems * 2);
    for (int64_t p = 0; p < c.num_pages; p++)
        memcpy(k2 + perm[p] * c.args.k_stride[0], c.k_cache + p * c.args.k_stride[0], (size_t)c.args.k_stride[0] * 2);
    memcpy(c.k_cache, k2, (size_t)c.k_elems * 2);
    for (int64_t i = 0; i < cfg.b; i++)
        for (int64_t j = 0; j < (c.seqlens[i] + ps - 1) / ps; j++)
            c.block_table[i * c.max_pages + j] = (int32_t)perm[c.block_table[i * c.max_pages + j]];
    tc_case_poison(&c);
    tc_expect(tc_case_run_cpu(&c) == MLA_OK, "permuted run: %s", mla_last_error());
    tc_expect(memcmp(o0, c.out, (size_t)ob) == 0 && memcmp(l0, c.lse, (size_t)lb) == 0,
              "permuting the physical pages gives identical bytes");
    free(k2);
    free(perm);
    free(o0);
    free(l0);
    tc_case_free(&c);
}

static void test_determinism(void)
{
    printf("-- determinism: two runs and 1/2/3/8 threads give identical bytes\n");
    tc_config cfg = tc_config_default();
    cfg.b = 7; cfg.s_q = 2; cfg.causal = 1; cfg.varlen = 1; cfg.s_k = 500; cfg.h_q = 40;
    cfg.h_kv = 2; cfg.seed = 800; cfg.cpu_threads = 1;
    tc_case c;
    if (tc_case_build(&c, &cfg)) return;
    const int64_t ob = c.out_elems * 2, lb = c.lse_elems * 4;
    uint16_t *o0 = (uint16_t *)malloc((size_t)ob);
    float *l0 = (float *)malloc((size_t)lb);
    tc_expect(tc_case_run_cpu(&c) == MLA_OK, "run 1");
    memcpy(o0, c.out, (size_t)ob);
    memcpy(l0, c.lse, (size_t)lb);
    static const int threads[] = {1, 2, 3, 8};
    for (int v = 0; v < 4; v++) {
        tc_case_poison(&c);
        c.shape.cpu_threads = threads[v];
        tc_expect(tc_case_run_cpu(&c) == MLA_OK, "run");
        tc_expect(memcmp(o0, c.out, (size_t)ob) == 0 && memcmp(l0, c.lse, (size_t)lb) == 0,
                  "%d threads: bytes differ from the first run", threads[v]);
    }
    /* one plan, two calls */
    mla_decode_plan_t plan;
    c.shape.cpu_threads = 0;
    if (tc_expect(mla_decode_plan_create(&plan, &c.shape, MLA_DEVICE_CPU) == MLA_OK, "plan")) {
        for (int r = 0; r < 2; r++) {
            tc_case_poison(&c);
            tc_expect(mla_decode(plan, &c.args, NULL, 0, NULL) == MLA_OK, "call %d", r);
            tc_expect(memcmp(o0, c.out, (size_t)ob) == 0 && memcmp(l0, c.lse, (size_t)lb) == 0,
                      "same plan, call %d: bytes differ", r);
        }
        mla_decode_plan_destroy(plan);
    }
    free(o0);
    free(l0);
    tc_case_free(&c);
}

static void test_big_call(void)
{
    printf("-- one b=128 s_q=1 s_k=4096 h_q=128 h_kv=1 call (all cores)\n");
    tc_config cfg = tc_config_default();
    cfg.b = 128; cfg.s_q = 1; cfg.s_k = 4096; cfg.h_q = 128; cfg.seed = 900;
    tc_case c;
    const double t0 = tc_now();
    if (tc_case_build(&c, &cfg)) { tc_expect(0, "allocation"); return; }
    const double t1 = tc_now();
    mla_status st = tc_case_run_cpu(&c);
    const double t2 = tc_now();
    tc_expect(st == MLA_OK, "big call: %s", mla_last_error());
    const double flops = 128.0 * 128 * 4096 * 2 * (576 + 512);
    printf("   data %.1f s; mla_decode %.2f s (%.1f GFLOP/s) on %ld cores\n", t1 - t0, t2 - t1,
           flops / (t2 - t1) / 1e9, sysconf(_SC_NPROCESSORS_ONLN));
    tc_expect(t2 - t1 < 60.0, "b=128 s_k=4096 h_q=128 takes %.1f s (must be well under a minute)", t2 - t1);
    const int64_t no = 128 * 128 * 512, nl = 128 * 128;
    double *ro = (double *)malloc((size_t)no * 8), *rl = (double *)malloc((size_t)nl * 8);
    tc_naive_decode_rows(&c, ro, rl, 509); /* 33 rows spread over requests and heads */
    tc_report orep, lrep;
    tc_expect(tc_compare_case(&c, ro, rl, &orep, &lrep), "big call: mismatch against the oracle");
    tc_print_report("out (sampled rows)", &orep);
    tc_print_report("lse (sampled rows)", &lrep);
    tc_expect(tc_count_unwritten(&c) == 0, "big call: rows left unwritten");
    free(ro);
    free(rl);
    tc_case_free(&c);
}

/* Outputs that cancel: a kernel that rounds P to one bf16 (2^-9 relative) misses the spec
 * tolerance on them, as fuzz_decode found for the AMX path's first version (-0.0078 for -0.0068);
 * the CPU fast paths carry P as two bf16 parts (src/cpu_tiles.h). Two keys per request: key 0
 * scores 0, key 1 scores c_h x / 24 (q and K meet only in dim 575, outside V), so p1 / p0 =
 * e^(c_h x / 24) ~ 0.7, a different value per head (c_h = 1 + h / h_q); V = A_d for key 0 and -64
 * for key 1, with A_d swept over [40, 52] in bf16 steps so that every head has columns where
 * A_d - 64 p cancels to near 0. One bf16 P is off by ~64 x 0.7 x 2^-10 / 1.7 ~ 0.03 there
 * (abs tolerance 8e-4); two parts by ~1e-4. The GPU kernels round P to bf16 as FlashMLA does and
 * are not held to this case. */
static void test_cancel(void)
{
    printf("-- outputs that cancel (P precision): h_q 16 and 128, two keys\n");
    static const int32_t lens[2] = {2, 2};
    for (int v = 0; v < 2; v++) {
        tc_config cfg = tc_config_default();
        cfg.b = 2; cfg.s_q = 1; cfg.h_q = v ? 128 : 16; cfg.h_kv = 1; cfg.page_size = 16;
        cfg.kv_lens = lens; cfg.seed = 1100 + v;
        tc_case c;
        if (tc_case_build(&c, &cfg)) { tc_expect(0, "cancel: allocation"); return; }
        const mla_decode_args *a = &c.args;
        for (int64_t i = 0; i < cfg.b; i++)
            for (int64_t h = 0; h < cfg.h_q; h++) {
                uint16_t *q = c.q + i * a->q_stride[0] + h * a->q_stride[2];
                for (int64_t d = 0; d < cfg.d_qk; d++) q[d] = 0;
                q[575] = mla_float_to_bf16(1.0f + (float)h / (float)cfg.h_q);
            }
        for (int64_t i = 0; i < cfg.b; i++)
            for (int t = 0; t < 2; t++) {
                const int64_t pg = c.block_table[i * c.max_pages + t / cfg.page_size];
                uint16_t *k = c.k_cache + pg * a->k_stride[0] + (t % cfg.page_size) * a->k_stride[1];
                for (int64_t d = 0; d < cfg.d_qk; d++) k[d] = 0;
                for (int64_t d = 0; d < cfg.d_v; d++)
                    k[d] = mla_float_to_bf16(t ? -64.0f : 40.0f + 0.25f * (float)((d + 7 * i) % 49));
                k[575] = mla_float_to_bf16(t ? -8.5f : 0.0f);
            }
        tc_case_poison(&c);
        const mla_status st = tc_case_run_cpu(&c);
        char label[64];
        snprintf(label, sizeof label, "cancel h_q=%lld", (long long)cfg.h_q);
        if (tc_expect(st == MLA_OK, "%s: %s", label, mla_last_error())) {
            const int64_t no = cfg.b * cfg.h_q * cfg.d_v, nl = cfg.b * cfg.h_q;
            double *ro = (double *)malloc((size_t)no * 8), *rl = (double *)malloc((size_t)nl * 8);
            if (ro && rl && !tc_naive_decode_rows(&c, ro, rl, 1)) {
                int64_t near0 = 0;
                for (int64_t x = 0; x < no; x++) near0 += fabs(ro[x]) < 0.05;
                tc_report orep, lrep;
                const int good = tc_compare_case(&c, ro, rl, &orep, &lrep);
                tc_expect(near0 >= cfg.b * cfg.h_q, "%s: %lld outputs within 0.05 of 0 (the case must cancel)",
                          label, (long long)near0);
                tc_expect(good, "%s: mismatch against the fp64 oracle", label);
                if (!good || g_verbose) {
                    tc_print_report("out", &orep);
                    tc_print_report("lse", &lrep);
                }
            } else {
                tc_expect(0, "%s: oracle allocation", label);
            }
            free(ro);
            free(rl);
        }
        tc_case_free(&c);
    }
}

static void run_groups(int full)
{
    test_empty_windows();
    test_cancel();
    test_cu_seqlens();
    test_page_sizes();
    test_variants();
    test_poison();
    test_determinism();
    test_split();
    if (!g_quick) {
        test_half_empty();
        test_big_call();
    }
    test_grid(full);
}

int main(int argc, char **argv)
{
    int full = 0;
    for (int x = 1; x < argc; x++) {
        if (!strcmp(argv[x], "--full")) full = 1;
        else if (!strcmp(argv[x], "--quick")) g_quick = 1;
        else if (!strcmp(argv[x], "-v")) g_verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--full | --quick] [-v]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const double t0 = tc_now();
    /* The CPU plans' kernel, as MLA_CPU_KERNEL (the caller's, untouched) picks it: by default
     * the first of AMX, AVX512-BF16, AVX-512 FMA and AVX2 FMA (src/cpu_amx.c, cpu_avx512bf16.c,
     * cpu_avx512.c, cpu_avx2.c) that runs here, else the C reference; fp16 plans always run the reference. With
     * MLA_CPU_KERNEL unset, every other kernel that runs here is run again afterwards (corner
     * groups and the quick grid), so each meets the oracle; with it set, only that kernel runs. */
    tck_env env = tck_env_save();
    const int kernel = tck_decode_kernel();
    if (kernel < 0) {
        printf("CPU kernel of the bf16 plans: none (MLA_CPU_KERNEL=%s): %s\n", env.set ? env.value : "unset",
               mla_last_error());
        tc_expect(0, "a bf16 CPU plan: %s", mla_last_error());
        tck_env_restore(&env);
        return tc_summary();
    }
    printf("CPU kernel of the bf16 plans: %s, %s%s%s; fp16 plans: the C reference\n", tck_name(kernel),
           tck_what(kernel), env.set ? ", as MLA_CPU_KERNEL=" : ", the default", env.set ? env.value : "");
    run_groups(full);
    int others[TCK_MAX_KERNELS];
    const int n_others = env.set ? 0 : tck_other_kernels(kernel, others);
    for (int i = 0; i < n_others; i++) {
        printf("-- again with %s, %s (MLA_CPU_KERNEL=%s): corner groups, quick grid\n",
               tck_name(others[i]), tck_what(others[i]), tck_env_value(others[i]));
        setenv("MLA_CPU_KERNEL", tck_env_value(others[i]), 1);
        if (!tc_expect(tck_decode_kernel() == others[i], "MLA_CPU_KERNEL=%s: bf16 plans run %s",
                       tck_env_value(others[i]), tck_name(others[i])))
            continue;
        const int q = g_quick;
        g_quick = 1;
        run_groups(0);
        g_quick = q;
    }
    tck_env_restore(&env);
    printf("test_ref: %.1f s\n", tc_now() - t0);
    return tc_summary();
}
