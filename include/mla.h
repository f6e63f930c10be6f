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

/* 1 if this build contains CUDA kernels AND the CUDA runtime sees at least one device; 0 if the
 * library was built without CUDA kernels or no usable GPU (driver, device) is present. */
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
    mla_dtype dtype;      /* out, q and k_cache: MLA_DTYPE_BF16 or MLA_DTYPE_FP16 (q, k_cache:
                             unless q_dtype / kv_dtype below say otherwise)                  */
    int causal;           /* 0/1: bottom-right causal mask for s_q > 1 (no-op when s_q == 1)  */
    int cpu_threads;      /* CPU device only: worker threads, 0 = all online cores           */
    /* Dense FP8 cache (vLLM's flash_mla_with_kvcache_fp8; see "Dense decode on an FP8 cache"
     * below). MLA_DTYPE_INVALID (0) = the same as dtype.                                     */
    mla_dtype kv_dtype;   /* k_cache: 0, dtype, or MLA_DTYPE_FP8_E4M3                          */
    mla_dtype q_dtype;    /* q: 0, dtype, or MLA_DTYPE_FP8_E4M3 (only with an FP8 k_cache)     */
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
    const float *descale_q;        /* [1] float32: FP8 q (required); 16-bit q: NULL = 1      */
    const float *descale_k;        /* [1] float32: required with an FP8 k_cache, else NULL   */
} mla_decode_args;

/* flags: reuse the schedule already in the workspace (computed by an earlier mla_decode or
 * mla_decode_schedule with the same cache_seqlens values) instead of recomputing it; this is
 * what lets one schedule serve all layers of a decode step. */
#define MLA_DECODE_REUSE_SCHEDULE 1u

/* Dense decode on an FP8 cache (the semantics of vLLM's FlashMLA fork,
 * flash_mla_with_kvcache_fp8 with per-tensor descale_q / descale_k; docs/fp8_dense.md):
 *  - shape.kv_dtype = MLA_DTYPE_FP8_E4M3: k_cache holds float8_e4m3fn codes, laid out as above
 *    [num_pages, page_size, h_kv, d_qk] (1 byte per element: element strides are byte strides).
 *  - shape.q_dtype = MLA_DTYPE_FP8_E4M3 (what vLLM passes) or 0 (q in shape.dtype).
 *  - shape.dtype (MLA_DTYPE_BF16 or MLA_DTYPE_FP16) is the dtype of out (vLLM: bf16).
 *  - args.descale_k: float32 [1], required. args.descale_q: float32 [1], required for an FP8 q,
 *    optional for a 16-bit q (NULL = 1). Per tensor: only element 0 is read. Host pointers for
 *    a CPU plan, device pointers for a GPU plan (read by the kernel, never on the host: a
 *    captured graph sees the values current at replay). Both must be NULL without an FP8 cache.
 *  - with Q and K the exact values of the codes (every e4m3 value is exact in bf16 and fp32),
 *        score = (Q . K) * softmax_scale * descale_q * descale_k
 *        out   = softmax(score) @ V * descale_k      (V = the first d_v dims of K)
 *        lse   = natural-log log-sum-exp of score
 *    i.e. attention over the dequantised q * descale_q and k * descale_k, fp32 accumulation.
 *    Everything else (paging, causal, cu_seqlens_q, h_kv > 1, empty rows, rows past
 *    cache_seqlens never read) is as for a 16-bit cache. Codes 0x7f / 0xff are NaN: in a
 *    visible row they make the row NaN; descale values are used as given (NaN/inf propagate).
 *  - GPU plans: 16-byte alignment of q / k_cache and strides in multiples of 16 / element-size
 *    elements. FP8 runs on compute capability 9.x: the e4m3 codes are converted exactly, to the
 *    output dtype in shared memory (more than 32 rows s_q * h_q / h_kv per KV head) or to fp16
 *    in registers or shared memory (up to 32 rows: kernels/decode_narrow.cu,
 *    kernels/decode_narrow32.cu and kernels/decode_fp8t.cu, which multiply in fp16; a bf16 q row is scaled by a power
 *    of two into fp16's range, its scores by the inverse, so only q elements more than 2^28
 *    times smaller than the row's largest lose bits, as fp16 subnormals); on 8.x GPUs (the
 *    portable mma.sync path) a plan with an FP8 q or k_cache gives MLA_ERR_UNSUPPORTED. */

