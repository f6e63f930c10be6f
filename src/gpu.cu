/* gpu.cu — the GPU backend (launch layer) of mla.c: device checks, plan facts, workspace layout,
 * and one enqueue of scheduler + decode + combine per mla_decode call. Arguments arrive validated
 * by src/api.c (shapes, pointers, strides, alignment); this file checks only the rules that
 * depend on the device. Never allocates, synchronises or reads device memory on the host.
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "gpu_common.h"
#include "launch.h"
#include "params.h"

extern "C" int mla_gpu_available(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear the non-sticky "no device" error */
        return 0;
    }
    return n > 0;
}

/* the decode variants whose K tiles come by TMA (they take the per-call tensor map and fall back to
 * the cp.async kernel, MLA_KERNEL_WGMMA, when the cache cannot be described by one) */
static int uses_tmap(int kernel) {
    return kernel == MLA_KERNEL_WGMMA_TMA || kernel == MLA_KERNEL_WGMMA_WS || kernel == MLA_KERNEL_WGMMA_SEESAW ||
           kernel == MLA_KERNEL_WGMMA_SS2;
}

extern "C" mla_status mla_gpu_plan_init(struct mla_decode_plan *plan) {
    const mla_decode_shape *s = &plan->shape;
    const int dev = plan->device;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return mla_set_error(MLA_ERR_UNSUPPORTED, "no CUDA device is usable: %s", cudaGetErrorString(e));
    }
    if (dev < 0 || dev >= n)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "device (%d) is not a CUDA ordinal (this machine has %d)",
                             dev, n);
    int major = 0, minor = 0, sms = 0, optin = 0;
    if ((e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) != cudaSuccess)
        return cuda_fail(e, "cudaDeviceGetAttribute");
    if (major < 8)
        return mla_set_error(MLA_ERR_UNSUPPORTED,
                             "device %d has compute capability %d.%d; the GPU kernels need 8.0 or newer", dev,
                             major, minor);
    if (s->dtype != MLA_DTYPE_BF16 && s->dtype != MLA_DTYPE_FP16)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "dtype (%d) is not bf16 or fp16", (int)s->dtype);
    if (s->d_qk != 576 && s->d_qk != 512)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "d_qk (%lld) must be 576 or 512 on the GPU", (long long)s->d_qk);
    if (s->d_v != MLA_DV)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "d_v (%lld) must be 512 on the GPU", (long long)s->d_v);
    if (s->page_size % 16)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "page_size (%lld) must be a multiple of 16 on the GPU",
                             (long long)s->page_size);
    if (s->h_kv > 65535)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "h_kv (%lld) exceeds 65535 on the GPU", (long long)s->h_kv);
    const int64_t hg = s->h_q / s->h_kv;
    const int64_t rows = s->s_q * s->h_q;
    if (rows > 65535LL * 8 || s->s_q * hg > (int64_t)MLA_BM * 65535)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "s_q * h_q (%lld) exceeds %lld on the GPU", (long long)rows,
                             65535LL * 8);
    const int64_t m_blocks = (s->s_q * hg + MLA_BM - 1) / MLA_BM;

    /* kernel variant: on compute capability 9.0 (sm_90a code) the wgmma kernel with cp.async loads
     * (v2; the TMA variant v3 and the warp-specialised TMA pipeline v4 are correct but measured slower,
     * docs/performance.md), else mma.sync with 2 K stages where the smem fits, else 1 stage (A100),
     * else none */
    const int dqk = (int)s->d_qk;
    /* the wgmma kernels exist as sm_90a SASS only (their compute_80 PTX bodies are empty): use them
     * only where the driver loaded that SASS, not a JIT of the compute_80 PTX (CUDA_FORCE_PTX_JIT=1) */
    int sm90 = 0;
    if (major == 9 && minor == 0) {
        int old0;
        mla_status st0 = device_enter(dev, &old0);
        if (st0) return st0;
        sm90 = mla_k_sm90_native();
        device_restore(dev, old0);
    }
    int kernel = 0;
    if (sm90 && optin >= mla_k_decode_smem(MLA_KERNEL_WGMMA, dqk)) {
        /* K tiles by TMA (one box per 64-column chunk, issued by WG1) on pages of 64k tokens for b >= 16,
         * and for b >= 4 (any b on pages of 64k tokens) when a request has more than 64 rows per KV head
         * (two or more M blocks): since
         * the staged epilogue (docs/performance.md §13) 7-13% faster than the cp.async loader at b = 4..48
         * with h_q = 128, 1-8% at b >= 16 with h_q = 16 / 64, and 3-8% on every b=128 row of spec §7
         * (§11-12); the cp.async kernel stays for one M block below b = 16 (b=8 h_q=16 / 64: 1.3% faster
         * with the scheduler kernel, 4-5% with the fused schedules, §31). Pages of 16 / 32 tokens: below. */
        const int64_t rows_kv = (int64_t)s->s_q * hg;
        /* Pages of 16 / 32 tokens: v3 too, its K tiles by one TMA box per chunk and page slice, each
         * slice's boxes issued by its own warp (kernels/decode_sm90.cu, MLA_V3_SLICES; H100: 10-15%
         * faster than v3c / v2 on the h_q=128 rows, within 2.9-3.8% of page 64; docs/performance.md §32).
         * Testing hook MLA_GPU_V3C=1: the rule before, v3 with cp.async tiles (MLA_KERNEL_WGMMA_V3C,
         * §25) up to 128 rows per KV head and v2 above; =2: v2 on every such call */
        /* (v3 from b = 1 where a request has two or more M blocks: with both kernels' fused schedules, H100,
         * b = 1 / 2 / 3 h_q=128 28.2 / 33.5 / 39.6 us against v2's 28.4 / 35.1 / 42.4, s_q=2 b=2 31.0
         * against 31.8; one M block below b = 16 stays on v2: b=4 h_q 16 / 64 52.2 / 39.8 against v3's
         * 54.9 / 40.8; results/gpu/2026-12-06-e810fc7-H100-sched32, docs/performance.md §31) */
        const int v3 = s->b >= 16 || rows_kv > 64;
        const int old16 = s->page_size % 64 != 0 && (env_is("MLA_GPU_V3C", '1') || env_is("MLA_GPU_V3C", '2'));
        kernel = !v3    ? MLA_KERNEL_WGMMA
                 : !old16 ? MLA_KERNEL_WGMMA_TMA
                 : rows_kv > 128 || env_is("MLA_GPU_V3C", '2') ? MLA_KERNEL_WGMMA
                                                               : MLA_KERNEL_WGMMA_V3C;
    }
    else if (optin >= mla_k_decode_smem(MLA_KERNEL_MMA_2STAGE, dqk)) kernel = MLA_KERNEL_MMA_2STAGE;
    else if (optin >= mla_k_decode_smem(MLA_KERNEL_MMA_1STAGE, dqk)) kernel = MLA_KERNEL_MMA_1STAGE;
    else
        return mla_set_error(MLA_ERR_UNSUPPORTED,
                             "device %d allows %d bytes of shared memory per block; the decode kernel needs %d",
                             dev, optin, mla_k_decode_smem(MLA_KERNEL_MMA_1STAGE, dqk));
    /* testing hook: MLA_GPU_KERNEL=1 (mma.sync, 2 stages), 2 (mma.sync, 1 stage), 3 (wgmma, cp.async),
     * 4 (wgmma, TMA), 6 (wgmma, warp-specialised TMA pipeline), 7 (wgmma, TMA, seesaw v5), 12 (wgmma, TMA,
     * seesaw v6 in FlashMLA's order), 13 (wgmma, v3 with cp.async tiles) */
    const char *force = getenv("MLA_GPU_KERNEL");
    char *fend = NULL;
    const long fk = force ? strtol(force, &fend, 10) : 0;
    if (force && fend != force && *fend == 0 &&
        ((fk >= 1 && fk <= 4) || fk == 6 || fk == 7 || fk == MLA_KERNEL_WGMMA_SS2 || fk == MLA_KERNEL_WGMMA_V3C)) {
        const int k = (int)fk;
        if (optin >= mla_k_decode_smem(k, dqk) && (k < MLA_KERNEL_WGMMA || sm90)) kernel = k;
    }
    /* dense FP8 e4m3 cache (issue 7): the wgmma kernel only (K converted to 16-bit in shared memory);
     * the mma.sync path (sm_80..89, or forced by MLA_GPU_KERNEL=1/2) has no FP8 variant */
    if (s->kv_dtype == MLA_DTYPE_FP8_E4M3) {
        if (kernel < MLA_KERNEL_WGMMA)
            return mla_set_error(MLA_ERR_UNSUPPORTED,
                                 "dense decode on an FP8 (e4m3) cache needs the wgmma kernel of compute capability "
                                 "9.0 from its sm_90a code (device %d is %d.%d%s); the portable mma.sync path has "
                                 "no FP8 variant "
                                 "(use a bf16/fp16 cache or a CPU plan)",
                                 dev, major, minor,
                                 !sm90 ? "" : ", MLA_GPU_KERNEL forces mma.sync");
        kernel = MLA_KERNEL_WGMMA_FP8;
        /* at most 32 rows per KV head (e.g. h_q = 16 or 32, s_q = 1): the transposed kernels that convert
         * the raw tile in the consumer threads (kernels/decode_narrow.cu up to 16 rows,
         * kernels/decode_narrow32.cu for 17..32), the faster at both (docs/performance.md §6-7). Testing
         * hooks: MLA_GPU_FP8T=1 the producer-warpgroup kernel (kernels/decode_fp8t.cu) instead;
         * MLA_GPU_NARROW=0 neither (the 64-row kernel) */
        const int n16 = s->s_q * hg <= 16;
        const int ft = env_is("MLA_GPU_FP8T", '1');
        const int nk = ft ? (n16 ? MLA_KERNEL_WGMMA_FP8T : MLA_KERNEL_WGMMA_FP8T32)
                          : (n16 ? MLA_KERNEL_WGMMA_FP8N : MLA_KERNEL_WGMMA_FP8N32);
        if (s->s_q * hg <= 32 && !env_is("MLA_GPU_NARROW", '0') && optin >= mla_k_decode_smem(nk, dqk)) kernel = nk;
    }
    int64_t parts = sms / (s->h_kv * m_blocks);
    if (kernel == MLA_KERNEL_WGMMA_FP8N) parts = 2 * sms / s->h_kv; /* two CTAs per SM (one m-block) */
    if (parts < 1) parts = 1;
    mla_ws_layout w = mla_ws_compute(s->b, s->s_q, s->h_q, (int)parts);

    int old;
    mla_status st = device_enter(dev, &old);
    if (st) return st;
    e = mla_k_prepare(kernel, dqk, s->dtype == MLA_DTYPE_FP16);
    if (e == cudaSuccess && uses_tmap(kernel)) /* per-call fallback when no tensor map */
        e = mla_k_prepare(MLA_KERNEL_WGMMA, dqk, s->dtype == MLA_DTYPE_FP16);
    device_restore(dev, old);
    if (e != cudaSuccess) return cuda_fail(e, "cudaFuncSetAttribute (decode kernel shared memory)");

    plan->gpu.num_sms = sms;
    plan->gpu.cc_major = major;
    plan->gpu.cc_minor = minor;
    plan->gpu.num_sm_parts = (int)parts;
    plan->gpu.kernel = kernel;
    /* FP8 kernel: L2 prefetch of the tile after next (testing hook MLA_FP8_L2_PREFETCH=0: off) */
    plan->gpu.fp8_l2_prefetch = !env_is("MLA_FP8_L2_PREFETCH", '0');
    plan->gpu.combine_slices = env_combine_slices();
    /* small batches on the wgmma kernels v2 (cp.async) and v3 (TMA or cp.async tiles): no scheduler launch, each decode
     * CTA computes its own part (kernels/common.cuh, sched_fused; their own kernel entries, so the other
     * entries' code is untouched); testing hooks MLA_GPU_FUSED_SCHED=0 (never) and =1 (up to b = 512) */
    {
        const int all = env_is("MLA_GPU_FUSED_SCHED", '1');
        const int v3 = kernel == MLA_KERNEL_WGMMA_TMA || kernel == MLA_KERNEL_WGMMA_V3C;
        const int64_t max_b = all  ? MLA_FUSED_SCHED_MAX_B
                              : v3 ? MLA_FUSED_SCHED_TMA_B
                                   : MLA_FUSED_SCHED_DEFAULT_B;
        plan->gpu.fused_sched = (kernel == MLA_KERNEL_WGMMA || v3) && s->b <= max_b && !env_is("MLA_GPU_FUSED_SCHED", '0');
    }
    plan->gpu.qmix_rr = env_is("MLA_GPU_QMIX_RR", '1') ? 1 : env_is("MLA_GPU_QMIX_RR", '0') ? 0 : -1;
    plan->gpu.workspace_bytes = w.total;
    return MLA_OK;
}

