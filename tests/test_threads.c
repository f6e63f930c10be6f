/* test_threads.c — thread safety of the C API (issue 8).
 *
 * CPU (always runs):
 *  1. shared plan: T threads share one CPU plan and call mla_decode concurrently, each on its
 *     own problem (different lengths, data, block tables), several rounds; every result must
 *     be byte-identical to a serial run of the same problem, and the serial results match the
 *     fp64 oracle (tests/common.h) within spec §6 tolerances.
 *  2. bad neighbours: while half the threads decode valid problems on the shared plan, the
 *     other half send invalid ones (negative length, out-of-range page, NULL out); the valid
 *     results stay byte-identical, the invalid calls fail with MLA_ERR_INVALID_ARGUMENT and
 *     leave their outputs untouched.
 *  3. concurrent plan create / workspace_size / plan_info / destroy (many plans, many threads).
 *  4. thread-local errors: every thread fails a call with a message naming its own values
 *     ("h_q (N) is not divisible by h_kv (2)", N unique per thread) in lockstep with the
 *     others; each thread must read back its own message.
 *  7. (run after 4) one sparse decode plan (V32 FP8 cache) shared by T threads, each result
 *     byte-identical to a serial run.
 *  8. a caller thread with a 192 KB stack (the calling thread joins the workers only when its
 *     stack has room) gets the main thread's bytes with 1 and 2 worker threads.
 *  9. fork() after the worker pool ran: the child's calls work (a fresh pool) and match the
 *     parent's bytes; the parent's pool works afterwards.
 * GPU (only when the library has CUDA and a GPU is visible; else reported as skipped):
 *  5. several streams at once on one device, each stream driven by its own host thread with its
 *     own workspace and outputs, all sharing one GPU plan; results vs the CPU plan (tolerances)
 *     and identical bytes for the same problem on every stream of a device;
 *  6. with two or more GPUs: one plan per device, both devices at once from two host threads,
 *     with device 0 current in both threads (a plan must run on its own device).
 * Exit: 0 / 1 by the CPU result (the GPU part, when it runs, counts too); 77 never (the CPU
 * part always runs). Last line: "<N> passed, <M> failed".
 *
 * Run under ThreadSanitizer by tests/sanitize.sh (data races in the library fail it).
 */
#include "common.h"
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef MLA_WITH_CUDA
#include <cuda_runtime.h>
#endif

#define NT 8          /* threads */
#define ROUNDS 4      /* decode calls per thread and problem */

static int quick_mode(void) { return getenv("MLA_TEST_QUICK") != NULL; }

/* ---------------------------------------------------------------------------------------- */
/* Problems                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* One shape class for every problem (so one plan serves them all); different data. */
static tc_config problem_config(int t)
{
    tc_config c = tc_config_default();
    c.b = 3;
    c.s_q = 2;
    c.h_q = 16;
    c.h_kv = 1;
    c.s_k = quick_mode() ? 40 : 100 + 37 * t;
    c.page_size = 64;
    c.causal = 1;
    c.varlen = 1;
    c.cu_seqlens_q = t % 3 == 1;
    c.strided = t % 2;
    c.seed = 1000 + (uint64_t)t;
    return c;
}

typedef struct problem {
    tc_case c;
    uint16_t *serial_out;
    float *serial_lse;
} problem;

static pthread_barrier_t barrier;

/* ---------------------------------------------------------------------------------------- */
/* 1 + 2: one shared CPU plan                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct worker_arg {
    int t;
    mla_decode_plan_t plan;
    problem *p;
    int bad_kind;       /* 0: valid; 1: negative length; 2: page out of range; 3: NULL out */
    int mismatches;     /* valid calls whose bytes differ from the serial run            */
    int wrong_status;   /* calls that returned the wrong status                          */
    int clobbered;      /* invalid calls that wrote into out / lse                       */
    int empty_message;  /* invalid calls with an empty mla_last_error()                  */
} worker_arg;

static void *decode_worker(void *vp)
{
    worker_arg *w = (worker_arg *)vp;
    tc_case *c = &w->p->c;
    mla_decode_args a = c->args;
    int32_t *seq = NULL, *bt = NULL;
    if (w->bad_kind == 1 || w->bad_kind == 2) { /* private copies: the valid case stays intact */
        seq = (int32_t *)malloc((size_t)c->cfg.b * 4);
        bt = (int32_t *)malloc((size_t)c->bt_elems * 4);
        memcpy(seq, c->seqlens, (size_t)c->cfg.b * 4);
        memcpy(bt, c->block_table, (size_t)c->bt_elems * 4);
        if (w->bad_kind == 1) seq[c->cfg.b - 1] = -5;
        else {
            int64_t i = 0;
            while (i < c->cfg.b - 1 && c->seqlens[i] == 0) i++;
            seq[i] = seq[i] > 0 ? seq[i] : 1;
            bt[i * c->args.block_table_stride] = (int32_t)c->num_pages; /* first page: past the end */
        }
        a.cache_seqlens = seq;
        a.block_table = bt;
    }
    if (w->bad_kind == 3) a.out = NULL;
    pthread_barrier_wait(&barrier);
    for (int r = 0; r < ROUNDS; r++) {
        tc_case_poison(c);
        mla_status st = mla_decode(w->plan, &a, NULL, 0, NULL);
        if (w->bad_kind == 0) {
            if (st != MLA_OK) { w->wrong_status++; continue; }
            if (memcmp(c->out, w->p->serial_out, (size_t)c->out_elems * 2) ||
                memcmp(c->lse, w->p->serial_lse, (size_t)c->lse_elems * 4))
                w->mismatches++;
        } else {
            if (st != MLA_ERR_INVALID_ARGUMENT) w->wrong_status++;
            if (!mla_last_error()[0]) w->empty_message++;
            for (int64_t x = 0; x < c->out_elems; x++)
                if (c->out[x] != TC_POISON_HALF) { w->clobbered++; break; }
            for (int64_t x = 0; x < c->lse_elems; x++)
                if (mla_f32_bits(c->lse[x]) != 0x7fc00123u) { w->clobbered++; break; }
        }
    }
    free(seq);
    free(bt);
    return NULL;
}

