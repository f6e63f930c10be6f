/* mla_cpu_threads.c — the worker threads of every CPU path (mla_ref.h: mla_cpu_parallel). */
#include "mla_ref.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

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

/* The lowest address of the calling thread's stack, found once per thread (glibc reads
 * /proc/self/maps for the main thread, so not on every call); 0 when unknown. */
static _Thread_local uintptr_t t_stack_lo;
static _Thread_local int t_stack_known;

/* 1 when the calling thread has at least `need` bytes of stack below this frame. A frame that
 * does not lie inside the reported stack (AddressSanitizer's fake stacks, alternate signal
 * stacks, unknown platforms) counts as no room: the caller then only waits, as before. */
static int caller_stack_room(size_t need)
{
    if (!t_stack_known) {
        t_stack_known = 1;
        t_stack_lo = 0;
#if defined(__linux__)
        pthread_attr_t at;
        if (pthread_getattr_np(pthread_self(), &at) == 0) {
            void *lo = NULL;
            size_t size = 0;
            if (pthread_attr_getstack(&at, &lo, &size) == 0 && size > 0) t_stack_lo = (uintptr_t)lo;
            pthread_attr_destroy(&at);
        }
#endif
    }
    volatile char here = 0;
    const uintptr_t sp = (uintptr_t)&here;
    /* the top of the stack is not kept: a frame above lo by more than 1 GB is not this stack */
    return t_stack_lo && sp > t_stack_lo && sp - t_stack_lo >= need && sp - t_stack_lo < ((uintptr_t)1 << 30);
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

    /* The work runs on threads created with a known stack (item buffers take up to ~700 KB,
     * more than some callers' threads have: musl's default is 128 KB). The calling thread is
     * one of the workers when its own stack has room for an item (MLA_CPU_ITEM_STACK), which
     * saves a thread creation per call (all of them with one worker); else it only waits. If no
     * thread can be created, it does the work itself. */
    const int caller_works = caller_stack_room(MLA_CPU_ITEM_STACK);
    pthread_t tids[MLA_CPU_MAX_THREADS];
    int started = 0;
    pthread_attr_t attr;
    const int have_attr = nt > caller_works && pthread_attr_init(&attr) == 0;
    if (have_attr) pthread_attr_setstacksize(&attr, 2u << 20);
    for (int64_t t = caller_works; t < nt; t++) {
        if (pthread_create(&tids[started], have_attr ? &attr : NULL, par_worker, &job) != 0)
            break; /* fewer threads: the rest is done by those that exist */
        started++;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    if (caller_works || started == 0) par_worker(&job);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
}
