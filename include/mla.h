/*
 * mla.h — the one public header of mla.c: Multi-head Latent Attention (MLA) kernels
 * for DeepSeek-style models. C11 and C++ clean; needs no CUDA header.
 *
 * Usage (dense decode, one decode step, any device):
 *
 *     mla_decode_shape shape = mla_decode_shape_default();
 *     shape.b = 128; shape.s_q = 1; shape.h_q = 128; shape.h_kv = 1;
 *     shape.page_size = 64; shape.dtype = MLA_DTYPE_BF16;
 *     mla_decode_plan_t plan;
 *     if (mla_decode_plan_create(&plan, &shape, MLA_DEVICE_CPU) != MLA_OK)   // or a CUDA ordinal
 *         fprintf(stderr, "%s\n", mla_last_error());
 *     size_t ws_bytes; mla_decode_workspace_size(plan, &ws_bytes);       // caller allocates
 *     mla_decode_args a = mla_decode_args_default();
 *     a.q = q; ... (pointers + strides, see mla_decode_args)
 *     mla_status st = mla_decode(plan, &a, workspace, ws_bytes, stream);    // stream: NULL on the CPU
 *     mla_decode_plan_destroy(plan);
 *
 * Rules that hold for every entry point:
 *  - Every function returns an mla_status. On failure mla_last_error() (thread-local) says
 *    exactly what was wrong, e.g. "h_q (63) is not divisible by h_kv (2)". The library never
 *    exits, aborts, prints or throws, and never leaks on an error path.
 *  - Every argument is validated before any work starts: a call that fails validation writes
 *    nothing (no output, no workspace byte).
 *  - The caller allocates outputs and workspace. mla_decode never allocates device memory,
 *    never synchronises and never reads device memory on the host, so it can be captured in a
 *    CUDA graph; the split-KV schedule is computed on the GPU from cache_seqlens at every call.
 *  - Strides are in elements (not bytes) and int64; all offsets are computed in int64, so caches
 *    larger than 2^31 elements work.
 *  - Structs start with `size_t struct_size` and are filled by their *_default() function; they
 *    and the enums only ever grow at the end. A struct_size larger than this library knows is
 *    rejected (MLA_ERR_INVALID_ARGUMENT), a smaller one (an older caller) is accepted and the
 *    missing fields take their defaults.
 *  - The device is explicit: MLA_DEVICE_CPU or a CUDA ordinal. A GPU plan runs on its own device
 *    whatever device is current in the calling thread, and restores the current device.
 *  - A plan is immutable after creation: several threads may share one plan and call mla_decode
 *    concurrently (each with its own outputs and workspace).
 */
#ifndef MLA_H
#define MLA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define MLA_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define MLA_API __attribute__((visibility("default")))
#else
#  define MLA_API
#endif

#define MLA_VERSION_MAJOR 0
#define MLA_VERSION_MINOR 1
#define MLA_VERSION_PATCH 0
#define MLA_VERSION_CODE (MLA_VERSION_MAJOR * 10000 + MLA_VERSION_MINOR * 100 + MLA_VERSION_PATCH)

struct CUstream_st; /* == cudaStream_t's target; NULL is the legacy default stream */

/* ---------------------------------------------------------------------------------------- */
/* Status, errors, version                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef enum mla_status {
    MLA_OK = 0,
    MLA_ERR_INVALID_ARGUMENT = 1,   /* a shape, dtype, stride, pointer or value is wrong      */
    MLA_ERR_UNSUPPORTED = 2,        /* valid, but not built in / not on this device           */
    MLA_ERR_WORKSPACE_TOO_SMALL = 3,/* workspace_bytes < mla_decode_workspace_size()         */
    MLA_ERR_CUDA = 4,               /* the CUDA runtime reported an error (message has it)    */
    MLA_ERR_INTERNAL = 5,           /* a bug in mla.c: please report it                       */
    MLA_ERR_OUT_OF_MEMORY = 6       /* host allocation failed (plan creation only)            */
} mla_status;

/* Static name of a status ("MLA_ERR_INVALID_ARGUMENT", ...); never NULL. */
MLA_API const char *mla_status_string(mla_status status);

