/* gpu_sparse.cu — the GPU backend (launch layer) of DeepSeek sparse attention: device checks, plan
 * facts, workspace layout and one enqueue of scheduler + sparse decode + combine per
 * mla_sparse_decode call, and the sparse prefill launch. Arguments arrive validated by
 * src/sparse_api.c (shapes, pointers, strides, GPU alignment rules); this file checks only what
 * depends on the device. Never allocates, synchronises or reads device memory on the host, so a
 * decode call can be captured in a CUDA graph. Kernels: kernels/sparse_sm90.cu (sm_90a only). */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "gpu_common.h"
#include "sparse_launch.h"

/* The device is usable and runs the sm_90a sparse kernels; *sms gets its SM count. The shared
 * memory limits of the kernels are raised once per device. */
static mla_status sp_device_ok(int dev, const char *what, int *sms, int *cc_major, int *cc_minor) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return mla_set_error(MLA_ERR_UNSUPPORTED, "%s: no CUDA device is usable: %s", what, cudaGetErrorString(e));
    }
    if (dev < 0 || dev >= n)
        return mla_set_error(MLA_ERR_INVALID_ARGUMENT, "device (%d) is not a CUDA ordinal (this machine has %d)", dev,
                             n);
    int major = 0, minor = 0, nsm = 0, optin = 0;
    if ((e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) != cudaSuccess)
        return cuda_fail(e, "cudaDeviceGetAttribute");
    if (major != 9 || minor != 0)
        return mla_set_error(MLA_ERR_UNSUPPORTED,
                             "%s needs a GPU of compute capability 9.0 (the sparse kernels are sm_90a wgmma code); "
                             "device %d is %d.%d (use a CPU plan)",
                             what, dev, major, minor);
    if (optin < mla_k_sp_smem(576))
        return mla_set_error(MLA_ERR_UNSUPPORTED,
                             "%s: device %d allows %d bytes of shared memory per block; the sparse kernels need %d",
                             what, dev, optin, mla_k_sp_smem(576));
    static unsigned long long prepared = 0; /* bit d: smem limits raised on device d */
    const unsigned long long bit = dev < 64 ? 1ull << dev : 0;
    if (!bit || !(__atomic_load_n(&prepared, __ATOMIC_ACQUIRE) & bit)) {
        int old;
        mla_status st = device_enter(dev, &old);
        if (st) return st;
        e = mla_k_sp_prepare();
        device_restore(dev, old);
        if (e != cudaSuccess) return cuda_fail(e, "cudaFuncSetAttribute (sparse kernel shared memory)");
        if (bit) __atomic_fetch_or(&prepared, bit, __ATOMIC_ACQ_REL);
    }
    if (sms) *sms = nsm;
    if (cc_major) *cc_major = major;
    if (cc_minor) *cc_minor = minor;
    return MLA_OK;
}

/* Kernel variant (kernels/sparse_sm90.cu): 1 = both warpgroups compute S = Q K^T (SPLIT), 0 = WG0
 * alone. Testing hook MLA_SPARSE_SPLIT_QK=0/1, read at plan creation (decode) / per call (prefill).
 * SPLIT passes the same GPU suite but measured 4-12% slower on an H100 (docs/sparse.md). */
#define SP_SPLIT_QK_DEFAULT 0
static int sp_split_qk(void) {
    return env_is("MLA_SPARSE_SPLIT_QK", '1') ? 1 : env_is("MLA_SPARSE_SPLIT_QK", '0') ? 0 : SP_SPLIT_QK_DEFAULT;
}