MLA_API mla_decode_args mla_decode_args_default(void);

typedef struct mla_decode_plan *mla_decode_plan_t;

/* Creates a plan for `shape` on `device` (MLA_DEVICE_CPU or a CUDA ordinal). Validates the
 * shape; on a GPU it queries the device (SM count, architecture). *plan is NULL on failure. */
MLA_API mla_status mla_decode_plan_create(mla_decode_plan_t *plan, const mla_decode_shape *shape,
                                          int device);

/* Frees a plan. NULL is accepted. A destroyed plan must not be used again. */
MLA_API mla_status mla_decode_plan_destroy(mla_decode_plan_t plan);

/* Bytes of workspace mla_decode needs. GPU plans: required; the workspace must be on the plan's
 * device, 256-byte aligned, and not shared by two calls in flight at the same time. CPU plans:
 * optional, host memory, any alignment, not shared by concurrent calls; nonzero where a call has
 * fewer than 16 row tiles (b x h_kv x tiles of 16 query rows per request and kv head), e.g. a
 * single request with 16 heads: with at least this many bytes such a call cuts each request's
 * keys into ranges of 2048 keys or more, runs them on the threads and merges them; with fewer
 * bytes (or NULL) the workspace is not touched and the call runs unsplit on fewer threads.
 * Either way the result meets the same tolerances, and for a given workspace choice it is
 * bit-for-bit the same for any thread count. 0 for the C reference (fp16) and for larger
 * calls. */
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

/* ---------------------------------------------------------------------------------------- */
/* FP8 KV-cache formats (DeepSeek Sparse Attention; FlashMLA's "FP8 with scale" layouts)     */
/* ---------------------------------------------------------------------------------------- */

/* The byte layout of one cache token (h_kv = 1; byte-exact with FlashMLA's tests/quant.py).
 *
 * MLA_FP8_FORMAT_V32 (DeepSeek-V3.2), d_qk = 576, 656 bytes per token, interleaved:
 *     bytes [0, 512)    512 float8_e4m3fn: the NoPE (latent) dims 0..511, quantised
 *     bytes [512, 528)  4 float32 scales, one per 128-wide tile of the NoPE dims
 *     bytes [528, 656)  64 bf16: the RoPE dims 512..575, copied unchanged
 *   A page is page_size * 656 contiguous bytes (token t of a page at byte t * 656); the page
 *   stride (fp8 *_page_stride_bytes) is free (>= page_size * 656).
 *
 * MLA_FP8_FORMAT_MODEL1 (DeepSeek-V4 family), d_qk = 512 (448 NoPE + 64 RoPE), 584 bytes per
 * token, NOT interleaved: a page is
 *     [page_size x (448 float8_e4m3fn NoPE | 64 bf16 RoPE)]   (576 bytes per token)
 *     ++ [page_size x (7 float8_e8m0fnu scales | 1 pad byte)] (8 bytes per token)
 *   i.e. token t's NoPE at byte t * 576, its RoPE at t * 576 + 448, its scales at
 *   page_size * 576 + t * 8 (scale k covers NoPE dims [64k, 64k + 64)). FlashMLA views it as a
 *   [num_pages, page_size, 1, 584] tensor with stride(1) = 584. Quantisation writes 0 to the
 *   pad byte. The page stride is free (>= page_size * 584).
 *
 * Quantisation of a bf16 token x (per tile of T = 128 (V32) or 64 (MODEL1) NoPE dims):
 *     amax  = max |x_i| over the tile (fp32),  r = max(amax / 448, 1e-4) (fp32)
 *     scale = 2^ceil(log2(r))          (a power of two; stored as float32 / as e8m0 2^(b-127))
 *     q_i   = float8_e4m3fn(x_i / scale): round to nearest even; finite values beyond the
 *             largest e4m3 value and ±inf saturate to ±448; NaN gives 0x7f | sign (torch's
 *             float8_e4m3fn cast). A NaN in a tile makes its scale NaN (e8m0: 0xff) and every
 *             value of the tile NaN; ±inf makes the scale +inf (the tile then dequantises
 *             to NaN).
 * Dequantisation (what every sparse kernel computes, the reference included):
 *     V32:    bf16( float(e4m3) * float(bf16(scale)) )   (exact for power-of-two scales)
 *     MODEL1: bf16( float(e4m3) * 2^(e - 127) )           (e8m0 byte e; 0xff is NaN)
 *     RoPE dims: the stored bf16 values. */
