/* params.h — the plain structs shared by the launch layer (src/gpu.cu) and the dense decode
 * kernels (kernels/decode.cu). No CUDA header needed; C and CUDA clean. */
#ifndef MLA_KERNELS_PARAMS_H
#define MLA_KERNELS_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Tile geometry of the mma.sync decode kernel. */
#define MLA_BM 64            /* packed (s_q, head-in-group) rows per CTA              */
#define MLA_BN 64            /* KV tokens per tile (the scheduler's unit of work)     */
#define MLA_THREADS 256      /* 8 warps                                               */
#define MLA_DV 512
#define MLA_SCHED_THREADS 1024
#ifndef MLA_QMIX_RR_MIN_REQS
#define MLA_QMIX_RR_MIN_REQS 8 /* requests per scheduler part for req_mblk's round robin (src/gpu.cu) */
#endif
#ifndef MLA_SCHED_FIXED_COST
#define MLA_SCHED_FIXED_COST 5 /* per-request overhead in tiles (prologue, epilogue, combine) */
#endif
/* sparse decode scheduler: where every query token costs the same c tiles (+ F) and k = ceil(tokens / parts)
 * whole tokens a part cost at most this many tiles more than the split schedule's payload, parts take whole
 * tokens: no partials and no combine work (H100, b=64 / 128: the combine ran 16.5-18 us past the decode
 * kernel, ~6 tiles; docs/performance.md §45). 0 turns the whole-token schedule off. */
#ifndef MLA_SP_SCHED_SPLIT_COST
#define MLA_SP_SCHED_SPLIT_COST 6
#endif
#ifdef __CUDACC__
#define MLA_HOST_DEVICE __host__ __device__
#else
#define MLA_HOST_DEVICE
#endif
/* the sparse scheduler's payload (tiles a part) for n tokens of total cost `total` over P parts: ceil(total / P),
 * or k = ceil(n / P) whole tokens when every token costs c0 (`same`) and that is at most MLA_SP_SCHED_SPLIT_COST
 * tiles more (mla_sp_sched_kernel; the MLA_SP_CLOSED_PARTS launcher) */
static inline MLA_HOST_DEVICE long long mla_sp_payload(long long n, long long total, long long c0, int same, long long P) {
    long long payload = total > 0 ? (total + P - 1) / P : 1;
    if (same && total > 0 && MLA_SP_SCHED_SPLIT_COST > 0) {
        const long long k = (n + P - 1) / P;
        if (k * c0 <= payload + MLA_SP_SCHED_SPLIT_COST) payload = k * c0;
    }
    return payload;
}
#define MLA_FUSED_SCHED_MAX_B 512 /* fused schedule: 2 requests per thread of a decode CTA */
#ifndef MLA_FUSED_SCHED_DEFAULT_B
#define MLA_FUSED_SCHED_DEFAULT_B 15 /* v2 with the fused schedule up to this b (v2 is chosen for one M block below b = 16;
                                       * H100: b = 8 / 12 -3.3..-4.6 us against the scheduler kernel, §31) */
#endif
#ifndef MLA_FUSED_SCHED_TMA_B
#define MLA_FUSED_SCHED_TMA_B 64 /* v3 (TMA or cp.async tiles) with the fused schedule up to this b (H100: b=4..64 -1.8..-3.4 us, b=128 even; docs/performance.md §31) */
#endif
/* sparse combine: the fewest slices giving MLA_SP_COMBINE_CTAS CTAs, at most MLA_SP_COMBINE_MAX_SLICES: the
 * dense rule. It was 1024 CTAs and up to 16 slices, which gave b=2 h_q=128 topk=2048 16 slices of one column
 * a lane (4-byte loads): its combine ran 10.7 us past the decode kernel's end against 5.2 with 4 slices
 * (CUPTI spans, H200, thirty-seventh session; docs/performance.md §42) */
