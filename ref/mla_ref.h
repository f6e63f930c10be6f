/* mla_ref.h — the CPU reference of mla.c: the executable spec (spec.md §3), the test oracle
 * and the serving path on machines without a Hopper GPU. Also the small numeric helpers every
 * part of the project needs (bf16/fp16 <-> float).
 *
 * Internal: included by src/, tests/ and bench/, never installed. */
#ifndef MLA_REF_H
#define MLA_REF_H

#include <stdint.h>
#include <string.h>

#include "mla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* bf16 / fp16 <-> float. Round to nearest even; NaN stays NaN (quiet), ±inf stays ±inf.     */
/* ---------------------------------------------------------------------------------------- */

static inline uint32_t mla_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float mla_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float mla_bf16_to_float(uint16_t h) { return mla_bits_f32((uint32_t)h << 16); }

static inline uint16_t mla_float_to_bf16(float f)
{
    uint32_t u = mla_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)               /* NaN: keep sign, force quiet bit */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);                   /* round to nearest even (overflow -> inf) */
    return (uint16_t)(u >> 16);
}

static inline float mla_fp16_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)                                   /* inf / NaN */
        return mla_bits_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0u));
    if (exp == 0) {
        if (man == 0) return mla_bits_f32(sign);       /* ±0 */
        float v = (float)man * (1.0f / 16777216.0f);   /* subnormal: man * 2^-24, exact */
        return sign ? -v : v;
    }
    return mla_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t mla_float_to_fp16(float f)
{
    uint32_t u = mla_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf, and inf */
    if (a < 0x38800000u) {                                 /* below 2^-14: fp16 subnormal or 0 */
        /* value * 2^24 rounded to nearest even integer is the subnormal mantissa. */
        if (a < 0x33000000u) return sign;                  /* < 2^-25: rounds to 0 (2^-25 ties to 0) */
        uint32_t e = a >> 23;                              /* 102..112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;          /* 24-bit significand */
        uint32_t shift = 126u - e;                         /* 14..24: bits dropped */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    /* normal: rebias exponent 127 -> 15, round mantissa 23 -> 10 bits (carry may bump exp) */
    uint32_t v = a - 0x38000000u;                          /* (e - 112) << 23 | m */
    v += 0xfffu + ((v >> 13) & 1u);
    return (uint16_t)(sign | (v >> 13));
}

/* One element of `dtype` (MLA_DTYPE_BF16 or MLA_DTYPE_FP16) to float and back. */
static inline float mla_half_to_float(mla_dtype dtype, uint16_t h)
{
    return dtype == MLA_DTYPE_FP16 ? mla_fp16_to_float(h) : mla_bf16_to_float(h);
}
static inline uint16_t mla_float_to_half(mla_dtype dtype, float f)
{
    return dtype == MLA_DTYPE_FP16 ? mla_float_to_fp16(f) : mla_float_to_bf16(f);
}

/* ---------------------------------------------------------------------------------------- */
/* Dense decode on the CPU                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Computes dense MLA decode exactly as include/mla.h documents it, on host memory.
 *
 * The caller (src/api.c) has validated everything: shape, strides, alignment, and the host
 * values of cache_seqlens / block_table / cu_seqlens_q (lengths in [0, max_pages*page_size],
 * used block-table entries in [0, num_pages), cu_seqlens_q non-decreasing with lengths <= s_q).
 * `softmax_scale` is the effective scale (> 0). `num_threads` >= 1 workers, created per call
 * with a 2 MB stack; the calling thread waits (it computes only if no thread can be created).
 *
 * Work is split into items (request, kv head, block of up to MLA_REF_ROWS query rows that share
 * the kv head); each item runs an online softmax over chunks of MLA_REF_KEYS keys with fixed-size
 * stack buffers (about 150 KB of the worker's stack), so the call allocates nothing on the heap. Every row's
 * result depends only on its inputs, never on the thread count: the output is bit-for-bit
 * deterministic. Only rows [0, L) of the request's pages are read; nothing else in the cache,
 * and no block-table entry past ceil(L / page_size), is touched. Rows that do not exist
 * (cu_seqlens_q shorter than s_q) are neither read nor written.
 *
 * Dense FP8 (shape kv_dtype / q_dtype MLA_DTYPE_FP8_E4M3, 0 = dtype): rows of e4m3 codes are
 * converted exactly, the scores are scaled by softmax_scale * descale_q * descale_k and the
 * output by descale_k (args descale pointers, validated by api.c), as vLLM's fork computes it.
 *
 * Returns MLA_OK (thread creation failures fall back to fewer threads, never to an error). */
/* What every dense CPU kernel derives from a plan's shape and a call's arguments: the dtypes of
 * q and k_cache (shape q_dtype / kv_dtype, 0 = dtype) and the two scales. Dense FP8 (vLLM's
 * flash_mla_with_kvcache_fp8): scores of the raw codes times scale * descale_q * descale_k,
 * output times descale_k (api.c validated the descale pointers). */
typedef struct mla_dense_numerics {
    mla_dtype qdt, kdt; /* dtypes of q / k_cache                                       */
    size_t qsz, ksz;    /* bytes per element of q / k_cache (1 for FP8 e4m3)            */
    float scale_log2;   /* softmax_scale * log2(e) (* descale_q * descale_k: FP8)        */
    float out_scale;    /* 1, or descale_k with an FP8 cache (V's descale)               */
} mla_dense_numerics;

static inline mla_dense_numerics mla_dense_numerics_of(const mla_decode_shape *shape,
                                                       const mla_decode_args *args,
                                                       float softmax_scale)
{
    mla_dense_numerics n;
    n.qdt = shape->q_dtype != MLA_DTYPE_INVALID ? shape->q_dtype : shape->dtype;
    n.kdt = shape->kv_dtype != MLA_DTYPE_INVALID ? shape->kv_dtype : shape->dtype;
    n.qsz = mla_dtype_size(n.qdt);
    n.ksz = mla_dtype_size(n.kdt);
    n.scale_log2 = softmax_scale * 1.44269504088896340736f;
    n.out_scale = 1.0f;
    if (n.kdt == MLA_DTYPE_FP8_E4M3) {
        const float dq = args->descale_q ? args->descale_q[0] : 1.0f;
        const float dk = args->descale_k[0];
        n.scale_log2 = n.scale_log2 * dq * dk;
        n.out_scale = dk;
    }
    return n;
}

/* A dense CPU work item: request i, kv head g, and its rows [r0, r1) of the request's n_i * hpk
 * rows (row rr is query token rr / hpk, head g * hpk + rr % hpk); r0 >= r1 when the block lies
 * past a short request's rows (cu_seqlens_q). Items are numbered (i, g, block of `rows` rows),
 * `nblk` blocks per (i, g). Shared by every dense CPU kernel. */
typedef struct mla_dense_item {
    int64_t i, g, n_i, r0, r1;
} mla_dense_item;

static inline mla_dense_item mla_dense_item_of(const mla_decode_shape *sh, const mla_decode_args *a,
                                               int64_t w, int64_t nblk, int64_t rows, int64_t hpk)
{
    mla_dense_item it;
    it.g = (w / nblk) % sh->h_kv;
    it.i = w / (nblk * sh->h_kv);
    it.n_i = a->cu_seqlens_q ? (int64_t)a->cu_seqlens_q[it.i + 1] - a->cu_seqlens_q[it.i] : sh->s_q;
    it.r0 = (w % nblk) * rows;
    it.r1 = it.r0 + rows < it.n_i * hpk ? it.r0 + rows : it.n_i * hpk;
    return it;
}

/* Keys [0, result) of a request with L keys and n query tokens are visible to its query token j
 * (bottom-right causal when `causal`; every key otherwise). Shared by every dense CPU kernel. */
static inline int64_t mla_visible_keys(int64_t L, int64_t n, int64_t j, int causal)
{
    if (!causal) return L;
    const int64_t lr = L - n + j + 1;
    return lr < 0 ? 0 : lr > L ? L : lr;
}

#define MLA_REF_ROWS 16
#define MLA_REF_KEYS 32
#define MLA_REF_MAX_D 576

mla_status mla_ref_decode(const mla_decode_shape *shape, const mla_decode_args *args,
                          float softmax_scale, int num_threads);

/* ---------------------------------------------------------------------------------------- */
/* Worker threads (ref/mla_cpu_threads.c), shared by every CPU path                          */
/* ---------------------------------------------------------------------------------------- */

#define MLA_CPU_MAX_THREADS 256
/* Stack one work item may use at most (src/cpu_amx.c's ~620 KB working set, with room): the
 * calling thread joins the workers only when it has this much stack left. */
#define MLA_CPU_ITEM_STACK ((size_t)1536 << 10)

/* Calls fn(ctx, w) once for every w in [0, items), on min(num_threads, items, 256) workers that
 * take items from an atomic counter: the calling thread, when its stack has MLA_CPU_ITEM_STACK
 * bytes left below the call (else it only waits), and helper threads with 2 MB stacks, taken
 * from a process-wide pool kept asleep between calls (ref/mla_cpu_threads.c; MLA_CPU_POOL=0:
 * created for each call, as they are when another call is using the pool). If no thread can
 * be created, the caller does the work itself. Never fails. */
void mla_cpu_parallel(int64_t items, int num_threads, void (*fn)(void *ctx, int64_t item), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
