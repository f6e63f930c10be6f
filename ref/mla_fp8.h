/* mla_fp8.h — FP8 numerics and the FP8 KV-cache formats of mla.c (include/mla.h, "FP8
 * KV-cache formats"): float8_e4m3fn and float8_e8m0fnu conversions, the per-token layout of
 * MLA_FP8_FORMAT_V32 / MLA_FP8_FORMAT_MODEL1, and the CPU quantise / dequantise of a cache.
 *
 * The dequantisation here (mla_fp8_dequant_token) is the one the CPU reference and the GPU
 * kernels compute; the quantisation matches FlashMLA's tests/quant.py byte for byte.
 *
 * Internal: included by src/, ref/ and tests/, never installed. */
#ifndef MLA_FP8_H
#define MLA_FP8_H

#include <stdint.h>
#include <string.h>

#include "mla.h"
#include "mla_ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no inf; 0x7f / 0xff are NaN; */
/* largest finite 448 (0x7e); smallest subnormal 2^-9.                                        */
/* ---------------------------------------------------------------------------------------- */

static inline float mla_e4m3_to_float(uint8_t v)
{
    const uint32_t sign = (uint32_t)(v & 0x80u) << 24;
    const uint32_t em = v & 0x7fu;
    if (em == 0x7fu) return mla_bits_f32(sign | 0x7fc00000u);       /* NaN */
    if (em < 0x08u) {                                                /* zero / subnormal */
        const float f = (float)em * (1.0f / 512.0f);                 /* m * 2^-9, exact */
        return sign ? -f : f;
    }
    /* normal: exponent e (1..15) -> e - 7 + 127 = e + 120; mantissa 3 -> 23 bits */
    return mla_bits_f32(sign | ((em + (120u << 3)) << 20));
}

/* float -> float8_e4m3fn, round to nearest even, saturating: finite values beyond 448 and ±inf
 * give ±448, NaN gives 0x7f | sign. This is torch's `.to(torch.float8_e4m3fn)` (CPU, 2.x). */
static inline uint8_t mla_float_to_e4m3(float f)
{
    const uint32_t u = mla_f32_bits(f);
    const uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint8_t)(sign | 0x7fu);            /* NaN */
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7eu);           /* >= 448 (and inf): 448 */
    if (a < 0x3c800000u) {                                           /* < 2^-6: subnormal range */
        /* the subnormal mantissa is |f| * 2^9 rounded to nearest even (8 = the smallest normal,
         * whose encoding 0x08 continues the subnormal codes) */
        float m = mla_bits_f32(a) * 512.0f;                          /* exact */
        uint32_t r = (uint32_t)m;
        const float rem = m - (float)r;
        if (rem > 0.5f || (rem == 0.5f && (r & 1u))) r++;
        return (uint8_t)(sign | r);
    }
    /* normal: keep 3 mantissa bits with round to nearest even; a carry bumps the exponent */
    uint32_t v = a + 0x7ffffu + ((a >> 20) & 1u);
    v = (v >> 20) - ((127u - 7u) << 3);                              /* (e8 << 3) | m3 */
    if (v > 0x7eu) v = 0x7eu;                                        /* rounded past 448 */
    return (uint8_t)(sign | v);
}

/* float8_e8m0fnu: 2^(v - 127); 0xff is NaN. */
static inline float mla_e8m0_to_float(uint8_t v)
{
    if (v == 0xffu) return mla_bits_f32(0x7fc00000u);
    if (v == 0) return mla_bits_f32(0x00400000u);                    /* 2^-127 (fp32 subnormal) */
    return mla_bits_f32((uint32_t)v << 23);
}

/* A power-of-two scale (or NaN / +inf, see mla.h) to e8m0: the biased exponent; NaN and inf
 * give 0xff. Only called with the scales mla_fp8_scale() makes (2^-13 .. 2^120, inf, NaN). */
static inline uint8_t mla_pow2_to_e8m0(float s)
{
    const uint32_t u = mla_f32_bits(s) & 0x7fffffffu;
    if (u >= 0x7f800000u) return 0xffu;
    return (uint8_t)(u >> 23);
}

/* The tile scale of quant.py: 2^ceil(log2(max(amax / 448, 1e-4))) computed exactly (amax >= 0
 * or NaN). NaN amax -> NaN, inf -> inf. */
