/* sparse_api.c — the public C ABI of DeepSeek Sparse Attention (include/mla.h, "FP8 KV-cache
 * formats", "Sparse MLA decode", "Sparse MLA prefill"): defaults, plans, the validation of
 * every argument before any work, and the dispatch to the CPU (AMX tiles where they run,
 * src/cpu_amx.c, else the reference, ref/mla_fp8.c, ref/mla_ref_sparse.c) or to the GPU backend (src/gpu_sparse.cu, kernels/sparse_sm90.cu: compute
 * capability 9.0). FP8 quantise / dequantise of a cache on a GPU return MLA_ERR_UNSUPPORTED.
 *
 * Validation rules (MLA_ERR_INVALID_ARGUMENT unless noted; the message names the argument and
 * its value; nothing is written on failure). They follow src/api.c:
 *  - structs: struct_size larger than this library's sizeof, or smaller than the first
 *    version of the struct, is rejected.
 *  - dims: 1 <= b, s_q, h_q, h_kv, topk, page_size, s_kv <= INT32_MAX; extra_topk in
 *    [0, INT32_MAX] (0 = no extra cache; then every extra_* pointer must be NULL); sparse
 *    decode: h_kv == 1, d_qk == the format's (576 V32, 512 MODEL1); prefill: h_q % h_kv == 0,
 *    d_qk in {576, 512}; d_v == 512; 0 <= cpu_threads <= 256.
 *  - pointers: the required tensors non-NULL, element-aligned (2 B for bf16, 4 B for int32 and
 *    float32; FP8 caches are bytes); optional ones (topk_length, attn_sink, ...) aligned.
 *  - element strides: as dense decode (>= 1 for dims of extent > 1, no self-overlap, int64
 *    byte offsets); FP8 page strides (bytes): >= page_size * bytes_per_token when there is
 *    more than one page, and the last byte's offset fits in int64.
 *  - softmax_scale: decode: <= 0 or NaN means d_qk ** -0.5 (as dense); prefill: required,
 *    > 0 and finite.
 *  - device: MLA_DEVICE_CPU or a CUDA ordinal; stream NULL on the CPU; flags: only
 *    MLA_SPARSE_DECODE_* bits.
 *  - GPU only (16-byte loads): q, out, k_cache, extra_k_cache, kv bases 16-byte aligned; q / out /
 *    kv strides of dims with extent > 1 multiples of 8 elements; FP8 caches and page strides
 *    (when there is more than one page) multiples of 16 bytes (V32) / 8 bytes (MODEL1); the
 *    workspace 256-byte aligned.
 *  - quantise / dequantise: the bf16 and FP8 buffers must not overlap.
 * Index values and topk_length values are data, not arguments: they are never rejected
 * (invalid positions are masked, lengths clamped), on the CPU as on the GPU. */
#include "internal.h"
#include "mla_fp8.h"
#include "mla_ref_sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SP_DIM_MAX 2147483647LL
#define SP_THREADS_MAX 256
#define SP_NO_GPU "GPU FP8 cache conversion is not built yet (convert on the CPU)"

static const char *format_name(mla_fp8_format f)
{
    switch (f) {
    case MLA_FP8_FORMAT_V32: return "MLA_FP8_FORMAT_V32";
    case MLA_FP8_FORMAT_MODEL1: return "MLA_FP8_FORMAT_MODEL1";
    case MLA_FP8_FORMAT_INVALID: break;
    }
    return "unknown";
}

static mla_status sp_format(mla_fp8_format f, mla_fp8_layout *l)
{
    if (!mla_fp8_get_layout(f, l))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "format (%d) is not an FP8 cache format: use MLA_FP8_FORMAT_V32 (1) "
                             "or MLA_FP8_FORMAT_MODEL1 (2)",
                             (int)f);
    return MLA_OK;
}

static mla_status sp_dim(const char *name, int64_t v, int64_t lo)
{
    if (v < lo || v > SP_DIM_MAX)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s (%lld) must be in [%lld, %lld]", name,
                             (long long)v, (long long)lo, SP_DIM_MAX);
    return MLA_OK;
}

