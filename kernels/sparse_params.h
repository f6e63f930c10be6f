/* sparse_params.h — the plain struct shared by the sparse launch layer (src/gpu_sparse.cu) and
 * the sparse kernels (kernels/sparse_sm90.cu): DeepSeek sparse decode on an FP8 cache and sparse
 * prefill on a bf16 kv. C and CUDA clean; no CUDA header needed. */
#ifndef MLA_KERNELS_SPARSE_PARAMS_H
#define MLA_KERNELS_SPARSE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "params.h" /* mla_part_begin, mla_split_entry, mla_ws_layout, MLA_BM, MLA_DV */

#ifdef __cplusplus
extern "C" {
#endif

/* build option (timing switch): decode CTAs compute their schedule parts when every token costs the same */
#ifndef MLA_SP_CLOSED_PARTS
#define MLA_SP_CLOSED_PARTS 0
#endif

/* kernel modes (what the key rows are) */
#define MLA_SP_V32 0      /* FP8 V32 cache, 656 B/token, d_qk 576            */
#define MLA_SP_MODEL1 1   /* FP8 MODEL1 cache, 576 B/token + 8 B scales, 512 */
#define MLA_SP_BF16_576 2 /* bf16 kv rows (prefill), d_qk 576                 */
#define MLA_SP_BF16_512 3 /* bf16 kv rows (prefill), d_qk 512                 */

/* A query "token" is one row of indices: decode token r = request i * s_q + j, prefill token =
 * query position s (i = s, j = 0). Its 64-row M blocks are heads of one KV head g. */
typedef struct mla_sp_params {
    const void *q;      int64_t q_si, q_sj, q_sh;       /* elements                          */
    void *out;          int64_t o_si, o_sj, o_sh;
    float *lse;         int64_t l_si, l_sj, l_sh;
    float *max_logits;  int64_t m_si, m_sh;             /* prefill only (else NULL)          */
    const float *sink;                                  /* [h_q] or NULL                     */
    /* key sources: 0 = main, 1 = extra cache (decode) */
    const void *kc[2];
    int64_t k_stride[2];   /* FP8: page stride in bytes; bf16: kv row stride (elements)    */
    int64_t kv_sg;         /* bf16: elements between kv heads                              */
    int page_size[2];
    uint32_t limit[2];     /* valid positions: (uint32)idx < limit (<= 2^31)                */
    const int32_t *idx[2]; int64_t idx_si[2], idx_sj[2];
    int64_t idx_sg;        /* prefill: elements between kv heads of indices                 */
    const int32_t *len[2]; /* per request i, NULL = topk                                   */
    int topk[2];
    int nsrc;              /* 1 or 2                                                       */
    int n_tok;             /* decode b * s_q, prefill s_q                                  */
    int s_q;               /* tokens per request (decode), 1 (prefill)                     */
    int h_q, hpk;          /* query heads, heads per kv head                               */
    int num_m_blocks, num_sm_parts;
    float scale_log2;
    int split_qk;          /* 1: the SPLIT kernel variant (both warpgroups compute S)          */
    /* split-KV workspace (decode) */
    mla_part_begin *part_begin;
    int32_t *req_slot;
    mla_split_entry *split_list;
    int32_t *num_split;
    float *lacc, *oacc;
    int rows_per_slot;     /* h_q */
    int combine_slices;    /* 0: chosen by the launcher; 1, 2, 4, 8, 16: forced (testing hook)  */
    int l2_prefetch;       /* FP8 decode: L2 prefetch of the tile after next (src/gpu_sparse.cu chooses) */
    int producer;          /* FP8 decode: the producer-warpgroup kernel (hook MLA_SPARSE_PRODUCER=0: off)     */
    int crossover;         /* with producer and num_m_blocks == 2: 2-CTA clusters share the gather
                              (hook MLA_SPARSE_CROSSOVER=0: off)                                          */
    int seesaw;            /* prefill: 1 the seesaw kernel, 2 the seesaw with a producer warpgroup (SSF), instead of
                              the 256-thread one (hook MLA_SPARSE_SEESAW) */
    int mb_fast;           /* prefill: a token's M blocks adjacent in the grid (hook MLA_SPARSE_PF_ORDER=0: off) */
    int pdl;               /* decode: launched with programmatic dependent launch behind the scheduler */
#if MLA_SP_CLOSED_PARTS
    /* build option MLA_SP_CLOSED_PARTS (timing switch, default off): > 0 when every token costs cf_c0 tiles
     * (+ F; no topk_length arrays), the payload the scheduler takes for them; each decode CTA then computes its
     * part's begin and end (sp_part) instead of reading them from part_begin (src/gpu_sparse.cu) */
    long long cf_payload;
    long long cf_c0;
#endif
} mla_sp_params;

#ifdef __cplusplus
}
#endif
#endif
