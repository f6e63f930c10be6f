/* internal.h — what src/ files share: the plan object, error helpers, backend entry points.
 * Not installed; never included by kernels/. */
#ifndef MLA_INTERNAL_H
#define MLA_INTERNAL_H

#include "mla.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLA_PLAN_MAGIC_LIVE 0x6d6c612e706c616eull /* "mla.plan" */
#define MLA_PLAN_MAGIC_DEAD 0x646561642e706c6eull /* set by destroy: detects use after free
                                                     where the memory was not reused */

/* GPU plan facts filled by mla_gpu_plan_init. */
typedef struct mla_gpu_info {
    int num_sms;        /* multiprocessors of the plan's device                        */
    int cc_major;       /* compute capability                                          */
    int cc_minor;
    int num_sm_parts;   /* split-KV scheduler parts                                    */
    int kernel;         /* which decode kernel variant the plan uses (backend-defined)  */
    size_t workspace_bytes;
    int fp8_l2_prefetch; /* FP8 kernel: L2 prefetch of the tile after next (src/gpu.cu)   */
    int combine_slices;  /* 0: chosen per launch; testing hook MLA_GPU_COMBINE_SLICES       */
    int fused_sched;     /* b <= MLA_FUSED_SCHED_MAX_B: decode CTAs schedule themselves
                            (testing hook MLA_GPU_FUSED_SCHED=0: always the scheduler kernel) */
    int qmix_rr;         /* with cu_seqlens_q: -1 the rule in src/gpu.cu (default); testing hook
                            MLA_GPU_QMIX_RR=1 / 0: m-blocks round robin always / never          */
} mla_gpu_info;

struct mla_decode_plan {
    uint64_t magic;
    mla_decode_shape shape; /* complete, current-version copy                       */
    int device;             /* MLA_DEVICE_CPU or CUDA ordinal                        */
    int cpu_threads;        /* resolved worker count for CPU plans                   */
    int cpu_kernel;         /* CPU plans: MLA_CPU_KERNEL_*                            */
    int cpu_split_chunks;   /* CPU plans: 64-key chunks per key split at least        */
    mla_gpu_info gpu;
};