typedef enum mla_fp8_format {
    MLA_FP8_FORMAT_INVALID = 0,
    MLA_FP8_FORMAT_V32 = 1,      /* d_qk 576, 656 B/token */
    MLA_FP8_FORMAT_MODEL1 = 2    /* d_qk 512, 584 B/token */
} mla_fp8_format;

#define MLA_FP8_V32_BYTES_PER_TOKEN 656
#define MLA_FP8_MODEL1_BYTES_PER_TOKEN 584

/* Facts of a format; any output pointer may be NULL. d_qk: dims per token (576 / 512);
 * d_nope: quantised dims (512 / 448); tile: NoPE dims per scale (128 / 64); bytes_per_token:
 * 656 / 584 (a page holds page_size * bytes_per_token bytes). */
MLA_API mla_status mla_fp8_format_info(mla_fp8_format format, int64_t *d_qk, int64_t *d_nope,
                                       int64_t *tile, int64_t *bytes_per_token);

/* Quantises a bf16 cache [num_pages, page_size, 1, d_qk] (element strides bf16_page_stride,
 * bf16_row_stride; the d_qk dims contiguous) into `format` at fp8_cache (page stride
 * fp8_page_stride_bytes). Every token of every page is written (pad bytes included); nothing
 * else. device: MLA_DEVICE_CPU (GPU devices: MLA_ERR_UNSUPPORTED for now); stream NULL.
 * The two buffers must not overlap. */
MLA_API mla_status mla_fp8_quantize_cache(mla_fp8_format format, int64_t num_pages,
                                          int64_t page_size, const void *bf16_cache,
                                          int64_t bf16_page_stride, int64_t bf16_row_stride,
                                          void *fp8_cache, int64_t fp8_page_stride_bytes,
                                          int device, struct CUstream_st *stream);

/* The inverse: writes the dequantised bf16 cache [num_pages, page_size, 1, d_qk] exactly as
 * the sparse kernels see it (see above). Same rules as mla_fp8_quantize_cache. */
MLA_API mla_status mla_fp8_dequantize_cache(mla_fp8_format format, int64_t num_pages,
                                            int64_t page_size, const void *fp8_cache,
                                            int64_t fp8_page_stride_bytes, void *bf16_cache,
                                            int64_t bf16_page_stride, int64_t bf16_row_stride,
                                            int device, struct CUstream_st *stream);

/* ---------------------------------------------------------------------------------------- */
/* Sparse MLA decode (DeepSeek Sparse Attention) on an FP8 cache                             */
/* ---------------------------------------------------------------------------------------- */