/* gpu: the operation has GPU kernels (else a CUDA ordinal gives MLA_ERR_UNSUPPORTED). */
static mla_status sp_device(int device, struct CUstream_st *stream, const char *what, int gpu)
{
    if (device < MLA_DEVICE_CPU)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "device (%d) must be MLA_DEVICE_CPU (-1) or a CUDA ordinal >= 0",
                             device);
    if (device >= 0) {
        if (gpu) return MLA_OK;
        return mla_set_error(MLA_ERR_UNSUPPORTED, "%s on CUDA device %d: " SP_NO_GPU, what,
                             device);
    }
    if (stream)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "stream must be NULL on the CPU device (got %p)", (void *)stream);
    return MLA_OK;
}

static mla_status sp_threads(int n)
{
    if (n < 0 || n > SP_THREADS_MAX)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "cpu_threads (%d) must be in [0, %d] (0 = all online cores)", n,
                             SP_THREADS_MAX);
    return MLA_OK;
}

static int sp_resolve_threads(int n)
{
    long t = n > 0 ? n : sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    if (t > SP_THREADS_MAX) t = SP_THREADS_MAX;
    return (int)t;
}

/* A required (ptr != NULL) or optional pointer and its alignment. */
static mla_status sp_ptr(const char *name, const void *ptr, size_t align, int required)
{
    if (!ptr) {
        if (required) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s is NULL", name);
        return MLA_OK;
    }
    if ((uintptr_t)ptr % align)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s (%p) is not %zu-byte aligned", name,
                             ptr, align);
    return MLA_OK;
}

/* An FP8 cache of num_pages pages of page_size tokens, page stride `stride` bytes. */
static mla_status sp_fp8_cache(const char *tensor, const char *stride_name, int64_t num_pages,
                               int64_t page_size, int64_t stride, const mla_fp8_layout *l,
                               int64_t *span_bytes)
{
    const int64_t page_bytes = page_size * l->bytes_per_token; /* page_size <= 2^31: fits */
    if (stride < 0 || (num_pages > 1 && stride < page_bytes))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s (%lld) must be >= page_size * %d = %lld bytes (one page of %s)",
                             stride_name, (long long)stride, l->bytes_per_token,
                             (long long)page_bytes, tensor);
    int64_t span;
    if (__builtin_mul_overflow(stride, num_pages - 1, &span) ||
        __builtin_add_overflow(span, page_bytes, &span) ||
        __builtin_mul_overflow(num_pages, page_size, &(int64_t){0}))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s spans more than 2^63 bytes (%lld pages of stride %lld)", tensor,
                             (long long)num_pages, (long long)stride);
    if (span_bytes) *span_bytes = span;
    return MLA_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* FP8 cache quantise / dequantise                                                           */
/* ---------------------------------------------------------------------------------------- */

mla_status mla_fp8_format_info(mla_fp8_format format, int64_t *d_qk, int64_t *d_nope,
                               int64_t *tile, int64_t *bytes_per_token)
{
    mla_fp8_layout l;
    mla_status st = sp_format(format, &l);
    if (st) return st;
    if (d_qk) *d_qk = l.d_qk;
    if (d_nope) *d_nope = l.d_nope;
    if (tile) *tile = l.tile;
    if (bytes_per_token) *bytes_per_token = l.bytes_per_token;
    return MLA_OK;
}

