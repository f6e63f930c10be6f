/* api.c — the public C ABI of mla.c (include/mla.h) except the GPU backend: status strings,
 * the thread-local error, defaults, plans, and the validation of every argument before any
 * work. Dispatches to the CPU reference (ref/mla_ref.c) or the GPU backend (src/gpu.cu, or
 * src/gpu_stub.c in a build without CUDA).
 *
 * Validation rules (each failure returns MLA_ERR_INVALID_ARGUMENT unless noted, with a message
 * that names the argument and the values, and writes nothing):
 *  - structs: struct_size larger than this library's sizeof (a newer caller) or smaller than
 *    the fields every caller must set (shape: b, s_q, h_q; args: every tensor field up to
 *    lse_stride) is rejected; sizes in between are copied over a defaulted struct.
 *  - shape: 1 <= b, s_q, h_q, h_kv, page_size <= INT32_MAX; h_q % h_kv == 0; d_qk in {576, 512};
 *    d_v == 512; dtype bf16/fp16; causal 0/1; 0 <= cpu_threads <= 256; GPU plans: page_size % 16.
 *    kv_dtype / q_dtype: 0 (= dtype), dtype or MLA_DTYPE_FP8_E4M3, an FP8 q only with an FP8
 *    cache (dense FP8; GPU plans: compute capability 9.0 only, see src/gpu.cu). The plan's copy has them resolved.
 *  - descale_k: required with an FP8 cache; descale_q: required with an FP8 q, optional (NULL = 1)
 *    for a 16-bit q on an FP8 cache; both NULL without an FP8 cache; 4-byte aligned.
 *  - pointers: q, k_cache, block_table, cache_seqlens, out, lse non-NULL (cu_seqlens_q optional);
 *    element-aligned (2 B for 16-bit tensors, 4 B for int32/float32); GPU plans: q, k_cache and
 *    out 16-byte aligned and their strides (of dims with extent > 1) multiples of 8 elements,
 *    because the kernels move 16-byte vectors.
 *  - strides: >= 0; >= 1 for every dim of extent > 1; and the tensor must not overlap itself:
 *    sorting the dims of extent > 1 by stride, each stride must be at least the span of all the
 *    dims inside it (the innermost span is the contiguous row: d_qk for q / k_cache, d_v for out,
 *    max_pages for block_table, 1 for lse). This accepts any permutation of the logical dims
 *    (e.g. a [page, h_kv, row] cache) and rejects rows that would alias.
 *  - sizes: num_pages >= 1, max_pages >= 1; the byte offset of the last element of every tensor
 *    must fit in int64 (the kernels compute every offset in int64).
 *  - flags: only MLA_DECODE_* bits. stream: NULL for CPU plans.
 *  - workspace: workspace_bytes >= mla_decode_workspace_size() (else MLA_ERR_WORKSPACE_TOO_SMALL);
 *    GPU plans with a nonzero size need a non-NULL, 256-byte aligned workspace.
 *  - CPU plans also read the host values before computing anything: cache_seqlens[i] in
 *    [0, max_pages * page_size], used block_table entries in [0, num_pages), cu_seqlens_q
 *    non-decreasing with per-request lengths <= s_q.
 */
#include "internal.h"
#include "mla_ref.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Status, errors, version                                                                   */
/* ---------------------------------------------------------------------------------------- */

static _Thread_local char mla_error_buf[1024];

mla_status mla_set_error(mla_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mla_error_buf, sizeof mla_error_buf, fmt, ap);
    va_end(ap);
    return st;
}

const char *mla_last_error(void) { return mla_error_buf; }

const char *mla_status_string(mla_status status)
{
    switch (status) {
    case MLA_OK: return "MLA_OK";
    case MLA_ERR_INVALID_ARGUMENT: return "MLA_ERR_INVALID_ARGUMENT";
    case MLA_ERR_UNSUPPORTED: return "MLA_ERR_UNSUPPORTED";
    case MLA_ERR_WORKSPACE_TOO_SMALL: return "MLA_ERR_WORKSPACE_TOO_SMALL";
    case MLA_ERR_CUDA: return "MLA_ERR_CUDA";
    case MLA_ERR_INTERNAL: return "MLA_ERR_INTERNAL";
    case MLA_ERR_OUT_OF_MEMORY: return "MLA_ERR_OUT_OF_MEMORY";
    }
    return "MLA_ERR_UNKNOWN";
}

int mla_version(void) { return MLA_VERSION_CODE; }

int mla_has_cuda(void) { return mla_gpu_available(); }