/* FlashMLA's flash_mla_with_kvcache(..., is_fp8_kvcache=True, indices=...). Each query token
 * attends to its own list of top-k cache positions instead of a prefix of the sequence.
 *
 * Semantics (spec §3; CPU reference and GPU kernels agree):
 *  - indices[i][j][k] is a flat cache position page * page_size + row. A position is valid iff
 *    0 <= position < num_pages * page_size; any other value (-1, INT_MIN, INT_MAX, ...) is
 *    masked (a -inf score) and never dereferenced. Only the first n_i = clamp(topk_length[i],
 *    0, topk) entries of every row of request i count (all topk without topk_length).
 *    Repeated positions count as often as they appear.
 *  - with an extra cache (shape.extra_topk > 0), extra_indices[i][j][:] (first
 *    clamp(extra_topk_length[i], 0, extra_topk)) select keys of extra_k_cache (same format, its
 *    own page size and page count) that join the same softmax.
 *  - K = the dequantised d_qk row; V = its first d_v = 512 dims (V32: the NoPE dims; MODEL1:
 *    the whole row, RoPE included). score = (q . k) * softmax_scale, fp32 accumulation.
 *  - out [b, s_q, h_q, 512] bf16 = softmax @ V; lse [b, h_q, s_q] float32 = natural-log
 *    log-sum-exp of the scores. With attn_sink [h_q] (float32, natural-log units), out of head h
 *    is multiplied by exp(lse) / (exp(lse) + exp(attn_sink[h])); lse is unchanged; a +inf sink
 *    gives out = 0, -inf changes nothing, NaN gives NaN.
 *  - a query row with no valid key: out = 0 and lse = +inf (whatever the sink).
 *  - h_kv must be 1 (MQA); any h_q >= 1 (FlashMLA: 64 and 128 only). q and out are bf16. */
typedef struct mla_sparse_decode_shape {
    size_t struct_size;      /* sizeof(mla_sparse_decode_shape)                             */
    int64_t b;               /* requests, >= 1                                              */
    int64_t s_q;             /* query tokens per request, >= 1                              */
    int64_t h_q;             /* query heads, >= 1                                           */
    int64_t h_kv;            /* must be 1                                                   */
    int64_t d_qk;            /* 576 for MLA_FP8_FORMAT_V32, 512 for MLA_FP8_FORMAT_MODEL1   */
    int64_t d_v;             /* 512                                                         */
    int64_t topk;            /* entries per indices row, >= 1                               */
    int64_t page_size;       /* tokens per page of k_cache, >= 1 (any value, GPU too)        */
    mla_fp8_format format;   /* the cache format of k_cache and extra_k_cache               */
    int cpu_threads;         /* CPU device only: worker threads, 0 = all online cores       */
    int64_t extra_topk;      /* entries per extra_indices row; 0 = no extra cache           */
    int64_t extra_page_size; /* tokens per page of extra_k_cache (used when extra_topk > 0) */
} mla_sparse_decode_shape;

MLA_API mla_sparse_decode_shape mla_sparse_decode_shape_default(void);

/* Per-call tensors (host pointers for a CPU plan, device pointers for a GPU plan). Strides
 * are in elements except *_bytes; innermost dims (d_qk of q, d_v of out, topk of indices)
 * are contiguous.
 *
 *   q                 [b, s_q, h_q, d_qk] bf16         strides q_stride[0..2]
 *   k_cache           [num_pages, page_size, 1, bytes_per_token] bytes in `format`; page
 *                     stride k_page_stride_bytes (>= page_size * bytes_per_token)
 *   indices           [b, s_q, topk] int32            strides indices_stride[0..1]
 *   topk_length       optional [b] int32, contiguous
 *   attn_sink         optional [h_q] float32, contiguous
 *   extra_k_cache     [extra_num_pages, extra_page_size, 1, bytes_per_token]; page stride
 *                     extra_k_page_stride_bytes        (only with shape.extra_topk > 0)
 *   extra_indices     [b, s_q, extra_topk] int32      strides extra_indices_stride[0..1]
 *   extra_topk_length optional [b] int32, contiguous
 *   out               [b, s_q, h_q, 512] bf16          strides out_stride[0..2]
 *   lse               [b, h_q, s_q] float32            strides lse_stride[0..2] (FlashMLA
 *                     returns a transposed view of a [b, s_q, h_q] buffer: any layout works)
 * Without an extra cache every extra_* pointer must be NULL. */