#ifndef MLA_SP_COMBINE_CTAS
#define MLA_SP_COMBINE_CTAS 256
#endif
#ifndef MLA_SP_COMBINE_MAX_SLICES
#define MLA_SP_COMBINE_MAX_SLICES 8
#endif
/* dense combine: the fewest slices giving MLA_DENSE_COMBINE_CTAS CTAs, at most MLA_DENSE_COMBINE_MAX_SLICES
 * (H200, b = 1..32 with the staged epilogue: the best or within 1 us of it on 9 small-batch cases;
 * 1024 CTAs and up to 16 slices cost 1-6 us; docs/performance.md §13) */
#ifndef MLA_DENSE_COMBINE_CTAS
#define MLA_DENSE_COMBINE_CTAS 256
#endif
#ifndef MLA_DENSE_COMBINE_MAX_SLICES
#define MLA_DENSE_COMBINE_MAX_SLICES 8
#endif

/* Kernel variants (mla_gpu_info.kernel). */
#define MLA_KERNEL_MMA_2STAGE 1 /* mma.sync m16n8k16, 2 K stages (needs ~226 KB smem: sm_90, sm_80/A100 no) */
#define MLA_KERNEL_MMA_1STAGE 2 /* mma.sync m16n8k16, 1 K stage  (~154 KB smem: A100)                      */
#define MLA_KERNEL_WGMMA 3      /* wgmma (sm_90a: compute capability 9.0 only), 2 K stages, ~227 KB smem   */
#define MLA_KERNEL_WGMMA_TMA 4  /* wgmma + K tiles by TMA (per-call tensor map; falls back to 3 per call)  */
#define MLA_KERNEL_WGMMA_FP8 5  /* wgmma, FP8 e4m3 cache: ld.global -> registers -> bf16/fp16 SW128 tile  */
#define MLA_KERNEL_WGMMA_WS 6   /* wgmma, warp-specialised TMA pipeline (v4, MLA_GPU_KERNEL=6; falls back to 3 per call) */
#define MLA_KERNEL_WGMMA_SEESAW 7 /* wgmma + TMA, the two warpgroups alternate tiles (v5, kernels/decode_seesaw.cu; falls back to 3 per call) */
#define MLA_KERNEL_WGMMA_FP8N 8   /* FP8 cache, <= 16 rows per KV head: S^T = K Q^T and O^T = V^T P^T (kernels/decode_narrow.cu) */
#define MLA_KERNEL_WGMMA_FP8N32 9 /* the same for 17..32 rows per KV head (kernels/decode_narrow32.cu: two consumer warpgroups on alternate tiles, a producer warp) */
#define MLA_N32_THREADS 384       /* its CTA */
#define MLA_KERNEL_WGMMA_FP8T 10  /* FP8 cache, <= 16 rows per KV head: the transposed products on a tile converted once by a producer warpgroup (kernels/decode_fp8t.cu) */
#define MLA_KERNEL_WGMMA_FP8T32 11 /* the same for 17..32 rows per KV head */
#define MLA_FP8T_THREADS 384       /* their CTA: a producer warpgroup and two consumer warpgroups */
#define MLA_KERNEL_WGMMA_SS2 12    /* wgmma + TMA, the seesaw in FlashMLA's order with one mbarrier per K chunk (v6, kernels/decode_seesaw2.cu; MLA_GPU_KERNEL=12; falls back to 3 per call) */
#define MLA_KERNEL_WGMMA_V3C 13    /* wgmma, v3's hand-offs with K tiles gathered by WG1's cp.async (pages of 16 / 32 tokens; kernels/decode_sm90.cu tma_body CPA = 1) */

/* One entry of the per-part schedule: the part begins at tile `tile` of request `req`; `piece` is
 * the split ordinal of that (possibly split) request piece. Part i covers [begin[i], begin[i+1]). */
typedef struct mla_part_begin { int req, tile, piece, pad; } mla_part_begin;

