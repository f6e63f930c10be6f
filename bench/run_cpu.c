/* run_cpu.c — the CPU path of mla-bench: wall-clock median of a few mla_decode calls on host
 * buffers, and a single-threaded memcpy copy ceiling (there is no GEMM ceiling on the CPU). */
#include "bench.h"
#include "internal.h" /* plan->cpu_kernel */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static void cpu_model_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon)
            continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = 0;
        snprintf(buf, n, "%s", colon);
        break;
    }
    fclose(f);
}

/* memcpy of a 128 MiB buffer, bytes read + written, median of 5 after a warm-up. */
static double cpu_copy_gbs(void)
{
    const size_t bytes = (size_t)128 << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    double t[5], gbs = 0;
    if (a && b) {
        memset(a, 1, bytes);
        memset(b, 2, bytes);
        memcpy(b, a, bytes);
        for (int i = 0; i < 5; i++) {
            double t0 = now_us();
            memcpy(i % 2 ? a : b, i % 2 ? b : a, bytes);
            t[i] = now_us() - t0;
        }
        gbs = 2.0 * (double)bytes / (bench_median(t, 5) * 1e-6) / 1e9;
    }
    free(a);
    free(b);
    return gbs;
}

void bench_cpu_env(bench_env *env, const bench_options *o)
{
    env->is_gpu = 0;
    env->device = MLA_DEVICE_CPU;
    cpu_model_name(env->name, sizeof env->name);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    env->cpu_cores = cores > 0 ? (int)cores : 1;
    env->gemm_tflops = 0;
    snprintf(env->gemm_note, sizeof env->gemm_note, "no GEMM ceiling on the CPU");
    if (o->ceilings) {
        env->copy_gbs = cpu_copy_gbs();
        snprintf(env->copy_note, sizeof env->copy_note,
                 "single-thread memcpy of 128 MiB, bytes read + written, median of 5");
    } else {
        snprintf(env->copy_note, sizeof env->copy_note, "not measured (--no-ceilings)");
    }
}

typedef struct cpu_buffers {
    uint16_t *q, *k, *out;
    float *lse;
    void *ws;
} cpu_buffers;

static void cpu_buffers_free(cpu_buffers *b)
{
    free(b->q);
    free(b->k);
    free(b->out);
    free(b->lse);
    free(b->ws);
}

/* Random q and cache; the rows past each length are NaN, as spec §6 poisons them. */
static int cpu_buffers_fill(cpu_buffers *b, const bench_case *c, const bench_layout *lay,
                            mla_dtype dtype, bench_rng *rng)
{
    size_t row = (size_t)(c->h_kv * BENCH_D_QK);
    size_t nq = (size_t)(c->b * c->s_q * c->h_q) * BENCH_D_QK;
    size_t nk = (size_t)(lay->num_pages * c->page) * row;
    size_t no = (size_t)(c->b * c->s_q * c->h_q) * BENCH_D_V, nl = (size_t)(c->b * c->h_q * c->s_q);
    b->q = malloc(nq * 2);
    b->k = malloc(nk * 2);
    b->out = calloc(no, 2); /* zeros: rows past a request's query length are never written */
    b->lse = calloc(nl, sizeof(float));
    if (!b->q || !b->k || !b->out || !b->lse)
        return -1;
    if (c->kv_fp8) { /* e4m3 codes (1 byte per element); 0x7f is NaN */
        bench_fill_fp8((uint8_t *)b->q, nq, rng);
        bench_fill_fp8((uint8_t *)b->k, nk, rng);
        for (int64_t i = 0; i < c->b; i++) {
            int64_t page, first, rows = bench_tail_rows(c, lay, i, &page, &first);
            if (rows)
                memset((uint8_t *)b->k + (size_t)(page * c->page + first) * row, 0x7f, (size_t)rows * row);
        }
        return 0;
    }
    bench_fill_random(b->q, nq, dtype, rng);
    bench_fill_random(b->k, nk, dtype, rng);
    uint16_t nan = bench_nan_bits(dtype);
    for (int64_t i = 0; i < c->b; i++) {
        int64_t page, first, rows = bench_tail_rows(c, lay, i, &page, &first);
        uint16_t *p = b->k + (size_t)(page * c->page + first) * row;
        for (size_t j = 0; j < (size_t)rows * row; j++)
            p[j] = nan;
    }
    return 0;
}