size_t mla_dtype_size(mla_dtype dtype)
{
    switch (dtype) {
    case MLA_DTYPE_BF16:
    case MLA_DTYPE_FP16: return 2;
    case MLA_DTYPE_FP32:
    case MLA_DTYPE_INT32: return 4;
    case MLA_DTYPE_FP8_E4M3:
    case MLA_DTYPE_UINT8: return 1;
    case MLA_DTYPE_INVALID: break;
    }
    return 0;
}

static const char *dtype_name(mla_dtype dtype)
{
    switch (dtype) {
    case MLA_DTYPE_INVALID: return "MLA_DTYPE_INVALID";
    case MLA_DTYPE_BF16: return "MLA_DTYPE_BF16";
    case MLA_DTYPE_FP16: return "MLA_DTYPE_FP16";
    case MLA_DTYPE_FP32: return "MLA_DTYPE_FP32";
    case MLA_DTYPE_INT32: return "MLA_DTYPE_INT32";
    case MLA_DTYPE_FP8_E4M3: return "MLA_DTYPE_FP8_E4M3";
    case MLA_DTYPE_UINT8: return "MLA_DTYPE_UINT8";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------------------------- */
/* Defaults and struct_size                                                                  */
/* ---------------------------------------------------------------------------------------- */

mla_decode_shape mla_decode_shape_default(void)
{
    mla_decode_shape s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.b = 1;
    s.s_q = 1;
    s.h_q = 128;
    s.h_kv = 1;
    s.d_qk = 576;
    s.d_v = 512;
    s.page_size = 64;
    s.dtype = MLA_DTYPE_BF16;
    s.causal = 0;
    s.cpu_threads = 0;
    s.kv_dtype = MLA_DTYPE_INVALID; /* = dtype */
    s.q_dtype = MLA_DTYPE_INVALID;  /* = dtype */
    return s;
}

mla_decode_args mla_decode_args_default(void)
{
    mla_decode_args a;
    memset(&a, 0, sizeof a); /* NULL pointers, zero strides (must be set), default scale */
    a.struct_size = sizeof a;
    a.softmax_scale = 0.0f;
    a.flags = 0;
    a.descale_q = NULL;
    a.descale_k = NULL;
    return a;
}

/* Smallest struct_size accepted: the fields every caller has to set. */
#define SHAPE_MIN_SIZE (offsetof(mla_decode_shape, h_q) + sizeof(int64_t))
#define ARGS_MIN_SIZE (offsetof(mla_decode_args, lse_stride) + 3 * sizeof(int64_t))
/* sizeof(mla_decode_shape) before kv_dtype was added (0.1.0): its tail padding overlaps
 * kv_dtype, so a caller of that size never set kv_dtype (its bytes there are padding). */
#define SHAPE_V1_SIZE                                                                         \
    ((offsetof(mla_decode_shape, kv_dtype) + _Alignof(mla_decode_shape) - 1) /               \
     _Alignof(mla_decode_shape) * _Alignof(mla_decode_shape))

/* Copies a caller's struct (its struct_size bytes) over `dst`, which holds the defaults.
 * Shared with src/sparse_api.c (src/internal.h). */
mla_status mla_copy_struct(const char *what, const char *type, const void *in, size_t in_size,
                           void *dst, size_t dst_size, size_t min_size, const char *init)
{
    if (in_size > dst_size)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s->struct_size (%zu) is larger than sizeof(%s) (%zu) of this "
                             "library (version %d): the caller was built against a newer mla.h",
                             what, in_size, type, dst_size, MLA_VERSION_CODE);
    if (in_size < min_size)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s->struct_size (%zu) is too small (at least %zu bytes); "
                             "initialise the struct with %s()",
                             what, in_size, min_size, init);
    memcpy(dst, in, in_size);
    return MLA_OK;
}

static mla_status copy_shape(const mla_decode_shape *in, mla_decode_shape *s)
{
    *s = mla_decode_shape_default();
    mla_status st = mla_copy_struct("shape", "mla_decode_shape", in, in->struct_size, s, sizeof *s,
                                SHAPE_MIN_SIZE, "mla_decode_shape_default");
    if (in->struct_size <= SHAPE_V1_SIZE) s->kv_dtype = MLA_DTYPE_INVALID; /* padding, not a field */
    s->struct_size = sizeof *s;
    return st;
}