/* The message of the last failed call made by this thread ("" if none). Valid until this
 * thread's next failing call into the library. */
MLA_API const char *mla_last_error(void);

/* MLA_VERSION_CODE of the library actually loaded. */
MLA_API int mla_version(void);

/* 1 if this build contains CUDA kernels, else 0. */
MLA_API int mla_has_cuda(void);

/* ---------------------------------------------------------------------------------------- */
/* Data types and devices                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef enum mla_dtype {
    MLA_DTYPE_INVALID = 0,
    MLA_DTYPE_BF16 = 1,
    MLA_DTYPE_FP16 = 2,
    MLA_DTYPE_FP32 = 3,
    MLA_DTYPE_INT32 = 4,
    MLA_DTYPE_FP8_E4M3 = 5,
    MLA_DTYPE_UINT8 = 6
} mla_dtype;

/* Size in bytes of one element (0 for an unknown dtype). */
MLA_API size_t mla_dtype_size(mla_dtype dtype);

#define MLA_DEVICE_CPU (-1)

/* ---------------------------------------------------------------------------------------- */
/* Dense MLA decode                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* The shape class of a plan. Everything that may change from one decode step to the next
 * (lengths, block tables, number of pages, pointers, softmax scale) lives in mla_decode_args. */
typedef struct mla_decode_shape {
    size_t struct_size;   /* sizeof(mla_decode_shape)                                        */
    int64_t b;            /* requests in the batch, >= 1                                     */
    int64_t s_q;          /* query tokens per request, >= 1 (the maximum when cu_seqlens_q)   */
    int64_t h_q;          /* query heads, >= 1                                               */
    int64_t h_kv;         /* KV heads, >= 1, divides h_q (1 for MLA)                         */
    int64_t d_qk;         /* 576 (512 latent + 64 RoPE) or 512; default 576                  */
    int64_t d_v;          /* 512: V is the first d_v dims of the K row                        */
    int64_t page_size;    /* tokens per cache page, >= 1 (CPU); a multiple of 16 on the GPU   */
    mla_dtype dtype;      /* q, k_cache and out: MLA_DTYPE_BF16 or MLA_DTYPE_FP16             */
    int causal;           /* 0/1: bottom-right causal mask for s_q > 1 (no-op when s_q == 1)  */
    int cpu_threads;      /* CPU device only: worker threads, 0 = all online cores           */
} mla_decode_shape;

MLA_API mla_decode_shape mla_decode_shape_default(void);

/* Per-call tensors. All pointers are host pointers for a CPU plan and device pointers (on the
 * plan's device) for a GPU plan. Strides are in elements; the innermost dimension of q, k_cache
 * and out must be contiguous (stride 1, implicit).
 *
 *   q             [b, s_q, h_q, d_qk]         dtype        strides q_stride[0..2]
 *   k_cache       [num_pages, page_size, h_kv, d_qk] dtype strides k_stride[0..2]
 *                 token t of request i lives in page block_table[i][t / page_size],
 *                 row t % page_size. K = the whole d_qk row, V = its first d_v dims.
 *   block_table   [b, max_pages] int32         row stride block_table_stride
 *                 only entries [0, ceil(cache_seqlens[i] / page_size)) are ever read.
 *   cache_seqlens [b] int32, contiguous; 0 is allowed (the request attends to nothing).
 *   cu_seqlens_q  optional [b+1] int32 prefix sums of per-request query lengths (each in
 *                 [0, s_q]); NULL means every request has s_q query tokens. When given,
 *                 request i's query rows are q[i, 0 : cu[i+1]-cu[i]] and the rows past that
 *                 are neither read nor written.
 *   out           [b, s_q, h_q, d_v]           dtype        strides out_stride[0..2]
 *   lse           [b, h_q, s_q] float32        strides lse_stride[0..2]
 *
 * Semantics: score = (q . k) * softmax_scale; softmax over the visible keys; out = P @ V,
 * accumulated in fp32. lse = natural-log log-sum-exp of the scaled scores. With causal and
 * s_q > 1 (per request: its own query length), query row j of a request with L keys and n
 * query tokens sees keys [0, L - n + j] (bottom-right aligned). A row with no visible key
 * gets out = 0 and lse = +inf. Cache rows past cache_seqlens (NaN allowed) never influence
 * anything. Query head h uses KV head h / (h_q / h_kv).
 *
 * Out-of-range data the API cannot see on the host (GPU plans): negative cache_seqlens act as
 * 0; cache_seqlens larger than max_pages * page_size are clamped to it; a block_table entry
 * outside [0, num_pages) inside the used range makes the keys of that page invisible (never
 * dereferenced). A CPU plan checks these values and returns MLA_ERR_INVALID_ARGUMENT instead. */