/* Records a formatted message as this thread's last error and returns `st`. */
mla_status mla_set_error(mla_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Copies a caller's struct of in_size bytes over dst (dst_size bytes, holding the defaults):
 * rejects a struct_size larger than this library's (a newer caller) or smaller than min_size
 * (the fields every caller must set; init names the *_default() function for the message). */
mla_status mla_copy_struct(const char *what, const char *type, const void *in, size_t in_size,
                           void *dst, size_t dst_size, size_t min_size, const char *init);

/* Checks one tensor's element strides (nd <= 4 dims): each >= 0, >= 1 for a dim of extent > 1,
 * a multiple of vec when vec > 1, and, from the smallest stride up, at least the span of the
 * dims inside it (inner = the contiguous innermost elements), with every offset (in elem-byte
 * units) fitting int64. names[d] is the printable name of strides[d]. */
mla_status mla_check_layout(const char *tensor, int nd, const int64_t *dims, const int64_t *strides,
                            const char *const *names, int64_t inner, size_t elem, int64_t vec);

/* The softmax scale a call uses: args value if > 0 and finite, else d_qk ** -0.5. */
float mla_effective_scale(const mla_decode_shape *shape, float requested);

/* ---- CPU fast paths: src/cpu_tiles.h, built as src/cpu_amx.c, src/cpu_avx512bf16.c,
 * src/cpu_avx512.c, src/cpu_avx2.c and src/cpu_neon.c -------------------------------------
 * A CPU plan whose q and k_cache are bf16 or FP8 e4m3 runs the first of these that runs here:
 * AMX tiles (Intel Sapphire Rapids and later), AVX512-BF16 (AMD CPUs only: Zen 4 / 5; Intel cores
 * run VDPBF16PS at half the FMA's multiply-add rate), AVX-512 F with fp32 FMAs (Intel Skylake-SP ..
 * Ice Lake, and any AVX-512 CPU the others skip), AVX2 with fp32 FMAs (AMD Zen 2 / 3, Intel
 * Haswell and later cores without AVX-512), NEON with fp32 FMAs (AArch64); every other plan
 * (fp16, other CPUs) runs the reference (ref/mla_ref.c). Testing / benchmarking hook, read at
 * plan creation: MLA_CPU_KERNEL=ref forces the reference; MLA_CPU_KERNEL=amx / avx512bf16 /
 * avx512 / avx2 / neon force that path and make creating a
 * bf16 / FP8 plan fail (MLA_ERR_UNSUPPORTED) where it does not run (fp16 plans stay on the
 * reference). */
#define MLA_CPU_KERNEL_REF 0
#define MLA_CPU_KERNEL_AMX 1
#define MLA_CPU_KERNEL_AVX512BF16 2
#define MLA_CPU_KERNEL_AVX512 3
#define MLA_CPU_KERNEL_AVX2 4
#define MLA_CPU_KERNEL_NEON 5
/* Key splits of a CPU dense decode call (src/cpu_split.c). A call with fewer than
 * MLA_CPU_SPLIT_BELOW row tiles (request x kv head x 16 query rows) would leave cores idle (a
 * single request with 16 heads runs on one core): each request's keys are cut into ranges of
 * whole 64-key chunks (at least `chunks` chunks each, the plan's; at most `nsplit` ranges, and
 * nsplit <= MLA_CPU_SPLIT_MAX, tiles x 16 x nsplit <= MLA_CPU_SPLIT_ROWS_MAX), each (row block,
 * range) an item of its own writing partial rows (un-normalised O, max, sum) into the caller's
 * workspace, then merged. The ranges depend only on the shape, the lengths and whether the
 * workspace is large enough, never on the thread count (the row blocking does, which changes
 * no result), so results stay bit-for-bit the same for any thread count. Without a workspace of
 * the plan's size the call runs unsplit. */
#define MLA_CPU_SPLIT_BELOW 16
#define MLA_CPU_SPLIT_MAX 64
#define MLA_CPU_SPLIT_ROWS_MAX 4096
#define MLA_CPU_SPLIT_CHUNKS 32 /* default chunks: 2048 keys (hook MLA_CPU_SPLIT_CHUNKS) */
/* Sparse decode splits the same way (mla_cpu_sparse_split_of_call): its rows are (request,
 * query token) x 16 heads, and its "keys" the positions of the request's index lists (the
 * main indices, then the extra ones), cut into ranges of whole 64-position chunks whatever
 * their validity; a sparse key costs a gather and a dequantisation more, so ranges are shorter. */
#define MLA_CPU_SPARSE_SPLIT_CHUNKS 8 /* default: 512 positions (hook MLA_CPU_SPLIT_CHUNKS) */
typedef struct mla_cpu_split {
    int nsplit;       /* ranges at most per request; 1: not split (the rest unset)         */
    int chunks;       /* 64-key chunks per range at least                                  */
    int64_t rt_total; /* row tiles per (request, kv head): ceil(s_q x h_q / h_kv / 16);
                         sparse: per (request, query token): ceil(h_q / 16)                 */
    float *part;      /* [b][h_kv][rt_total][nsplit][16][512 + 2] (sparse: [b][s_q][rt_total]
                         [nsplit][16][512 + 2]): O (the kernel's column order), m (log2
                         domain, scaled), l; 64-byte aligned in the workspace               */
} mla_cpu_split;
/* The key ranges of a request of L keys: *n ranges of *per chunks each (the last shorter);
 * n = min(nsplit, ceil(chunks(L) / chunks)), at least 1. */
static inline void mla_cpu_split_ranges(const mla_cpu_split *sp, int64_t L, int64_t *n, int64_t *per)
{
    const int64_t nch = (L + 63) / 64;
    int64_t k = (nch + sp->chunks - 1) / sp->chunks;
    if (k > sp->nsplit) k = sp->nsplit;
    if (k < 1) k = 1;
    *n = k;
    *per = (nch + k - 1) / k;
}
/* The smallest range of a split, in 64-key chunks: the testing hook MLA_CPU_SPLIT_CHUNKS=n
 * (1..4096; read at plan creation) or def. */
int mla_cpu_split_chunks_of_env(int def);
/* Workspace bytes a CPU plan of this shape can use for key splits (0: it never splits). */
size_t mla_cpu_split_workspace(const mla_decode_shape *shape);
/* The split of one call (arguments validated; cache_seqlens read on the host). */
void mla_cpu_split_of_call(const mla_decode_shape *shape, const mla_decode_args *args, int split_chunks,
                           void *workspace, size_t workspace_bytes, mla_cpu_split *split);
/* The same for sparse decode (positions of the index lists instead of keys; topk_length and
 * extra_topk_length read on the host). */
size_t mla_cpu_sparse_split_workspace(const mla_sparse_decode_shape *shape);
void mla_cpu_sparse_split_of_call(const mla_sparse_decode_shape *shape, const mla_sparse_decode_args *args,
                                  int split_chunks, void *workspace, size_t workspace_bytes,
                                  mla_cpu_split *split);

/* The functions of each fast path (src/cpu_tiles.h, TL_(x)): x_available: 1 when this CPU and
 * OS run it (for AMX: Linux granted the tile state, asked once per process); x_preferred: the
 * default choice takes it where it runs (for AVX512-BF16: on AMD CPUs only); x_decode:
 * mla_ref_decode's contract for bf16 / FP8 e4m3 q and k_cache, with the call's key split;
 * x_sparse_decode / x_sparse_prefill: the contracts of mla_ref_sparse_decode (with the call's
 * key split) / mla_ref_sparse_prefill (ref/mla_ref_sparse.h). */
#define MLA_CPU_PATH_DECLS(x)                                                                      \
    int mla_cpu_##x##_available(void);                                                             \
    int mla_cpu_##x##_preferred(void);                                                             \
    mla_status mla_cpu_##x##_decode(const mla_decode_shape *shape, const mla_decode_args *args,     \
                                    float softmax_scale, int num_threads, const mla_cpu_split *split); \
    mla_status mla_cpu_##x##_sparse_decode(const mla_sparse_decode_shape *shape,                     \
                                           const mla_sparse_decode_args *args, float softmax_scale, \
                                           int num_threads, const mla_cpu_split *split);            \
    mla_status mla_cpu_##x##_sparse_prefill(const mla_sparse_prefill_args *args, int num_threads);