/* Validates a quantise / dequantise call (bf16: the bf16 cache, fp8: the FP8 one). */
static mla_status check_convert(mla_fp8_format format, int64_t num_pages, int64_t page_size,
                                const void *bf16, int64_t bf16_page_stride,
                                int64_t bf16_row_stride, const void *fp8, int64_t fp8_stride,
                                int device, struct CUstream_st *stream, const char *what,
                                mla_fp8_layout *l)
{
    mla_status st;
    if ((st = sp_format(format, l)) || (st = sp_dim("num_pages", num_pages, 1)) ||
        (st = sp_dim("page_size", page_size, 1)) ||
        (st = sp_ptr("bf16_cache", bf16, 2, 1)) || (st = sp_ptr("fp8_cache", fp8, 1, 1)))
        return st;
    static const char *const names[2] = {"bf16_page_stride", "bf16_row_stride"};
    const int64_t dims[2] = {num_pages, page_size}, strides[2] = {bf16_page_stride,
                                                                  bf16_row_stride};
    int64_t fp8_span;
    if ((st = mla_check_layout("bf16_cache", 2, dims, strides, names, l->d_qk, 2, 1)) ||
        (st = sp_fp8_cache("fp8_cache", "fp8_page_stride_bytes", num_pages, page_size,
                           fp8_stride, l, &fp8_span)))
        return st;
    /* the bf16 cache's byte range: the largest offset plus one row */
    const int64_t bf16_span =
        2 * ((num_pages - 1) * bf16_page_stride + (page_size - 1) * bf16_row_stride + l->d_qk);
    const uintptr_t b0 = (uintptr_t)bf16, f0 = (uintptr_t)fp8;
    if (b0 < f0 + (uintptr_t)fp8_span && f0 < b0 + (uintptr_t)bf16_span)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "bf16_cache (%p, %lld bytes) and fp8_cache (%p, %lld bytes) overlap",
                             bf16, (long long)bf16_span, fp8, (long long)fp8_span);
    return sp_device(device, stream, what, 0);
}

mla_status mla_fp8_quantize_cache(mla_fp8_format format, int64_t num_pages, int64_t page_size,
                                  const void *bf16_cache, int64_t bf16_page_stride,
                                  int64_t bf16_row_stride, void *fp8_cache,
                                  int64_t fp8_page_stride_bytes, int device,
                                  struct CUstream_st *stream)
{
    mla_fp8_layout l;
    mla_status st = check_convert(format, num_pages, page_size, bf16_cache, bf16_page_stride,
                                  bf16_row_stride, fp8_cache, fp8_page_stride_bytes, device,
                                  stream, "mla_fp8_quantize_cache", &l);
    if (st) return st;
    mla_fp8_quantize_cache_cpu(format, num_pages, page_size, (const uint16_t *)bf16_cache,
                               bf16_page_stride, bf16_row_stride, (uint8_t *)fp8_cache,
                               fp8_page_stride_bytes);
    return MLA_OK;
}

mla_status mla_fp8_dequantize_cache(mla_fp8_format format, int64_t num_pages, int64_t page_size,
                                    const void *fp8_cache, int64_t fp8_page_stride_bytes,
                                    void *bf16_cache, int64_t bf16_page_stride,
                                    int64_t bf16_row_stride, int device,
                                    struct CUstream_st *stream)
{
    mla_fp8_layout l;
    mla_status st = check_convert(format, num_pages, page_size, bf16_cache, bf16_page_stride,
                                  bf16_row_stride, fp8_cache, fp8_page_stride_bytes, device,
                                  stream, "mla_fp8_dequantize_cache", &l);
    if (st) return st;
    mla_fp8_dequantize_cache_cpu(format, num_pages, page_size, (const uint8_t *)fp8_cache,
                                 fp8_page_stride_bytes, (uint16_t *)bf16_cache,
                                 bf16_page_stride, bf16_row_stride);
    return MLA_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Sparse decode                                                                             */
/* ---------------------------------------------------------------------------------------- */

#define SP_PLAN_LIVE MLA_SP_PLAN_LIVE /* struct mla_sparse_decode_plan: src/internal.h */
#define SP_PLAN_DEAD MLA_SP_PLAN_DEAD

mla_sparse_decode_shape mla_sparse_decode_shape_default(void)
{
    mla_sparse_decode_shape s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.b = 1;
    s.s_q = 1;
    s.h_q = 128;
    s.h_kv = 1;
    s.d_qk = 576;
    s.d_v = 512;
    s.topk = 2048;
    s.page_size = 64;
    s.format = MLA_FP8_FORMAT_V32;
    s.cpu_threads = 0;
    s.extra_topk = 0;
    s.extra_page_size = 64;
    return s;
}

mla_sparse_decode_args mla_sparse_decode_args_default(void)
{
    mla_sparse_decode_args a;
    memset(&a, 0, sizeof a); /* NULL pointers, zero strides (must be set), default scale */
    a.struct_size = sizeof a;
    return a;
}

#define SD_SHAPE_MIN (offsetof(mla_sparse_decode_shape, extra_page_size) + sizeof(int64_t))
#define SD_ARGS_MIN (offsetof(mla_sparse_decode_args, flags) + sizeof(uint32_t))

static mla_status validate_decode_shape(const mla_sparse_decode_shape *s, mla_fp8_layout *l)
{
    mla_status st;
    if ((st = sp_dim("b", s->b, 1)) || (st = sp_dim("s_q", s->s_q, 1)) ||
        (st = sp_dim("h_q", s->h_q, 1)) || (st = sp_dim("h_kv", s->h_kv, 1)) ||
        (st = sp_dim("topk", s->topk, 1)) || (st = sp_dim("page_size", s->page_size, 1)) ||
        (st = sp_dim("extra_topk", s->extra_topk, 0)))
        return st;
    if (s->h_kv != 1)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "h_kv (%lld) must be 1: sparse decode attends one latent KV head (MQA)",
                             (long long)s->h_kv);
    if ((st = sp_format(s->format, l))) return st;
    if (s->d_qk != l->d_qk)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "d_qk (%lld) does not match format %s, whose tokens have %d dims",
                             (long long)s->d_qk, format_name(s->format), l->d_qk);
    if (s->d_v != 512)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "d_v (%lld) is not supported: must be 512",
                             (long long)s->d_v);
    if (s->extra_topk > 0 && (st = sp_dim("extra_page_size", s->extra_page_size, 1))) return st;
    return sp_threads(s->cpu_threads);
}

