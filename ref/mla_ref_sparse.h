/* mla_ref_sparse.h — the CPU reference of sparse MLA (DeepSeek Sparse Attention): sparse
 * decode on an FP8 cache and sparse prefill on a bf16 KV, exactly as include/mla.h documents
 * them. The executable spec, the test oracle of the GPU kernels, and the CPU serving path.
 *
 * Internal: included by src/, tests/ and bench/, never installed. */
#ifndef MLA_REF_SPARSE_H
#define MLA_REF_SPARSE_H

#include "mla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Both entry points: the caller (src/sparse_api.c) has validated every argument (shapes,
 * strides, pointers, sizes); index values and topk_length values are NOT checked (they are
 * data: invalid positions are masked, lengths clamped to [0, topk]). `softmax_scale` is the
 * effective scale (> 0, finite). `num_threads` >= 1 workers, the calling thread included;
 * thread creation failures fall back to fewer threads, never to an error.
 *
 * Work items are (query token, kv head, block of up to MLA_REF_SPARSE_ROWS query heads); each
 * walks its key list (main indices, then extra indices for decode) in chunks of
 * MLA_REF_SPARSE_KEYS valid keys: gathers and (for decode) dequantises each key row once per
 * item into fp32, then scores, online softmax (natural-log domain, fp32) and P @ V in fp32.
 * Buffers are fixed-size on the stack (about 150 KB; worker threads get 2 MB stacks), so the
 * calls allocate nothing on the heap. Results depend only on the inputs, never on the thread
 * count (bit-for-bit deterministic). Only valid positions are read from the caches. */
#define MLA_REF_SPARSE_ROWS 16
#define MLA_REF_SPARSE_KEYS 32

/* Where one list of keys comes from: the index list of one (request, query token) or (query
 * token, kv head) and where its positions live. Shared by the reference and src/cpu_amx.c. */
typedef struct mla_sparse_keys {
    int fp8;                   /* 1: paged FP8 cache (decode); 0: bf16 rows (prefill)        */
    mla_fp8_format fmt;
    const uint8_t *base;       /* fp8: the cache; bf16: the kv rows of this kv head (bytes)  */
    int64_t page_size;         /* fp8                                                        */
    int64_t page_stride_bytes; /* fp8                                                        */
    int64_t row_stride;        /* bf16: elements between kv tokens                           */
    int64_t limit;             /* valid positions are [0, limit)                             */
    const int32_t *idx;        /* the index list                                             */
    int64_t n;                 /* entries of idx that count (topk_length clamped to [0, topk]) */
} mla_sparse_keys;

static inline int64_t mla_sparse_clamp_len(const int32_t *len, int64_t i, int64_t topk)
{
    if (!len) return topk;
    const int64_t n = len[i];
    return n < 0 ? 0 : (n > topk ? topk : n);
}

/* The key lists of sparse decode's query token j of request i: the main indices, then the extra
 * ones when the shape has an extra cache. Returns the number of lists (1 or 2). */
static inline int mla_sparse_decode_keys(const mla_sparse_decode_shape *sh,
                                         const mla_sparse_decode_args *a, int64_t i, int64_t j,
                                         mla_sparse_keys out[2])
{
    out[0].fp8 = 1;
    out[0].fmt = sh->format;
    out[0].base = (const uint8_t *)a->k_cache;
    out[0].page_size = sh->page_size;
    out[0].page_stride_bytes = a->k_page_stride_bytes;
    out[0].row_stride = 0;
    out[0].limit = a->num_pages * sh->page_size;
    out[0].idx = a->indices + i * a->indices_stride[0] + j * a->indices_stride[1];
    out[0].n = mla_sparse_clamp_len(a->topk_length, i, sh->topk);
    if (sh->extra_topk <= 0) return 1;
    out[1] = out[0];
    out[1].base = (const uint8_t *)a->extra_k_cache;
    out[1].page_size = sh->extra_page_size;
    out[1].page_stride_bytes = a->extra_k_page_stride_bytes;
    out[1].limit = a->extra_num_pages * sh->extra_page_size;
    out[1].idx = a->extra_indices + i * a->extra_indices_stride[0] + j * a->extra_indices_stride[1];
    out[1].n = mla_sparse_clamp_len(a->extra_topk_length, i, sh->extra_topk);
    return 2;
}

/* The key list of sparse prefill's query token s and kv head g. */
static inline mla_sparse_keys mla_sparse_prefill_keys(const mla_sparse_prefill_args *a, int64_t s,
                                                      int64_t g)
{
    mla_sparse_keys k;
    k.fp8 = 0;
    k.fmt = MLA_FP8_FORMAT_INVALID;
    k.base = (const uint8_t *)((const uint16_t *)a->kv + g * a->kv_stride[1]);
    k.page_size = 1;
    k.page_stride_bytes = 0;
    k.row_stride = a->kv_stride[0];
    k.limit = a->s_kv;
    k.idx = a->indices + s * a->indices_stride[0] + g * a->indices_stride[1];
    k.n = mla_sparse_clamp_len(a->topk_length, s, a->topk);
    return k;
}

mla_status mla_ref_sparse_decode(const mla_sparse_decode_shape *shape,
                                 const mla_sparse_decode_args *args, float softmax_scale,
                                 int num_threads);

mla_status mla_ref_sparse_prefill(const mla_sparse_prefill_args *args, int num_threads);

#ifdef __cplusplus
}
#endif
#endif