static mla_status copy_args(const mla_decode_args *in, mla_decode_args *a)
{
    *a = mla_decode_args_default();
    mla_status st = mla_copy_struct("args", "mla_decode_args", in, in->struct_size, a, sizeof *a,
                                ARGS_MIN_SIZE, "mla_decode_args_default");
    a->struct_size = sizeof *a;
    return st;
}

float mla_effective_scale(const mla_decode_shape *shape, float requested)
{
    if (requested > 0.0f && isfinite(requested)) return requested;
    return (float)(1.0 / sqrt((double)shape->d_qk));
}

/* ---------------------------------------------------------------------------------------- */
/* Shape validation and plans                                                                */
/* ---------------------------------------------------------------------------------------- */

#define DIM_MAX 2147483647LL
#define CPU_THREADS_MAX 256

static mla_status check_dim(const char *name, int64_t v)
{
    if (v < 1)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s (%lld) must be >= 1", name,
                             (long long)v);
    if (v > DIM_MAX)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s (%lld) exceeds %lld", name,
                             (long long)v, DIM_MAX);
    return MLA_OK;
}

/* kv_dtype / q_dtype (dense FP8, vLLM's flash_mla_with_kvcache_fp8): each 0, dtype or
 * MLA_DTYPE_FP8_E4M3; an FP8 q needs an FP8 cache. */
static mla_status validate_fp8_dtypes(const mla_decode_shape *s)
{
    const mla_dtype kv = s->kv_dtype, q = s->q_dtype;
    if (kv != MLA_DTYPE_INVALID && kv != s->dtype && kv != MLA_DTYPE_FP8_E4M3)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "kv_dtype (%d, %s) is not supported with dtype %s: must be 0 (= dtype), "
                             "%s or MLA_DTYPE_FP8_E4M3",
                             (int)kv, dtype_name(kv), dtype_name(s->dtype), dtype_name(s->dtype));
    if (q != MLA_DTYPE_INVALID && q != s->dtype && q != MLA_DTYPE_FP8_E4M3)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "q_dtype (%d, %s) is not supported with dtype %s: must be 0 (= dtype), "
                             "%s or MLA_DTYPE_FP8_E4M3",
                             (int)q, dtype_name(q), dtype_name(s->dtype), dtype_name(s->dtype));
    if (q == MLA_DTYPE_FP8_E4M3 && kv != MLA_DTYPE_FP8_E4M3)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "q_dtype MLA_DTYPE_FP8_E4M3 needs kv_dtype MLA_DTYPE_FP8_E4M3 (got %s): an "
                             "FP8 query is only supported with an FP8 cache",
                             dtype_name(kv == MLA_DTYPE_INVALID ? s->dtype : kv));
    return MLA_OK;
}

static mla_status validate_shape(const mla_decode_shape *s, int device)
{
    mla_status st;
    if ((st = check_dim("b", s->b)) || (st = check_dim("s_q", s->s_q)) ||
        (st = check_dim("h_q", s->h_q)) || (st = check_dim("h_kv", s->h_kv)) ||
        (st = check_dim("page_size", s->page_size)))
        return st;
    if (s->h_q % s->h_kv != 0)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "h_q (%lld) is not divisible by h_kv (%lld)",
                             (long long)s->h_q, (long long)s->h_kv);
    if (s->d_qk != 576 && s->d_qk != 512)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "d_qk (%lld) is not supported: must be 576 (512 latent + 64 RoPE) or "
                             "512",
                             (long long)s->d_qk);
    if (s->d_v != 512)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "d_v (%lld) is not supported: must be 512",
                             (long long)s->d_v);
    if (s->d_v > s->d_qk) /* unreachable with the sets above; kept for when they grow */
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "d_v (%lld) is larger than d_qk (%lld)",
                             (long long)s->d_v, (long long)s->d_qk);
    if (s->dtype != MLA_DTYPE_BF16 && s->dtype != MLA_DTYPE_FP16)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "dtype (%d, %s) is not supported for dense decode: must be "
                             "MLA_DTYPE_BF16 or MLA_DTYPE_FP16",
                             (int)s->dtype, dtype_name(s->dtype));
    if ((st = validate_fp8_dtypes(s))) return st;
    if (s->causal != 0 && s->causal != 1)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "causal (%d) must be 0 or 1", s->causal);
    if (s->cpu_threads < 0 || s->cpu_threads > CPU_THREADS_MAX)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "cpu_threads (%d) must be in [0, %d] (0 = all online cores)",
                             s->cpu_threads, CPU_THREADS_MAX);
    if (device >= 0 && s->page_size % 16 != 0)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "page_size (%lld) must be a multiple of 16 on a GPU device",
                             (long long)s->page_size);
    return MLA_OK;
}