static const struct mla_sparse_decode_plan *check_sparse_plan(mla_sparse_decode_plan_t plan)
{
    if (!plan) {
        mla_set_error(MLA_ERR_INVALID_ARGUMENT, "plan is NULL");
        return NULL;
    }
    if (plan->magic == SP_PLAN_DEAD) {
        mla_set_error(MLA_ERR_INVALID_ARGUMENT, "plan was destroyed "
                      "(mla_sparse_decode_plan_destroy) and must not be used again");
        return NULL;
    }
    if (plan->magic != SP_PLAN_LIVE) {
        mla_set_error(MLA_ERR_INVALID_ARGUMENT, "plan is not a valid mla_sparse_decode_plan_t "
                      "(bad magic: corrupted, destroyed or never created)");
        return NULL;
    }
    return plan;
}

mla_status mla_sparse_decode_plan_create(mla_sparse_decode_plan_t *plan,
                                         const mla_sparse_decode_shape *shape, int device)
{
    if (!plan) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "plan (the output pointer) is NULL");
    *plan = NULL;
    if (!shape) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "shape is NULL");
    mla_sparse_decode_shape s = mla_sparse_decode_shape_default();
    mla_status st = mla_copy_struct("shape", "mla_sparse_decode_shape", shape, shape->struct_size, &s,
                            sizeof s, SD_SHAPE_MIN, "mla_sparse_decode_shape_default");
    if (st) return st;
    s.struct_size = sizeof s;
    mla_fp8_layout l;
    if ((st = validate_decode_shape(&s, &l))) return st;
    if ((st = sp_device(device, NULL, "sparse decode", 1))) return st;
    int kernel = MLA_CPU_KERNEL_REF;
    if (device < 0 && (st = mla_cpu_sparse_kernel(&kernel))) return st;
    struct mla_sparse_decode_plan *p = (struct mla_sparse_decode_plan *)calloc(1, sizeof *p);
    if (!p)
        return mla_set_error(MLA_ERR_OUT_OF_MEMORY, "could not allocate a plan (%zu bytes)",
                             sizeof *p);
    p->magic = SP_PLAN_LIVE;
    p->shape = s;
    p->device = device;
    p->cpu_threads = sp_resolve_threads(s.cpu_threads);
    p->cpu_kernel = kernel;
    p->workspace_bytes = 0;
    if (device < 0 && kernel != MLA_CPU_KERNEL_REF) {
        /* the key splits' partial rows (optional in the call); testing hook:
         * MLA_CPU_SPLIT_CHUNKS=n (1..4096) sets the smallest range to n 64-position chunks */
        p->workspace_bytes = mla_cpu_sparse_split_workspace(&s);
        p->cpu_split_chunks = mla_cpu_split_chunks_of_env(MLA_CPU_SPARSE_SPLIT_CHUNKS);
    }
    if (device >= 0 && (st = mla_gpu_sparse_plan_init(p))) {
        free(p);
        return st;
    }
    *plan = p;
    return MLA_OK;
}

