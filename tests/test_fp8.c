/* test_fp8.c — FP8 numerics and the FP8 KV-cache formats (mla_fp8_*), against independent
 * implementations written here: e4m3 decoding by formula, e4m3 encoding by nearest-value
 * search, the tile scale in double precision, and a byte-level reader of both layouts. */
#include "common.h"
#include "mla_fp8.h"

/* ---- independent numerics ------------------------------------------------------------- */

/* e4m3fn code -> value by the definition (NaN for 0x7f / 0xff). */
static double ind_e4m3(int code)
{
    const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
    if (e == 15 && m == 7) return NAN;
    const double v = e == 0 ? ldexp((double)m, -9) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

/* Nearest e4m3fn code to x by search (ties: even mantissa code), saturating at ±448. */
static int ind_to_e4m3(double x)
{
    if (isnan(x)) return signbit(x) ? 0xff : 0x7f;
    const int sign = signbit(x) ? 0x80 : 0;
    const double a = fabs(x);
    if (a >= 448.0) return sign | 0x7e;
    int best = 0;
    double bd = INFINITY;
    for (int c = 0; c <= 0x7e; c++) {
        const double d = fabs(ind_e4m3(c) - a);
        if (d < bd || (d == bd && (c & 1) == 0)) { bd = d; best = c; }
    }
    return sign | best;
}

static double ind_scale(double amax)
{
    double r = (double)(float)((float)amax / 448.0f); /* quant.py divides in fp32 */
    if (r < (double)1e-4f) r = (double)1e-4f;
    return pow(2.0, ceil(log2(r)));
}

static float bf16r(float x) { return mla_bf16_to_float(mla_float_to_bf16(x)); }

/* ---- byte-level reader of one token (independent of mla_fp8_locate) ------------------- */

static void ind_dequant(mla_fp8_format fmt, const uint8_t *page, int64_t ps, int64_t row,
                        double *dst)
{
    if (fmt == MLA_FP8_FORMAT_V32) {
        const uint8_t *t = page + row * 656;
        for (int k = 0; k < 4; k++) {
            float s;
            memcpy(&s, t + 512 + 4 * k, 4);
            for (int x = 0; x < 128; x++) dst[128 * k + x] = ind_e4m3(t[128 * k + x]) * (double)bf16r(s);
        }
        for (int x = 0; x < 64; x++) {
            uint16_t h;
            memcpy(&h, t + 528 + 2 * x, 2);
            dst[512 + x] = mla_bf16_to_float(h);
        }
    } else {
        const uint8_t *t = page + row * 576, *sc = page + ps * 576 + row * 8;
        for (int k = 0; k < 7; k++) {
            const double s = sc[k] == 255 ? NAN : ldexp(1.0, sc[k] - 127);
            for (int x = 0; x < 64; x++) dst[64 * k + x] = ind_e4m3(t[64 * k + x]) * s;
        }
        for (int x = 0; x < 64; x++) {
            uint16_t h;
            memcpy(&h, t + 448 + 2 * x, 2);
            dst[448 + x] = mla_bf16_to_float(h);
        }
    }
}

/* ---- numerics tests --------------------------------------------------------------------- */

static void test_e4m3(void)
{
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        const double want = ind_e4m3(c);
        const float got = mla_e4m3_to_float((uint8_t)c);
        if (isnan(want) ? !isnan(got) : ((double)got != want || !signbit(got) != !signbit(want))) bad++;
        /* every finite code is its own encoding */
        if (!isnan(want) && mla_float_to_e4m3((float)want) != c) bad++;
    }
    tc_expect(bad == 0, "e4m3 decode / re-encode of all 256 codes: %d mismatches", bad);

    /* midpoints between neighbours: ties to even; just above / below: nearest */
    bad = 0;
    for (int c = 0; c < 0x7e; c++) {
        const double lo = ind_e4m3(c), hi = ind_e4m3(c + 1), mid = 0.5 * (lo + hi);
        const int even = (c & 1) == 0 ? c : c + 1;
        if (mla_float_to_e4m3((float)mid) != even) bad++;
        if (mla_float_to_e4m3((float)-mid) != (0x80 | even)) bad++;
        if (mla_float_to_e4m3(nextafterf((float)mid, 0.0f)) != c) bad++;
        if (mla_float_to_e4m3(nextafterf((float)mid, 1e9f)) != c + 1) bad++;
    }
    tc_expect(bad == 0, "e4m3 rounding at the %d midpoints: %d mismatches", 0x7e, bad);

    /* saturation and specials (torch's float8_e4m3fn cast) */
    const float sat[] = {448.0f, 449.0f, 463.9f, 464.0f, 465.0f, 480.0f, 1e6f, 3.4e38f, INFINITY};
    bad = 0;
    for (size_t x = 0; x < sizeof sat / sizeof sat[0]; x++) {
        if (mla_float_to_e4m3(sat[x]) != 0x7e) bad++;
        if (mla_float_to_e4m3(-sat[x]) != 0xfe) bad++;
    }
    tc_expect(bad == 0, "e4m3 saturates to ±448 (incl. ±inf): %d mismatches", bad);
    tc_expect(mla_float_to_e4m3(NAN) == 0x7f && mla_float_to_e4m3(-NAN) == 0xff,
              "e4m3(NaN) = 0x7f | sign (got 0x%02x, 0x%02x)", mla_float_to_e4m3(NAN),
              mla_float_to_e4m3(-NAN));
    tc_expect(mla_float_to_e4m3(-0.0f) == 0x80 && mla_float_to_e4m3(1e-30f) == 0 &&
                  mla_float_to_e4m3(ldexpf(1.0f, -10)) == 0 &&
                  mla_float_to_e4m3(ldexpf(1.5f, -10)) == 1,
              "e4m3 signed zero and subnormal underflow");

    /* random values over the whole range against the nearest-value search */
    tc_rng rng;
    tc_rng_seed(&rng, 7);
    bad = 0;
    for (int n = 0; n < 20000; n++) {
        const float x = (float)(ldexp(tc_uniform(&rng) * 2.0 - 1.0, (int)tc_randint(&rng, 24) - 12));
        if (mla_float_to_e4m3(x) != ind_to_e4m3(x)) bad++;
    }
    tc_expect(bad == 0, "e4m3 encoding of 20000 random floats vs nearest search: %d mismatches", bad);
}

