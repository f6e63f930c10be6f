/* mla_cpu_threads.c — the worker threads of every CPU path (mla_ref.h: mla_cpu_parallel).
 *
 * Workers come from a process-wide pool of threads (2 MB stacks) created on first need and kept
 * asleep on a condition variable between calls, so that a call pays a wake-up (~tens of us in
 * a VM) instead of a thread creation and join per worker (~80-150 us each on the machine the
 * notes were measured on). One call at a time uses the pool; a call that finds it busy (another
 * thread's call in flight) creates its own threads as before. The calling thread takes items
 * too when its stack has room (MLA_CPU_ITEM_STACK). Results never depend on which thread ran an
 * item, so the pool changes timing only.
 *
 * MLA_CPU_POOL=0 (read once per process) turns the pool off: every call creates its threads.
 * After fork() the child starts with an empty pool (pthread_atfork), since the parent's
 * threads do not exist there; at exit / dlclose the pool's threads are told to leave and
 * joined, so no thread sleeps in unmapped code. */
#include "mla_ref.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct par_job {
    void (*fn)(void *ctx, int64_t item);
    void *ctx;
    int64_t items;
    atomic_llong next;
} par_job;

static void par_work(par_job *job)
{
    for (;;) {
        const long long w = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (w >= job->items) break;
        job->fn(job->ctx, w);
    }
}

static void *par_thread(void *p)
{
    par_work((par_job *)p);
    return NULL;
}

/* ---- the calling thread's stack ------------------------------------------------------------ */

/* The lowest address of the calling thread's stack, found once per thread (glibc reads
 * /proc/self/maps for the main thread, so not on every call); 0 when unknown. */
static _Thread_local uintptr_t t_stack_lo;
static _Thread_local int t_stack_known;

/* 1 when the calling thread has at least `need` bytes of stack below this frame. A frame that
 * does not lie inside the reported stack (AddressSanitizer's fake stacks, alternate signal
 * stacks, unknown platforms) counts as no room: the caller then only waits. */
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

/* ---- the pool ------------------------------------------------------------------------------ */

#define POOL_MAX (MLA_CPU_MAX_THREADS - 1) /* helpers: the caller may be the last worker */

static struct {
    pthread_mutex_t busy;  /* held by the one call using the pool                          */
    pthread_mutex_t lock;  /* guards everything below                                      */
    pthread_cond_t wake;   /* helpers wait here for a job (or for quit)                    */
    pthread_cond_t done;   /* the caller waits here for the helpers that joined its job    */
    pthread_t tids[POOL_MAX];
    int nthreads;          /* helpers created and alive                                    */
    uint64_t gen;          /* job generation: bumped for every job                         */
    par_job *job;          /* the current job (valid while want > 0 or active > 0)         */
    int want;              /* helpers that may still join the current job                  */
    int active;            /* helpers working on the current job                           */
    int quit;              /* exit / dlclose: helpers leave                                */
    int enabled;           /* MLA_CPU_POOL != 0                                            */
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
            PTHREAD_COND_INITIALIZER, {0}, 0, 0, NULL, 0, 0, 0, 0};

static pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;

/* arg: the generation before the job that created the thread, so that it joins that job even
 * when it first takes the lock after the job was posted. */
static void *pool_thread(void *arg)
{
    uint64_t seen = (uint64_t)(uintptr_t)arg;
    pthread_mutex_lock(&g_pool.lock);
    for (;;) {
        while (!g_pool.quit && (g_pool.gen == seen || g_pool.want == 0)) {
            seen = g_pool.gen; /* a job already fully staffed (or finished): skip it */
            pthread_cond_wait(&g_pool.wake, &g_pool.lock);
        }
        if (g_pool.quit) break;
        seen = g_pool.gen;
        g_pool.want--;
        g_pool.active++;
        par_job *job = g_pool.job;
        pthread_mutex_unlock(&g_pool.lock);
        par_work(job);
        pthread_mutex_lock(&g_pool.lock);
        if (--g_pool.active == 0) pthread_cond_signal(&g_pool.done);
    }
    pthread_mutex_unlock(&g_pool.lock);
    return NULL;
}

/* In a forked child only the forking thread exists: forget the parent's helpers and make the
 * locks usable again (the parent may have held them while forking). */
static void pool_atfork_child(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    g_pool.busy = m;
    g_pool.lock = m;
    g_pool.wake = c;
    g_pool.done = c;
    g_pool.nthreads = 0;
    g_pool.job = NULL;
    g_pool.want = 0;
    g_pool.active = 0;
}

