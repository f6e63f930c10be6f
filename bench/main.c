/* main.c — mla-bench, the main job of mla.c: dense MLA decode over a paged KV cache, timed on the
 * local GPU by spec §7's protocol (CUDA graph replay, L2 flushed, median of >= 20), or on the
 * CPU path when there is no GPU, printed as µs, GB/s, TFLOPS and % of the measured copy and
 * GEMM ceilings next to FlashMLA's published H100 figures. See usage() or `mla-bench --help`. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mla-bench [options]\n"
        "Dense MLA decode (d_qk 576, d_v 512) through the public mla.h API, over a paged cache with\n"
        "shuffled pages and varlen lengths ~ N(s_k, s_k/2) (at least s_q), FlashMLA's formulas.\n"
        "Default: the spec section 7 grid on a CUDA GPU (27 cases), a small case on the CPU.\n\n"
        "  --device cpu|gpu|auto   where to run (auto: the GPU if the library has CUDA and one is visible)\n"
        "  --gpu N                 CUDA ordinal (default 0)\n"
        "  --case b,s_q,h_q,h_kv,s_k[,page][,causal][,varlen]\n"
        "                          one case (repeatable); causal/varlen are 0/1 or the words causal,\n"
        "                          fixed, varlen; defaults: page 64 (or --page), causal 0, varlen 1;\n"
        "                          the word mixed: per-request query lengths (cu_seqlens_q), each\n"
        "                          drawn from 1, 2, 4, ... up to s_q (s_q is the longest)\n"
        "  --mixed                 speculative-decoding batches: each case twice, with per-request\n"
        "                          query lengths (cu_seqlens_q; 1, 2 or 4 tokens at s_q 4) and with\n"
        "                          every request padded to s_q, and a footer comparing the two; without\n"
        "                          --case: b=128 s_k=8192 s_q=4 causal cases on the GPU (h_q 16-128,\n"
        "                          9 pairs; --quick 2), b=4 s_k=1024 (quick b=2 s_k=256) on the CPU\n"
        "  --grid                  the spec section 7 grid (also on the CPU: slow)\n"
        "  --quick                 fewer cases and runs: the 6 grid cases with L2-flushed FlashMLA\n"
        "                          figures on the GPU, b=2 s_k=256 on the CPU\n"
        "  --iters N               timed runs per case (GPU default 30, quick 20; CPU 5, quick 3)\n"
        "  --warmup N              untimed runs first (GPU default 5, CPU 1)\n"
        "  --page N                page size of the grid/default cases (default 64)\n"
        "  --dtype bf16|fp16       q / cache / out dtype (default bf16)\n"
        "  --kv-dtype bf16|fp8     fp8: dense FP8 cache and q (float8_e4m3fn, descales 1; out in --dtype),\n"
        "                          bytes counted with 1-byte q and cache; no FlashMLA reference columns\n"
        "  --json FILE, --csv FILE machine-readable results (plot: python3 bench/plot.py FILE.json)\n"
        "  --no-flush              GPU: no L2 flush between replays (FlashMLA's table was so measured)\n"
        "  --no-graph              GPU: time plain launches instead of CUDA graph replays\n"
        "  --reuse-schedule        GPU: compute the split-KV schedule once (mla_decode_schedule) and\n"
        "                          time calls with MLA_DECODE_REUSE_SCHEDULE (one schedule shared by\n"
        "                          all layers of a step; spec section 7 times the whole call)\n"
        "  --no-ceilings           skip the copy / GEMM ceiling measurements\n"
        "  --threads N             CPU path worker threads (default: all cores)\n"
        "  --seed N                RNG seed of lengths, page shuffles and data (default 1)\n"
        "  --sparse-decode, --sparse-prefill, --sparse\n"
        "                          DeepSeek sparse attention instead (FP8 sparse decode / bf16 sparse\n"
        "                          prefill, bench/sparse.c): FlashMLA's cases on a GPU, cases scaled\n"
        "                          down for a CPU on the CPU path (device chosen as above); options\n"
        "                          there: --quick, --iters N (GPU 20; CPU 5, quick 3), --json FILE,\n"
        "                          --device cpu|gpu|auto, --threads N (CPU path),\n"
        "                          --prefill-case S_Q,S_KV,H_Q,TOPK,D_QK,flashmla|uniform (own rows)\n"
        "Environment: MLA_GIT_COMMIT overrides the commit printed (for trees without .git);\n"
        "             MLA_BENCH_WATCHDOG_S: a case still running after this many seconds stops the\n"
        "             run (default 120 on the GPU, off on the CPU; 0 off).\n"
        "Exit status: 0 all cases ran and were finite, 1 a case failed, 2 bad usage or no device,\n"
        "             3 the watchdog stopped a case.\n");
}

static int parse_int(const char *opt, const char *v, long long lo, long long *out)
{
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo) {
        fprintf(stderr, "mla-bench: %s wants an integer >= %lld, got '%s'\n", opt, lo, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

/* One option (with its value in `v` when it takes one); returns how many argv items it used,
 * or -1 on an error. */