static void test_scale(void)
{
    tc_rng rng;
    tc_rng_seed(&rng, 11);
    int bad = 0;
    for (int n = 0; n < 20000; n++) {
        /* amax: a bf16 value over a wide range, and exact 448 * 2^k values */
        float amax = bf16r((float)ldexp(tc_uniform(&rng), (int)tc_randint(&rng, 60) - 30));
        if (n % 4 == 0) amax = ldexpf(448.0f, (int)tc_randint(&rng, 40) - 25);
        const float got = mla_fp8_scale(amax);
        if ((double)got != ind_scale(amax)) bad++;
    }
    tc_expect(bad == 0, "tile scale 2^ceil(log2(max(amax/448, 1e-4))): %d mismatches", bad);
    tc_expect(mla_fp8_scale(0.0f) == ldexpf(1.0f, -13), "scale of an all-zero tile is 2^-13 (got %g)",
              (double)mla_fp8_scale(0.0f));
    tc_expect(mla_fp8_scale(448.0f) == 1.0f && mla_fp8_scale(449.0f) == 2.0f,
              "scale at amax = 448 is 1, just above it 2");
    tc_expect(isnan(mla_fp8_scale(NAN)) && isinf(mla_fp8_scale(INFINITY)), "scale of NaN / inf amax");
    tc_expect(mla_pow2_to_e8m0(1.0f) == 127 && mla_pow2_to_e8m0(ldexpf(1.0f, -13)) == 114 &&
                  mla_pow2_to_e8m0(NAN) == 255 && mla_e8m0_to_float(130) == 8.0f &&
                  isnan(mla_e8m0_to_float(255)),
              "e8m0 encode / decode");
}

/* ---- cache tests ------------------------------------------------------------------------ */