static int build_problems(problem *ps, int n, mla_decode_plan_t plan, int check_oracle)
{
    for (int t = 0; t < n; t++) {
        tc_config cfg = problem_config(t);
        if (tc_case_build(&ps[t].c, &cfg) != 0) return -1;
        mla_status st = mla_decode(plan, &ps[t].c.args, NULL, 0, NULL);
        if (!tc_expect(st == MLA_OK, "serial decode of problem %d: %s", t, mla_last_error()))
            return -1;
        ps[t].serial_out = (uint16_t *)malloc((size_t)ps[t].c.out_elems * 2);
        ps[t].serial_lse = (float *)malloc((size_t)ps[t].c.lse_elems * 4);
        memcpy(ps[t].serial_out, ps[t].c.out, (size_t)ps[t].c.out_elems * 2);
        memcpy(ps[t].serial_lse, ps[t].c.lse, (size_t)ps[t].c.lse_elems * 4);
        if (check_oracle) {
            const tc_config *g = &ps[t].c.cfg;
            double *ro = (double *)malloc(sizeof(double) * (size_t)(g->b * g->s_q * g->h_q * g->d_v));
            double *rl = (double *)malloc(sizeof(double) * (size_t)(g->b * g->h_q * g->s_q));
            tc_report orr, lr;
            tc_naive_decode(&ps[t].c, ro, rl);
            int ok = tc_compare_case(&ps[t].c, ro, rl, &orr, &lr);
            if (!tc_expect(ok, "problem %d: serial CPU result vs fp64 oracle", t)) {
                tc_print_report("out", &orr);
                tc_print_report("lse", &lr);
            }
            free(ro);
            free(rl);
        }
    }
    return 0;
}

static void free_problems(problem *ps, int n)
{
    for (int t = 0; t < n; t++) {
        tc_case_free(&ps[t].c);
        free(ps[t].serial_out);
        free(ps[t].serial_lse);
    }
}

static void test_shared_plan(int cpu_threads, int with_bad)
{
    printf("-- shared CPU plan (cpu_threads=%d), %d threads x %d calls%s\n", cpu_threads, NT, ROUNDS,
           with_bad ? ", half of them invalid" : "");
    tc_config cfg0 = problem_config(0);
    tc_case c0;
    tc_case_build(&c0, &cfg0);
    c0.shape.cpu_threads = cpu_threads;
    mla_decode_plan_t plan = NULL;
    if (!tc_expect(mla_decode_plan_create(&plan, &c0.shape, MLA_DEVICE_CPU) == MLA_OK,
                   "plan create: %s", mla_last_error())) {
        tc_case_free(&c0);
        return;
    }
    tc_case_free(&c0);
    problem ps[NT];
    memset(ps, 0, sizeof ps);
    if (build_problems(ps, NT, plan, !with_bad) != 0) {
        tc_expect(0, "building the problems");
        free_problems(ps, NT);
        mla_decode_plan_destroy(plan);
        return;
    }
    pthread_t th[NT];
    worker_arg w[NT];
    pthread_barrier_init(&barrier, NULL, NT);
    for (int t = 0; t < NT; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].t = t;
        w[t].plan = plan;
        w[t].p = &ps[t];
        w[t].bad_kind = with_bad && (t % 2) ? 1 + (t / 2) % 3 : 0;
        pthread_create(&th[t], NULL, decode_worker, &w[t]);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    for (int t = 0; t < NT; t++) {
        const char *kind = w[t].bad_kind == 0 ? "valid" : w[t].bad_kind == 1 ? "negative length"
                         : w[t].bad_kind == 2 ? "page out of range" : "NULL out";
        tc_expect(w[t].wrong_status == 0, "thread %d (%s): %d calls returned the wrong status", t,
                  kind, w[t].wrong_status);
        if (w[t].bad_kind == 0)
            tc_expect(w[t].mismatches == 0, "thread %d: %d of %d concurrent results differ from "
                      "the serial run", t, w[t].mismatches, ROUNDS);
        else {
            tc_expect(w[t].clobbered == 0, "thread %d (%s): a failed call wrote output", t, kind);
            tc_expect(w[t].empty_message == 0, "thread %d (%s): empty error message", t, kind);
        }
    }
    free_problems(ps, NT);
    tc_expect(mla_decode_plan_destroy(plan) == MLA_OK, "plan destroy");
}