MLA_CPU_PATH_DECLS(amx)
MLA_CPU_PATH_DECLS(avx512bf16)
MLA_CPU_PATH_DECLS(avx512)
MLA_CPU_PATH_DECLS(avx2)
MLA_CPU_PATH_DECLS(neon)

/* A fast path as the dispatch, the hook and the reports see it (src/api.c: the table). */
typedef struct mla_cpu_path {
    int kernel;             /* MLA_CPU_KERNEL_*                                 */
    const char *hook;       /* MLA_CPU_KERNEL value that forces it              */
    const char *name;       /* short name: "AMX", "AVX512BF16", ...             */
    const char *what;       /* what it is and where its code lives              */
    const char *needs;      /* what the CPU / OS must have                      */
    int (*available)(void);
    int (*preferred)(void);
    mla_status (*decode)(const mla_decode_shape *, const mla_decode_args *, float, int,
                         const mla_cpu_split *);
    mla_status (*sparse_decode)(const mla_sparse_decode_shape *, const mla_sparse_decode_args *,
                                float, int, const mla_cpu_split *);
    mla_status (*sparse_prefill)(const mla_sparse_prefill_args *, int);
} mla_cpu_path;
/* The fast paths, fastest first (the default takes the first preferred one); *n of them. */
const mla_cpu_path *mla_cpu_paths(int *n);
/* The fast path of a MLA_CPU_KERNEL_* value; NULL for the reference (and unknown values). */
const mla_cpu_path *mla_cpu_path_of(int kernel);

