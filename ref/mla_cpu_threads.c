/* mla_cpu_threads.c — the worker threads of every CPU path (mla_ref.h: mla_cpu_parallel). */
#include "mla_ref.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct par_job {
    void (*fn)(void *ctx, int64_t item);
    void *ctx;
    int64_t items;
    atomic_llong next;
} par_job;

static void *par_worker(void *p)
{
    par_job *job = (par_job *)p;
    for (;;) {
        const long long w = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (w >= job->items) break;
        job->fn(job->ctx, w);
    }
    return NULL;
}

void mla_cpu_parallel(int64_t items, int num_threads, void (*fn)(void *ctx, int64_t item), void *ctx)
{
    if (items <= 0) return;
    par_job job;
    job.fn = fn;
    job.ctx = ctx;
    job.items = items;
    atomic_init(&job.next, 0);

    int64_t nt = num_threads < 1 ? 1 : num_threads;
    if (nt > MLA_CPU_MAX_THREADS) nt = MLA_CPU_MAX_THREADS;
    if (nt > items) nt = items;

    /* The work runs on threads created with a known stack (item buffers take up to ~200 KB,
     * more than some callers' threads have: musl's default is 128 KB); the calling thread only
     * waits. If no thread can be created, it does the work itself. */
    pthread_t tids[MLA_CPU_MAX_THREADS];
    int started = 0;
    pthread_attr_t attr;
    const int have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr) pthread_attr_setstacksize(&attr, 2u << 20);
    for (int64_t t = 0; t < nt; t++) {
        if (pthread_create(&tids[started], have_attr ? &attr : NULL, par_worker, &job) != 0)
            break; /* fewer threads: the rest is done by those that exist */
        started++;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    if (started == 0) par_worker(&job);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
}