mla_status mla_sparse_decode_plan_destroy(mla_sparse_decode_plan_t plan)
{
    if (!plan) return MLA_OK;
    if (!check_sparse_plan(plan)) return MLA_ERR_INVALID_ARGUMENT;
    plan->magic = SP_PLAN_DEAD;
    free(plan);
    return MLA_OK;
}

mla_status mla_sparse_decode_workspace_size(mla_sparse_decode_plan_t plan, size_t *bytes)
{
    const struct mla_sparse_decode_plan *p = check_sparse_plan(plan);
    if (!p) return MLA_ERR_INVALID_ARGUMENT;
    if (!bytes) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "bytes is NULL");
    *bytes = p->workspace_bytes;
    return MLA_OK;
}

/* GPU layout rules: a 16-byte aligned base and element strides (of dims with extent > 1)
 * that are multiples of 8 (16 bytes of bf16). */
static mla_status sp_gpu_tensor(const char *name, const void *ptr, int nd, const int64_t *dims,
                                const int64_t *strides, const char *const *names)
{
    if ((uintptr_t)ptr % 16)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s (%p) must be 16-byte aligned on the GPU", name, ptr);
    for (int d = 0; d < nd; d++)
        if (dims[d] > 1 && strides[d] % 8)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s (%lld) must be a multiple of 8 elements (16 bytes) on the GPU",
                                 names[d], (long long)strides[d]);
    return MLA_OK;
}

/* align: 16 (V32: 656-byte tokens, 16-byte loads) or 8 (MODEL1: a page of page_size * 584
 * bytes is a multiple of 8; the kernel reads it with 8-byte loads) */
static mla_status sp_gpu_cache(const char *name, const void *ptr, const char *stride_name,
                               int64_t num_pages, int64_t stride, int align)
{
    if ((uintptr_t)ptr % (uintptr_t)align)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s (%p) must be %d-byte aligned on the GPU", name, ptr, align);
    if (num_pages > 1 && stride % align)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s (%lld) must be a multiple of %d bytes on the GPU", stride_name,
                             (long long)stride, align);
    return MLA_OK;
}

static mla_status validate_decode_gpu(const mla_sparse_decode_shape *s,
                                      const mla_sparse_decode_args *a, const void *ws,
                                      size_t ws_bytes)
{
    static const char *const qn[3] = {"q_stride[0]", "q_stride[1]", "q_stride[2]"};
    static const char *const on[3] = {"out_stride[0]", "out_stride[1]", "out_stride[2]"};
    const int64_t qd[3] = {s->b, s->s_q, s->h_q};
    const int al = s->format == MLA_FP8_FORMAT_V32 ? 16 : 8;
    mla_status st;
    if ((st = sp_gpu_tensor("q", a->q, 3, qd, a->q_stride, qn)) ||
        (st = sp_gpu_tensor("out", a->out, 3, qd, a->out_stride, on)) ||
        (st = sp_gpu_cache("k_cache", a->k_cache, "k_page_stride_bytes", a->num_pages,
                           a->k_page_stride_bytes, al)))
        return st;
    if (s->extra_topk > 0 &&
        (st = sp_gpu_cache("extra_k_cache", a->extra_k_cache, "extra_k_page_stride_bytes",
                           a->extra_num_pages, a->extra_k_page_stride_bytes, al)))
        return st;
    if (ws_bytes > 0 && (!ws || (uintptr_t)ws % 256))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "workspace (%p) must be a non-NULL, 256-byte aligned device buffer",
                             ws);
    return MLA_OK;
}