static void set_api_error(bench_result *r, const char *what, mla_status st)
{
    snprintf(r->error, sizeof r->error, "%s: %s: %s", what, mla_status_string(st), mla_last_error());
}

void bench_cpu_run(const bench_env *env, const bench_options *o, const bench_case *c,
                   bench_result *r)
{
    bench_rng rng;
    bench_layout lay;
    cpu_buffers buf = {0};
    mla_decode_plan_t plan = NULL;
    double *t = NULL;
    mla_status st;
    r->timing = "wall clock";
    bench_rng_seed(&rng, bench_case_seed(c, o->seed));
    if (bench_layout_build(&lay, c, &rng)) {
        snprintf(r->error, sizeof r->error, "out of host memory (layout)");
        return;
    }
    r->mean_sk = lay.mean_sk;
    r->max_sk = lay.max_sk;
    r->num_pages = lay.num_pages;
    r->total_q = lay.total_q;
    r->qk_sum = lay.qk_sum;
    if (cpu_buffers_fill(&buf, c, &lay, o->dtype, &rng)) {
        snprintf(r->error, sizeof r->error, "out of host memory (buffers)");
        goto done;
    }
    mla_decode_shape shape = bench_make_shape(c, o->dtype, o->threads);
    if ((st = mla_decode_plan_create(&plan, &shape, MLA_DEVICE_CPU)) != MLA_OK) {
        set_api_error(r, "mla_decode_plan_create", st);
        goto done;
    }
    size_t ws = 0;
    if ((st = mla_decode_workspace_size(plan, &ws)) != MLA_OK) {
        set_api_error(r, "mla_decode_workspace_size", st);
        goto done;
    }
    r->workspace_bytes = ws;
    mla_decode_plan_info(plan, NULL, &r->num_sm_parts);
    if (ws && !(buf.ws = aligned_alloc(256, (ws + 255) / 256 * 256))) {
        snprintf(r->error, sizeof r->error, "out of host memory (workspace)");
        goto done;
    }
    mla_decode_args a = bench_make_args(c, &lay, buf.q, buf.k, lay.block_table, lay.seqlens,
                                        buf.out, buf.lse);
    a.cu_seqlens_q = lay.cu_seqlens_q; /* NULL unless c->qmix */
    static const float one = 1.0f;
    if (c->kv_fp8)
        a.descale_q = a.descale_k = &one;
    int iters = o->iters;
    t = malloc((size_t)iters * sizeof *t);
    if (!t)
        goto done;
    for (int i = -o->warmup; i < iters; i++) {
        double t0 = now_us();
        if ((st = mla_decode(plan, &a, buf.ws, ws, NULL)) != MLA_OK) {
            set_api_error(r, "mla_decode", st);
            goto done;
        }
        if (i >= 0)
            t[i] = now_us() - t0;
    }
    size_t no = (size_t)(c->b * c->s_q * c->h_q) * BENCH_D_V, nl = (size_t)(c->b * c->h_q * c->s_q);
    r->nonfinite = bench_count_nonfinite_half(buf.out, no, o->dtype) +
                   bench_count_bad_lse(buf.lse, nl) + bench_count_pad_written(c, &lay, buf.out, buf.lse);
    bench_finish_result(r, env, t, iters);
done:
    free(t);
    mla_decode_plan_destroy(plan);
    cpu_buffers_free(&buf);
    bench_layout_free(&lay);
}

const char *bench_cpu_kernel_name(const bench_options *o)
{
    mla_decode_shape s = mla_decode_shape_default();
    s.b = 1; s.s_q = 1; s.h_q = 16; s.h_kv = 1; s.page_size = 64;
    s.dtype = o->dtype;
    if (o->kv_fp8) s.kv_dtype = s.q_dtype = MLA_DTYPE_FP8_E4M3;
    mla_decode_plan_t p = NULL;
    if (mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU) != MLA_OK) return "unknown (no CPU plan)";
    const int kernel = p->cpu_kernel;
    mla_decode_plan_destroy(p);
    const mla_cpu_path *cp = mla_cpu_path_of(kernel);
    return cp ? cp->what : "C reference (ref/mla_ref.c)";
}
