/* watchdog.c — mla-bench's per-case time limit (dense and sparse benchmarks).
 *
 * A case still running past MLA_BENCH_WATCHDOG_S seconds (default 120 on the GPU, off on the CPU
 * unless the variable is set; 0: off; fractions allowed) ends the process with exit status 3 and a
 * line naming the case, instead of waiting forever on a kernel that never finishes (a device hang
 * leaves nothing else to report). The main thread arms it per case; a detached thread checks every
 * min(1 s, limit / 4).
 */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic long long wd_deadline_ns; /* 0: no case armed */
static char wd_what[192];
static double wd_limit_s;

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000ll + t.tv_nsec;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    const double step = wd_limit_s / 4 < 1.0 ? wd_limit_s / 4 : 1.0;
    struct timespec ts;
    ts.tv_sec = (time_t)step;
    ts.tv_nsec = (long)((step - (double)ts.tv_sec) * 1e9);
    for (;;) {
        nanosleep(&ts, NULL);
        const long long d = atomic_load(&wd_deadline_ns);
        if (d && now_ns() > d) {
            fprintf(stdout, "\nmla-bench: watchdog: %s has run for more than %g s (MLA_BENCH_WATCHDOG_S); stopping "
                            "(on the GPU: a kernel that never finished?)\n", wd_what, wd_limit_s);
            fflush(stdout);
            _exit(3);
        }
    }
    return NULL;
}

int bench_watchdog_start(int is_gpu)
{
    const char *v = getenv("MLA_BENCH_WATCHDOG_S");
    double s = is_gpu ? 120.0 : 0.0;
    if (v && *v) {
        char *end = NULL;
        const double x = strtod(v, &end);
        if (end == v || *end || !(x >= 0) || x > 1e6) {
            fprintf(stderr, "mla-bench: MLA_BENCH_WATCHDOG_S=%s is not a number of seconds >= 0 (0: off)\n", v);
            return -1;
        }
        s = x;
    }
    if (s <= 0) return 0;
    wd_limit_s = s;
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog_main, NULL)) return 0; /* no thread: no watchdog */
    pthread_detach(th);
    return 1;
}

void bench_watchdog_arm(const char *what)
{
    if (wd_limit_s <= 0) return;
    atomic_store(&wd_deadline_ns, 0); /* the thread never reads a half-written name as armed */
    snprintf(wd_what, sizeof wd_what, "%s", what);
    atomic_store(&wd_deadline_ns, now_ns() + (long long)(wd_limit_s * 1e9));
}

void bench_watchdog_disarm(void) { atomic_store(&wd_deadline_ns, 0); }