static void fill_ws(const struct mla_decode_plan *plan, void *workspace, mla_dec_params *p) {
    const mla_decode_shape *s = &plan->shape;
    mla_ws_layout w = mla_ws_compute(s->b, s->s_q, s->h_q, plan->gpu.num_sm_parts);
    char *base = (char *)workspace;
    p->part_begin = (mla_part_begin *)(base + w.part_begin);
    p->req_slot = (int32_t *)(base + w.req_slot);
    p->split_list = (mla_split_entry *)(base + w.split_list);
    p->num_split = (int32_t *)(base + w.num_split);
    p->lacc = (float *)(base + w.lacc);
    p->oacc = (float *)(base + w.oacc);
    p->rows_per_slot = w.rows;
    p->b = (int)s->b;
    p->s_q = (int)s->s_q;
    p->h_q = (int)s->h_q;
    p->h_kv = (int)s->h_kv;
    p->hg = (int)(s->h_q / s->h_kv);
    p->page_size = (int)s->page_size;
    p->causal = s->causal ? 1 : 0;
    p->num_m_blocks = (int)((s->s_q * (s->h_q / s->h_kv) + MLA_BM - 1) / MLA_BM);
    p->num_sm_parts = plan->gpu.num_sm_parts;
    p->stages = plan->gpu.kernel == MLA_KERNEL_MMA_2STAGE ? 2 : 1;
}