typedef struct mla_sparse_decode_args {
    size_t struct_size;             /* sizeof(mla_sparse_decode_args)                       */
    const void *q;
    int64_t q_stride[3];            /* strides of dims b, s_q, h_q                          */
    const void *k_cache;
    int64_t num_pages;              /* pages in k_cache, >= 1                               */
    int64_t k_page_stride_bytes;
    const int32_t *indices;
    int64_t indices_stride[2];      /* strides of dims b, s_q                               */
    const int32_t *topk_length;     /* optional, NULL = topk for every request              */
    const float *attn_sink;         /* optional, NULL = no sink                             */
    const void *extra_k_cache;
    int64_t extra_num_pages;
    int64_t extra_k_page_stride_bytes;
    const int32_t *extra_indices;
    int64_t extra_indices_stride[2];
    const int32_t *extra_topk_length; /* optional                                           */
    void *out;
    int64_t out_stride[3];          /* strides of dims b, s_q, h_q                          */
    float *lse;
    int64_t lse_stride[3];          /* strides of dims b, h_q, s_q                          */
    float softmax_scale;            /* <= 0 or NaN: the default d_qk ** -0.5                */
    uint32_t flags;                 /* MLA_SPARSE_DECODE_* flags                            */
} mla_sparse_decode_args;

/* flags: reuse the split-KV schedule already in the workspace (same topk_length /
 * extra_topk_length values as the call that computed it). No effect on the CPU. */
#define MLA_SPARSE_DECODE_REUSE_SCHEDULE 1u

MLA_API mla_sparse_decode_args mla_sparse_decode_args_default(void);

typedef struct mla_sparse_decode_plan *mla_sparse_decode_plan_t;

/* Creates a plan for `shape` on `device`: MLA_DEVICE_CPU, or a CUDA ordinal of compute
 * capability 9.0 (the sparse kernels are sm_90a wgmma code; other GPUs, a build without CUDA or
 * no usable device give MLA_ERR_UNSUPPORTED after the shape has been validated). GPU calls:
 * q, out, kv and (V32) the caches 16-byte aligned, MODEL1 caches 8-byte aligned, page strides
 * multiples of 16 / 8 bytes, q / out / kv element strides multiples of 8; the split-KV schedule
 * is computed on the device from the clamped topk lengths at every call (CUDA-graph safe).
 * *plan is NULL on failure. */
MLA_API mla_status mla_sparse_decode_plan_create(mla_sparse_decode_plan_t *plan,
                                                 const mla_sparse_decode_shape *shape, int device);

/* Frees a plan; NULL is accepted. */
MLA_API mla_status mla_sparse_decode_plan_destroy(mla_sparse_decode_plan_t plan);

/* Bytes of workspace mla_sparse_decode needs; the same rules as mla_decode_workspace_size.
 * CPU plans: optional; nonzero where a call has fewer than 16 row tiles (b x s_q x tiles of 16
 * query heads), e.g. one request of one token with 16 or 64 heads: with at least this many
 * bytes such a call cuts each request's index positions (topk_length entries, then the extra
 * ones) into up to ceil(16 / row tiles) ranges of 512 or more, runs them on the threads and
 * merges them (the sink applies after the merge); with fewer bytes (or NULL) the workspace is not touched and the call runs
 * unsplit. Either way the result meets the same tolerances and, for a given workspace choice,
 * is bit-for-bit the same for any thread count. 0 for the C reference and for larger calls. */
MLA_API mla_status mla_sparse_decode_workspace_size(mla_sparse_decode_plan_t plan, size_t *bytes);

/* Sparse decode. CPU plans compute the result before returning (stream must be NULL), read
 * only the valid positions of the cache, allocate nothing and are bit-for-bit deterministic
 * whatever the thread count. Every argument is validated first; an error writes nothing. */
MLA_API mla_status mla_sparse_decode(mla_sparse_decode_plan_t plan,
                                     const mla_sparse_decode_args *args, void *workspace,
                                     size_t workspace_bytes, struct CUstream_st *stream);

