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

mla_status mla_ref_sparse_decode(const mla_sparse_decode_shape *shape,
                                 const mla_sparse_decode_args *args, float softmax_scale,
                                 int num_threads);

mla_status mla_ref_sparse_prefill(const mla_sparse_prefill_args *args, int num_threads);

#ifdef __cplusplus
}
#endif
#endif