/* The kernel a CPU sparse call made now would run (MLA_CPU_KERNEL_*; the hook MLA_CPU_KERNEL is
 * read here: sparse decode plans read it at creation, prefill at each call). Returns
 * MLA_ERR_UNSUPPORTED (message set) when MLA_CPU_KERNEL names a path that does not run here. */
mla_status mla_cpu_sparse_kernel(int *kernel);

/* ---- GPU backend: src/gpu.cu when built with CUDA, src/gpu_stub.c otherwise. ----------------
 * Arguments are already validated by src/api.c (shape, pointers, strides, sizes) except the
 * GPU-specific rules, which the backend checks itself before launching anything. */
int mla_gpu_available(void);
mla_status mla_gpu_plan_init(struct mla_decode_plan *plan);
mla_status mla_gpu_schedule(const struct mla_decode_plan *plan, const int32_t *cache_seqlens,
                            void *workspace, size_t workspace_bytes, struct CUstream_st *stream);
mla_status mla_gpu_decode(const struct mla_decode_plan *plan, const mla_decode_args *args,
                          void *workspace, size_t workspace_bytes, struct CUstream_st *stream);

/* ---- Sparse decode (src/sparse_api.c; GPU backend src/gpu_sparse.cu) ------------------------ */
#define MLA_SP_PLAN_LIVE 0x6d6c612e73706470ull /* "mla.spdp" */
#define MLA_SP_PLAN_DEAD 0x646561642e737064ull

/* GPU facts of a sparse decode plan, filled by mla_gpu_sparse_plan_init. */
typedef struct mla_gpu_sparse_info {
    int num_sms, cc_major, cc_minor;
    int num_m_blocks;   /* ceil(h_q / 64)                                               */
    int num_sm_parts;   /* split-KV scheduler parts                                     */
    int split_qk;       /* kernel variant (src/gpu_sparse.cu, MLA_SPARSE_SPLIT_QK)         */
    int combine_slices; /* 0: chosen per launch; testing hook MLA_GPU_COMBINE_SLICES       */
    int l2_prefetch;    /* FP8 decode: L2 prefetch of the tile after next (not in the crossover kernel;
                           hook MLA_SPARSE_L2_PREFETCH=0 / =1: off / on everywhere) */
    int producer;       /* FP8 decode: producer-warpgroup kernel (hook MLA_SPARSE_PRODUCER=0: off; not with SPLIT) */
    int crossover;      /* producer kernel with 2 M blocks as 2-CTA clusters (hook MLA_SPARSE_CROSSOVER=0: off) */
    int pdl;            /* decode launched with PDL behind the scheduler (hook MLA_SPARSE_PDL=0: off) */
} mla_gpu_sparse_info;

struct mla_sparse_decode_plan {
    uint64_t magic;
    mla_sparse_decode_shape shape; /* complete, current-version copy */
    int device;
    int cpu_threads;               /* resolved worker count (CPU plans) */
    int cpu_kernel;                /* CPU plans: MLA_CPU_KERNEL_*                         */
    int cpu_split_chunks;          /* CPU plans: smallest range of a key split, in chunks */
    size_t workspace_bytes;        /* CPU: the key splits' partial rows (0: never splits) */
    mla_gpu_sparse_info gpu;       /* GPU plans */
};

/* Sparse GPU backend (src/gpu_sparse.cu; src/gpu_stub.c without CUDA). Arguments arrive
 * validated by src/sparse_api.c, GPU layout rules included; these check the device. */
mla_status mla_gpu_sparse_plan_init(struct mla_sparse_decode_plan *plan);
mla_status mla_gpu_sparse_decode(const struct mla_sparse_decode_plan *plan,
                                 const mla_sparse_decode_args *args, float softmax_scale,
                                 void *workspace, size_t workspace_bytes,
                                 struct CUstream_st *stream);
/* Device checks of a sparse prefill on `device` (usable, compute capability 9.0, sizes). */
mla_status mla_gpu_sparse_prefill_check(const mla_sparse_prefill_args *args, int device);
mla_status mla_gpu_sparse_prefill(const mla_sparse_prefill_args *args, int device,
                                  struct CUstream_st *stream);

#ifdef __cplusplus
}
#endif
#endif