typedef struct cache_case {
    mla_fp8_format fmt;
    int64_t pages, ps, d, bpt, stride_b, bf_page, bf_row;
    uint16_t *bf;     /* bf16 cache (padded rows and pages) */
    uint8_t *fp8;     /* quantised (padded pages, poisoned) */
    size_t bf_elems, fp8_bytes;
} cache_case;

/* Fills a bf16 cache with per-tile random magnitudes (some tiles tiny, some huge, some zero). */
static void make_cache(cache_case *c, mla_fp8_format fmt, int64_t pages, int64_t ps, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->fmt = fmt; c->pages = pages; c->ps = ps;
    c->d = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512;
    c->bpt = fmt == MLA_FP8_FORMAT_V32 ? 656 : 584;
    c->bf_row = c->d + 8;
    c->bf_page = ps * c->bf_row + 24;
    c->stride_b = fmt == MLA_FP8_FORMAT_V32 ? (ps + 1) * 656 : (ps * 584 + 575) / 576 * 576 + 576;
    c->bf_elems = (size_t)(pages * c->bf_page);
    c->fp8_bytes = (size_t)(pages * c->stride_b);
    c->bf = malloc(c->bf_elems * 2);
    c->fp8 = malloc(c->fp8_bytes);
    memset(c->fp8, 0xa5, c->fp8_bytes);
    tc_rng rng;
    tc_rng_seed(&rng, seed);
    const int tile = fmt == MLA_FP8_FORMAT_V32 ? 128 : 64;
    for (size_t x = 0; x < c->bf_elems; x++) c->bf[x] = 0x7fc1; /* padding */
    for (int64_t p = 0; p < pages; p++)
        for (int64_t r = 0; r < ps; r++) {
            uint16_t *row = c->bf + p * c->bf_page + r * c->bf_row;
            for (int64_t k = 0; k < c->d; k += tile) {
                const int kind = (int)tc_randint(&rng, 8);
                const double mag = kind == 0 ? 0.0 : kind == 1 ? 1e-7 : kind == 2 ? 3e4 : 1.0;
                for (int64_t x = k; x < k + tile && x < c->d; x++)
                    row[x] = mla_float_to_bf16((float)(tc_randn(&rng) * mag));
            }
        }
}

static void free_cache(cache_case *c) { free(c->bf); free(c->fp8); }