static inline float mla_fp8_scale(float amax)
{
    if (amax != amax) return amax;                                   /* NaN */
    float r = amax / 448.0f;
    if (r < 1e-4f) r = 1e-4f;
    const uint32_t u = mla_f32_bits(r);
    if (u >= 0x7f800000u) return r;                                  /* +inf */
    /* r = 1.m * 2^e (normal: r >= 1e-4): ceil(log2 r) = e if m == 0 else e + 1 */
    uint32_t e = u >> 23;
    if (u & 0x7fffffu) e++;
    if (e >= 255u) return mla_bits_f32(0x7f800000u);                 /* 2^128 overflows */
    return mla_bits_f32(e << 23);
}

/* ---------------------------------------------------------------------------------------- */
/* Formats                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct mla_fp8_layout {
    int d_qk;            /* 576 / 512                                                     */
    int d_nope;          /* 512 / 448: quantised dims                                     */
    int d_rope;          /* 64                                                            */
    int tile;            /* 128 / 64: NoPE dims per scale                                  */
    int num_tiles;       /* 4 / 7                                                         */
    int bytes_per_token; /* 656 / 584: page bytes = page_size * bytes_per_token            */
} mla_fp8_layout;

/* Fills *l for a known format and returns 1; returns 0 for an unknown one. */
static inline int mla_fp8_get_layout(mla_fp8_format fmt, mla_fp8_layout *l)
{
    memset(l, 0, sizeof *l);
    if (fmt == MLA_FP8_FORMAT_V32) {
        l->d_qk = 576; l->d_nope = 512; l->d_rope = 64; l->tile = 128; l->num_tiles = 4;
        l->bytes_per_token = MLA_FP8_V32_BYTES_PER_TOKEN;
        return 1;
    }
    if (fmt == MLA_FP8_FORMAT_MODEL1) {
        l->d_qk = 512; l->d_nope = 448; l->d_rope = 64; l->tile = 64; l->num_tiles = 7;
        l->bytes_per_token = MLA_FP8_MODEL1_BYTES_PER_TOKEN;
        return 1;
    }
    return 0;
}

/* Pointers to one token's parts inside a page. */
typedef struct mla_fp8_token {
    const uint8_t *nope;   /* d_nope e4m3 bytes                                           */
    const uint8_t *scales; /* V32: 4 float32 (unaligned, read with memcpy); MODEL1: 7 e8m0  */
    const uint8_t *rope;   /* 64 bf16 (unaligned)                                         */
} mla_fp8_token;

static inline mla_fp8_token mla_fp8_locate(mla_fp8_format fmt, const uint8_t *page,
                                           int64_t page_size, int64_t row)
{
    mla_fp8_token t;
    if (fmt == MLA_FP8_FORMAT_V32) {
        t.nope = page + row * MLA_FP8_V32_BYTES_PER_TOKEN;
        t.scales = t.nope + 512;
        t.rope = t.nope + 528;
    } else {
        t.nope = page + row * 576;
        t.rope = t.nope + 448;
        t.scales = page + page_size * 576 + row * 8;
    }
    return t;
}

/* Dequantises one token into d_qk floats, each exactly a bf16 value (see mla.h). */
void mla_fp8_dequant_token(mla_fp8_format fmt, const uint8_t *page, int64_t page_size,
                           int64_t row, float *dst);

/* Quantises one bf16 token (d_qk values) into its place in `page`. */
void mla_fp8_quant_token(mla_fp8_format fmt, const uint16_t *src, uint8_t *page,
                         int64_t page_size, int64_t row);

/* CPU bodies of mla_fp8_quantize_cache / mla_fp8_dequantize_cache (arguments validated by
 * src/sparse_api.c). */
void mla_fp8_quantize_cache_cpu(mla_fp8_format fmt, int64_t num_pages, int64_t page_size,
                                const uint16_t *src, int64_t src_page_stride,
                                int64_t src_row_stride, uint8_t *dst, int64_t dst_page_stride);
void mla_fp8_dequantize_cache_cpu(mla_fp8_format fmt, int64_t num_pages, int64_t page_size,
                                  const uint8_t *src, int64_t src_page_stride, uint16_t *dst,
                                  int64_t dst_page_stride, int64_t dst_row_stride);

#ifdef __cplusplus
}
#endif
#endif
