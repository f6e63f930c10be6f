/* kspan.c — kernel-span timing through CUPTI's activity records, the clock FlashMLA's sparse decode
 * figures are read with (dossier §5.3: "from the sparse kernel's start to the combine's end", taken
 * by torch.profiler, whose kineto backend reads these same CUPTI kernel records). CUDA events around
 * a graph replay also count the replay's launch (the gap between the event and the first kernel's
 * start), a few µs that weigh on a 20-µs call; a span counts the kernels alone.
 *
 * CUPTI is opened at run time (dlopen; MLA_CUPTI=path first, then libcupti.so.13 / libcupti.so on
 * the loader's path and under CUDA_HOME-style directories), so mla-bench runs where it is missing:
 * kspan_time_graph then returns -1 and the caller prints no span row. The records are read only
 * while a span is being timed; nothing here is part of the library. */
#include "bench.h"

#if defined(MLA_WITH_CUDA) && defined(__has_include)
#if __has_include(<cupti_activity.h>)
#define KSPAN_HAVE_CUPTI 1
#endif
#endif

#ifdef KSPAN_HAVE_CUPTI
#include <cuda_runtime_api.h>
#include <cupti_activity.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef CUptiResult (*kspan_fn_kind)(CUpti_ActivityKind);
typedef CUptiResult (*kspan_fn_register)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc);
typedef CUptiResult (*kspan_fn_next)(uint8_t *, size_t, CUpti_Activity **);
typedef CUptiResult (*kspan_fn_flush)(uint32_t);

static struct {
    int state; /* 0 not tried, 1 ready, -1 unavailable */
    kspan_fn_kind enable, disable;
    kspan_fn_next next;
    kspan_fn_flush flush;
    pthread_mutex_t mu;
    uint64_t *start, *end; /* kernel records of the current timing */
    size_t n, cap;
    int overflow;
} K = {0, NULL, NULL, NULL, NULL, PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0, 0};

#define KSPAN_BUF (1u << 20)

static void CUPTIAPI kspan_buf_request(uint8_t **buffer, size_t *size, size_t *max_records)
{
    *buffer = aligned_alloc(ACTIVITY_RECORD_ALIGNMENT, KSPAN_BUF);
    *size = *buffer ? KSPAN_BUF : 0;
    *max_records = 0;
}

static void CUPTIAPI kspan_buf_complete(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid)
{
    (void)ctx; (void)stream; (void)size;
    CUpti_Activity *r = NULL;
    pthread_mutex_lock(&K.mu);
    while (buffer && K.next(buffer, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && r->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
        /* start / end sit at the same offsets in every CUpti_ActivityKernelN since version 4 */
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)(const void *)r;
        if (K.n == K.cap) { K.overflow = 1; continue; }
        K.start[K.n] = k->start;
        K.end[K.n] = k->end;
        K.n++;
    }
    pthread_mutex_unlock(&K.mu);
    free(buffer);
}