static void test_cache(mla_fp8_format fmt, int64_t pages, int64_t ps)
{
    const char *fn = fmt == MLA_FP8_FORMAT_V32 ? "V32" : "MODEL1";
    cache_case c;
    make_cache(&c, fmt, pages, ps, (uint64_t)(pages * 131 + ps));
    mla_status st = mla_fp8_quantize_cache(fmt, pages, ps, c.bf, c.bf_page, c.bf_row, c.fp8,
                                           c.stride_b, MLA_DEVICE_CPU, NULL);
    if (!tc_expect(st == MLA_OK, "%s quantize: %s", fn, mla_last_error())) { free_cache(&c); return; }

    /* layout: rope bytes, scales = the independent scale, nope = independent encoding,
     * MODEL1 pad byte 0, the page padding untouched */
    const int tile = fmt == MLA_FP8_FORMAT_V32 ? 128 : 64, ntile = fmt == MLA_FP8_FORMAT_V32 ? 4 : 7;
    const int dn = tile * ntile;
    int64_t bad_rope = 0, bad_scale = 0, bad_nope = 0, bad_pad = 0, bad_deq = 0, bad_err = 0;
    double *deq = malloc((size_t)c.d * sizeof(double));
    uint16_t *lib = malloc(c.bf_elems * 2);
    for (size_t x = 0; x < c.bf_elems; x++) lib[x] = 0x1234;
    st = mla_fp8_dequantize_cache(fmt, pages, ps, c.fp8, c.stride_b, lib, c.bf_page, c.bf_row,
                                  MLA_DEVICE_CPU, NULL);
    tc_expect(st == MLA_OK, "%s dequantize: %s", fn, mla_last_error());
    for (int64_t p = 0; p < pages; p++) {
        const uint8_t *page = c.fp8 + p * c.stride_b;
        for (int64_t r = 0; r < ps; r++) {
            const uint16_t *src = c.bf + p * c.bf_page + r * c.bf_row;
            const uint8_t *nope = fmt == MLA_FP8_FORMAT_V32 ? page + r * 656 : page + r * 576;
            const uint8_t *rope = nope + dn + (fmt == MLA_FP8_FORMAT_V32 ? 16 : 0);
            if (memcmp(rope, src + dn, 128)) bad_rope++;
            for (int k = 0; k < ntile; k++) {
                double amax = 0.0;
                for (int x = 0; x < tile; x++) amax = fmax(amax, fabs(mla_bf16_to_float(src[k * tile + x])));
                const double s = ind_scale(amax);
                double got;
                if (fmt == MLA_FP8_FORMAT_V32) {
                    float f;
                    memcpy(&f, nope + 512 + 4 * k, 4);
                    got = f;
                } else {
                    got = ldexp(1.0, page[ps * 576 + r * 8 + k] - 127);
                }
                if (got != s) bad_scale++;
                for (int x = 0; x < tile; x++) {
                    const double v = mla_bf16_to_float(src[k * tile + x]);
                    if (nope[k * tile + x] != ind_to_e4m3(v / s)) bad_nope++;
                }
            }
            if (fmt == MLA_FP8_FORMAT_MODEL1 && page[ps * 576 + r * 8 + 7] != 0) bad_pad++;
            /* dequantize = the independent reader, bit for bit; error within e4m3 precision */
            ind_dequant(fmt, page, ps, r, deq);
            const uint16_t *lr = lib + p * c.bf_page + r * c.bf_row;
            for (int64_t x = 0; x < c.d; x++) {
                const double got = mla_bf16_to_float(lr[x]);
                if (got != deq[x]) bad_deq++;
                const double orig = mla_bf16_to_float(src[x]);
                if (x < dn) {
                    double amax = 0.0;
                    const int64_t k0 = x / tile * tile;
                    for (int64_t y = k0; y < k0 + tile; y++) amax = fmax(amax, fabs(mla_bf16_to_float(src[y])));
                    const double s = ind_scale(amax);
                    if (fabs(got - orig) > fmax(fabs(orig) / 16.0, s * ldexp(1.0, -10))) bad_err++;
                } else if (got != orig) {
                    bad_err++;
                }
            }
        }
        /* padding after the page's bytes is untouched */
        for (int64_t x = ps * c.bpt; x < c.stride_b; x++) if (page[x] != 0xa5) bad_pad++;
    }
    /* the bf16 padding of the dequantised copy is untouched */
    int64_t clobber = 0;
    for (int64_t p = 0; p < pages; p++)
        for (int64_t x = 0; x < c.bf_page; x++) {
            const int64_t r = x / c.bf_row, col = x % c.bf_row;
            if ((r >= ps || col >= c.d) && lib[p * c.bf_page + x] != 0x1234) clobber++;
        }
    tc_expect(bad_rope == 0, "%s pages=%lld ps=%lld: RoPE bytes copied raw (%lld bad tokens)", fn, (long long)pages, (long long)ps, (long long)bad_rope);
    tc_expect(bad_scale == 0, "%s pages=%lld ps=%lld: scales at their offsets (%lld bad)", fn, (long long)pages, (long long)ps, (long long)bad_scale);
    tc_expect(bad_nope == 0, "%s pages=%lld ps=%lld: e4m3 NoPE bytes (%lld bad)", fn, (long long)pages, (long long)ps, (long long)bad_nope);
    tc_expect(bad_pad == 0, "%s pages=%lld ps=%lld: pad byte 0 and page padding untouched (%lld bad)", fn, (long long)pages, (long long)ps, (long long)bad_pad);
    tc_expect(bad_deq == 0, "%s pages=%lld ps=%lld: dequantize == independent reader (%lld bad)", fn, (long long)pages, (long long)ps, (long long)bad_deq);
    tc_expect(bad_err == 0, "%s pages=%lld ps=%lld: round-trip error within e4m3 precision (%lld bad)", fn, (long long)pages, (long long)ps, (long long)bad_err);
    tc_expect(clobber == 0, "%s: dequantize wrote %lld padding elements", fn, (long long)clobber);

    /* dequantised values are a fixed point: quantise + dequantise them again changes nothing
     * (the tile scale may halve when rounding lowered the amax, but the values stay exact) */
    uint8_t *again = malloc(c.fp8_bytes);
    uint16_t *lib2 = malloc(c.bf_elems * 2);
    memcpy(lib2, lib, c.bf_elems * 2);
    st = mla_fp8_quantize_cache(fmt, pages, ps, lib, c.bf_page, c.bf_row, again, c.stride_b,
                                MLA_DEVICE_CPU, NULL);
    if (st == MLA_OK)
        st = mla_fp8_dequantize_cache(fmt, pages, ps, again, c.stride_b, lib2, c.bf_page,
                                      c.bf_row, MLA_DEVICE_CPU, NULL);
    tc_expect(st == MLA_OK && memcmp(lib2, lib, c.bf_elems * 2) == 0,
              "%s: dequantize(quantize(dequantize(q))) == dequantize(q) bit for bit", fn);
    free(lib2);
    free(again);
    free(deq);
    free(lib);
    free_cache(&c);
}