/* ---------------------------------------------------------------------------------------- */
/* 3: concurrent plan create / destroy                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct churn_arg { int t; int failures; int decodes; } churn_arg;

static void *churn_worker(void *vp)
{
    churn_arg *w = (churn_arg *)vp;
    const int iters = quick_mode() ? 50 : 300;
    tc_config cfg = tc_config_default();
    cfg.b = 1; cfg.s_k = 20; cfg.h_q = 2; cfg.page_size = 16; cfg.seed = 77 + (uint64_t)w->t;
    tc_case c;
    if (tc_case_build(&c, &cfg) != 0) { w->failures++; return NULL; }
    pthread_barrier_wait(&barrier);
    for (int it = 0; it < iters; it++) {
        mla_decode_shape s = c.shape;
        s.cpu_threads = 1 + (it + w->t) % 2;
        mla_decode_plan_t plans[4] = {NULL, NULL, NULL, NULL};
        for (int k = 0; k < 4; k++)
            if (mla_decode_plan_create(&plans[k], &s, MLA_DEVICE_CPU) != MLA_OK) w->failures++;
        for (int k = 0; k < 4; k++) {
            size_t ws = 1;
            int dev = 0, parts = 0;
            /* CPU plans: the optional key-split workspace, by the rule (0 for the reference) */
            const size_t want = plans[k] && plans[k]->cpu_kernel != MLA_CPU_KERNEL_REF
                                    ? mla_cpu_split_workspace(&plans[k]->shape) : 0;
            if (mla_decode_workspace_size(plans[k], &ws) != MLA_OK || ws != want) w->failures++;
            if (mla_decode_plan_info(plans[k], &dev, &parts) != MLA_OK || dev != MLA_DEVICE_CPU ||
                parts != 1)
                w->failures++;
        }
        if (it % 10 == 0) {
            if (mla_decode(plans[it % 4], &c.args, NULL, 0, NULL) != MLA_OK) w->failures++;
            w->decodes++;
        }
        for (int k = 3; k >= 0; k--)
            if (mla_decode_plan_destroy(plans[k]) != MLA_OK) w->failures++;
    }
    tc_case_free(&c);
    return NULL;
}

static void test_plan_churn(void)
{
    printf("-- concurrent plan create / destroy, %d threads\n", NT);
    pthread_t th[NT];
    churn_arg w[NT];
    pthread_barrier_init(&barrier, NULL, NT);
    for (int t = 0; t < NT; t++) {
        w[t] = (churn_arg){t, 0, 0};
        pthread_create(&th[t], NULL, churn_worker, &w[t]);
    }
    int fails = 0, decodes = 0;
    for (int t = 0; t < NT; t++) {
        pthread_join(th[t], NULL);
        fails += w[t].failures;
        decodes += w[t].decodes;
    }
    pthread_barrier_destroy(&barrier);
    tc_expect(fails == 0, "plan churn: %d failed calls (create/size/info/decode/destroy)", fails);
    tc_expect(decodes > 0, "plan churn ran decodes (%d)", decodes);
}

/* ---------------------------------------------------------------------------------------- */
/* 4: thread-local error messages                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct err_arg { int t; int wrong; int rounds; } err_arg;

static void *error_worker(void *vp)
{
    err_arg *w = (err_arg *)vp;
    const int rounds = quick_mode() ? 50 : 200;
    for (int r = 0; r < rounds; r++) {
        mla_decode_shape s = mla_decode_shape_default();
        s.h_kv = 2;
        s.h_q = 1001 + 2 * (w->t * 1000 + r); /* odd: not divisible by 2; unique per thread */
        mla_decode_plan_t plan = NULL;
        mla_status st = mla_decode_plan_create(&plan, &s, MLA_DEVICE_CPU);
        char want[64];
        snprintf(want, sizeof want, "h_q (%lld)", (long long)s.h_q);
        pthread_barrier_wait(&barrier); /* everyone has failed; now everyone reads */
        if (st != MLA_ERR_INVALID_ARGUMENT || plan != NULL || !strstr(mla_last_error(), want))
            w->wrong++;
        pthread_barrier_wait(&barrier); /* everyone has read before the next round fails */
        w->rounds++;
    }
    return NULL;
}