static int parse_option(bench_options *o, const char *a, const char *v)
{
    long long x;
    if (!strcmp(a, "--grid"))
        o->grid = 1;
    else if (!strcmp(a, "--quick"))
        o->quick = 1;
    else if (!strcmp(a, "--no-flush"))
        o->flush = 0;
    else if (!strcmp(a, "--no-graph"))
        o->graph = 0;
    else if (!strcmp(a, "--reuse-schedule"))
        o->reuse_schedule = 1;
    else if (!strcmp(a, "--mixed"))
        o->mixed = 1;
    else if (!strcmp(a, "--no-ceilings"))
        o->ceilings = 0;
    else if (!strcmp(a, "--device")) {
        if (!v || (strcmp(v, "cpu") && strcmp(v, "gpu") && strcmp(v, "auto"))) {
            fprintf(stderr, "mla-bench: --device wants cpu, gpu or auto\n");
            return -1;
        }
        o->device = !strcmp(v, "cpu") ? BENCH_CPU : !strcmp(v, "gpu") ? BENCH_GPU : BENCH_AUTO;
        return 2;
    } else if (!strcmp(a, "--dtype")) {
        if (!v || (strcmp(v, "bf16") && strcmp(v, "fp16"))) {
            fprintf(stderr, "mla-bench: --dtype wants bf16 or fp16\n");
            return -1;
        }
        o->dtype = !strcmp(v, "fp16") ? MLA_DTYPE_FP16 : MLA_DTYPE_BF16;
        return 2;
    } else if (!strcmp(a, "--kv-dtype")) {
        if (!v || (strcmp(v, "fp8") && strcmp(v, "same") && strcmp(v, "bf16") && strcmp(v, "fp16"))) {
            fprintf(stderr, "mla-bench: --kv-dtype wants fp8, or same (= bf16 / fp16: the --dtype cache)\n");
            return -1;
        }
        o->kv_fp8 = !strcmp(v, "fp8");
        return 2;
    } else if (!strcmp(a, "--json") || !strcmp(a, "--csv")) {
        if (!v) {
            fprintf(stderr, "mla-bench: %s wants a file name\n", a);
            return -1;
        }
        *(a[2] == 'j' ? &o->json_path : &o->csv_path) = v;
        return 2;
    } else if (!strcmp(a, "--case")) {
        char err[256];
        if (o->num_cases >= BENCH_MAX_CASES) {
            fprintf(stderr, "mla-bench: at most %d --case options\n", BENCH_MAX_CASES);
            return -1;
        }
        if (!v || bench_parse_case(v, 0, &o->cases[o->num_cases], err, sizeof err)) {
            fprintf(stderr, "mla-bench: %s\n", v ? err : "--case wants b,s_q,h_q,h_kv,s_k");
            return -1;
        }
        o->num_cases++;
        return 2;
    } else {
        static const char *ints[] = {"--iters", "--warmup", "--page", "--gpu", "--threads", "--seed"};
        static const long long lows[] = {1, 0, 1, 0, 0, 0};
        for (int i = 0; i < 6; i++) {
            if (strcmp(a, ints[i]))
                continue;
            if (parse_int(a, v, lows[i], &x))
                return -1;
            int *dst[] = {&o->iters, &o->warmup, NULL, &o->gpu, &o->threads, NULL};
            if (i == 2)
                o->page = x;
            else if (i == 5)
                o->seed = (uint64_t)x;
            else
                *dst[i] = (int)x;
            return 2;
        }
        fprintf(stderr, "mla-bench: unknown option '%s' (try --help)\n", a);
        return -1;
    }
    return 1;
}