/* Values that are exactly representable (e4m3 code * 2^k with amax = 448 * 2^k) survive. */
static void test_exact(mla_fp8_format fmt)
{
    const int d = fmt == MLA_FP8_FORMAT_V32 ? 576 : 512, tile = fmt == MLA_FP8_FORMAT_V32 ? 128 : 64;
    const int dn = fmt == MLA_FP8_FORMAT_V32 ? 512 : 448;
    const int64_t ps = 3;
    uint16_t src[3 * 576], back[3 * 576];
    uint8_t fp8[3 * 656];
    tc_rng rng;
    tc_rng_seed(&rng, 5);
    for (int64_t r = 0; r < ps; r++)
        for (int x = 0; x < d; x++) {
            const int k = (int)(r * 7 + x / tile) % 9 - 4; /* tile exponent */
            int code = (int)tc_randint(&rng, 0x7f);        /* 0..0x7e: finite, positive */
            if (x % tile == 0) code = 0x7e;                /* amax = 448 * 2^k */
            const double v = ind_e4m3(code) * ldexp(1.0, k) * (tc_uniform(&rng) < 0.5 ? -1 : 1);
            src[r * d + x] = mla_float_to_bf16((float)(x < dn ? v : tc_randn(&rng)));
        }
    mla_status st = mla_fp8_quantize_cache(fmt, 1, ps, src, ps * d, d, fp8, 0, MLA_DEVICE_CPU, NULL);
    st = st ? st : mla_fp8_dequantize_cache(fmt, 1, ps, fp8, 0, back, ps * d, d, MLA_DEVICE_CPU, NULL);
    tc_expect(st == MLA_OK && memcmp(src, back, sizeof(uint16_t) * (size_t)(ps * d)) == 0,
              "%s: exactly representable values round-trip bit for bit (%s)",
              fmt == MLA_FP8_FORMAT_V32 ? "V32" : "MODEL1", st ? mla_last_error() : "ok");
}