extern "C" mla_status mla_gpu_sparse_plan_init(struct mla_sparse_decode_plan *plan) {
    const mla_sparse_decode_shape *s = &plan->shape;
    int sms = 0, major = 0, minor = 0;
    mla_status st = sp_device_ok(plan->device, "sparse decode", &sms, &major, &minor);
    if (st) return st;
    const int64_t n_tok = s->b * s->s_q;
    if (n_tok > INT32_MAX)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "b * s_q (%lld) exceeds %d on the GPU", (long long)n_tok, INT32_MAX);
    if (s->h_q > 65535LL * 8)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "h_q (%lld) exceeds %lld on the GPU", (long long)s->h_q,
                             65535LL * 8);
    const int64_t m_blocks = (s->h_q + MLA_BM - 1) / MLA_BM;
    int64_t parts = sms / m_blocks;
    if (parts < 1) parts = 1;
    /* testing hooks: MLA_SPARSE_PRODUCER=0 (the 256-thread decode kernel instead of the
     * producer-warpgroup one), MLA_SPARSE_CROSSOVER=0 (no 2-CTA clusters) */
    const int producer = !env_is("MLA_SPARSE_PRODUCER", '0') && !sp_split_qk();
    int crossover = 0;
    if (producer && m_blocks == 2 && !env_is("MLA_SPARSE_CROSSOVER", '0')) {
        /* the two M-block CTAs of a part run as a 2-CTA cluster and share the gather; parts = the
         * clusters that fit at once (a GPC with an odd free SM count leaves one SM out) */
        int old;
        if ((st = device_enter(plan->device, &old))) return st;
        const int nc = mla_k_sp_pwx_max_clusters(s->format == MLA_FP8_FORMAT_MODEL1);
        device_restore(plan->device, old);
        if (nc >= 1) {
            crossover = 1;
            if (parts > nc) parts = nc;
        }
    }
    const mla_ws_layout w = mla_ws_compute(n_tok, 1, s->h_q, (int)parts);
    plan->gpu.num_sms = sms;
    plan->gpu.cc_major = major;
    plan->gpu.cc_minor = minor;
    plan->gpu.num_m_blocks = (int)m_blocks;
    plan->gpu.num_sm_parts = (int)parts;
    plan->workspace_bytes = w.total;
    plan->gpu.split_qk = sp_split_qk();
    plan->gpu.combine_slices = env_combine_slices();
    /* L2 prefetch of the tile after next: on, except in the crossover kernel, whose producer already
     * has a tile of loads in flight and measured 2.5% faster without it (365.4 -> 356.2 us on the
     * headline case, while the other kernels lose 5-8% without it; results/gpu/2026-12-03-cb115f0-*).
     * Testing hook MLA_SPARSE_L2_PREFETCH=0 / =1: off / on for every kernel. */
    plan->gpu.l2_prefetch = env_is("MLA_SPARSE_L2_PREFETCH", '1') || (!crossover && !env_is("MLA_SPARSE_L2_PREFETCH", '0'));
    plan->gpu.producer = producer;
    plan->gpu.crossover = crossover;
    plan->gpu.pdl = !env_is("MLA_SPARSE_PDL", '0');
    return MLA_OK;
}

static uint32_t sp_limit(int64_t n) { return n > 0x80000000LL ? 0x80000000u : (uint32_t)n; }