/* Returns the plan if it looks alive, else sets the error and returns NULL. */
static const struct mla_decode_plan *check_plan(mla_decode_plan_t plan)
{
    if (!plan) {
        mla_set_error(MLA_ERR_INVALID_ARGUMENT, "plan is NULL");
        return NULL;
    }
    if (plan->magic == MLA_PLAN_MAGIC_DEAD) {
        mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                      "plan was destroyed (mla_decode_plan_destroy) and must not be used again");
        return NULL;
    }
    if (plan->magic != MLA_PLAN_MAGIC_LIVE) {
        mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                      "plan is not a valid mla_decode_plan_t (bad magic: corrupted, destroyed "
                      "or never created)");
        return NULL;
    }
    return plan;
}

/* The CPU fast paths, fastest first (internal.h: mla_cpu_path). */
#define CPU_PATH(x, k, name, what, needs)                                                           \
    {k, #x, name, what, needs, mla_cpu_##x##_available, mla_cpu_##x##_preferred, mla_cpu_##x##_decode, \
     mla_cpu_##x##_sparse_decode, mla_cpu_##x##_sparse_prefill}
static const mla_cpu_path k_cpu_paths[] = {
    CPU_PATH(amx, MLA_CPU_KERNEL_AMX, "AMX", "AMX bf16 tiles (src/cpu_amx.c)",
             "AMX bf16 tiles (AMX-TILE, AMX-BF16, AVX512-BF16, and Linux granting the tile state)"),
    CPU_PATH(avx512bf16, MLA_CPU_KERNEL_AVX512BF16, "AVX512BF16", "AVX512-BF16 vectors (src/cpu_avx512bf16.c)",
             "AVX512-BF16 (AVX512 F / BW / DQ / VL and AVX512_BF16, zmm state enabled by the OS)"),
    CPU_PATH(avx512, MLA_CPU_KERNEL_AVX512, "AVX512", "AVX-512 fp32 FMA (src/cpu_avx512.c)",
             "AVX-512 (AVX512 F / BW / DQ / VL, zmm state enabled by the OS)"),
    CPU_PATH(avx2, MLA_CPU_KERNEL_AVX2, "AVX2", "AVX2 fp32 FMA (src/cpu_avx2.c)",
             "AVX2 (AVX2, FMA and F16C, ymm state enabled by the OS)"),
    CPU_PATH(neon, MLA_CPU_KERNEL_NEON, "NEON", "NEON fp32 FMA (src/cpu_neon.c)", "NEON (an AArch64 CPU)"),
};
#undef CPU_PATH

const mla_cpu_path *mla_cpu_paths(int *n)
{
    *n = (int)(sizeof k_cpu_paths / sizeof k_cpu_paths[0]);
    return k_cpu_paths;
}

const mla_cpu_path *mla_cpu_path_of(int kernel)
{
    for (size_t x = 0; x < sizeof k_cpu_paths / sizeof k_cpu_paths[0]; x++)
        if (k_cpu_paths[x].kernel == kernel) return &k_cpu_paths[x];
    return NULL;
}

/* The CPU kernel for a bf16 / FP8 (bf16_ok) or fp16 operation: the first fast path the default
 * takes here (internal.h), else the reference; hook MLA_CPU_KERNEL=ref|amx|avx512bf16|avx512|avx2|neon (any other value: the
 * default). */
static mla_status cpu_kernel_choice(int bf16_ok, int *kernel)
{
    const char *want = getenv("MLA_CPU_KERNEL");
    *kernel = MLA_CPU_KERNEL_REF;
    if (want && strcmp(want, "ref") == 0) return MLA_OK;
    if (!bf16_ok) return MLA_OK; /* fp16 is not exact in bf16: the reference, even if forced */
    const int n = (int)(sizeof k_cpu_paths / sizeof k_cpu_paths[0]);
    for (int x = 0; x < n; x++)
        if (want && strcmp(want, k_cpu_paths[x].hook) == 0) {
            if (!k_cpu_paths[x].available())
                return mla_set_error(MLA_ERR_UNSUPPORTED, "MLA_CPU_KERNEL=%s: this CPU or OS does not run %s",
                                     k_cpu_paths[x].hook, k_cpu_paths[x].needs);
            *kernel = k_cpu_paths[x].kernel;
            return MLA_OK;
        }
    for (int x = 0; x < n; x++)
        if (k_cpu_paths[x].preferred()) {
            *kernel = k_cpu_paths[x].kernel;
            return MLA_OK;
        }
    return MLA_OK;
}

static mla_status pick_cpu_kernel(struct mla_decode_plan *p)
{
    return cpu_kernel_choice(p->shape.q_dtype != MLA_DTYPE_FP16 && p->shape.kv_dtype != MLA_DTYPE_FP16,
                             &p->cpu_kernel);
}

mla_status mla_cpu_sparse_kernel(int *kernel) { return cpu_kernel_choice(1, kernel); }

mla_status mla_decode_plan_create(mla_decode_plan_t *plan, const mla_decode_shape *shape,
                                  int device)
{
    if (!plan) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "plan (the output pointer) is NULL");
    *plan = NULL;
    if (!shape) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "shape is NULL");
    mla_decode_shape s;
    mla_status st = copy_shape(shape, &s);
    if (st) return st;
    if (device < MLA_DEVICE_CPU)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "device (%d) must be MLA_DEVICE_CPU (-1) or a CUDA ordinal >= 0",
                             device);
    if ((st = validate_shape(&s, device))) return st;
    if (s.kv_dtype == MLA_DTYPE_INVALID) s.kv_dtype = s.dtype; /* the plan's copy is resolved */
    if (s.q_dtype == MLA_DTYPE_INVALID) s.q_dtype = s.dtype;
    /* Dense FP8 (issue 7) on GPU devices: src/gpu.cu (mla_gpu_plan_init) picks the FP8 wgmma
     * kernel, or returns MLA_ERR_UNSUPPORTED where there is none (before compute capability 9.0). */

    struct mla_decode_plan *p = (struct mla_decode_plan *)calloc(1, sizeof *p);
    if (!p)
        return mla_set_error(MLA_ERR_OUT_OF_MEMORY, "could not allocate a plan (%zu bytes)",
                             sizeof *p);
    p->magic = MLA_PLAN_MAGIC_LIVE;
    p->shape = s;
    p->device = device;
    p->cpu_threads = 1;
    if (device == MLA_DEVICE_CPU) {
        long n = s.cpu_threads > 0 ? s.cpu_threads : sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1) n = 1;
        if (n > CPU_THREADS_MAX) n = CPU_THREADS_MAX;
        p->cpu_threads = (int)n;
        p->gpu.num_sm_parts = 1;
        /* testing hook: MLA_CPU_SPLIT_CHUNKS=n (1..4096) sets the smallest key range of a split
         * call to n 64-key chunks (default MLA_CPU_SPLIT_CHUNKS, internal.h) */
        p->cpu_split_chunks = mla_cpu_split_chunks_of_env(MLA_CPU_SPLIT_CHUNKS);
        st = pick_cpu_kernel(p);
        if (st) {
            p->magic = MLA_PLAN_MAGIC_DEAD;
            free(p);
            return st;
        }
    } else {
        st = mla_gpu_plan_init(p);
        if (st) {
            p->magic = MLA_PLAN_MAGIC_DEAD;
            free(p);
            return st;
        }
    }
    *plan = p;
    return MLA_OK;
}