/* NaN and inf in a tile (unused cache rows are NaN in FlashMLA's tests). */
static void test_specials(void)
{
    uint16_t src[576], back[576];
    uint8_t fp8[656];
    for (int x = 0; x < 576; x++) src[x] = mla_float_to_bf16(0.25f);
    src[3] = mla_float_to_bf16(NAN);           /* tile 0 */
    src[130] = mla_float_to_bf16(INFINITY);    /* tile 1 */
    mla_status st = mla_fp8_quantize_cache(MLA_FP8_FORMAT_V32, 1, 1, src, 576, 576, fp8, 0, MLA_DEVICE_CPU, NULL);
    st = st ? st : mla_fp8_dequantize_cache(MLA_FP8_FORMAT_V32, 1, 1, fp8, 0, back, 576, 576, MLA_DEVICE_CPU, NULL);
    int nan_t0 = 1, t1_ok = 1, t2_ok = 1;
    for (int x = 0; x < 128; x++) nan_t0 &= isnan(mla_bf16_to_float(back[x]));
    for (int x = 128; x < 256; x++) {
        const float v = mla_bf16_to_float(back[x]);
        t1_ok &= isnan(v); /* inf scale: the codes are 0 (or NaN), and 0 * inf is NaN */
    }
    for (int x = 256; x < 512; x++) t2_ok &= mla_bf16_to_float(back[x]) == 0.25f;
    tc_expect(st == MLA_OK && nan_t0 && t1_ok && t2_ok,
              "V32: a NaN poisons its tile only, an inf tile dequantises to NaN (%d %d %d)", nan_t0, t1_ok, t2_ok);
}

/* Dequantisation with scales quantisation never makes (non powers of two, extreme exponents,
 * NaN): bf16(float(e4m3) * bf16(scale)) for V32, bf16(float(e4m3) * 2^(e-127)) for MODEL1. */
static void test_odd_scales(void)
{
    const float v32_scales[8] = {0.3f, 3.14159f, 1.7e-3f, ldexpf(1.0f, -120), ldexpf(1.0f, 120),
                                 ldexpf(1.5f, 110), NAN, 1.0f};
    const uint8_t e8[8] = {0, 1, 20, 127, 230, 254, 255, 127};
    uint8_t page[2 * 656 + 16];
    uint16_t got[2 * 576];
    tc_rng rng;
    tc_rng_seed(&rng, 99);
    int64_t bad = 0;
    for (int f = 0; f < 2; f++) {
        const mla_fp8_format fmt = f ? MLA_FP8_FORMAT_MODEL1 : MLA_FP8_FORMAT_V32;
        const int d = f ? 512 : 576, ps = 2, dn = f ? 448 : 512, tile = f ? 64 : 128;
        for (size_t x = 0; x < sizeof page; x++) page[x] = (uint8_t)tc_randint(&rng, 256);
        for (int r = 0; r < ps; r++)
            for (int k = 0; k < dn / tile; k++) {
                if (f) page[ps * 576 + r * 8 + k] = e8[(r * 7 + k) % 8];
                else memcpy(page + r * 656 + 512 + 4 * k, &v32_scales[(r * 4 + k) % 8], 4);
            }
        if (mla_fp8_dequantize_cache(fmt, 1, ps, page, 0, got, ps * d, d, MLA_DEVICE_CPU, NULL) != MLA_OK) {
            tc_expect(0, "dequantize with odd scales: %s", mla_last_error());
            continue;
        }
        for (int r = 0; r < ps; r++) {
            double ref[576];
            float tok[576]; /* the token dequantisation the sparse reference uses */
            ind_dequant(fmt, page, ps, r, ref); /* exact products (before bf16 rounding) */
            mla_fp8_dequant_token(fmt, page, ps, r, tok);
            for (int x = 0; x < d; x++) {
                const uint16_t want = mla_float_to_bf16((float)ref[x]);
                const uint16_t g = got[r * d + x];
                const int both_nan = isnan(mla_bf16_to_float(g)) && isnan(mla_bf16_to_float(want));
                if (g != want && !both_nan) bad++;
                const float w = mla_bf16_to_float(want);
                if (!(tok[x] == w || (isnan(tok[x]) && isnan(w)))) bad++;
            }
        }
    }
    tc_expect(bad == 0, "dequantize with non-power-of-two / extreme / NaN scales: %lld mismatches", (long long)bad);
}

/* ---- validation ------------------------------------------------------------------------- */

static void expect_err(mla_status st, mla_status want, const char *needle, const char *what)
{
    tc_expect(st == want && strstr(mla_last_error(), needle) != NULL,
              "%s: want %s containing '%s', got %s: '%s'", what, mla_status_string(want), needle,
              mla_status_string(st), mla_last_error());
}