extern "C" mla_status mla_gpu_sparse_decode(const struct mla_sparse_decode_plan *plan,
                                            const mla_sparse_decode_args *a, float softmax_scale,
                                            void *workspace, size_t workspace_bytes, struct CUstream_st *stream) {
    (void)workspace_bytes;
    const mla_sparse_decode_shape *s = &plan->shape;
    mla_sp_params p;
    memset(&p, 0, sizeof p);
    p.q = a->q;
    p.q_si = a->q_stride[0];
    p.q_sj = a->q_stride[1];
    p.q_sh = a->q_stride[2];
    p.out = a->out;
    p.o_si = a->out_stride[0];
    p.o_sj = a->out_stride[1];
    p.o_sh = a->out_stride[2];
    p.lse = a->lse;
    p.l_si = a->lse_stride[0];
    p.l_sh = a->lse_stride[1];
    p.l_sj = a->lse_stride[2];
    p.max_logits = NULL;
    p.sink = a->attn_sink;
    p.kc[0] = a->k_cache;
    p.k_stride[0] = a->k_page_stride_bytes;
    p.page_size[0] = (int)s->page_size;
    p.limit[0] = sp_limit(a->num_pages * s->page_size);
    p.idx[0] = a->indices;
    p.idx_si[0] = a->indices_stride[0];
    p.idx_sj[0] = a->indices_stride[1];
    p.len[0] = a->topk_length;
    p.topk[0] = (int)s->topk;
    p.nsrc = 1;
    p.kc[1] = a->k_cache;
    p.idx[1] = a->indices;
    if (s->extra_topk > 0) {
        p.nsrc = 2;
        p.kc[1] = a->extra_k_cache;
        p.k_stride[1] = a->extra_k_page_stride_bytes;
        p.page_size[1] = (int)s->extra_page_size;
        p.limit[1] = sp_limit(a->extra_num_pages * s->extra_page_size);
        p.idx[1] = a->extra_indices;
        p.idx_si[1] = a->extra_indices_stride[0];
        p.idx_sj[1] = a->extra_indices_stride[1];
        p.len[1] = a->extra_topk_length;
        p.topk[1] = (int)s->extra_topk;
    }
    p.n_tok = (int)(s->b * s->s_q);
    p.s_q = (int)s->s_q;
    p.h_q = (int)s->h_q;
    p.hpk = (int)s->h_q;
    p.num_m_blocks = plan->gpu.num_m_blocks;
    p.num_sm_parts = plan->gpu.num_sm_parts;
    p.scale_log2 = softmax_scale * 1.4426950408889634f;
    p.split_qk = plan->gpu.split_qk;
    p.combine_slices = plan->gpu.combine_slices;
    p.l2_prefetch = plan->gpu.l2_prefetch;
    p.producer = plan->gpu.producer;
    p.crossover = plan->gpu.crossover;
    p.pdl = plan->gpu.pdl;
    const mla_ws_layout w = mla_ws_compute(p.n_tok, 1, s->h_q, p.num_sm_parts);
    char *base = (char *)workspace;
    p.part_begin = (mla_part_begin *)(base + w.part_begin);
    p.req_slot = (int32_t *)(base + w.req_slot);
    p.split_list = (mla_split_entry *)(base + w.split_list);
    p.num_split = (int32_t *)(base + w.num_split);
    p.lacc = (float *)(base + w.lacc);
    p.oacc = (float *)(base + w.oacc);
    p.rows_per_slot = w.rows;
#if MLA_SP_CLOSED_PARTS
    /* every token costs c0 without topk_length arrays: the scheduler's payload for them (its rule, whole-token
     * choice included), so the decode CTAs compute their parts (kernels/sparse_sm90.cu sp_cf_begin) */
    p.cf_payload = 0;
    p.cf_c0 = 0;
    if (!p.len[0] && (p.nsrc == 1 || !p.len[1]) && p.n_tok > 0) {
        const long long c0 = ((long long)p.topk[0] + MLA_BN - 1) / MLA_BN +
                             (p.nsrc > 1 ? ((long long)p.topk[1] + MLA_BN - 1) / MLA_BN : 0) + MLA_SCHED_FIXED_COST;
        p.cf_payload = mla_sp_payload(p.n_tok, p.n_tok * c0, c0, 1, p.num_sm_parts);
        p.cf_c0 = c0;
    }
#endif

    int old;
    mla_status st = device_enter(plan->device, &old);
    if (st) return st;
    cudaError_t e = cudaSuccess;
    const char *what = "the sparse decode/combine launch";
    if (!(a->flags & MLA_SPARSE_DECODE_REUSE_SCHEDULE)) {
        e = mla_k_sp_schedule(&p, (cudaStream_t)stream);
        if (e != cudaSuccess) what = "the sparse split-KV scheduler launch";
    }
    if (e == cudaSuccess) e = mla_k_sp_decode(&p, s->format == MLA_FP8_FORMAT_MODEL1, (cudaStream_t)stream);
    device_restore(plan->device, old);
    if (e != cudaSuccess) return cuda_fail(e, what);
    return MLA_OK;
}