/* cuTensorMapEncodeTiled through the runtime's driver entry point (no -lcuda); resolved once. */
static PFN_cuTensorMapEncodeTiled_v12000 encode_fn(void) {
    static void *fn = NULL;
    void *f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (!f) {
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            f = NULL;
        cudaGetLastError();
        if (f) __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    }
    return (PFN_cuTensorMapEncodeTiled_v12000)f;
}

/* The K-cache tensor map of the TMA kernel: 4D {d_qk, page_size, h_kv, num_pages}, box 64 columns x
 * gcd(page_size, 64) rows, 128-byte swizzle. Returns 0 when the cache cannot be described (the
 * call then uses the cp.async kernel). */
static int encode_k_map(const mla_decode_shape *s, const mla_decode_args *a, CUtensorMap *tm) {
    PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
    if (!enc || a->num_pages >= INT32_MAX || ((uintptr_t)a->k_cache & 15)) return 0;
    const int64_t ps = s->page_size;
    const cuuint32_t br = ps % 64 == 0 ? 64 : (ps % 32 == 0 ? 32 : 16);
    int64_t st_tok = a->k_stride[1] * 2, st_head = a->k_stride[2] * 2, st_page = a->k_stride[0] * 2;
    if (s->h_kv == 1) st_head = 16;   /* never stepped: any valid value */
    if (a->num_pages == 1) st_page = 16;
    const int64_t st[3] = {st_tok, st_head, st_page};
    for (int i = 0; i < 3; i++)
        if (st[i] <= 0 || st[i] % 16 || st[i] >= (1ll << 40)) return 0;
    cuuint64_t gdim[4] = {(cuuint64_t)s->d_qk, (cuuint64_t)ps, (cuuint64_t)s->h_kv, (cuuint64_t)a->num_pages};
    cuuint64_t gstr[3] = {(cuuint64_t)st_tok, (cuuint64_t)st_head, (cuuint64_t)st_page};
    cuuint32_t box[4] = {64, br, 1, 1}, es[4] = {1, 1, 1, 1};
    CUresult r = enc(tm, s->dtype == MLA_DTYPE_FP16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
                     4, (void *)a->k_cache, gdim, gstr, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS;
}

extern "C" mla_status mla_gpu_schedule(const struct mla_decode_plan *plan, const int32_t *cache_seqlens,
                                       void *workspace, size_t workspace_bytes, struct CUstream_st *stream) {
    (void)workspace_bytes;
    mla_dec_params p;
    memset(&p, 0, sizeof p);
    fill_ws(plan, workspace, &p);
    p.seqlens = cache_seqlens;
    p.max_tokens = INT32_MAX; /* no block table here: the decode call clamps per request */
    int old;
    mla_status st = device_enter(plan->device, &old);
    if (st) return st;
    cudaError_t e = mla_k_schedule(&p, (cudaStream_t)stream);
    device_restore(plan->device, old);
    if (e != cudaSuccess) return cuda_fail(e, "the split-KV scheduler launch");
    return MLA_OK;
}

extern "C" mla_status mla_gpu_decode(const struct mla_decode_plan *plan, const mla_decode_args *a,
                                     void *workspace, size_t workspace_bytes, struct CUstream_st *stream) {
    (void)workspace_bytes;
    const mla_decode_shape *s = &plan->shape;
    if (plan->gpu.kernel < MLA_KERNEL_MMA_2STAGE || plan->gpu.kernel > MLA_KERNEL_WGMMA_V3C)
        return mla_set_error(MLA_ERR_INTERNAL, "GPU plan has no decode kernel (kernel id %d)", plan->gpu.kernel);
    mla_dec_params p;
    memset(&p, 0, sizeof p);
    fill_ws(plan, workspace, &p);
    p.q = a->q;
    p.q_s0 = a->q_stride[0];
    p.q_s1 = a->q_stride[1];
    p.q_s2 = a->q_stride[2];
    p.k = a->k_cache;
    p.k_s0 = a->k_stride[0];
    p.k_s1 = a->k_stride[1];
    p.k_s2 = a->k_stride[2];
    p.num_pages = a->num_pages;
    p.block_table = a->block_table;
    p.bt_stride = a->block_table_stride;
    p.seqlens = a->cache_seqlens;
    p.cu_seqlens_q = a->cu_seqlens_q;
    p.out = a->out;
    p.o_s0 = a->out_stride[0];
    p.o_s1 = a->out_stride[1];
    p.o_s2 = a->out_stride[2];
    p.lse = a->lse;
    p.l_s0 = a->lse_stride[0];
    p.l_s1 = a->lse_stride[1];
    p.l_s2 = a->lse_stride[2];
    int64_t cap;
    if (__builtin_mul_overflow(a->max_pages, s->page_size, &cap) || cap > INT32_MAX) cap = INT32_MAX;
    p.max_tokens = cap;
    p.scale_log2 = mla_effective_scale(s, a->softmax_scale) * 1.4426950408889634f;
    if (s->kv_dtype == MLA_DTYPE_FP8_E4M3) { /* device pointers, read by the kernel only */
        p.descale_q = a->descale_q;
        p.descale_k = a->descale_k;
        p.q_fp8 = s->q_dtype == MLA_DTYPE_FP8_E4M3;
        p.fp8_l2_prefetch = plan->gpu.fp8_l2_prefetch;
    }
    p.combine_slices = plan->gpu.combine_slices;
    /* per-request query lengths over several m-blocks: hand a part's (request, m-block) units round
     * robin to its CTAs and weight the scheduler by them (kernels/common.cuh req_mblk) only with at
     * least MLA_QMIX_RR_MIN_REQS requests per part. Measured on an H100 (docs/performance.md §22,
     * s_q 4 with 1 / 2 / 4 tokens per request; speed relative to the same requests padded to s_q):
     * 8 requests a part (b=128 h_q=128) 1.15-1.52x; 2-4 a part (b=32 h_q=128, b=128 with h_q 32 / 64
     * or s_q 2) 0.74-1.03x with both, 0.92-1.00x with round robin alone, 0.97-1.02x with the fixed
     * mapping, which those calls keep. v6 (MLA_KERNEL_WGMMA_SS2) keeps the fixed mapping in its kernel,
     * so it keeps the unweighted schedule too (a weighted one would load its m-block-0 CTAs more) */
    p.qmix_rr = a->cu_seqlens_q && p.num_m_blocks > 1 && plan->gpu.kernel != MLA_KERNEL_WGMMA_SS2 &&
                (plan->gpu.qmix_rr >= 0 ? plan->gpu.qmix_rr
                                        : (int64_t)s->b >= (int64_t)MLA_QMIX_RR_MIN_REQS * plan->gpu.num_sm_parts);

    int kernel = plan->gpu.kernel;
    CUtensorMap tm;
    if (uses_tmap(kernel) && !encode_k_map(s, a, &tm))
        kernel = MLA_KERNEL_WGMMA;

    int old;
    mla_status st = device_enter(plan->device, &old);
    if (st) return st;
    cudaError_t e = cudaSuccess;
    const char *what = "";
    if (!(a->flags & MLA_DECODE_REUSE_SCHEDULE)) {
        /* (the fused schedule has no request weights: the scheduler kernel computes the weighted one; and
         * it sums the requests' costs in 32 bits: b * (ceil(max_tokens / MLA_BN) + F) < 2^31) */
        const int fits32 = (int64_t)s->b * ((p.max_tokens + MLA_BN - 1) / MLA_BN + MLA_SCHED_FIXED_COST) < ((int64_t)1 << 31);
        if (plan->gpu.fused_sched &&
            (kernel == MLA_KERNEL_WGMMA || kernel == MLA_KERNEL_WGMMA_TMA || kernel == MLA_KERNEL_WGMMA_V3C) &&
            !p.qmix_rr && fits32) {
            p.fused_sched = 1; /* the decode CTAs compute (and store) the schedule themselves */
        } else {
            e = mla_k_schedule(&p, (cudaStream_t)stream);
            what = "the split-KV scheduler launch";
        }
    }
    if (e == cudaSuccess) {
        e = mla_k_decode(&p, kernel, (int)s->d_qk, s->dtype == MLA_DTYPE_FP16, plan->gpu.cc_major >= 9,
                         uses_tmap(kernel) ? (const void *)&tm : NULL,
                         (cudaStream_t)stream);
        what = "the decode/combine launch";
    }
    device_restore(plan->device, old);
    if (e != cudaSuccess) return cuda_fail(e, what);
    return MLA_OK;
}