static void pool_init(void)
{
    const char *e = getenv("MLA_CPU_POOL");
    g_pool.enabled = !(e && strcmp(e, "0") == 0);
    if (g_pool.enabled && pthread_atfork(NULL, NULL, pool_atfork_child) != 0) g_pool.enabled = 0;
}

/* At exit and at dlclose of the library: the helpers leave their wait and are joined. */
__attribute__((destructor)) static void pool_shutdown(void)
{
    pthread_mutex_lock(&g_pool.lock);
    const int n = g_pool.nthreads;
    g_pool.quit = 1;
    pthread_cond_broadcast(&g_pool.wake);
    pthread_mutex_unlock(&g_pool.lock);
    for (int t = 0; t < n; t++) pthread_join(g_pool.tids[t], NULL);
    pthread_mutex_lock(&g_pool.lock);
    g_pool.nthreads = 0;
    pthread_mutex_unlock(&g_pool.lock);
}

/* Runs `job` on up to `helpers` pool threads plus the caller (caller_works). Returns 0 when
 * the pool cannot be used (off, busy, shutting down, or no helper could be created). */
static int pool_run(par_job *job, int helpers, int caller_works)
{
    pthread_once(&g_pool_once, pool_init);
    if (!g_pool.enabled || pthread_mutex_trylock(&g_pool.busy) != 0) return 0;
    pthread_mutex_lock(&g_pool.lock);
    if (g_pool.quit) {
        pthread_mutex_unlock(&g_pool.lock);
        pthread_mutex_unlock(&g_pool.busy);
        return 0;
    }
    if (g_pool.nthreads < helpers) { /* grow the pool to the helpers this call wants */
        pthread_attr_t attr;
        const int have_attr = pthread_attr_init(&attr) == 0;
        if (have_attr) pthread_attr_setstacksize(&attr, 2u << 20);
        while (g_pool.nthreads < helpers &&
               pthread_create(&g_pool.tids[g_pool.nthreads], have_attr ? &attr : NULL, pool_thread,
                              (void *)(uintptr_t)g_pool.gen) == 0)
            g_pool.nthreads++;
        if (have_attr) pthread_attr_destroy(&attr);
    }
    if (helpers > g_pool.nthreads) helpers = g_pool.nthreads;
    if (helpers == 0) {
        pthread_mutex_unlock(&g_pool.lock);
        pthread_mutex_unlock(&g_pool.busy);
        return 0;
    }
    g_pool.job = job;
    g_pool.want = helpers;
    g_pool.gen++;
    if (helpers == g_pool.nthreads) pthread_cond_broadcast(&g_pool.wake);
    else for (int t = 0; t < helpers; t++) pthread_cond_signal(&g_pool.wake);
    pthread_mutex_unlock(&g_pool.lock);

    if (caller_works) par_work(job);

    pthread_mutex_lock(&g_pool.lock);
    if (caller_works) g_pool.want = 0; /* the items are all taken: late helpers need not join */
    /* without the caller, every item may still be untaken: wait until the helpers that will
     * run it have joined and finished (want drops as they join) */
    while (g_pool.active > 0 || (!caller_works && g_pool.want > 0 &&
                                 atomic_load_explicit(&job->next, memory_order_relaxed) < job->items))
        pthread_cond_wait(&g_pool.done, &g_pool.lock);
    g_pool.want = 0;
    g_pool.job = NULL;
    pthread_mutex_unlock(&g_pool.lock);
    pthread_mutex_unlock(&g_pool.busy);
    return 1;
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

    /* The work runs on threads with a known stack (item buffers take up to ~700 KB, more than
     * some callers' threads have: musl's default is 128 KB). The calling thread is one of the
     * workers when its own stack has room for an item (MLA_CPU_ITEM_STACK); else it only waits. */
    const int caller_works = caller_stack_room(MLA_CPU_ITEM_STACK);
    const int helpers = (int)nt - caller_works;
    if (helpers == 0) {
        par_work(&job);
        return;
    }
    if (pool_run(&job, helpers, caller_works)) return;

    /* no pool: threads for this call. If none can be created, the caller does the work. */
    pthread_t tids[MLA_CPU_MAX_THREADS];
    int started = 0;
    pthread_attr_t attr;
    const int have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr) pthread_attr_setstacksize(&attr, 2u << 20);
    for (int t = 0; t < helpers; t++) {
        if (pthread_create(&tids[started], have_attr ? &attr : NULL, par_thread, &job) != 0)
            break; /* fewer threads: the rest is done by those that exist */
        started++;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    if (caller_works || started == 0) par_work(&job);
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
}