static int parse_args(bench_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->device = BENCH_AUTO;
    o->dtype = MLA_DTYPE_BF16;
    o->flush = o->graph = o->ceilings = 1;
    o->warmup = -1;
    o->seed = 1;
    for (int i = 1; i < argc;) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            exit(0);
        }
        int used = parse_option(o, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (used < 0)
            return -1;
        i += used;
    }
    if (!o->page)
        o->page = 64;
    for (int i = 0; i < o->num_cases; i++)
        if (!o->cases[i].page)
            o->cases[i].page = o->page;
    return 0;
}

/* Picks the device, fills env (ceilings included); 0 on success. */
static int choose_device(bench_env *env, const bench_options *o)
{
    char why[256] = "";
    memset(env, 0, sizeof *env);
    int gpu_ok = o->device != BENCH_CPU && bench_gpu_available(o->gpu, why, sizeof why);
    if (o->device == BENCH_GPU && !gpu_ok) {
        fprintf(stderr, "mla-bench: --device gpu: %s\n", why);
        return -1;
    }
    if (gpu_ok) {
        char err[BENCH_ERR_LEN];
        if (bench_gpu_env(env, o, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "mla-bench: GPU %d setup failed: %s\n", o->gpu, err);
        return -1;
    }
    snprintf(env->fallback_note, sizeof env->fallback_note, "%s",
             o->device == BENCH_CPU ? "--device cpu" : why);
    bench_cpu_env(env, o);
    return 0;
}

static int build_cases(bench_case *cases, const bench_options *o, const bench_env *env)
{
    int n = 0;
    if (o->mixed && !o->num_cases && !o->grid)
        n = bench_mixed_cases(cases, BENCH_MAX_CASES, o->quick, o->page, env->is_gpu);
    else if (o->grid || (!o->num_cases && env->is_gpu))
        n = bench_grid_cases(cases, BENCH_MAX_CASES, o->quick, o->page);
    else if (!o->num_cases)
        n = bench_cpu_cases(cases, BENCH_MAX_CASES, o->quick, o->page);
    for (int i = 0; i < o->num_cases && n < BENCH_MAX_CASES; i++)
        cases[n++] = o->cases[i];
    for (int i = 0; i < n; i++)
        cases[i].kv_fp8 = o->kv_fp8;
    if (o->mixed && (o->num_cases || o->grid)) { /* each case as a pair: mixed, then padded */
        static bench_case pairs[BENCH_MAX_CASES];
        int m = 0;
        for (int i = 0; i < n && m + 2 <= BENCH_MAX_CASES; i++) {
            if (cases[i].s_q < 2) /* nothing to mix */
                continue;
            pairs[m] = cases[i];
            pairs[m++].qmix = 1;
            pairs[m] = cases[i];
            pairs[m++].qmix = 0;
        }
        memcpy(cases, pairs, (size_t)m * sizeof *cases);
        n = m;
    }
    return n;
}

static void progress(int i, int n, const bench_case *c, int done)
{
    static int tty = -1;
    if (n < 2)
        return;
    if (tty < 0)
        tty = isatty(2);
    if (done) {
        if (tty)
            fprintf(stderr, "\r\033[K");
        return;
    }
    char label[128];
    bench_case_label(c, label, sizeof label);
    fprintf(stderr, tty ? "\r\033[K[%d/%d] %s ..." : "[%d/%d] %s ...\n", i + 1, n, label);
    fflush(stderr);
}

static int write_outputs(const bench_options *o, const bench_env *env, const bench_result *res, int n)
{
    int rc = 0;
    if (o->json_path && bench_write_json(o->json_path, env, o, res, n)) {
        fprintf(stderr, "mla-bench: cannot write %s\n", o->json_path);
        rc = 1;
    }
    if (o->csv_path && bench_write_csv(o->csv_path, env, o, res, n)) {
        fprintf(stderr, "mla-bench: cannot write %s\n", o->csv_path);
        rc = 1;
    }
    return rc;
}

/* builds with MLA_DEFS=-DFT_DIAG=3 (kernels/decode_fp8t.cu's phase clocks) define mla_k_fp8t_diag; other
 * builds do not, and the weak reference stays null */
extern int mla_k_fp8t_diag(unsigned out[24]) __attribute__((weak));
static void print_fp8t_diag(void) {
    unsigned h[24];
    if (!mla_k_fp8t_diag || mla_k_fp8t_diag(h) != 0) return;
    for (int r = 0; r < 3; r++) {
        const unsigned *x = h + 8 * r, nt = x[0] ? x[0] : 1;
        printf("FTDIAG role %d tiles %u rescale %u | cycles per tile: %u %u %u %u %u\n", r, x[0], x[1], x[2] / nt,
               x[3] / nt, x[4] / nt, x[5] / nt, x[6] / nt);
    }
}

int main(int argc, char **argv)
{
    static bench_options o;
    static bench_case cases[BENCH_MAX_CASES];
    static bench_result res[BENCH_MAX_CASES];
    bench_env env;
    if (bench_sparse_wanted(argc, argv)) /* --sparse-decode / --sparse-prefill: bench/sparse.c */
        return bench_sparse_main(argc, argv);
    if (parse_args(&o, argc, argv))
        return 2;
    if (choose_device(&env, &o))
        return 2;
    if (!o.iters)
        o.iters = env.is_gpu ? (o.quick ? 20 : 30) : (o.quick ? 3 : 5);
    if (o.warmup < 0)
        o.warmup = env.is_gpu ? 5 : 1;
    int n = build_cases(cases, &o, &env);
    if (!n) {
        fprintf(stderr, "mla-bench: --mixed: no case with s_q >= 2 (nothing to mix)\n");
        return 2;
    }
    if (bench_watchdog_start(env.is_gpu) < 0)
        return 2;
    bench_print_header(stdout, &env, &o, n);
    bench_print_table_header(stdout, &env);
    fflush(stdout);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        bench_result *r = &res[i];
        memset(r, 0, sizeof *r);
        r->c = cases[i];
        r->nonfinite = -1;
        r->ref = cases[i].kv_fp8 || cases[i].qmix ? NULL : bench_find_ref(&cases[i], o.dtype); /* FlashMLA: bf16, fixed s_q */
        progress(i, n, &cases[i], 0);
        {
            char label[128], what[160];
            bench_case_label(&cases[i], label, sizeof label);
            snprintf(what, sizeof what, "case %d/%d (%s)", i + 1, n, label);
            bench_watchdog_arm(what);
        }
        if (env.is_gpu)
            bench_gpu_run(&env, &o, &cases[i], r);
        else
            bench_cpu_run(&env, &o, &cases[i], r);
        bench_watchdog_disarm();
        progress(i, n, &cases[i], 1);
        bench_print_row(stdout, r);
        fflush(stdout);
        failed += !r->ok || r->nonfinite > 0;
        char err[BENCH_ERR_LEN];
        if (env.is_gpu && !r->ok && bench_gpu_broken(err, sizeof err)) {
            fprintf(stdout, "stopping: %s\n", err);
            n = i + 1;
            break;
        }
    }
    bench_print_footer(stdout, &env, &o, res, n);
    int wrc = write_outputs(&o, &env, res, n);
    if (env.is_gpu) {
        print_fp8t_diag();
        bench_gpu_shutdown();
    }
    return failed || wrc ? 1 : 0;
}
