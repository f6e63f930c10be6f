/* mla_fp8.c — quantise / dequantise tokens and whole caches in the FP8 formats of mla.h
 * (see mla_fp8.h). Scalar C; the layout constants come from mla_fp8_get_layout. */
#include "mla_fp8.h"

#include <pthread.h>

static inline float load_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

static inline uint16_t load_u16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* e4m3 code -> float, filled once (pthread_once) */
static float e4m3_table[256];
static pthread_once_t e4m3_once = PTHREAD_ONCE_INIT;

static void e4m3_table_init(void)
{
    for (int c = 0; c < 256; c++) e4m3_table[c] = mla_e4m3_to_float((uint8_t)c);
}

/* A scale s for which float(e4m3) * s is exactly a bf16 value for every code: a power of two
 * (mantissa 0) far enough from the fp32 range ends that no product over- or underflows. Then
 * the bf16 rounding of the product is the identity and can be skipped. */
static inline int exact_scale(float s)
{
    const uint32_t u = mla_f32_bits(s) & 0x7fffffffu;
    const uint32_t e = u >> 23;
    return (u & 0x7fffffu) == 0 && e >= 127 - 100 && e <= 127 + 100;
}

void mla_fp8_dequant_token(mla_fp8_format fmt, const uint8_t *page, int64_t page_size,
                           int64_t row, float *dst)
{
    pthread_once(&e4m3_once, e4m3_table_init);
    mla_fp8_layout l;
    mla_fp8_get_layout(fmt, &l);
    const mla_fp8_token t = mla_fp8_locate(fmt, page, page_size, row);
    for (int k = 0; k < l.num_tiles; k++) {
        float s;
        if (fmt == MLA_FP8_FORMAT_V32)
            s = mla_bf16_to_float(mla_float_to_bf16(load_f32(t.scales + 4 * k)));
        else
            s = mla_e8m0_to_float(t.scales[k]);
        const uint8_t *q = t.nope + k * l.tile;
        float *o = dst + k * l.tile;
        if (exact_scale(s)) {
            for (int x = 0; x < l.tile; x++) o[x] = e4m3_table[q[x]] * s;
        } else {
            for (int x = 0; x < l.tile; x++)
                o[x] = mla_bf16_to_float(mla_float_to_bf16(e4m3_table[q[x]] * s));
        }
    }
    for (int x = 0; x < l.d_rope; x++)
        dst[l.d_nope + x] = mla_bf16_to_float(load_u16(t.rope + 2 * x));
}

void mla_fp8_quant_token(mla_fp8_format fmt, const uint16_t *src, uint8_t *page,
                         int64_t page_size, int64_t row)
{
    mla_fp8_layout l;
    mla_fp8_get_layout(fmt, &l);
    const mla_fp8_token t = mla_fp8_locate(fmt, page, page_size, row);
    uint8_t *nope = (uint8_t *)t.nope, *scales = (uint8_t *)t.scales, *rope = (uint8_t *)t.rope;
    for (int k = 0; k < l.num_tiles; k++) {
        const uint16_t *x = src + k * l.tile;
        float amax = 0.0f;
        int nan = 0;
        for (int i = 0; i < l.tile; i++) {
            const float v = mla_bf16_to_float(x[i]);
            const float a = v < 0.0f ? -v : v;
            if (v != v) nan = 1;
            if (a > amax) amax = a;
        }
        const float s = mla_fp8_scale(nan ? mla_bits_f32(0x7fc00000u) : amax);
        if (fmt == MLA_FP8_FORMAT_V32)
            memcpy(scales + 4 * k, &s, 4);
        else
            scales[k] = mla_pow2_to_e8m0(s);
        for (int i = 0; i < l.tile; i++)
            nope[k * l.tile + i] = mla_float_to_e4m3(mla_bf16_to_float(x[i]) / s);
    }
    if (fmt == MLA_FP8_FORMAT_MODEL1) scales[7] = 0; /* the pad byte */
    memcpy(rope, src + l.d_nope, 2 * (size_t)l.d_rope);
}

void mla_fp8_quantize_cache_cpu(mla_fp8_format fmt, int64_t num_pages, int64_t page_size,
                                const uint16_t *src, int64_t src_page_stride,
                                int64_t src_row_stride, uint8_t *dst, int64_t dst_page_stride)
{
    for (int64_t p = 0; p < num_pages; p++)
        for (int64_t r = 0; r < page_size; r++)
            mla_fp8_quant_token(fmt, src + p * src_page_stride + r * src_row_stride,
                                dst + p * dst_page_stride, page_size, r);
}

void mla_fp8_dequantize_cache_cpu(mla_fp8_format fmt, int64_t num_pages, int64_t page_size,
                                  const uint8_t *src, int64_t src_page_stride, uint16_t *dst,
                                  int64_t dst_page_stride, int64_t dst_row_stride)
{
    mla_fp8_layout l;
    mla_fp8_get_layout(fmt, &l);
    float tmp[576];
    for (int64_t p = 0; p < num_pages; p++)
        for (int64_t r = 0; r < page_size; r++) {
            mla_fp8_dequant_token(fmt, src + p * src_page_stride, page_size, r, tmp);
            uint16_t *o = dst + p * dst_page_stride + r * dst_row_stride;
            for (int x = 0; x < l.d_qk; x++) o[x] = mla_float_to_bf16(tmp[x]);
        }
}