static mla_status validate_decode_args(const mla_sparse_decode_shape *s, const mla_fp8_layout *l,
                                       const mla_sparse_decode_args *a)
{
    mla_status st;
    if (a->flags & ~(uint32_t)MLA_SPARSE_DECODE_REUSE_SCHEDULE)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "flags (0x%x) has unknown bits (known: 0x%x)",
                             a->flags, MLA_SPARSE_DECODE_REUSE_SCHEDULE);
    if ((st = sp_ptr("q", a->q, 2, 1)) || (st = sp_ptr("k_cache", a->k_cache, 1, 1)) ||
        (st = sp_ptr("indices", a->indices, 4, 1)) ||
        (st = sp_ptr("topk_length", a->topk_length, 4, 0)) ||
        (st = sp_ptr("attn_sink", a->attn_sink, 4, 0)) || (st = sp_ptr("out", a->out, 2, 1)) ||
        (st = sp_ptr("lse", a->lse, 4, 1)))
        return st;
    if ((st = sp_dim("num_pages", a->num_pages, 1)) ||
        (st = sp_fp8_cache("k_cache", "k_page_stride_bytes", a->num_pages, s->page_size,
                           a->k_page_stride_bytes, l, NULL)))
        return st;
    if (s->extra_topk > 0) {
        if ((st = sp_ptr("extra_k_cache", a->extra_k_cache, 1, 1)) ||
            (st = sp_ptr("extra_indices", a->extra_indices, 4, 1)) ||
            (st = sp_ptr("extra_topk_length", a->extra_topk_length, 4, 0)) ||
            (st = sp_dim("extra_num_pages", a->extra_num_pages, 1)) ||
            (st = sp_fp8_cache("extra_k_cache", "extra_k_page_stride_bytes", a->extra_num_pages,
                               s->extra_page_size, a->extra_k_page_stride_bytes, l, NULL)))
            return st;
    } else {
        const char *given = a->extra_k_cache ? "extra_k_cache"
                            : a->extra_indices ? "extra_indices"
                            : a->extra_topk_length ? "extra_topk_length" : NULL;
        if (given)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s is set but the plan has no extra cache (shape.extra_topk is "
                                 "0)",
                                 given);
    }
    static const char *const qn[3] = {"q_stride[0]", "q_stride[1]", "q_stride[2]"};
    static const char *const on[3] = {"out_stride[0]", "out_stride[1]", "out_stride[2]"};
    static const char *const ln[3] = {"lse_stride[0]", "lse_stride[1]", "lse_stride[2]"};
    static const char *const in[2] = {"indices_stride[0]", "indices_stride[1]"};
    static const char *const en[2] = {"extra_indices_stride[0]", "extra_indices_stride[1]"};
    const int64_t qd[3] = {s->b, s->s_q, s->h_q}, ld[3] = {s->b, s->h_q, s->s_q};
    const int64_t id[2] = {s->b, s->s_q};
    if ((st = mla_check_layout("q", 3, qd, a->q_stride, qn, s->d_qk, 2, 1)) ||
        (st = mla_check_layout("indices", 2, id, a->indices_stride, in, s->topk, 4, 1)) ||
        (st = mla_check_layout("out", 3, qd, a->out_stride, on, s->d_v, 2, 1)) ||
        (st = mla_check_layout("lse", 3, ld, a->lse_stride, ln, 1, 4, 1)))
        return st;
    if (s->extra_topk > 0 &&
        (st = mla_check_layout("extra_indices", 2, id, a->extra_indices_stride, en, s->extra_topk, 4, 1)))
        return st;
    return MLA_OK;
}