/* ---------------------------------------------------------------------------------------- */
/* Sparse MLA prefill                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* FlashMLA's flash_mla_sparse_fwd(q, kv, indices, sm_scale, d_v=512, attn_sink=None,
 * topk_length=None) -> (out, max_logits, lse). bf16 KV, not paged, no batch dimension (callers
 * fold the batch into s_q and offset the indices).
 *
 *   q           [s_q, h_q, d_qk] bf16          strides q_stride[0..1]
 *   kv          [s_kv, h_kv, d_qk] bf16        strides kv_stride[0..1]
 *   indices     [s_q, h_kv, topk] int32        strides indices_stride[0..1]
 *   topk_length optional [s_q] int32, contiguous (per query token)
 *   attn_sink   optional [h_q] float32, contiguous
 *   out         [s_q, h_q, d_v] bf16           strides out_stride[0..1]
 *   max_logits  [s_q, h_q] float32             strides max_logits_stride[0..1]
 *   lse         [s_q, h_q] float32             strides lse_stride[0..1]
 *
 * Semantics: query head h uses KV head g = h / (h_q / h_kv) (FlashMLA: h_kv = 1) and the
 * keys kv[indices[s][g][k]] for k < clamp(topk_length[s], 0, topk); an index < 0 or >= s_kv is
 * masked and never dereferenced. score = (q . k) * softmax_scale (required: > 0, finite).
 * V = the first d_v = 512 dims of the kv row (for d_qk = 512 the whole row, RoPE included).
 * max_logits = max score (natural units), lse = natural-log log-sum-exp of the scores; an
 * empty row gets out = 0, max_logits = -inf, lse = +inf. attn_sink as for sparse decode (out
 * scaled, max_logits and lse unchanged). */
typedef struct mla_sparse_prefill_args {
    size_t struct_size;              /* sizeof(mla_sparse_prefill_args)                     */
    int64_t s_q;                     /* query tokens, >= 1                                  */
    int64_t s_kv;                    /* kv tokens, >= 1                                     */
    int64_t h_q;                     /* query heads, >= 1                                   */
    int64_t h_kv;                    /* kv heads, >= 1, divides h_q                         */
    int64_t d_qk;                    /* 576 or 512                                          */
    int64_t d_v;                     /* 512                                                 */
    int64_t topk;                    /* entries per indices row, >= 1                       */
    const void *q;
    int64_t q_stride[2];             /* strides of dims s_q, h_q                            */
    const void *kv;
    int64_t kv_stride[2];            /* strides of dims s_kv, h_kv                          */
    const int32_t *indices;
    int64_t indices_stride[2];       /* strides of dims s_q, h_kv                           */
    const int32_t *topk_length;      /* optional                                            */
    const float *attn_sink;          /* optional                                            */
    void *out;
    int64_t out_stride[2];           /* strides of dims s_q, h_q                            */
    float *max_logits;
    int64_t max_logits_stride[2];
    float *lse;
    int64_t lse_stride[2];
    float softmax_scale;             /* required: > 0 and finite                            */
    int cpu_threads;                 /* CPU device only: worker threads, 0 = all online cores */
} mla_sparse_prefill_args;

MLA_API mla_sparse_prefill_args mla_sparse_prefill_args_default(void);

/* Bytes of workspace mla_sparse_prefill needs for these arguments on `device` (0 on the CPU). */
MLA_API mla_status mla_sparse_prefill_workspace_size(const mla_sparse_prefill_args *args,
                                                     int device, size_t *bytes);

/* Sparse prefill on `device` (MLA_DEVICE_CPU, or a CUDA ordinal of compute capability 9.0 with
 * the GPU rules of mla_sparse_decode_plan_create; any h_kv dividing h_q; no workspace). CPU:
 * computes before returning, stream NULL, allocates nothing, deterministic. Every argument is
 * validated first; errors write nothing. */
MLA_API mla_status mla_sparse_prefill(const mla_sparse_prefill_args *args, int device,
                                      void *workspace, size_t workspace_bytes,
                                      struct CUstream_st *stream);

#ifdef __cplusplus
}
#endif
#endif /* MLA_H */