mla_status mla_decode_plan_destroy(mla_decode_plan_t plan)
{
    if (!plan) return MLA_OK;
    if (!check_plan(plan)) return MLA_ERR_INVALID_ARGUMENT;
    plan->magic = MLA_PLAN_MAGIC_DEAD;
    free(plan);
    return MLA_OK;
}

/* GPU plans: the schedule and the split-KV partials (required). CPU plans: the key splits'
 * partial rows (internal.h mla_cpu_split; optional: a call given less runs unsplit); 0 where
 * the plan never splits (the reference, and shapes with enough items). */
static size_t plan_workspace(const struct mla_decode_plan *p)
{
    if (p->device != MLA_DEVICE_CPU) return p->gpu.workspace_bytes;
    return p->cpu_kernel == MLA_CPU_KERNEL_REF ? 0 : mla_cpu_split_workspace(&p->shape);
}

mla_status mla_decode_workspace_size(mla_decode_plan_t plan, size_t *bytes)
{
    const struct mla_decode_plan *p = check_plan(plan);
    if (!p) return MLA_ERR_INVALID_ARGUMENT;
    if (!bytes) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "bytes is NULL");
    *bytes = plan_workspace(p);
    return MLA_OK;
}

mla_status mla_decode_plan_info(mla_decode_plan_t plan, int *device, int *num_sm_parts)
{
    const struct mla_decode_plan *p = check_plan(plan);
    if (!p) return MLA_ERR_INVALID_ARGUMENT;
    if (device) *device = p->device;
    if (num_sm_parts) *num_sm_parts = p->device == MLA_DEVICE_CPU ? 1 : p->gpu.num_sm_parts;
    return MLA_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Argument validation                                                                       */
/* ---------------------------------------------------------------------------------------- */

static mla_status check_stream_workspace(const struct mla_decode_plan *p, void *workspace,
                                         size_t workspace_bytes, struct CUstream_st *stream)
{
    if (p->device == MLA_DEVICE_CPU) {
        if (stream)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "stream must be NULL for a CPU plan (got %p)", (void *)stream);
        return MLA_OK; /* optional on the CPU: any pointer / size (too small: no key split) */
    }
    const size_t need = plan_workspace(p);
    if (workspace_bytes < need)
        return mla_set_error(MLA_ERR_WORKSPACE_TOO_SMALL,
                             "workspace_bytes (%zu) is smaller than the %zu bytes "
                             "mla_decode_workspace_size() reports for this plan",
                             workspace_bytes, need);
    if (need > 0 && !workspace)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "workspace is NULL but this plan needs %zu bytes", need);
    if (need > 0 && ((uintptr_t)workspace & 255u))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "workspace (%p) is not 256-byte aligned", workspace);
    return MLA_OK;
}