static void *kspan_open_lib(void)
{
    const char *env = getenv("MLA_CUPTI");
    const char *names[] = {env, "libcupti.so.13", "libcupti.so", "/usr/local/cuda/lib64/libcupti.so",
                           "/usr/local/cuda/extras/CUPTI/lib64/libcupti.so",
                           "/usr/local/cuda/targets/x86_64-linux/lib/libcupti.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i] || !names[i][0]) continue;
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    return NULL;
}

static int kspan_init(void)
{
    if (K.state) return K.state;
    K.state = -1;
    void *h = kspan_open_lib();
    if (!h) return K.state;
    kspan_fn_register reg = (kspan_fn_register)dlsym(h, "cuptiActivityRegisterCallbacks");
    K.enable = (kspan_fn_kind)dlsym(h, "cuptiActivityEnable");
    K.disable = (kspan_fn_kind)dlsym(h, "cuptiActivityDisable");
    K.next = (kspan_fn_next)dlsym(h, "cuptiActivityGetNextRecord");
    K.flush = (kspan_fn_flush)dlsym(h, "cuptiActivityFlushAll");
    if (!reg || !K.enable || !K.disable || !K.next || !K.flush) return K.state;
    if (reg(kspan_buf_request, kspan_buf_complete) != CUPTI_SUCCESS) return K.state;
    K.state = 1;
    return K.state;
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* kernel nodes of graph g (the kernels one replay runs), -1 on error */
static int kspan_graph_kernels(cudaGraph_t g)
{
    size_t n = 0;
    if (cudaGraphGetNodes(g, NULL, &n) != cudaSuccess || n == 0) return -1;
    cudaGraphNode_t *nodes = malloc(n * sizeof *nodes);
    if (!nodes || cudaGraphGetNodes(g, nodes, &n) != cudaSuccess) { free(nodes); return -1; }
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        enum cudaGraphNodeType t;
        if (cudaGraphNodeGetType(nodes[i], &t) != cudaSuccess) { free(nodes); return -1; }
        k += t == cudaGraphNodeTypeKernel;
    }
    free(nodes);
    return k;
}

double kspan_time_graph(void *stream, void *flush, size_t flush_bytes, void *graph, void *graph_exec, int warmup,
                        int iters, double *parts, int max_parts, int *nparts)
{
    if (nparts) *nparts = 0;
    const cudaStream_t s = (cudaStream_t)stream;
    const int k = kspan_graph_kernels((cudaGraph_t)graph);
    if (iters < 1 || warmup < 0 || k < 1 || kspan_init() != 1) return -1;
    if (cudaStreamSynchronize(s) != cudaSuccess) return -1;
    const size_t want = (size_t)(warmup + iters) * (size_t)k;
    double med = -1;
    double *us = malloc(sizeof(double) * (size_t)iters);
    double *po = malloc(sizeof(double) * (size_t)iters * 2 * (size_t)k); /* per kernel: start, end offsets */
    uint64_t *order = malloc(sizeof(uint64_t) * 2 * want);
    pthread_mutex_lock(&K.mu);
    K.start = malloc(sizeof(uint64_t) * want);
    K.end = malloc(sizeof(uint64_t) * want);
    K.n = 0;
    K.cap = K.start && K.end ? want : 0;
    K.overflow = 0;
    pthread_mutex_unlock(&K.mu);
    if (!us || !po || !order || !K.cap) goto done;
    K.flush(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED); /* records of earlier work are not ours: drop them */
    pthread_mutex_lock(&K.mu);
    K.n = 0;
    K.overflow = 0;
    pthread_mutex_unlock(&K.mu);
    if (K.enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) goto done;
    int ok = 1;
    for (int i = -warmup; i < iters && ok; i++) {
        ok = cudaMemsetAsync(flush, i & 0xff, flush_bytes, s) == cudaSuccess &&
             cudaGraphLaunch((cudaGraphExec_t)graph_exec, s) == cudaSuccess;
        /* one replay at a time, as the event-timed loop runs them */
        ok = ok && cudaStreamSynchronize(s) == cudaSuccess;
    }
    K.disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    K.flush(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    pthread_mutex_lock(&K.mu);
    const size_t n = K.n;
    const int overflow = K.overflow;
    pthread_mutex_unlock(&K.mu);
    if (!ok || overflow || n != want) goto done;
    /* replays run one after another (synchronised), so sorting the records by start puts each
     * replay's k kernels together; pair each start with its end through an index sort */
    for (size_t i = 0; i < n; i++) {
        order[2 * i] = K.start[i];
        order[2 * i + 1] = i;
    }
    qsort(order, n, 2 * sizeof(uint64_t), cmp_u64);
    for (int r = 0; r < warmup + iters; r++) {
        uint64_t first = UINT64_MAX, last = 0;
        for (int j = 0; j < k; j++) {
            const size_t idx = (size_t)order[2 * ((size_t)r * k + j) + 1];
            if (K.end[idx] <= K.start[idx]) goto done;
            if (K.start[idx] < first) first = K.start[idx];
            if (K.end[idx] > last) last = K.end[idx];
        }
        if (r < warmup) continue;
        us[r - warmup] = (double)(last - first) * 1e-3;
        for (int j = 0; j < k; j++) {
            const size_t idx = (size_t)order[2 * ((size_t)r * k + j) + 1];
            po[((size_t)2 * j) * iters + (r - warmup)] = (double)(K.start[idx] - first) * 1e-3;
            po[((size_t)2 * j + 1) * iters + (r - warmup)] = (double)(K.end[idx] - first) * 1e-3;
        }
    }
    if (parts && nparts) {
        const int np = 2 * k < max_parts ? 2 * k : max_parts;
        for (int j = 0; j < np; j++) parts[j] = bench_median(po + (size_t)j * iters, iters);
        *nparts = np;
    }
    med = bench_median(us, iters);
done:
    pthread_mutex_lock(&K.mu);
    free(K.start);
    free(K.end);
    K.start = K.end = NULL;
    K.cap = K.n = 0;
    pthread_mutex_unlock(&K.mu);
    free(order);
    free(po);
    free(us);
    return med;
}

#else

double kspan_time_graph(void *stream, void *flush, size_t flush_bytes, void *graph, void *graph_exec, int warmup,
                        int iters, double *parts, int max_parts, int *nparts)
{
    (void)parts; (void)max_parts;
    if (nparts) *nparts = 0;
    (void)stream; (void)flush; (void)flush_bytes; (void)graph; (void)graph_exec; (void)warmup; (void)iters;
    return -1;
}

#endif