mla_status mla_sparse_decode(mla_sparse_decode_plan_t plan, const mla_sparse_decode_args *args,
                             void *workspace, size_t workspace_bytes, struct CUstream_st *stream)
{
    const struct mla_sparse_decode_plan *p = check_sparse_plan(plan);
    if (!p) return MLA_ERR_INVALID_ARGUMENT;
    if (!args) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "args is NULL");
    mla_sparse_decode_args a = mla_sparse_decode_args_default();
    mla_status st = mla_copy_struct("args", "mla_sparse_decode_args", args, args->struct_size, &a,
                            sizeof a, SD_ARGS_MIN, "mla_sparse_decode_args_default");
    if (st) return st;
    a.struct_size = sizeof a;
    mla_fp8_layout l;
    mla_fp8_get_layout(p->shape.format, &l);
    if ((st = validate_decode_args(&p->shape, &l, &a))) return st;
    /* the CPU workspace is optional: NULL or fewer bytes than the size run the call unsplit */
    if (p->device >= 0 && workspace_bytes < p->workspace_bytes)
        return mla_set_error(MLA_ERR_WORKSPACE_TOO_SMALL,
                             "workspace_bytes (%zu) is smaller than the %zu bytes "
                             "mla_sparse_decode_workspace_size() reports for this plan",
                             workspace_bytes, p->workspace_bytes);
    if ((st = sp_device(p->device, stream, "sparse decode", 1))) return st;
    const float scale = (a.softmax_scale > 0.0f && isfinite(a.softmax_scale))
                            ? a.softmax_scale
                            : (float)(1.0 / sqrt((double)p->shape.d_qk));
    if (p->device >= 0) {
        if ((st = validate_decode_gpu(&p->shape, &a, workspace, p->workspace_bytes))) return st;
        return mla_gpu_sparse_decode(p, &a, scale, workspace, workspace_bytes, stream);
    }
    const mla_cpu_path *cp = mla_cpu_path_of(p->cpu_kernel);
    if (cp) {
        mla_cpu_split sp;
        mla_cpu_sparse_split_of_call(&p->shape, &a, p->cpu_split_chunks, workspace, workspace_bytes, &sp);
        return cp->sparse_decode(&p->shape, &a, scale, p->cpu_threads, &sp);
    }
    return mla_ref_sparse_decode(&p->shape, &a, scale, p->cpu_threads);
}

/* ---------------------------------------------------------------------------------------- */
/* Sparse prefill                                                                            */
/* ---------------------------------------------------------------------------------------- */

mla_sparse_prefill_args mla_sparse_prefill_args_default(void)
{
    mla_sparse_prefill_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.s_q = 1;
    a.s_kv = 1;
    a.h_q = 128;
    a.h_kv = 1;
    a.d_qk = 576;
    a.d_v = 512;
    a.topk = 2048;
    a.softmax_scale = 0.0f; /* required: the caller must set it */
    a.cpu_threads = 0;
    return a;
}

#define SP_ARGS_MIN (offsetof(mla_sparse_prefill_args, cpu_threads) + sizeof(int))

static mla_status validate_prefill(const mla_sparse_prefill_args *a)
{
    mla_status st;
    if ((st = sp_dim("s_q", a->s_q, 1)) || (st = sp_dim("s_kv", a->s_kv, 1)) ||
        (st = sp_dim("h_q", a->h_q, 1)) || (st = sp_dim("h_kv", a->h_kv, 1)) ||
        (st = sp_dim("topk", a->topk, 1)))
        return st;
    if (a->h_q % a->h_kv != 0)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "h_q (%lld) is not divisible by h_kv (%lld)",
                             (long long)a->h_q, (long long)a->h_kv);
    if (a->d_qk != 576 && a->d_qk != 512)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "d_qk (%lld) is not supported: must be 576 (512 latent + 64 RoPE) or "
                             "512",
                             (long long)a->d_qk);
    if (a->d_v != 512)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "d_v (%lld) is not supported: must be 512",
                             (long long)a->d_v);
    if (!(a->softmax_scale > 0.0f) || !isfinite(a->softmax_scale))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "softmax_scale (%g) must be > 0 and finite: sparse prefill has no "
                             "default scale",
                             (double)a->softmax_scale);
    if ((st = sp_threads(a->cpu_threads))) return st;
    if ((st = sp_ptr("q", a->q, 2, 1)) || (st = sp_ptr("kv", a->kv, 2, 1)) ||
        (st = sp_ptr("indices", a->indices, 4, 1)) ||
        (st = sp_ptr("topk_length", a->topk_length, 4, 0)) ||
        (st = sp_ptr("attn_sink", a->attn_sink, 4, 0)) || (st = sp_ptr("out", a->out, 2, 1)) ||
        (st = sp_ptr("max_logits", a->max_logits, 4, 1)) || (st = sp_ptr("lse", a->lse, 4, 1)))
        return st;
    static const char *const qn[2] = {"q_stride[0]", "q_stride[1]"};
    static const char *const kn[2] = {"kv_stride[0]", "kv_stride[1]"};
    static const char *const in[2] = {"indices_stride[0]", "indices_stride[1]"};
    static const char *const on[2] = {"out_stride[0]", "out_stride[1]"};
    static const char *const mn[2] = {"max_logits_stride[0]", "max_logits_stride[1]"};
    static const char *const ln[2] = {"lse_stride[0]", "lse_stride[1]"};
    const int64_t qd[2] = {a->s_q, a->h_q}, kd[2] = {a->s_kv, a->h_kv}, id[2] = {a->s_q, a->h_kv};
    if ((st = mla_check_layout("q", 2, qd, a->q_stride, qn, a->d_qk, 2, 1)) ||
        (st = mla_check_layout("kv", 2, kd, a->kv_stride, kn, a->d_qk, 2, 1)) ||
        (st = mla_check_layout("indices", 2, id, a->indices_stride, in, a->topk, 4, 1)) ||
        (st = mla_check_layout("out", 2, qd, a->out_stride, on, a->d_v, 2, 1)) ||
        (st = mla_check_layout("max_logits", 2, qd, a->max_logits_stride, mn, 1, 4, 1)) ||
        (st = mla_check_layout("lse", 2, qd, a->lse_stride, ln, 1, 4, 1)))
        return st;
    return MLA_OK;
}