static mla_status check_ptr(const char *name, const void *ptr, size_t align)
{
    if (!ptr) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s is NULL", name);
    if ((uintptr_t)ptr % align)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "%s (%p) is not %zu-byte aligned", name,
                             ptr, align);
    return MLA_OK;
}

/* Checks one tensor's strides (see the rules at the top). dims: extents; strides: element
 * strides; names: printable stride names; inner: elements of the contiguous innermost span;
 * elem: bytes per element; vec: if > 1, strides of dims with extent > 1 must be multiples. */
mla_status mla_check_layout(const char *tensor, int nd, const int64_t *dims,
                            const int64_t *strides, const char *const *names, int64_t inner,
                            size_t elem, int64_t vec)
{
    int order[4];
    int n = 0;
    for (int d = 0; d < nd; d++) {
        if (strides[d] < 0)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s (%lld) is negative: %s strides must be >= 0", names[d],
                                 (long long)strides[d], tensor);
        if (dims[d] <= 1) continue;
        if (strides[d] == 0)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s (0) must be positive: that dimension of %s has extent %lld",
                                 names[d], tensor, (long long)dims[d]);
        if (vec > 1 && strides[d] % vec)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s (%lld) must be a multiple of %lld elements on a GPU device "
                                 "(16-byte vector loads)",
                                 names[d], (long long)strides[d], (long long)vec);
        order[n++] = d;
    }
    /* insertion sort by stride */
    for (int x = 1; x < n; x++)
        for (int y = x; y > 0 && strides[order[y]] < strides[order[y - 1]]; y--) {
            int t = order[y]; order[y] = order[y - 1]; order[y - 1] = t;
        }
    int64_t span = inner; /* elements covered by the dims already placed */
    for (int x = 0; x < n; x++) {
        const int d = order[x];
        if (strides[d] < span)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s (%lld) is smaller than %lld, the span of the dimensions "
                                 "inside it: elements of %s would overlap",
                                 names[d], (long long)strides[d], (long long)span, tensor);
        int64_t ext;
        if (__builtin_mul_overflow(strides[d], dims[d] - 1, &ext) ||
            __builtin_add_overflow(ext, span, &span))
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s spans more than 2^63 elements (offsets overflow int64)",
                                 tensor);
    }
    int64_t bytes;
    if (__builtin_mul_overflow(span, (int64_t)elem, &bytes))
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "%s spans %lld elements, more than 2^63 bytes (offsets overflow int64)",
                             tensor, (long long)span);
    return MLA_OK;
}

/* descale_q / descale_k: float32 [1] (element 0 is read), 4-byte aligned. descale_k with an
 * FP8 cache only (required there); descale_q required for an FP8 q, optional for a 16-bit q
 * with an FP8 cache, NULL otherwise. The values are not read here (device memory on GPUs). */