typedef struct mla_decode_args {
    size_t struct_size;            /* sizeof(mla_decode_args)                                */
    const void *q;
    int64_t q_stride[3];           /* strides of dims b, s_q, h_q                            */
    const void *k_cache;
    int64_t num_pages;             /* pages in k_cache, >= 1                                 */
    int64_t k_stride[3];           /* strides of dims page, row, h_kv                        */
    const int32_t *block_table;
    int64_t max_pages;             /* columns of block_table, >= 1                          */
    int64_t block_table_stride;    /* row stride of block_table                              */
    const int32_t *cache_seqlens;
    const int32_t *cu_seqlens_q;   /* optional, NULL = fixed s_q                             */
    void *out;
    int64_t out_stride[3];         /* strides of dims b, s_q, h_q                            */
    float *lse;
    int64_t lse_stride[3];         /* strides of dims b, h_q, s_q                            */
    float softmax_scale;           /* <= 0 or NaN: the default d_qk ** -0.5                  */
    uint32_t flags;                /* MLA_DECODE_* flags                                     */
} mla_decode_args;

/* flags: reuse the schedule already in the workspace (computed by an earlier mla_decode or
 * mla_decode_schedule with the same cache_seqlens values) instead of recomputing it; this is
 * what lets one schedule serve all layers of a decode step. */
#define MLA_DECODE_REUSE_SCHEDULE 1u

MLA_API mla_decode_args mla_decode_args_default(void);

typedef struct mla_decode_plan *mla_decode_plan_t;

/* Creates a plan for `shape` on `device` (MLA_DEVICE_CPU or a CUDA ordinal). Validates the
 * shape; on a GPU it queries the device (SM count, architecture). *plan is NULL on failure. */
MLA_API mla_status mla_decode_plan_create(mla_decode_plan_t *plan, const mla_decode_shape *shape,
                                          int device);

/* Frees a plan. NULL is accepted. A destroyed plan must not be used again. */
MLA_API mla_status mla_decode_plan_destroy(mla_decode_plan_t plan);

/* Bytes of workspace mla_decode needs (0 on the CPU). The workspace must be on the plan's
 * device, 256-byte aligned, and not shared by two calls in flight at the same time. */
MLA_API mla_status mla_decode_workspace_size(mla_decode_plan_t plan, size_t *bytes);

/* The plan's device (MLA_DEVICE_CPU or the CUDA ordinal) and the number of split-KV parts its
 * scheduler uses (1 on the CPU). Either pointer may be NULL. */
MLA_API mla_status mla_decode_plan_info(mla_decode_plan_t plan, int *device, int *num_sm_parts);

/* Computes only the split-KV schedule from cache_seqlens (device memory of the plan's device)
 * into the workspace; a following mla_decode with MLA_DECODE_REUSE_SCHEDULE uses it. No-op on
 * the CPU. */
MLA_API mla_status mla_decode_schedule(mla_decode_plan_t plan, const int32_t *cache_seqlens,
                                       void *workspace, size_t workspace_bytes,
                                       struct CUstream_st *stream);

/* Dense decode: enqueues scheduler + attention + combine on `stream` (GPU), or computes the
 * result before returning (CPU; stream must be NULL). */
MLA_API mla_status mla_decode(mla_decode_plan_t plan, const mla_decode_args *args,
                              void *workspace, size_t workspace_bytes,
                              struct CUstream_st *stream);

#ifdef __cplusplus
}
#endif
#endif /* MLA_H */