static void test_validation(void)
{
    static uint16_t bf[4 * 576];
    static uint8_t fp8[4 * 656 + 64];
    memset(fp8, 0x5a, sizeof fp8);
    const mla_fp8_format V = MLA_FP8_FORMAT_V32, M = MLA_FP8_FORMAT_MODEL1;
    expect_err(mla_fp8_quantize_cache((mla_fp8_format)3, 1, 4, bf, 2304, 576, fp8, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "format (3)", "unknown format");
    expect_err(mla_fp8_quantize_cache(V, 0, 4, bf, 2304, 576, fp8, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "num_pages (0)", "num_pages 0");
    expect_err(mla_fp8_quantize_cache(V, 1, 0, bf, 2304, 576, fp8, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "page_size (0)", "page_size 0");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, NULL, 2304, 576, fp8, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "bf16_cache is NULL", "NULL bf16");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, bf, 2304, 576, NULL, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "fp8_cache is NULL", "NULL fp8");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, (const char *)bf + 1, 2304, 576, fp8, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "2-byte aligned", "misaligned bf16");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, bf, 2304, 500, fp8, 2624, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "bf16_row_stride (500)", "rows overlap");
    expect_err(mla_fp8_quantize_cache(V, 2, 2, bf, 2304, 576, fp8, 1000, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "fp8_page_stride_bytes (1000) must be >= page_size * 656", "fp8 stride");
    expect_err(mla_fp8_quantize_cache(M, 2, 2, bf, 1024, 512, fp8, 1100, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "page_size * 584", "MODEL1 fp8 stride");
    expect_err(mla_fp8_quantize_cache(V, 1, 2, bf, 1152, 576, (uint8_t *)bf + 16, 0, -1, NULL),
               MLA_ERR_INVALID_ARGUMENT, "overlap", "overlapping buffers");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, bf, 2304, 576, fp8, 2624, 0, NULL),
               MLA_ERR_UNSUPPORTED, "not built yet", "GPU device");
    expect_err(mla_fp8_dequantize_cache(V, 1, 4, fp8, 2624, bf, 2304, 576, 1, NULL),
               MLA_ERR_UNSUPPORTED, "not built yet", "GPU device (dequantize)");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, bf, 2304, 576, fp8, 2624, -2, NULL),
               MLA_ERR_INVALID_ARGUMENT, "device (-2)", "bad device");
    expect_err(mla_fp8_quantize_cache(V, 1, 4, bf, 2304, 576, fp8, 2624, -1, (struct CUstream_st *)fp8),
               MLA_ERR_INVALID_ARGUMENT, "stream must be NULL", "stream on CPU");
    int untouched = 1;
    for (size_t x = 0; x < sizeof fp8; x++) untouched &= fp8[x] == 0x5a;
    tc_expect(untouched, "failed calls wrote nothing");
    int64_t d = 0, dn = 0, t = 0, b = 0;
    tc_expect(mla_fp8_format_info(M, &d, &dn, &t, &b) == MLA_OK && d == 512 && dn == 448 && t == 64 && b == 584,
              "mla_fp8_format_info(MODEL1)");
    tc_expect(mla_fp8_format_info(V, &d, NULL, NULL, &b) == MLA_OK && d == 576 && b == 656,
              "mla_fp8_format_info(V32)");
    expect_err(mla_fp8_format_info(MLA_FP8_FORMAT_INVALID, &d, NULL, NULL, NULL),
               MLA_ERR_INVALID_ARGUMENT, "format (0)", "format_info(INVALID)");
}

int main(void)
{
    test_e4m3();
    test_scale();
    const int64_t ps_list[] = {1, 2, 53, 64, 69};
    for (int f = 1; f <= 2; f++)
        for (size_t x = 0; x < sizeof ps_list / sizeof ps_list[0]; x++)
            test_cache((mla_fp8_format)f, ps_list[x] > 60 ? 3 : 5, ps_list[x]);
    test_exact(MLA_FP8_FORMAT_V32);
    test_exact(MLA_FP8_FORMAT_MODEL1);
    test_specials();
    test_odd_scales();
    test_validation();
    return tc_summary();
}