static mla_status validate_descales(const mla_decode_shape *s, const mla_decode_args *a)
{
    const int fp8_kv = s->kv_dtype == MLA_DTYPE_FP8_E4M3, fp8_q = s->q_dtype == MLA_DTYPE_FP8_E4M3;
    mla_status st;
    if (!fp8_kv) {
        if (a->descale_q || a->descale_k)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "%s is set but k_cache is %s, not FP8: descale_q / descale_k are only "
                                 "used with kv_dtype MLA_DTYPE_FP8_E4M3 and must be NULL otherwise",
                                 a->descale_k ? "descale_k" : "descale_q",
                                 dtype_name(s->kv_dtype ? s->kv_dtype : s->dtype));
        return MLA_OK;
    }
    if (!a->descale_k)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "descale_k is NULL: an FP8 k_cache (kv_dtype MLA_DTYPE_FP8_E4M3) needs "
                             "descale_k, a float32 [1] tensor (use 1.0 for unscaled codes)");
    if ((st = check_ptr("descale_k", a->descale_k, 4))) return st;
    if (fp8_q && !a->descale_q)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                             "descale_q is NULL: an FP8 q (q_dtype MLA_DTYPE_FP8_E4M3) needs descale_q, "
                             "a float32 [1] tensor (use 1.0 for unscaled codes)");
    if (a->descale_q && (st = check_ptr("descale_q", a->descale_q, 4))) return st;
    return MLA_OK;
}

static mla_status validate_args(const struct mla_decode_plan *p, const mla_decode_args *a)
{
    const mla_decode_shape *s = &p->shape;
    const int gpu = p->device != MLA_DEVICE_CPU;
    const size_t esz = 2;
    const size_t valign = gpu ? 16 : esz;
    const int64_t vec = gpu ? 8 : 1;
    /* q and k_cache may be FP8 (1 byte; GPU: 16-byte vectors = 16 elements) */
    const size_t qsz = mla_dtype_size(s->q_dtype ? s->q_dtype : s->dtype);  /* 0 = dtype */
    const size_t ksz = mla_dtype_size(s->kv_dtype ? s->kv_dtype : s->dtype);
    const size_t qalign = gpu ? 16 : qsz, kalign = gpu ? 16 : ksz;
    const int64_t qvec = gpu ? (int64_t)(16 / qsz) : 1, kvec = gpu ? (int64_t)(16 / ksz) : 1;
    mla_status st;

    if (a->flags & ~(uint32_t)MLA_DECODE_REUSE_SCHEDULE)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "flags (0x%x) has unknown bits (known: 0x%x)",
                             a->flags, MLA_DECODE_REUSE_SCHEDULE);
    if ((st = check_ptr("q", a->q, qalign)) || (st = check_ptr("k_cache", a->k_cache, kalign)) ||
        (st = check_ptr("block_table", a->block_table, 4)) ||
        (st = check_ptr("cache_seqlens", a->cache_seqlens, 4)) ||
        (st = check_ptr("out", a->out, valign)) || (st = check_ptr("lse", a->lse, 4)))
        return st;
    if (a->cu_seqlens_q && (uintptr_t)a->cu_seqlens_q % 4)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "cu_seqlens_q (%p) is not 4-byte aligned",
                             (const void *)a->cu_seqlens_q);
    if (a->num_pages < 1)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "num_pages (%lld) must be >= 1",
                             (long long)a->num_pages);
    if (a->max_pages < 1)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "max_pages (%lld) must be >= 1",
                             (long long)a->max_pages);

    static const char *const qn[3] = {"q_stride[0]", "q_stride[1]", "q_stride[2]"};
    static const char *const kn[3] = {"k_stride[0]", "k_stride[1]", "k_stride[2]"};
    static const char *const on[3] = {"out_stride[0]", "out_stride[1]", "out_stride[2]"};
    static const char *const ln[3] = {"lse_stride[0]", "lse_stride[1]", "lse_stride[2]"};
    static const char *const bn[1] = {"block_table_stride"};
    const int64_t qd[3] = {s->b, s->s_q, s->h_q};
    const int64_t kd[3] = {a->num_pages, s->page_size, s->h_kv};
    const int64_t ld[3] = {s->b, s->h_q, s->s_q};
    const int64_t bd[1] = {s->b};
    if ((st = mla_check_layout("q", 3, qd, a->q_stride, qn, s->d_qk, qsz, qvec)) ||
        (st = mla_check_layout("k_cache", 3, kd, a->k_stride, kn, s->d_qk, ksz, kvec)) ||
        (st = mla_check_layout("out", 3, qd, a->out_stride, on, s->d_v, esz, vec)) ||
        (st = mla_check_layout("lse", 3, ld, a->lse_stride, ln, 1, 4, 1)) ||
        (st = mla_check_layout("block_table", 1, bd, &a->block_table_stride, bn, a->max_pages, 4, 1)))
        return st;
    return validate_descales(s, a);
}