extern "C" mla_status mla_gpu_sparse_prefill_check(const mla_sparse_prefill_args *a, int device) {
    mla_status st = sp_device_ok(device, "sparse prefill", NULL, NULL, NULL);
    if (st) return st;
    if (a->h_kv > 65535)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "h_kv (%lld) exceeds 65535 on the GPU", (long long)a->h_kv);
    if ((a->h_q / a->h_kv + MLA_BM - 1) / MLA_BM > 65535)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "h_q / h_kv (%lld) exceeds %d on the GPU",
                             (long long)(a->h_q / a->h_kv), 65535 * MLA_BM);
    return MLA_OK;
}

extern "C" mla_status mla_gpu_sparse_prefill(const mla_sparse_prefill_args *a, int device,
                                             struct CUstream_st *stream) {
    mla_status st = mla_gpu_sparse_prefill_check(a, device);
    if (st) return st;
    mla_sp_params p;
    memset(&p, 0, sizeof p);
    p.q = a->q;
    p.q_si = a->q_stride[0];
    p.q_sh = a->q_stride[1];
    p.out = a->out;
    p.o_si = a->out_stride[0];
    p.o_sh = a->out_stride[1];
    p.lse = a->lse;
    p.l_si = a->lse_stride[0];
    p.l_sh = a->lse_stride[1];
    p.max_logits = a->max_logits;
    p.m_si = a->max_logits_stride[0];
    p.m_sh = a->max_logits_stride[1];
    p.sink = a->attn_sink;
    p.kc[0] = p.kc[1] = a->kv;
    p.k_stride[0] = a->kv_stride[0];
    p.kv_sg = a->kv_stride[1];
    p.limit[0] = sp_limit(a->s_kv);
    p.idx[0] = p.idx[1] = a->indices;
    p.idx_si[0] = a->indices_stride[0];
    p.idx_sg = a->indices_stride[1];
    p.len[0] = a->topk_length;
    p.topk[0] = (int)a->topk;
    p.nsrc = 1;
    p.n_tok = (int)a->s_q;
    p.s_q = 1;
    p.h_q = (int)a->h_q;
    p.hpk = (int)(a->h_q / a->h_kv);
    p.num_m_blocks = (p.hpk + MLA_BM - 1) / MLA_BM;
    p.num_sm_parts = 1;
    p.scale_log2 = a->softmax_scale * 1.4426950408889634f;
    p.split_qk = sp_split_qk();
    /* the seesaw with a producer warpgroup in FlashMLA's order (384 threads, "SSF"): 2-8% faster than
     * the 256-thread kernel on 11 of the bench's 13 prefill rows (docs/sparse.md, twenty-sixth
     * session). Testing hooks MLA_SPARSE_SEESAW=0: the 256-thread kernel (the default before);
     * =1: the 256-thread seesaw kernel; =2: SSF */
    p.seesaw = env_is("MLA_SPARSE_SEESAW", '0') ? 0 : env_is("MLA_SPARSE_SEESAW", '1') ? 1 : 2;
    /* hook MLA_SPARSE_PF_ORDER=0: the M blocks of a token far apart in the grid (as before 2026-12-06) */
    p.mb_fast = !env_is("MLA_SPARSE_PF_ORDER", '0') && (int64_t)p.n_tok * p.num_m_blocks <= INT32_MAX;
    int old;
    if ((st = device_enter(device, &old))) return st;
    cudaError_t e = mla_k_sp_prefill(&p, (int)a->d_qk, (int)a->h_kv, (cudaStream_t)stream);
    device_restore(device, old);
    if (e != cudaSuccess) return cuda_fail(e, "the sparse prefill launch");
    return MLA_OK;
}