/* One split request for the combine kernel. */
typedef struct mla_split_entry { int req, slot, npieces, pad; } mla_split_entry;

/* Workspace layout (byte offsets from the workspace base; every section 256-byte aligned). */
typedef struct mla_ws_layout {
    size_t part_begin;   /* (P + 1) mla_part_begin                           */
    size_t req_slot;     /* b int32: first accumulator slot of a split request, -1 if unsplit */
    size_t split_list;   /* P mla_split_entry                                */
    size_t num_split;    /* 1 int32 (+ pad)                                  */
    size_t lacc;         /* slots * rows float: log2-domain lse of each piece */
    size_t oacc;         /* slots * rows * 512 float: normalised partial O    */
    size_t total;
    int slots;           /* 2 * P: bound on pieces of split requests          */
    int rows;            /* s_q * h_q rows per slot                           */
} mla_ws_layout;

static inline size_t mla_ws_align(size_t x) { return (x + 255) & ~(size_t)255; }

static inline mla_ws_layout mla_ws_compute(int64_t b, int64_t s_q, int64_t h_q, int num_sm_parts) {
    mla_ws_layout w;
    size_t o = 0;
    w.slots = 2 * num_sm_parts;
    w.rows = (int)(s_q * h_q);
    w.part_begin = o; o = mla_ws_align(o + (size_t)(num_sm_parts + 1) * sizeof(mla_part_begin));
    w.req_slot = o;   o = mla_ws_align(o + (size_t)b * 4);
    w.split_list = o; o = mla_ws_align(o + (size_t)num_sm_parts * sizeof(mla_split_entry));
    w.num_split = o;  o = mla_ws_align(o + 16);
    w.lacc = o;       o = mla_ws_align(o + (size_t)w.slots * (size_t)w.rows * 4);
    w.oacc = o;       o = mla_ws_align(o + (size_t)w.slots * (size_t)w.rows * MLA_DV * 4);
    w.total = o;
    return w;
}

/* Everything the scheduler, decode and combine kernels read. */
typedef struct mla_dec_params {
    const void *q;        int64_t q_s0, q_s1, q_s2;
    const void *k;        int64_t k_s0, k_s1, k_s2; int64_t num_pages;
    const int32_t *block_table; int64_t bt_stride;
    const int32_t *seqlens;
    const int32_t *cu_seqlens_q; /* NULL: fixed s_q */
    void *out;            int64_t o_s0, o_s1, o_s2;
    float *lse;           int64_t l_s0, l_s1, l_s2;
    int64_t max_tokens;   /* max_pages * page_size: cache_seqlens clamp */
    int b, s_q, h_q, h_kv, hg, page_size, causal, num_m_blocks, num_sm_parts, stages;
    float scale_log2;     /* softmax_scale * log2(e) */
    /* workspace sections */
    mla_part_begin *part_begin;
    int32_t *req_slot;
    mla_split_entry *split_list;
    int32_t *num_split;
    float *lacc;
    float *oacc;
    int rows_per_slot;    /* s_q * h_q */
    /* dense FP8 (MLA_KERNEL_WGMMA_FP8): device pointers, NULL = 1; q_fp8: q holds e4m3 codes */
    const float *descale_q, *descale_k;
    int q_fp8, fp8_l2_prefetch;
    int combine_slices; /* 0: chosen by the launcher (kernels/decode.cu); 1, 2, 4, 8, 16: forced */
    int fused_sched;    /* 1: no scheduler launch, each decode CTA computes its part (common.cuh) */
    int qmix_rr;        /* 1: cu_seqlens_q with many requests per part: m-blocks round robin over a
                           part's CTAs (common.cuh req_mblk) and the scheduler weighting requests by
                           their m-blocks (decode.cu sched_weight); set by src/gpu.cu */
} mla_dec_params;

#ifdef __cplusplus
}
#endif
#endif