/* CPU plans: the host values of the index tensors. */
static mla_status validate_host_values(const struct mla_decode_plan *p, const mla_decode_args *a)
{
    const mla_decode_shape *s = &p->shape;
    int64_t cap;
    if (__builtin_mul_overflow(a->max_pages, s->page_size, &cap)) cap = INT64_MAX;
    for (int64_t i = 0; i < s->b; i++) {
        const int64_t L = a->cache_seqlens[i];
        if (L < 0)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "cache_seqlens[%lld] (%lld) is negative",
                                 (long long)i, (long long)L);
        if (L > cap)
            return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                 "cache_seqlens[%lld] (%lld) exceeds max_pages * page_size "
                                 "(%lld * %lld = %lld)",
                                 (long long)i, (long long)L, (long long)a->max_pages,
                                 (long long)s->page_size, (long long)cap);
        const int64_t used = (L + s->page_size - 1) / s->page_size;
        const int32_t *row = a->block_table + i * a->block_table_stride;
        for (int64_t j = 0; j < used; j++) {
            if (row[j] < 0 || row[j] >= a->num_pages)
                return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                     "block_table[%lld][%lld] (%d) is outside [0, num_pages = "
                                     "%lld) (request %lld has %lld tokens, using %lld pages)",
                                     (long long)i, (long long)j, row[j], (long long)a->num_pages,
                                     (long long)i, (long long)L, (long long)used);
        }
    }
    if (a->cu_seqlens_q) {
        for (int64_t i = 0; i < s->b; i++) {
            const int64_t c0 = a->cu_seqlens_q[i], c1 = a->cu_seqlens_q[i + 1];
            if (c1 < c0)
                return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                     "cu_seqlens_q is not non-decreasing: cu_seqlens_q[%lld] "
                                     "(%lld) > cu_seqlens_q[%lld] (%lld)",
                                     (long long)i, (long long)c0, (long long)(i + 1),
                                     (long long)c1);
            if (c1 - c0 > s->s_q)
                return mla_set_error(MLA_ERR_INVALID_ARGUMENT,
                                     "cu_seqlens_q gives request %lld %lld query tokens "
                                     "(cu_seqlens_q[%lld] - cu_seqlens_q[%lld]), more than s_q "
                                     "(%lld)",
                                     (long long)i, (long long)(c1 - c0), (long long)(i + 1),
                                     (long long)i, (long long)s->s_q);
        }
    }
    return MLA_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Decode                                                                                    */
/* ---------------------------------------------------------------------------------------- */

mla_status mla_decode_schedule(mla_decode_plan_t plan, const int32_t *cache_seqlens,
                               void *workspace, size_t workspace_bytes, struct CUstream_st *stream)
{
    const struct mla_decode_plan *p = check_plan(plan);
    if (!p) return MLA_ERR_INVALID_ARGUMENT;
    mla_status st = check_stream_workspace(p, workspace, workspace_bytes, stream);
    if (st) return st;
    if (p->device == MLA_DEVICE_CPU) return MLA_OK; /* the CPU path has no schedule */
    if ((st = check_ptr("cache_seqlens", cache_seqlens, 4))) return st;
    return mla_gpu_schedule(p, cache_seqlens, workspace, workspace_bytes, stream);
}

mla_status mla_decode(mla_decode_plan_t plan, const mla_decode_args *args, void *workspace,
                      size_t workspace_bytes, struct CUstream_st *stream)
{
    const struct mla_decode_plan *p = check_plan(plan);
    if (!p) return MLA_ERR_INVALID_ARGUMENT;
    if (!args) return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "args is NULL");
    mla_decode_args a;
    mla_status st = copy_args(args, &a);
    if (st) return st;
    if ((st = validate_args(p, &a))) return st;
    if ((st = check_stream_workspace(p, workspace, workspace_bytes, stream))) return st;
    if (p->device == MLA_DEVICE_CPU) {
        if ((st = validate_host_values(p, &a))) return st;
        const float scale = mla_effective_scale(&p->shape, a.softmax_scale);
        const mla_cpu_path *cp = mla_cpu_path_of(p->cpu_kernel);
        if (cp) {
            mla_cpu_split sp;
            mla_cpu_split_of_call(&p->shape, &a, p->cpu_split_chunks, workspace, workspace_bytes, &sp);
            return cp->decode(&p->shape, &a, scale, p->cpu_threads, &sp);
        }
        return mla_ref_decode(&p->shape, &a, scale, p->cpu_threads);
    }
    return mla_gpu_decode(p, &a, workspace, workspace_bytes, stream);
}