static mla_status copy_prefill(const mla_sparse_prefill_args *args, mla_sparse_prefill_args *a)
{
    if (!args) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "args is NULL");
    *a = mla_sparse_prefill_args_default();
    mla_status st = mla_copy_struct("args", "mla_sparse_prefill_args", args, args->struct_size, a,
                            sizeof *a, SP_ARGS_MIN, "mla_sparse_prefill_args_default");
    a->struct_size = sizeof *a;
    return st;
}

mla_status mla_sparse_prefill_workspace_size(const mla_sparse_prefill_args *args, int device,
                                             size_t *bytes)
{
    mla_sparse_prefill_args a;
    mla_status st = copy_prefill(args, &a);
    if (st) return st;
    if (!bytes) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "bytes is NULL");
    if (device < MLA_DEVICE_CPU)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "device (%d) must be MLA_DEVICE_CPU (-1) or a CUDA ordinal >= 0",
                             device);
    if (device >= 0 && (st = mla_gpu_sparse_prefill_check(&a, device))) return st;
    *bytes = 0; /* the GPU kernel needs no workspace either */
    return MLA_OK;
}

mla_status mla_sparse_prefill(const mla_sparse_prefill_args *args, int device, void *workspace,
                              size_t workspace_bytes, struct CUstream_st *stream)
{
    mla_sparse_prefill_args a;
    mla_status st = copy_prefill(args, &a);
    if (st) return st;
    if ((st = validate_prefill(&a))) return st;
    if ((st = sp_device(device, stream, "sparse prefill", 1))) return st;
    if (device >= 0) {
        static const char *const qn[2] = {"q_stride[0]", "q_stride[1]"};
        static const char *const kn[2] = {"kv_stride[0]", "kv_stride[1]"};
        static const char *const on[2] = {"out_stride[0]", "out_stride[1]"};
        const int64_t qd[2] = {a.s_q, a.h_q}, kd[2] = {a.s_kv, a.h_kv};
        if ((st = mla_gpu_sparse_prefill_check(&a, device)) ||
            (st = sp_gpu_tensor("q", a.q, 2, qd, a.q_stride, qn)) ||
            (st = sp_gpu_tensor("kv", a.kv, 2, kd, a.kv_stride, kn)) ||
            (st = sp_gpu_tensor("out", a.out, 2, qd, a.out_stride, on)))
            return st;
        return mla_gpu_sparse_prefill(&a, device, stream);
    }
    int kernel = MLA_CPU_KERNEL_REF;
    if ((st = mla_cpu_sparse_kernel(&kernel))) return st;
    const mla_cpu_path *cp = mla_cpu_path_of(kernel);
    if (cp) return cp->sparse_prefill(&a, sp_resolve_threads(a.cpu_threads));
    return mla_ref_sparse_prefill(&a, sp_resolve_threads(a.cpu_threads));
}