static void test_thread_local_errors(void)
{
    printf("-- thread-local mla_last_error, %d threads in lockstep\n", NT);
    pthread_t th[NT];
    err_arg w[NT];
    pthread_barrier_init(&barrier, NULL, NT);
    for (int t = 0; t < NT; t++) {
        w[t] = (err_arg){t, 0, 0};
        pthread_create(&th[t], NULL, error_worker, &w[t]);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    for (int t = 0; t < NT; t++)
        tc_expect(w[t].wrong == 0, "thread %d read a message that is not its own in %d of %d rounds",
                  t, w[t].wrong, w[t].rounds);
    /* the main thread's own message is untouched by all of that */
    mla_decode_plan_t plan = NULL;
    mla_decode_shape s = mla_decode_shape_default();
    s.b = 0;
    mla_decode_plan_create(&plan, &s, MLA_DEVICE_CPU);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", mla_last_error());
    pthread_barrier_init(&barrier, NULL, NT);
    for (int t = 0; t < NT; t++) pthread_create(&th[t], NULL, error_worker, &w[t]);
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    tc_expect(strcmp(mine, mla_last_error()) == 0 && strstr(mine, "b (0)") != NULL,
              "main thread's message changed under other threads' failures: \"%s\" -> \"%s\"",
              mine, mla_last_error());
}

/* ---------------------------------------------------------------------------------------- */
/* 5 + 6: GPU streams and devices                                                            */
/* ---------------------------------------------------------------------------------------- */

#ifdef MLA_WITH_CUDA
#define NS 4 /* streams (and host threads) per device */

typedef struct dev_case {
    void *q, *k, *out, *ws;
    float *lse;
    int32_t *bt, *seq, *cu;
    size_t ws_bytes;
} dev_case;

static int dev_case_upload(dev_case *d, const tc_case *c, size_t ws_bytes)
{
    memset(d, 0, sizeof *d);
    int ok = cudaMalloc(&d->q, (size_t)c->q_elems * 2) == cudaSuccess &&
             cudaMalloc(&d->k, (size_t)c->k_elems * 2) == cudaSuccess &&
             cudaMalloc(&d->out, (size_t)c->out_elems * 2) == cudaSuccess &&
             cudaMalloc((void **)&d->lse, (size_t)c->lse_elems * 4) == cudaSuccess &&
             cudaMalloc((void **)&d->bt, (size_t)c->bt_elems * 4) == cudaSuccess &&
             cudaMalloc((void **)&d->seq, (size_t)c->cfg.b * 4) == cudaSuccess &&
             (!c->cu_seqlens_q || cudaMalloc((void **)&d->cu, (size_t)(c->cfg.b + 1) * 4) == cudaSuccess) &&
             (ws_bytes == 0 || cudaMalloc(&d->ws, ws_bytes) == cudaSuccess);
    d->ws_bytes = ws_bytes;
    ok = ok && cudaMemcpy(d->q, c->q, (size_t)c->q_elems * 2, cudaMemcpyHostToDevice) == cudaSuccess &&
         cudaMemcpy(d->k, c->k_cache, (size_t)c->k_elems * 2, cudaMemcpyHostToDevice) == cudaSuccess &&
         cudaMemcpy(d->bt, c->block_table, (size_t)c->bt_elems * 4, cudaMemcpyHostToDevice) == cudaSuccess &&
         cudaMemcpy(d->seq, c->seqlens, (size_t)c->cfg.b * 4, cudaMemcpyHostToDevice) == cudaSuccess &&
         (!c->cu_seqlens_q || cudaMemcpy(d->cu, c->cu_seqlens_q, (size_t)(c->cfg.b + 1) * 4,
                                          cudaMemcpyHostToDevice) == cudaSuccess) &&
         cudaMemset(d->out, 0xFF, (size_t)c->out_elems * 2) == cudaSuccess &&
         cudaMemset(d->lse, 0xFF, (size_t)c->lse_elems * 4) == cudaSuccess;
    return ok ? 0 : -1;
}

static void dev_case_free(dev_case *d)
{
    cudaFree(d->q); cudaFree(d->k); cudaFree(d->out); cudaFree(d->lse);
    cudaFree(d->bt); cudaFree(d->seq); cudaFree(d->cu); cudaFree(d->ws);
    memset(d, 0, sizeof *d);
}

static mla_decode_args dev_args(const tc_case *c, const dev_case *d)
{
    mla_decode_args a = c->args;
    a.q = d->q; a.k_cache = d->k; a.out = d->out; a.lse = d->lse;
    a.block_table = d->bt; a.cache_seqlens = d->seq; a.cu_seqlens_q = c->cu_seqlens_q ? d->cu : NULL;
    return a;
}

/* GPU problems: same shape class, unpadded strides (the GPU needs 8-element multiples). */
static tc_config gpu_config(int t)
{
    tc_config c = problem_config(t);
    c.strided = 0;
    c.h_q = 64;
    c.s_k = 200 + 300 * t;
    return c;
}

typedef struct stream_arg {
    int device, t;
    mla_decode_plan_t plan;
    tc_case *c;              /* host problem, CPU result in c->out / c->lse on entry  */
    uint16_t *gpu_out;       /* the GPU result's bytes (kept for the determinism check) */
    int status_fail, cuda_fail, mismatch;
    char msg[256];
} stream_arg;

static void *stream_worker(void *vp)
{
    stream_arg *w = (stream_arg *)vp;
    cudaSetDevice(0); /* whatever is current, the plan runs on its own device */
    int dev_now = -1;
    cudaGetDevice(&dev_now);
    size_t ws = 0;
    mla_decode_workspace_size(w->plan, &ws);
    /* allocate on the plan's device, then make device 0 current again */
    cudaSetDevice(w->device);
    cudaStream_t stream = NULL;
    dev_case d;
    memset(&d, 0, sizeof d);
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess ||
        dev_case_upload(&d, w->c, ws) != 0) {
        w->cuda_fail++;
        snprintf(w->msg, sizeof w->msg, "upload: %s", cudaGetErrorString(cudaGetLastError()));
        pthread_barrier_wait(&barrier); /* the others wait for everyone */
        dev_case_free(&d);
        if (stream) cudaStreamDestroy(stream);
        return NULL;
    }
    cudaSetDevice(0);
    mla_decode_args a = dev_args(w->c, &d);
    pthread_barrier_wait(&barrier);
    for (int r = 0; r < ROUNDS; r++) {
        mla_status st = mla_decode(w->plan, &a, d.ws, d.ws_bytes, (struct CUstream_st *)stream);
        if (st != MLA_OK) {
            w->status_fail++;
            snprintf(w->msg, sizeof w->msg, "%s", mla_last_error());
        }
    }
    cudaSetDevice(w->device);
    if (cudaStreamSynchronize(stream) != cudaSuccess) w->cuda_fail++;
    uint16_t *out = (uint16_t *)malloc((size_t)w->c->out_elems * 2);
    float *lse = (float *)malloc((size_t)w->c->lse_elems * 4);
    if (cudaMemcpy(out, d.out, (size_t)w->c->out_elems * 2, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(lse, d.lse, (size_t)w->c->lse_elems * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        w->cuda_fail++;
    /* compare against the CPU plan's result (tolerances) */
    const tc_config *g = &w->c->cfg;
    const int64_t no = g->b * g->s_q * g->h_q * g->d_v, nl = g->b * g->h_q * g->s_q;
    double *ro = (double *)malloc(sizeof(double) * (size_t)no);
    double *rl = (double *)malloc(sizeof(double) * (size_t)nl);
    for (int64_t x = 0; x < no; x++) ro[x] = NAN;
    for (int64_t x = 0; x < nl; x++) rl[x] = NAN;
    const mla_decode_args *ca = &w->c->args;
    for (int64_t i = 0; i < g->b; i++)
        for (int64_t j = 0; j < w->c->q_lens[i]; j++)
            for (int64_t h = 0; h < g->h_q; h++) {
                const uint16_t *orow = w->c->out + i * ca->out_stride[0] + j * ca->out_stride[1] + h * ca->out_stride[2];
                for (int64_t e = 0; e < g->d_v; e++)
                    ro[((i * g->s_q + j) * g->h_q + h) * g->d_v + e] = mla_half_to_float(g->dtype, orow[e]);
                rl[(i * g->h_q + h) * g->s_q + j] =
                    w->c->lse[i * ca->lse_stride[0] + h * ca->lse_stride[1] + j * ca->lse_stride[2]];
            }
    tc_case gc = *w->c; /* same layout, GPU bytes */
    gc.out = out;
    gc.lse = lse;
    tc_report orr, lr;
    if (!tc_compare_case(&gc, ro, rl, &orr, &lr)) {
        w->mismatch++;
        snprintf(w->msg, sizeof w->msg, "out %s (max_abs %.3g, cos %.3g), lse %s (max_abs %.3g)",
                 orr.ok ? "ok" : "MISMATCH", orr.max_abs, orr.cos_diff, lr.ok ? "ok" : "MISMATCH",
                 lr.max_abs);
    }
    w->gpu_out = out;
    free(ro); free(rl); free(lse);
    dev_case_free(&d);
    cudaStreamDestroy(stream);
    (void)dev_now;
    return NULL;
}

static void test_gpu(void)
{
    int ndev = 0;
    if (!mla_has_cuda()) {
        printf("-- GPU streams / devices: skipped (library built without CUDA)\n");
        return;
    }
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        cudaGetLastError();
        printf("-- GPU streams / devices: skipped (no CUDA GPU visible)\n");
        return;
    }
    const int ndevs = ndev >= 2 ? 2 : 1;
    printf("-- GPU: %d streams x %d device(s) at once, %d calls each, vs the CPU plan\n", NS, ndevs,
           ROUNDS);
    /* problems and their CPU results */
    tc_case cases[NS];
    mla_decode_plan_t cpu = NULL;
    tc_config c0 = gpu_config(0);
    tc_case tmp;
    tc_case_build(&tmp, &c0);
    tc_expect(mla_decode_plan_create(&cpu, &tmp.shape, MLA_DEVICE_CPU) == MLA_OK, "CPU plan");
    mla_decode_shape shape = tmp.shape;
    tc_case_free(&tmp);
    for (int s = 0; s < NS; s++) {
        tc_config cfg = gpu_config(s);
        tc_case_build(&cases[s], &cfg);
        tc_expect(mla_decode(cpu, &cases[s].args, NULL, 0, NULL) == MLA_OK, "CPU decode %d", s);
    }
    mla_decode_plan_destroy(cpu);
    /* one GPU plan per device */
    mla_decode_plan_t plans[2] = {NULL, NULL};
    for (int dv = 0; dv < ndevs; dv++)
        if (!tc_expect(mla_decode_plan_create(&plans[dv], &shape, dv) == MLA_OK,
                       "GPU plan on device %d: %s", dv, mla_last_error())) {
            for (int s = 0; s < NS; s++) tc_case_free(&cases[s]);
            if (plans[0]) mla_decode_plan_destroy(plans[0]);
            return;
        }
    /* NS streams per device (same problem on two streams checks determinism too: stream s
     * runs problem s % (NS/2)) — all at once across devices */
    pthread_t th[2 * NS];
    stream_arg w[2 * NS];
    int n = 0;
    pthread_barrier_init(&barrier, NULL, (unsigned)(NS * ndevs));
    for (int dv = 0; dv < ndevs; dv++)
        for (int s = 0; s < NS; s++) {
            memset(&w[n], 0, sizeof w[n]);
            w[n].device = dv;
            w[n].t = s;
            w[n].plan = plans[dv];
            w[n].c = &cases[s % (NS / 2)];
            pthread_create(&th[n], NULL, stream_worker, &w[n]);
            n++;
        }
    for (int x = 0; x < n; x++) pthread_join(th[x], NULL);
    pthread_barrier_destroy(&barrier);
    for (int x = 0; x < n; x++)
        tc_expect(!w[x].status_fail && !w[x].cuda_fail && !w[x].mismatch,
                  "device %d stream %d (problem %d): status fails %d, CUDA fails %d, mismatch %d: %s",
                  w[x].device, w[x].t, w[x].t % (NS / 2), w[x].status_fail, w[x].cuda_fail,
                  w[x].mismatch, w[x].msg);
    /* the same problem on two streams of one device gives the same bytes (across devices the
     * split-KV schedule may differ with the SM count, so only tolerances apply there) */
    for (int x = 0; x < n; x++)
        for (int y = x + 1; y < n; y++)
            if (w[x].c == w[y].c && w[x].device == w[y].device && w[x].gpu_out && w[y].gpu_out)
                tc_expect(memcmp(w[x].gpu_out, w[y].gpu_out, (size_t)w[x].c->out_elems * 2) == 0,
                          "device %d stream %d and device %d stream %d: same problem, different "
                          "bytes", w[x].device, w[x].t, w[y].device, w[y].t);
    for (int x = 0; x < n; x++) free(w[x].gpu_out);
    for (int dv = 0; dv < ndevs; dv++) mla_decode_plan_destroy(plans[dv]);
    for (int s = 0; s < NS; s++) tc_case_free(&cases[s]);
    if (ndevs < 2) printf("-- GPU two devices at once: skipped (only one GPU visible)\n");
}
#else
static void test_gpu(void)
{
    printf("-- GPU streams / devices: skipped (this test was built without CUDA)\n");
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* 7: one shared sparse decode plan (FP8 cache)                                             */
/* ---------------------------------------------------------------------------------------- */

#define SP_B 2
#define SP_SQ 2
#define SP_HQ 8
#define SP_TOPK 24
#define SP_PS 16
#define SP_PAGES 6

typedef struct sparse_problem {
    uint8_t *cache;          /* V32 FP8 pages                                           */
    int32_t idx[SP_B * SP_SQ * SP_TOPK];
    int32_t topk_len[SP_B];
    uint16_t q[SP_B * SP_SQ * SP_HQ * 576];
    uint16_t out[SP_B * SP_SQ * SP_HQ * 512], serial_out[SP_B * SP_SQ * SP_HQ * 512];
    float lse[SP_B * SP_HQ * SP_SQ], serial_lse[SP_B * SP_HQ * SP_SQ];
    mla_sparse_decode_args args;
} sparse_problem;

typedef struct sparse_arg { mla_sparse_decode_plan_t plan; sparse_problem *p; int bad, mismatch; } sparse_arg;

static void *sparse_worker(void *vp)
{
    sparse_arg *w = (sparse_arg *)vp;
    pthread_barrier_wait(&barrier);
    for (int r = 0; r < ROUNDS; r++) {
        memset(w->p->out, 0xFF, sizeof w->p->out);
        if (mla_sparse_decode(w->plan, &w->p->args, NULL, 0, NULL) != MLA_OK) { w->bad++; continue; }
        if (memcmp(w->p->out, w->p->serial_out, sizeof w->p->out) ||
            memcmp(w->p->lse, w->p->serial_lse, sizeof w->p->lse))
            w->mismatch++;
    }
    return NULL;
}

static void test_shared_sparse_plan(void)
{
    printf("-- shared sparse decode plan (V32 FP8 cache), %d threads x %d calls\n", NT, ROUNDS);
    int64_t bpt = 0;
    if (!tc_expect(mla_fp8_format_info(MLA_FP8_FORMAT_V32, NULL, NULL, NULL, &bpt) == MLA_OK, "format info"))
        return;
    mla_sparse_decode_shape sh = mla_sparse_decode_shape_default();
    sh.b = SP_B; sh.s_q = SP_SQ; sh.h_q = SP_HQ; sh.topk = SP_TOPK; sh.page_size = SP_PS;
    sh.format = MLA_FP8_FORMAT_V32; sh.d_qk = 576; sh.cpu_threads = 2;
    mla_sparse_decode_plan_t plan = NULL;
    if (!tc_expect(mla_sparse_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU) == MLA_OK,
                   "sparse plan: %s", mla_last_error()))
        return;
    sparse_problem *ps = (sparse_problem *)calloc(NT, sizeof *ps);
    uint16_t *bf = (uint16_t *)malloc((size_t)SP_PAGES * SP_PS * 576 * 2);
    int ok = ps && bf;
    for (int t = 0; t < NT && ok; t++) {
        sparse_problem *p = &ps[t];
        tc_rng rng;
        tc_rng_seed(&rng, 500 + (uint64_t)t);
        for (int64_t x = 0; x < (int64_t)SP_PAGES * SP_PS * 576; x++)
            bf[x] = mla_float_to_bf16(tc_randn_data(&rng));
        p->cache = (uint8_t *)malloc((size_t)(SP_PAGES * SP_PS * bpt));
        ok = p->cache && mla_fp8_quantize_cache(MLA_FP8_FORMAT_V32, SP_PAGES, SP_PS, bf, SP_PS * 576, 576,
                                                p->cache, SP_PS * bpt, MLA_DEVICE_CPU, NULL) == MLA_OK;
        for (int x = 0; x < SP_B * SP_SQ * SP_TOPK; x++)
            p->idx[x] = tc_uniform(&rng) < 0.1 ? -1 : (int32_t)tc_randint(&rng, SP_PAGES * SP_PS);
        for (int i = 0; i < SP_B; i++) p->topk_len[i] = (int32_t)(SP_TOPK - 3 * i - t % 3);
        for (size_t x = 0; x < sizeof p->q / 2; x++) p->q[x] = mla_float_to_bf16(tc_randn_data(&rng));
        mla_sparse_decode_args *a = &p->args;
        *a = mla_sparse_decode_args_default();
        a->q = p->q;
        a->q_stride[2] = 576; a->q_stride[1] = SP_HQ * 576; a->q_stride[0] = SP_SQ * SP_HQ * 576;
        a->k_cache = p->cache; a->num_pages = SP_PAGES; a->k_page_stride_bytes = SP_PS * bpt;
        a->indices = p->idx; a->indices_stride[1] = SP_TOPK; a->indices_stride[0] = SP_SQ * SP_TOPK;
        a->topk_length = p->topk_len;
        a->out = p->out;
        a->out_stride[2] = 512; a->out_stride[1] = SP_HQ * 512; a->out_stride[0] = SP_SQ * SP_HQ * 512;
        a->lse = p->lse;
        a->lse_stride[2] = 1; a->lse_stride[1] = SP_SQ; a->lse_stride[0] = SP_HQ * SP_SQ;
        ok = ok && mla_sparse_decode(plan, a, NULL, 0, NULL) == MLA_OK;
        memcpy(p->serial_out, p->out, sizeof p->out);
        memcpy(p->serial_lse, p->lse, sizeof p->lse);
    }
    if (tc_expect(ok, "building the sparse problems (serial decode): %s", mla_last_error())) {
        pthread_t th[NT];
        sparse_arg w[NT];
        pthread_barrier_init(&barrier, NULL, NT);
        for (int t = 0; t < NT; t++) {
            w[t] = (sparse_arg){plan, &ps[t], 0, 0};
            pthread_create(&th[t], NULL, sparse_worker, &w[t]);
        }
        for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&barrier);
        for (int t = 0; t < NT; t++)
            tc_expect(w[t].bad == 0 && w[t].mismatch == 0,
                      "sparse thread %d: %d failed calls, %d results differ from the serial run", t,
                      w[t].bad, w[t].mismatch);
    }
    for (int t = 0; ps && t < NT; t++) free(ps[t].cache);
    free(ps);
    free(bf);
    tc_expect(mla_sparse_decode_plan_destroy(plan) == MLA_OK, "sparse plan destroy");
}

/* ---------------------------------------------------------------------------------------- */
/* 8: callers with small stacks                                                              */
/* ---------------------------------------------------------------------------------------- */

/* The calling thread joins the CPU workers only when its stack has room for a work item (up to
 * ~620 KB for an AMX item of 128 rows; ref/mla_cpu_threads.c). A caller on a 192 KB stack (musl's
 * default is 128 KB) must get the same bytes as the main thread, with 1 and 2 worker threads;
 * were the room check wrong, this thread would overflow its stack and the test would crash. */
typedef struct small_arg {
    tc_case *c;
    int threads;
    mla_status st;
} small_arg;

static void *small_stack_worker(void *vp)
{
    small_arg *s = (small_arg *)vp;
    mla_decode_shape sh = s->c->shape;
    sh.cpu_threads = s->threads;
    mla_decode_plan_t plan = NULL;
    s->st = mla_decode_plan_create(&plan, &sh, MLA_DEVICE_CPU);
    if (s->st == MLA_OK) s->st = mla_decode(plan, &s->c->args, NULL, 0, NULL);
    mla_decode_plan_destroy(plan);
    return NULL;
}

static void test_small_stack_callers(void)
{
    printf("-- callers on a 192 KB stack vs the main thread (h_q=128: the largest work items)\n");
    tc_config cfg = tc_config_default();
    cfg.b = 2; cfg.s_q = 1; cfg.h_q = 128; cfg.h_kv = 1; cfg.s_k = quick_mode() ? 70 : 300;
    cfg.page_size = 64; cfg.varlen = 1; cfg.seed = 77;
    tc_case c;
    if (!tc_expect(tc_case_build(&c, &cfg) == 0, "small-stack case: build")) return;
    uint16_t *ref_out = (uint16_t *)malloc((size_t)c.out_elems * 2);
    float *ref_lse = (float *)malloc((size_t)c.lse_elems * 4);
    for (int threads = 1; threads <= 2; threads++) {
        small_arg main_run = {&c, threads, MLA_OK};
        tc_case_poison(&c);
        small_stack_worker(&main_run); /* the main thread: 8 MB stack, joins the workers */
        memcpy(ref_out, c.out, (size_t)c.out_elems * 2);
        memcpy(ref_lse, c.lse, (size_t)c.lse_elems * 4);
        tc_case_poison(&c);
        small_arg sa = {&c, threads, MLA_ERR_INTERNAL};
        pthread_attr_t at;
        pthread_t th;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 192u << 10);
        const int created = pthread_create(&th, &at, small_stack_worker, &sa) == 0;
        pthread_attr_destroy(&at);
        if (created) pthread_join(th, NULL);
        tc_expect(created && main_run.st == MLA_OK && sa.st == MLA_OK &&
                      !memcmp(c.out, ref_out, (size_t)c.out_elems * 2) &&
                      !memcmp(c.lse, ref_lse, (size_t)c.lse_elems * 4),
                  "cpu_threads=%d: a 192 KB-stack caller gets the main thread's bytes (%s)", threads,
                  mla_last_error());
    }
    free(ref_out);
    free(ref_lse);
    tc_case_free(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* 9: fork with a warm worker pool                                                           */
/* ---------------------------------------------------------------------------------------- */

/* The CPU workers are a pool kept between calls (ref/mla_cpu_threads.c). A child forked after
 * the parent used it has none of those threads: its calls must still run (a fresh pool) and
 * give the parent's bytes; then the parent's pool must still work. */
#if defined(__SANITIZE_THREAD__)
#define TT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TT_TSAN 1
#endif
#endif

static void test_fork_with_pool(void)
{
#ifdef TT_TSAN
    /* ThreadSanitizer cannot start threads in a child forked from a multi-threaded process */
    printf("-- fork after the worker pool ran: skipped under ThreadSanitizer (not counted)\n");
    return;
#endif
    const char *nofork = getenv("MLA_TEST_NO_FORK");
    if (nofork && nofork[0] && strcmp(nofork, "0") != 0) {
        /* tests/sanitize.sh sets it for valgrind, which counts the parent's pool threads (and the
         * child's own buffers at _exit) as leaks of the forked child */
        printf("-- fork after the worker pool ran: skipped (MLA_TEST_NO_FORK; not counted)\n");
        return;
    }
    printf("-- fork after the worker pool ran: the child's calls and the parent's afterwards\n");
    tc_config cfg = problem_config(5);
    tc_case c;
    if (!tc_expect(tc_case_build(&c, &cfg) == 0, "fork case: build")) return;
    c.shape.cpu_threads = 2;
    mla_decode_plan_t plan = NULL;
    mla_status st = mla_decode_plan_create(&plan, &c.shape, MLA_DEVICE_CPU);
    uint16_t *want = (uint16_t *)malloc((size_t)c.out_elems * 2);
    if (st == MLA_OK) st = mla_decode(plan, &c.args, NULL, 0, NULL); /* warms the pool */
    if (!tc_expect(st == MLA_OK, "fork case: parent decode: %s", mla_last_error())) goto out;
    memcpy(want, c.out, (size_t)c.out_elems * 2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* child: a call from a 192 KB-stack thread (the caller cannot work: only pool helpers
         * run the items, so a pool that still counted the parent's threads would hang), then
         * two from the main thread; each compared with the parent's bytes */
        int bad = 0;
        small_arg sa = {&c, 2, MLA_ERR_INTERNAL};
        pthread_attr_t at;
        pthread_t th;
        tc_case_poison(&c);
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 192u << 10);
        if (pthread_create(&th, &at, small_stack_worker, &sa) != 0) _exit(3);
        pthread_join(th, NULL);
        bad += sa.st != MLA_OK || memcmp(c.out, want, (size_t)c.out_elems * 2) != 0;
        for (int r = 0; r < 2; r++) {
            tc_case_poison(&c);
            bad += mla_decode(plan, &c.args, NULL, 0, NULL) != MLA_OK ||
                   memcmp(c.out, want, (size_t)c.out_elems * 2) != 0;
        }
        _exit(bad ? 1 : 0);
    }
    int status = -1, waited = 0;
    for (int ms = 0; pid > 0 && ms < 60000 && !waited; ms += 10) { /* a hang fails, not blocks */
        waited = waitpid(pid, &status, WNOHANG) == pid;
        if (!waited) usleep(10000);
    }
    if (pid > 0 && !waited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    tc_expect(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a child forked after the pool ran decodes (also with no room on the caller's stack) and "
              "gets the parent's bytes (%s, status %d)", waited ? "exited" : "hung: killed after 60 s", status);
    tc_case_poison(&c);
    st = mla_decode(plan, &c.args, NULL, 0, NULL);
    tc_expect(st == MLA_OK && !memcmp(c.out, want, (size_t)c.out_elems * 2),
              "the parent's pool still works after the fork");
out:
    mla_decode_plan_destroy(plan);
    free(want);
    tc_case_free(&c);
}

int main(void)
{
    printf("test_threads: %d threads%s\n", NT, quick_mode() ? " (quick mode)" : "");
    const double t0 = tc_now();
    test_shared_plan(2, 0);
    test_shared_plan(1, 1);
    test_plan_churn();
    test_thread_local_errors();
    test_shared_sparse_plan();
    test_small_stack_callers();
    test_fork_with_pool();
    test_gpu();
    printf("test_threads: %.1f s\n", tc_now() - t0);
    return tc_summary();
}
