/* cpu_tiles.h — MLA on the CPU with vector / tile dot products, built five times:
 * src/cpu_amx.c (MLA_TILES 1: Intel AMX tiles, TDPBF16PS), src/cpu_avx512bf16.c (MLA_TILES 2:
 * AVX512-BF16 vectors, VDPBF16PS, for CPUs without tiles such as AMD Zen 4 / Zen 5),
 * src/cpu_avx512.c (MLA_TILES 3: fp32 FMAs on AVX-512 F, for Intel Skylake-SP .. Ice Lake),
 * src/cpu_avx2.c (MLA_TILES 4: fp32 FMAs on AVX2, x86 without AVX-512) and src/cpu_neon.c
 * (MLA_TILES 5: fp32 FMAs on AArch64 Advanced SIMD; the x86 builds are stubs there). All
 * serve dense decode (bf16 / FP8 e4m3 caches), sparse decode (FP8 V32 / MODEL1 caches) and sparse
 * prefill (bf16 kv). The C references (ref/mla_ref.c, ref/mla_ref_sparse.c) stay the spec and the
 * path of every other CPU; this file is only the fast path of the CPU calls it can serve
 * (internal.h: MLA_CPU_KERNEL_*), tested against fp64 oracles with the same tolerances as the GPU
 * kernels. The three calls share one chunk core (ws_chunk, steps 2-5 below); they differ in where
 * rows and keys come from (step 1) and in the write-out. The builds differ in steps 2, 3 and 5
 * (operand layouts and the matrix products) and in what the CPU must have. Subnormal bf16 inputs
 * count as zero in both bf16 dot-product instructions (|x| < 2^-126: far below every tolerance).
 *
 * Numerics: q and K in bf16 (FP8 e4m3 codes are converted to bf16 exactly), scores accumulated
 * in fp32 by the dot products, online softmax in fp32 (exp2 by a degree-7 polynomial, ~1e-8
 * relative), P carried as two bf16 parts (hi + lo, ~2^-17 relative; the GPU kernels and FlashMLA
 * round P to one bf16, 2^-9, which outputs that cancel amplify past the spec tolerance; the FMA
 * build keeps P in fp32), the output accumulated in fp32. Every row's result depends only on its
 * inputs: the output is bit-for-bit the same for any thread count and any page order.
 *
 * Dense work item: (request i, kv head g, block of up to 128 query rows that share the kv head),
 * the reference's packing of s_q and heads into rows. For each chunk of KC = 64 keys:
 *   1. the chunk's K rows are gathered from their pages into kbuf (bf16; rows past the last
 *      visible key are zero, never read from the cache);
 *   2. V (the first 512 dims) is re-laid in pairs of keys (vp: the tiles' "VNNI" B layout);
 *   3. S^T = K Q^T: A = kbuf (16 keys x 32 dims), B = q packed once per item in pairs of dims
 *      (qp), C = 16 keys x 16 rows; stored to sbuf[key][row] (AVX512: a block of keys x row
 *      tiles in zmm accumulators, one broadcast K pair against 16 rows' Q pairs per VDPBF16PS);
 *   4. online softmax on sbuf with the 16 rows of a tile in the 16 lanes of a zmm (mask, max,
 *      exp2, row sums); rows whose maximum moved rescale their accumulator;
 *   5. P (bf16) transposed to rows x keys (pa), then O += P V, 16 output columns at a time, the
 *      fp32 accumulator rows living in acc between chunks (AVX512: a block of rows x column
 *      tiles in zmm accumulators, one broadcast P pair against a V pair tile row).
 * The FMA build instead converts the chunk's K rows to fp32 in step 2 (k32; V is their first 512
 * dims), keeps Q as fp32 vectors of 16 rows per dim (q32), and P in sbuf as fp32; both products
 * are register blocks of VFMADD231PS with one broadcast operand.
 * 620-830 KB of buffers per item on the worker's stack (amx_ws; mla_cpu_parallel: 2 MB).
 *
 * AMX: Linux hands out the tile state only on request: the first eligibility check asks for it
 * once per process (arch_prctl ARCH_REQ_XCOMP_PERM), as oneDNN and PyTorch do; if that fails, or
 * the CPU lacks AMX-BF16 / AVX512-BF16, no plan uses this build. AVX512-BF16: the CPU must have
 * AVX512 F / BW / DQ / VL and AVX512_BF16, with the zmm state enabled by the OS; AVX-512 FMA: the
 * same without AVX512_BF16; AVX2: AVX2, FMA and F16C with the ymm state enabled; NEON: an AArch64
 * CPU. The vector builds' steps differ only in register width: 16 lanes (zmm), 8 (ymm) and 4
 * (NEON; FMLA by element takes the broadcast operand from a lane). */
#include "internal.h"
#include "mla_fp8.h"
#include "mla_ref.h"
#include "mla_ref_sparse.h"

/* MLA_TILES: 1 AMX tiles (src/cpu_amx.c), 2 AVX512-BF16 dot products (src/cpu_avx512bf16.c),
 * 3 fp32 FMAs on AVX-512 F (src/cpu_avx512.c), 4 fp32 FMAs on AVX2 (src/cpu_avx2.c), 5 fp32 FMAs
 * on AArch64 NEON (src/cpu_neon.c). */
#ifndef MLA_TILES
#error "src/cpu_tiles.h is built by src/cpu_amx.c, cpu_avx512bf16.c, cpu_avx512.c, cpu_avx2.c and cpu_neon.c"
#endif
#define TL_AMX (MLA_TILES == 1)
#define TL_DP (MLA_TILES == 2)
#define TL_FMA (MLA_TILES == 3)
#define TL_AVX2 (MLA_TILES == 4)
#define TL_NEON (MLA_TILES == 5)
#define TL_ZMM (TL_AMX || TL_DP || TL_FMA)         /* the AVX-512 builds                     */
#define TL_F32 (TL_FMA || TL_AVX2 || TL_NEON) /* fp32 operands: K and Q converted, P kept in fp32 */
#if TL_AMX
#define TL_(x) mla_cpu_amx_##x
#define TL_WHAT "AMX bf16 tiles"
#elif TL_DP
#define TL_(x) mla_cpu_avx512bf16_##x
#define TL_WHAT "AVX512-BF16 vectors"
#elif TL_FMA
#define TL_(x) mla_cpu_avx512_##x
#define TL_WHAT "AVX-512 fp32 FMA"
#elif TL_AVX2
#define TL_(x) mla_cpu_avx2_##x
#define TL_WHAT "AVX2 fp32 FMA"
#elif TL_NEON
#define TL_(x) mla_cpu_neon_##x
#define TL_WHAT "NEON fp32 FMA"
#else
#error "MLA_TILES must be 1, 2, 3, 4 or 5"
#endif

#if ((TL_NEON && defined(__aarch64__)) || (!TL_NEON && defined(__x86_64__) && defined(__linux__))) && \
    (defined(__clang__) ? __clang_major__ >= 12 : (defined(__GNUC__) && __GNUC__ >= 11))
#define MLA_AMX_BUILD 1
#else
#define MLA_AMX_BUILD 0
#endif

#if !MLA_AMX_BUILD

int TL_(available)(void) { return 0; }
int TL_(preferred)(void) { return 0; }
mla_status TL_(decode)(const mla_decode_shape *shape, const mla_decode_args *args,
                       float softmax_scale, int num_threads, const mla_cpu_split *split)
{
    (void)shape; (void)args; (void)softmax_scale; (void)num_threads; (void)split;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "this build of mla.c has no " TL_WHAT " path");
}
mla_status TL_(sparse_decode)(const mla_sparse_decode_shape *shape, const mla_sparse_decode_args *args,
                              float softmax_scale, int num_threads, const mla_cpu_split *split)
{
    (void)shape; (void)args; (void)softmax_scale; (void)num_threads; (void)split;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "this build of mla.c has no " TL_WHAT " path");
}
mla_status TL_(sparse_prefill)(const mla_sparse_prefill_args *args, int num_threads)
{
    (void)args; (void)num_threads;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "this build of mla.c has no " TL_WHAT " path");
}

#else

#if TL_NEON
#include <arm_neon.h>
#else
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <math.h>
#include <pthread.h>

#define KC 64     /* keys per chunk: four 16-key tiles                          */
_Static_assert(KC == 64, "mla_cpu_split_ranges (internal.h) counts 64-key chunks");
#define RTMAX 8   /* row tiles per item at most                                  */
#define RBMAX (16 * RTMAX)
#define ACC_LD (512 + 16) /* floats per accumulator row (padded off the 2 KB stride) */
#define DMAX 576
#define DV 512
#define NCT (DV / 16) /* output column tiles */

/* ---- availability ------------------------------------------------------------------------ */

#define ARCH_REQ_XCOMP_PERM_ 0x1023
#define XFEATURE_XTILEDATA_ 18

static int g_amx_ok;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void)
{
#if TL_NEON
    g_amx_ok = 1; /* Advanced SIMD and the half-precision conversions are part of every AArch64 CPU */
    return;
#else
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
#if TL_AVX2
    if (!((c & (1u << 12)) && (c & (1u << 29)))) return; /* FMA, F16C */
    if ((lo & 0x6u) != 0x6u) return;                      /* XMM, YMM state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5))) return; /* AVX2 */
    g_amx_ok = 1;
    return;
#endif
    if ((lo & 0xe6u) != 0xe6u) return; /* XMM, YMM, opmask, ZMM state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    const int avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
    if (!avx512) return;
#if TL_AMX
    if (!((d & (1u << 22)) && (d & (1u << 24)))) return; /* AMX-BF16, AMX-TILE */
#endif
#if !TL_F32
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return; /* AVX512_BF16 */
#endif
#if TL_AMX
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) != 0) return;
#endif
    g_amx_ok = 1;
#endif
}

int TL_(available)(void)
{
    pthread_once(&g_amx_once, amx_probe);
    return g_amx_ok;
}

/* Whether the default choice takes this build where it runs. AMX and AVX-512 FMA: yes. AVX512-BF16:
 * on AMD CPUs only. On Intel cores VDPBF16PS issues at a quarter of the FMA's rate, i.e. half its
 * multiply-add rate (bench/micro/cpu_dp_rate.c on Sapphire Rapids), so the FMA build is faster there
 * (docs/performance.md §17); AMD's Zen 4 executes it on its full-width FP pipes (a reading of AMD's
 * documentation, not measured here: no AMD CPU was at hand). */
int TL_(preferred)(void)
{
    if (!TL_(available)()) return 0;
#if TL_DP
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    return b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* "AuthenticAMD" */
#else
    return 1;
#endif
}

/* ---- the item kernel --------------------------------------------------------------------- */

typedef struct amx_job {
    const mla_decode_shape *shape;
    const mla_decode_args *args;
    mla_dense_numerics nm; /* dtypes and scales (mla_ref.h) */
    int64_t hpk, nblk, items;
    int64_t rb;            /* query rows per item: 16 x (1 .. RTMAX)                   */
    int nsplit;            /* key ranges per request at most (1: not split)            */
    const mla_cpu_split *sp; /* split: the ranges and the partial rows (internal.h)     */
} amx_job;

#if TL_AMX
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")))
#elif TL_DP
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#elif TL_FMA
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#elif TL_AVX2
#define TGT __attribute__((target("avx2,fma,f16c")))
#else
#define TGT /* AArch64: Advanced SIMD is the base ISA */
#endif
#define INL static inline __attribute__((always_inline)) TGT
#if TL_NEON
#define TL_PREFETCH(p) __builtin_prefetch((p), 0, 2)
#else
#define TL_PREFETCH(p) _mm_prefetch((p), _MM_HINT_T1)
#endif

#if TL_AMX
/* The tile configuration: palette 1, all 8 tiles 16 rows x 64 bytes. */
typedef struct tile_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;
#endif

#if TL_ZMM
/* 2^x for x <= 0 (and -inf -> 0, NaN -> NaN): x = n + f, f in [-0.5, 0.5], 2^f by its Taylor
 * polynomial of degree 7 (truncation < 6e-9 relative), scaled by 2^n. */
INL __m512 exp2v(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-200.0f), x); /* NaN stays NaN (second operand) */
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5252733804059841e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284770e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* n (a multiple of 16) e4m3 codes times scale s, rounded to bf16 as the reference does
 * (mla_fp8_dequant_token: fp32 product, then round to nearest even). A code's fp16 image
 * ((c & 0x7f) << 7, sign at bit 15) is its value times 2^-8, subnormals included; 0x7f / 0xff
 * are NaN. Integer rounding (not vcvtne2ps2bf16, which flushes subnormals) keeps subnormal
 * products. */
INL void dequant_e4m3(uint16_t *restrict dst, const uint8_t *restrict codes, int n, float s)
{
    const __m512 sv = _mm512_set1_ps(s), k256 = _mm512_set1_ps(256.0f), qnan = _mm512_set1_ps(NAN);
    const __m256i m7f = _mm256_set1_epi16(0x7f), m80 = _mm256_set1_epi16(0x80);
    const __m512i rnd = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    for (int x = 0; x < n; x += 16) {
        const __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(codes + x)));
        const __m256i mag = _mm256_and_si256(c, m7f);
        const __m256i h = _mm256_or_si256(_mm256_slli_epi16(mag, 7), _mm256_slli_epi16(_mm256_and_si256(c, m80), 8));
        __m512 f = _mm512_cvtph_ps(h);
        f = _mm512_mask_mov_ps(f, _mm256_cmpeq_epi16_mask(mag, m7f), qnan);
        f = _mm512_mul_ps(_mm512_mul_ps(f, k256), sv);
        const __m512i u = _mm512_castps_si512(f);
        const __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(u, rnd), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
        _mm256_storeu_si256((__m256i *)(dst + x), _mm512_cvtepi32_epi16(r));
    }
}

#elif TL_AVX2 /* 8 lanes */

/* 2^x for x <= 0 (and -inf -> 0, NaN -> NaN), 8 lanes: the polynomial of the AVX-512 builds,
 * scaled by 2^n as two exact powers of two (n >= -200 = a + b, a = max(n, -100)), so that results
 * below 2^-126 round to subnormals or 0 once, as VSCALEFPS does. */
INL __m256 exp2v8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-200.0f), x); /* NaN stays NaN (second operand) */
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(1.5252733804059841e-05f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381606e-04f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284770e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-02f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n); /* NaN: INT_MIN, but p is NaN then */
    const __m256i na = _mm256_max_epi32(ni, _mm256_set1_epi32(-100));
    const __m256i nb = _mm256_sub_epi32(ni, na);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 pa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(na, bias), 23));
    const __m256 pb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(nb, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, pa), pb);
}

/* dequant_e4m3 of the AVX-512 builds, 8 codes a step (F16C's VCVTPH2PS, integer rounding). */
INL void dequant_e4m3(uint16_t *restrict dst, const uint8_t *restrict codes, int n, float s)
{
    const __m256 sv = _mm256_set1_ps(s), k256 = _mm256_set1_ps(256.0f), qnan = _mm256_set1_ps(NAN);
    const __m128i m7f = _mm_set1_epi16(0x7f), m80 = _mm_set1_epi16(0x80);
    const __m256i rnd = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    for (int x = 0; x < n; x += 8) {
        const __m128i c = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(codes + x)));
        const __m128i mag = _mm_and_si128(c, m7f);
        const __m128i h = _mm_or_si128(_mm_slli_epi16(mag, 7), _mm_slli_epi16(_mm_and_si128(c, m80), 8));
        __m256 f = _mm256_cvtph_ps(h);
        const __m256i isnan = _mm256_cvtepi16_epi32(_mm_cmpeq_epi16(mag, m7f));
        f = _mm256_blendv_ps(f, qnan, _mm256_castsi256_ps(isnan));
        f = _mm256_mul_ps(_mm256_mul_ps(f, k256), sv);
        const __m256i u = _mm256_castps_si256(f);
        const __m256i r = _mm256_srli_epi32(
            _mm256_add_epi32(_mm256_add_epi32(u, rnd), _mm256_and_si256(_mm256_srli_epi32(u, 16), one)), 16);
        _mm_storeu_si128((__m128i *)(dst + x),
                         _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
    }
}
#else /* TL_NEON: 4 lanes */

/* 2^x for x <= 0 (and -inf -> 0, NaN -> NaN), 4 lanes: exp2v8's polynomial and two exact powers
 * of two (FMAX keeps a NaN; FCVTZS turns it into 0, but p is NaN then). */
INL float32x4_t exp2v4(float32x4_t x)
{
    x = vmaxq_f32(vdupq_n_f32(-200.0f), x);
    const float32x4_t n = vrndnq_f32(x);
    const float32x4_t f = vsubq_f32(x, n);
    float32x4_t p = vdupq_n_f32(1.5252733804059841e-05f);
    p = vfmaq_f32(vdupq_n_f32(1.5403530393381606e-04f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.3333558146428443e-03f), p, f);
    p = vfmaq_f32(vdupq_n_f32(9.6181291076284770e-03f), p, f);
    p = vfmaq_f32(vdupq_n_f32(5.5504108664821580e-02f), p, f);
    p = vfmaq_f32(vdupq_n_f32(2.4022650695910071e-01f), p, f);
    p = vfmaq_f32(vdupq_n_f32(6.9314718055994531e-01f), p, f);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, f);
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t na = vmaxq_s32(ni, vdupq_n_s32(-100));
    const int32x4_t nb = vsubq_s32(ni, na);
    const float32x4_t pa = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(na, vdupq_n_s32(127)), 23));
    const float32x4_t pb = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(nb, vdupq_n_s32(127)), 23));
    return vmulq_f32(vmulq_f32(p, pa), pb);
}

/* bf16 bits (round to nearest even) of 4 fp32 values, as the other builds round. */
INL uint16x4_t bf16_of(float32x4_t f)
{
    const uint32x4_t u = vreinterpretq_u32_f32(f);
    const uint32x4_t r = vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fff)), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)));
    return vshrn_n_u32(r, 16);
}

/* dequant_e4m3 of the other builds, 8 codes a step (FCVTL from the codes' fp16 image). */
INL void dequant_e4m3(uint16_t *restrict dst, const uint8_t *restrict codes, int n, float s)
{
    const float32x4_t sv = vdupq_n_f32(s), k256 = vdupq_n_f32(256.0f), qnan = vdupq_n_f32(NAN);
    for (int x = 0; x < n; x += 8) {
        const uint16x8_t c = vmovl_u8(vld1_u8(codes + x));
        const uint16x8_t mag = vandq_u16(c, vdupq_n_u16(0x7f));
        const uint16x8_t h = vorrq_u16(vshlq_n_u16(mag, 7), vshlq_n_u16(vandq_u16(c, vdupq_n_u16(0x80)), 8));
        const uint16x8_t isnan = vceqq_u16(mag, vdupq_n_u16(0x7f));
        const float16x8_t hf = vreinterpretq_f16_u16(h);
        float32x4_t lo = vcvt_f32_f16(vget_low_f16(hf)), hi = vcvt_high_f32_f16(hf);
        lo = vbslq_f32(vreinterpretq_u32_s32(vmovl_s16(vreinterpret_s16_u16(vget_low_u16(isnan)))), qnan, lo);
        hi = vbslq_f32(vreinterpretq_u32_s32(vmovl_high_s16(vreinterpretq_s16_u16(isnan))), qnan, hi);
        lo = vmulq_f32(vmulq_f32(lo, k256), sv);
        hi = vmulq_f32(vmulq_f32(hi, k256), sv);
        vst1q_u16(dst + x, vcombine_u16(bf16_of(lo), bf16_of(hi)));
    }
}
#endif

/* One row of n elements (n a multiple of 16; bf16 bits, or e4m3 codes: exact in bf16) as bf16
 * bits. */
INL void load_bf16_row(uint16_t *restrict dst, const void *restrict src, int64_t n, mla_dtype dt)
{
    if (dt == MLA_DTYPE_BF16) memcpy(dst, src, (size_t)n * 2);
    else dequant_e4m3(dst, (const uint8_t *)src, (int)n, 1.0f);
}

#if TL_ZMM
/* dst[c][r] = src[r][c] for a 16 x 16 matrix of 32-bit words (rows 64 bytes apart). */
INL void transpose16(uint32_t *restrict dst, const uint32_t *restrict src)
{
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + 16 * i);
    for (int i = 0; i < 16; i += 2) { /* 2x2 blocks of words */
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* 4x4 blocks */
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* r[4q + j] now holds, in each 128-bit lane L, column 4L + c0(j) of rows 4q..4q+3 where
     * j = 0: cols 0, 1: col 1, 2: col 2, 3: col 3 of the lane's 4 columns; the 128-bit lanes
     * are then transposed across the four row groups q. */
    for (int j = 0; j < 4; j++) {
        const __m512i a = r[j], b = r[4 + j], c = r[8 + j], d = r[12 + j];
        const __m512i ab_lo = _mm512_shuffle_i32x4(a, b, 0x44), ab_hi = _mm512_shuffle_i32x4(a, b, 0xee);
        const __m512i cd_lo = _mm512_shuffle_i32x4(c, d, 0x44), cd_hi = _mm512_shuffle_i32x4(c, d, 0xee);
        t[j] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);      /* lane 0 of a, b, c, d */
        t[4 + j] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xdd);  /* lane 1 */
        t[8 + j] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);  /* lane 2 */
        t[12 + j] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xdd); /* lane 3 */
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_si512(dst + 16 * i, t[i]);
}

/* Online softmax of one row tile (16 rows in the lanes) over the chunk's nk keys: s (scaled,
 * log2 domain) is read from sbuf[k][col0 .. col0+16), masked to -inf past each row's visible
 * count vis (relative to the chunk), and replaced by p = 2^(s - m). Returns alpha (the factor
 * for the row's accumulator) and updates m / l; *resc = the rows whose accumulator needs it
 * (alpha != 1 and a finite maximum before: an accumulator with no key yet is zero, and a NaN row
 * is NaN through l). Keys nk..KC-1 get p = 0. p is split into two bf16 parts, p = hi + lo + e
 * with |e| <= 2^-17 p (hi = p rounded to bf16, lo = the rest rounded): one bf16 P alone loses
 * 2^-9 of p, which an output that cancels (a sum of V values of opposite signs) turns into an
 * error past the spec tolerance (fuzz_decode found one: -0.0078 for -0.0068). ptmp[k2][r] =
 * (hi p[2 k2][r], hi p[2 k2 + 1][r]), ptmp_lo the same for lo. */
INL __m512 softmax_tile(float (*sbuf)[RBMAX], int col0, int nk, __m512i vis, float sl2, float *m,
                        float *l, uint32_t (*ptmp)[16], uint32_t (*ptmp_lo)[16], __mmask16 *resc)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY), scale = _mm512_set1_ps(sl2);
    __m512 cm = ninf;
    __mmask16 nan = 0;
    for (int k = 0; k < nk; k++) {
        const __mmask16 v = _mm512_cmpgt_epi32_mask(vis, _mm512_set1_epi32(k));
        __m512 s = _mm512_mul_ps(_mm512_loadu_ps(&sbuf[k][col0]), scale);
        s = _mm512_mask_mov_ps(ninf, v, s);
        nan |= _mm512_cmp_ps_mask(s, s, _CMP_UNORD_Q);
        cm = _mm512_max_ps(cm, s);
        _mm512_storeu_ps(&sbuf[k][col0], s);
    }
    const __m512 m_old = _mm512_loadu_ps(m);
    nan |= _mm512_cmp_ps_mask(m_old, m_old, _CMP_UNORD_Q);
    __m512 m_new = _mm512_max_ps(m_old, cm);
    m_new = _mm512_mask_mov_ps(m_new, nan, _mm512_set1_ps(NAN)); /* a NaN score: the row is NaN */
    /* rows with no finite maximum yet subtract 0: 2^(-inf) = 0, never 2^(-inf - -inf) */
    const __m512 m_sub = _mm512_mask_mov_ps(m_new, _mm512_cmp_ps_mask(m_new, ninf, _CMP_EQ_OQ),
                                            _mm512_setzero_ps());
    const __m512 alpha = exp2v(_mm512_sub_ps(m_old, m_sub));
    *resc = _mm512_cmp_ps_mask(alpha, _mm512_set1_ps(1.0f), _CMP_NEQ_OQ) &
            _mm512_cmp_ps_mask(m_old, ninf, _CMP_GT_OQ);
    __m512 sum = _mm512_setzero_ps();
#if TL_FMA
    (void)ptmp; (void)ptmp_lo;
    for (int k = 0; k < nk; k++) { /* P stays fp32, in place of S (the FMA build's P V reads it) */
        const __m512 p = exp2v(_mm512_sub_ps(_mm512_loadu_ps(&sbuf[k][col0]), m_sub));
        sum = _mm512_add_ps(sum, p);
        _mm512_storeu_ps(&sbuf[k][col0], p);
    }
#else
    __m512 prev = _mm512_setzero_ps();
    const __m512i il = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                        23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 prev_lo = _mm512_setzero_ps();
    const __m512i rnd = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1),
                  top = _mm512_set1_epi32((int)0xffff0000u);
    for (int k = 0; k < KC; k++) {
        __m512 p = _mm512_setzero_ps(), lo = _mm512_setzero_ps();
        if (k < nk) {
            p = exp2v(_mm512_sub_ps(_mm512_loadu_ps(&sbuf[k][col0]), m_sub));
            sum = _mm512_add_ps(sum, p);
            /* hi = p rounded to nearest even bf16 (what cvtne2ps gives), as fp32; lo = p - hi
             * (exact). p is in [0, 1] or NaN (a NaN row is NaN through l whatever hi is). */
            const __m512i u = _mm512_castps_si512(p);
            const __m512i h = _mm512_and_si512(
                _mm512_add_epi32(_mm512_add_epi32(u, rnd), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), top);
            lo = _mm512_sub_ps(p, _mm512_castsi512_ps(h));
        }
        if (k & 1) { /* keys k-1, k as one word per row: (bf16 p[k-1], bf16 p[k]) */
            const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(p, prev); /* lo 16: prev, hi 16: p */
            _mm512_storeu_si512(ptmp[k >> 1], _mm512_permutexvar_epi16(il, w));
            const __m512i wl = (__m512i)_mm512_cvtne2ps_pbh(lo, prev_lo);
            _mm512_storeu_si512(ptmp_lo[k >> 1], _mm512_permutexvar_epi16(il, wl));
        }
        prev = p;
        prev_lo = lo;
    }
#endif
    const __m512 l_new = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(l), alpha), sum);
    _mm512_storeu_ps(l, l_new);
    _mm512_storeu_ps(m, m_new);
    return alpha;
}

#elif TL_AVX2

/* softmax_tile of the AVX-512 builds on 8 rows (the lanes) from column col0, in the FMA build's
 * form (P stays fp32, in place of S): vis = keys each row sees (relative to the chunk); alpha
 * into al[0 .. 8); returns the rows whose accumulator needs rescaling (bit r: row col0 + r). */
INL unsigned softmax8(float (*sbuf)[RBMAX], int col0, int nk, __m256i vis, float sl2, float *m,
                      float *l, float *al)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY), scale = _mm256_set1_ps(sl2);
    __m256 cm = ninf, nan = _mm256_setzero_ps();
    for (int k = 0; k < nk; k++) {
        const __m256 v = _mm256_castsi256_ps(_mm256_cmpgt_epi32(vis, _mm256_set1_epi32(k)));
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(&sbuf[k][col0]), scale);
        s = _mm256_blendv_ps(ninf, s, v);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(s, s, _CMP_UNORD_Q));
        cm = _mm256_max_ps(cm, s);
        _mm256_storeu_ps(&sbuf[k][col0], s);
    }
    const __m256 m_old = _mm256_loadu_ps(m);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(m_old, m_old, _CMP_UNORD_Q));
    __m256 m_new = _mm256_max_ps(m_old, cm);
    m_new = _mm256_blendv_ps(m_new, _mm256_set1_ps(NAN), nan); /* a NaN score: the row is NaN */
    /* rows with no finite maximum yet subtract 0: 2^(-inf) = 0, never 2^(-inf - -inf) */
    const __m256 m_sub = _mm256_blendv_ps(m_new, _mm256_setzero_ps(), _mm256_cmp_ps(m_new, ninf, _CMP_EQ_OQ));
    const __m256 alpha = exp2v8(_mm256_sub_ps(m_old, m_sub));
    const unsigned resc = (unsigned)_mm256_movemask_ps(
        _mm256_and_ps(_mm256_cmp_ps(alpha, _mm256_set1_ps(1.0f), _CMP_NEQ_OQ), _mm256_cmp_ps(m_old, ninf, _CMP_GT_OQ)));
    __m256 sum = _mm256_setzero_ps();
    for (int k = 0; k < nk; k++) {
        const __m256 p = exp2v8(_mm256_sub_ps(_mm256_loadu_ps(&sbuf[k][col0]), m_sub));
        sum = _mm256_add_ps(sum, p);
        _mm256_storeu_ps(&sbuf[k][col0], p);
    }
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(l), alpha), sum));
    _mm256_storeu_ps(m, m_new);
    _mm256_storeu_ps(al, alpha);
    return resc;
}
#else /* TL_NEON */

/* softmax8 on 4 rows (the lanes) from column col0; returns the rows to rescale (bit r). */
INL unsigned softmax4(float (*sbuf)[RBMAX], int col0, int nk, int32x4_t vis, float sl2, float *m,
                      float *l, float *al)
{
    const float32x4_t ninf = vdupq_n_f32(-INFINITY), scale = vdupq_n_f32(sl2);
    float32x4_t cm = ninf;
    uint32x4_t nan = vdupq_n_u32(0);
    for (int k = 0; k < nk; k++) {
        const uint32x4_t v = vcgtq_s32(vis, vdupq_n_s32(k));
        float32x4_t s = vmulq_f32(vld1q_f32(&sbuf[k][col0]), scale);
        s = vbslq_f32(v, s, ninf);
        nan = vorrq_u32(nan, vmvnq_u32(vceqq_f32(s, s)));
        cm = vmaxq_f32(cm, s);
        vst1q_f32(&sbuf[k][col0], s);
    }
    const float32x4_t m_old = vld1q_f32(m);
    nan = vorrq_u32(nan, vmvnq_u32(vceqq_f32(m_old, m_old)));
    float32x4_t m_new = vmaxq_f32(m_old, cm);
    m_new = vbslq_f32(nan, vdupq_n_f32(NAN), m_new); /* a NaN score: the row is NaN */
    /* rows with no finite maximum yet subtract 0: 2^(-inf) = 0, never 2^(-inf - -inf) */
    const float32x4_t m_sub = vbslq_f32(vceqq_f32(m_new, ninf), vdupq_n_f32(0.0f), m_new);
    const float32x4_t alpha = exp2v4(vsubq_f32(m_old, m_sub));
    const uint32x4_t rm = vandq_u32(vmvnq_u32(vceqq_f32(alpha, vdupq_n_f32(1.0f))), vcgtq_f32(m_old, ninf));
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int k = 0; k < nk; k++) {
        const float32x4_t p = exp2v4(vsubq_f32(vld1q_f32(&sbuf[k][col0]), m_sub));
        sum = vaddq_f32(sum, p);
        vst1q_f32(&sbuf[k][col0], p);
    }
    vst1q_f32(l, vaddq_f32(vmulq_f32(vld1q_f32(l), alpha), sum));
    vst1q_f32(m, m_new);
    vst1q_f32(al, alpha);
    /* (a NaN alpha counts as moved, unlike _CMP_NEQ_OQ: that row is NaN through l anyway) */
    return (vgetq_lane_u32(rm, 0) & 1u) | (vgetq_lane_u32(rm, 1) & 2u) | (vgetq_lane_u32(rm, 2) & 4u) |
           (vgetq_lane_u32(rm, 3) & 8u);
}
#endif

/* The K rows of a chunk as tile sources: key tile kt (keys 16 kt .. 16 kt + 15) is loaded from
 * kt_base[kt] with row stride kt_stride[kt] bytes: straight from the cache when the 16 keys
 * sit in one page of a bf16 cache, else from kbuf (gathered, converted, zero past nk). */
typedef struct chunk_src {
    const uint16_t *row[KC];   /* K row of each key (first DV dims = V), rows >= nk: zeros */
    const void *kt_base[KC / 16];
    int64_t kt_stride[KC / 16];
} chunk_src;

/* The working set of one item (~620 KB, on the worker's stack: mla_cpu_parallel gives 2 MB). */
typedef struct amx_ws {
#if TL_F32
    float q32[RTMAX][DMAX][16] __attribute__((aligned(64)));           /* Q^T in fp32           */
    float k32[KC][DMAX] __attribute__((aligned(64)));                  /* the chunk's K in fp32 */
#else
    uint32_t qp[RTMAX][DMAX / 32][16][16] __attribute__((aligned(64))); /* B tiles of Q^T      */
    uint32_t vp[KC / 32][NCT][16][16] __attribute__((aligned(64)));     /* B tiles of V         */
    uint32_t ptmp[2][KC / 2][16] __attribute__((aligned(64)));          /* P key pairs x rows,
                                                                           hi and lo parts      */
    uint32_t pa[RTMAX][2][KC / 32][16][16] __attribute__((aligned(64))); /* A tiles of P hi, lo */
#endif
    uint16_t kbuf[KC][DMAX] __attribute__((aligned(64)));               /* gathered K rows      */
    float sbuf[KC][RBMAX] __attribute__((aligned(64)));                 /* S^T, then P^T        */
    float acc[RBMAX][ACC_LD] __attribute__((aligned(64)));              /* O, un-normalised,
                                                                           columns permuted     */
    float m[RBMAX] __attribute__((aligned(64)));   /* running maximum (log2 domain, scaled)   */
    float l[RBMAX] __attribute__((aligned(64)));   /* running sum of 2^(s - m)               */
    int32_t lim[RBMAX] __attribute__((aligned(64))); /* keys each row sees, from the item's 0 */
    chunk_src src;
    const char *pf[KC]; /* sparse: the next chunk's rows, prefetched into L2 during this one
                           (rows picked by index, which the hardware cannot predict)          */
    int npf;
    int64_t pf_bytes;
    int nrt, nkk;       /* row tiles; 32-dim steps of the score tiles (d_qk / 32)             */
} amx_ws;

/* Starts an item of nrt row tiles over d_qk = 32 nkk: no key seen, O = 0, Q = 0 (rows are then
 * filled by ws_q_row), the tile configuration loaded. */
INL void ws_begin(amx_ws *w, int nrt, int nkk)
{
    w->nrt = nrt;
    w->nkk = nkk;
    w->npf = 0;
    w->pf_bytes = 0;
    for (int r = 0; r < 16 * nrt; r++) { w->m[r] = -INFINITY; w->l[r] = 0.0f; w->lim[r] = 0; }
#if TL_F32
    memset(w->q32, 0, sizeof(w->q32[0]) * (size_t)nrt);
#else
    memset(w->qp, 0, sizeof(w->qp[0]) * (size_t)nrt);
#endif
    for (int r = 0; r < 16 * nrt; r++) memset(w->acc[r], 0, DV * sizeof(float));
#if TL_AMX
    tile_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
#endif
}

/* Ends an item's use of the tile registers (AMX), before its write-out. */
INL void ws_end(void)
{
#if TL_AMX
    _tile_release();
#endif
}

/* Query row r (bf16 bits, d_qk of them) into Q's B tiles, in pairs of dims (FMA: as fp32, one
 * 16-row vector per dim). */
INL void ws_q_row(amx_ws *w, int r, const uint16_t *row, int64_t dqk)
{
#if TL_F32
    for (int64_t d = 0; d < dqk; d++) w->q32[r >> 4][d][r & 15] = mla_bf16_to_float(row[d]);
#else
    for (int64_t d2 = 0; d2 < dqk / 2; d2++)
        w->qp[r >> 4][d2 >> 4][d2 & 15][r & 15] = (uint32_t)row[2 * d2] | (uint32_t)row[2 * d2 + 1] << 16;
#endif
}

/* Points the chunk's four key tiles at kbuf (rows 0..KC-1). */
INL void ws_src_kbuf(amx_ws *w)
{
    for (int k = 0; k < KC; k++) w->src.row[k] = w->kbuf[k];
    for (int kt = 0; kt < KC / 16; kt++) {
        w->src.kt_base[kt] = w->kbuf[16 * kt];
        w->src.kt_stride[kt] = DMAX * 2;
    }
}

/* One of the four parts of the next chunk's prefetch (16 rows each). */
INL void ws_prefetch(const amx_ws *w, int part)
{
    for (int k = 16 * part; k < 16 * part + 16 && k < w->npf; k++)
        for (int64_t off = 0; off < w->pf_bytes; off += 64) TL_PREFETCH(w->pf[k] + off);
}

#if !TL_F32
/* 2. (tiles and AVX512-BF16) V in key pairs: vp[kq][ct][k2][c] = (V[32 kq + 2 k2][col],
 *    V[32 kq + 2 k2 + 1][col]) with col = perm(ct, c) (unpacklo / unpackhi within 128-bit lanes;
 *    see the write-out). Where a row of the item does not see some of the chunk's keys (causal),
 *    its P is 0 there, and 0 * (NaN or Inf) would reach it: such chunks (clean) get V's
 *    non-finite values as 0. Every row that sees such a key is NaN anyway (a non-finite value
 *    among the first 512 dims makes its score NaN or +-inf), as in the reference, which never
 *    multiplies by a masked key's V. */
INL void ws_kv(amx_ws *w, int nk, int clean)
{
    (void)nk; /* (the tile layout covers the whole chunk) */
    const chunk_src *src = &w->src;
    uint32_t (*vp)[NCT][16][16] = w->vp;
    const __m512i expo = _mm512_set1_epi16(0x7f80);
    for (int kp = 0; kp < KC / 2; kp++) {
        const uint16_t *va = src->row[2 * kp], *vb = src->row[2 * kp + 1];
        uint32_t (*dst)[16][16] = vp[kp >> 4];
        const int k2 = kp & 15;
        for (int cb = 0; cb < DV / 32; cb++) {
            __m512i x = _mm512_loadu_si512(va + 32 * cb), y = _mm512_loadu_si512(vb + 32 * cb);
            if (clean) {
                x = _mm512_mask_mov_epi16(x, _mm512_cmpeq_epi16_mask(_mm512_and_si512(x, expo), expo),
                                          _mm512_setzero_si512());
                y = _mm512_mask_mov_epi16(y, _mm512_cmpeq_epi16_mask(_mm512_and_si512(y, expo), expo),
                                          _mm512_setzero_si512());
            }
            _mm512_store_si512(dst[2 * cb][k2], _mm512_unpacklo_epi16(x, y));
            _mm512_store_si512(dst[2 * cb + 1][k2], _mm512_unpackhi_epi16(x, y));
        }
    }
}
#endif

#if TL_AMX
/* S^T for two row tiles (v, v + 1) and two key tiles (kt, kt + 1): C tiles 0-3 */
#define ST_PAIR_KK(kk)                                                        \
    do {                                                                      \
        _tile_loadd(4, (const char *)src->kt_base[kt] + 64 * (kk), src->kt_stride[kt]);         \
        _tile_loadd(5, (const char *)src->kt_base[kt + 1] + 64 * (kk), src->kt_stride[kt + 1]); \
        _tile_loadd(6, qp[v][kk], 64);                                        \
        _tile_loadd(7, qp[v + 1][kk], 64);                                    \
        _tile_dpbf16ps(0, 4, 6);                                              \
        _tile_dpbf16ps(1, 5, 6);                                              \
        _tile_dpbf16ps(2, 4, 7);                                              \
        _tile_dpbf16ps(3, 5, 7);                                              \
    } while (0)

/* 3. S^T = K Q^T into sbuf[key][row] on the tiles: C tiles 0-3, A = K tiles (4, 5 / 4, 5, 7),
 *    B = Q tiles (6, 7 / 6) */
INL void ws_st(amx_ws *w, int nk)
{
    const chunk_src *src = &w->src;
    uint32_t (*qp)[DMAX / 32][16][16] = w->qp;
    float (*sbuf)[RBMAX] = w->sbuf;
    const int nrt = w->nrt, nkk = w->nkk;
    const int nkt = (nk + 15) / 16;
    for (int v = 0; v < nrt; v += 2) {
        if (v + 1 < nrt) { /* two row tiles x two key tiles */
            for (int kt = 0; kt < nkt; kt += 2) {
                _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                for (int kk = 0; kk < nkk; kk++) ST_PAIR_KK(kk);
                _tile_stored(0, &sbuf[16 * kt][16 * v], RBMAX * 4);
                _tile_stored(1, &sbuf[16 * kt + 16][16 * v], RBMAX * 4);
                _tile_stored(2, &sbuf[16 * kt][16 * v + 16], RBMAX * 4);
                _tile_stored(3, &sbuf[16 * kt + 16][16 * v + 16], RBMAX * 4);
            }
        } else { /* one row tile x four key tiles */
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            for (int kk = 0; kk < nkk; kk++) {
                _tile_loadd(6, qp[v][kk], 64);
                _tile_loadd(4, (const char *)src->kt_base[0] + 64 * kk, src->kt_stride[0]);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(5, (const char *)src->kt_base[1] + 64 * kk, src->kt_stride[1]);
                _tile_dpbf16ps(1, 5, 6);
                if (nkt > 2) {
                    _tile_loadd(7, (const char *)src->kt_base[2] + 64 * kk, src->kt_stride[2]);
                    _tile_dpbf16ps(2, 7, 6);
                    _tile_loadd(4, (const char *)src->kt_base[3] + 64 * kk, src->kt_stride[3]);
                    _tile_dpbf16ps(3, 4, 6);
                }
            }
            _tile_stored(0, &sbuf[0][16 * v], RBMAX * 4);
            _tile_stored(1, &sbuf[16][16 * v], RBMAX * 4);
            if (nkt > 2) {
                _tile_stored(2, &sbuf[32][16 * v], RBMAX * 4);
                _tile_stored(3, &sbuf[48][16 * v], RBMAX * 4);
            }
        }
    }
}

/* 5. O += P V on the tiles with P = hi + lo (two passes over the same V tiles). Two row tiles:
 *    C = 2 rows x 2 column tiles (0-3), A = P hi then lo (4, 5), B = V (6, 7); one row tile:
 *    C = 4 column tiles, A = P hi / lo (4 / 5), B = V (6, 7 alternating). The C tiles stay in
 *    registers across the chunk's key halves. */
INL void ws_pv(amx_ws *w, int nk)
{
    uint32_t (*vp)[NCT][16][16] = w->vp;
    uint32_t (*pa)[2][KC / 32][16][16] = w->pa;
    float (*acc)[ACC_LD] = w->acc;
    const int nrt = w->nrt;
    const int nkq = (nk + 31) / 32;
    for (int v = 0; v < nrt; v += 2) {
        float *o0 = acc[16 * v], *o1 = acc[16 * v + 16];
        if (v + 1 < nrt) {
            for (int ct = 0; ct < NCT; ct += 2) {
                _tile_loadd(0, o0 + 16 * ct, ACC_LD * 4);
                _tile_loadd(1, o0 + 16 * ct + 16, ACC_LD * 4);
                _tile_loadd(2, o1 + 16 * ct, ACC_LD * 4);
                _tile_loadd(3, o1 + 16 * ct + 16, ACC_LD * 4);
                for (int kq = 0; kq < nkq; kq++) {
                    _tile_loadd(6, vp[kq][ct], 64);
                    _tile_loadd(7, vp[kq][ct + 1], 64);
                    for (int part = 0; part < 2; part++) { /* P hi, then P lo */
                        _tile_loadd(4, pa[v][part][kq], 64);
                        _tile_loadd(5, pa[v + 1][part][kq], 64);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                }
                _tile_stored(0, o0 + 16 * ct, ACC_LD * 4);
                _tile_stored(1, o0 + 16 * ct + 16, ACC_LD * 4);
                _tile_stored(2, o1 + 16 * ct, ACC_LD * 4);
                _tile_stored(3, o1 + 16 * ct + 16, ACC_LD * 4);
            }
        } else {
            for (int ct = 0; ct < NCT; ct += 4) {
                _tile_loadd(0, o0 + 16 * ct, ACC_LD * 4);
                _tile_loadd(1, o0 + 16 * ct + 16, ACC_LD * 4);
                _tile_loadd(2, o0 + 16 * ct + 32, ACC_LD * 4);
                _tile_loadd(3, o0 + 16 * ct + 48, ACC_LD * 4);
                for (int kq = 0; kq < nkq; kq++) {
                    _tile_loadd(4, pa[v][0][kq], 64); /* P hi */
                    _tile_loadd(5, pa[v][1][kq], 64); /* P lo */
                    _tile_loadd(6, vp[kq][ct], 64);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(0, 5, 6);
                    _tile_loadd(7, vp[kq][ct + 1], 64);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(1, 5, 7);
                    _tile_loadd(6, vp[kq][ct + 2], 64);
                    _tile_dpbf16ps(2, 4, 6);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_loadd(7, vp[kq][ct + 3], 64);
                    _tile_dpbf16ps(3, 4, 7);
                    _tile_dpbf16ps(3, 5, 7);
                }
                _tile_stored(0, o0 + 16 * ct, ACC_LD * 4);
                _tile_stored(1, o0 + 16 * ct + 16, ACC_LD * 4);
                _tile_stored(2, o0 + 16 * ct + 32, ACC_LD * 4);
                _tile_stored(3, o0 + 16 * ct + 48, ACC_LD * 4);
            }
        }
    }
}

#elif TL_DP /* AVX512-BF16: the same two products in zmm accumulators */

/* Two bf16 (one 32-bit word, at any 2-byte aligned address) in every lane. */
INL __m512bh bc2(const uint16_t *p)
{
    int32_t x;
    memcpy(&x, p, 4);
    return (__m512bh)_mm512_set1_epi32(x);
}

/* S^T for keys k0 .. k0 + nkb - 1 and row tiles v0 .. v0 + nvb - 1 (nkb x nvb <= 16 zmm
 * accumulators, compile-time counts): each VDPBF16PS adds one key's pair of dims, broadcast,
 * times the 16 rows' pairs (qp's B layout) to a key's 16 row scores. */
INL void st_block(amx_ws *w, int k0, int v0, const int nkb, const int nvb)
{
    __m512 c[16][4];
#pragma GCC unroll 16
    for (int a = 0; a < nkb; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nvb; b++) c[a][b] = _mm512_setzero_ps();
    const int nd2 = 16 * w->nkk;
    const uint16_t *const *row = w->src.row + k0;
    for (int d2 = 0; d2 < nd2; d2++) {
        __m512bh q[4];
#pragma GCC unroll 4
        for (int b = 0; b < nvb; b++) q[b] = (__m512bh)_mm512_load_si512(&w->qp[v0 + b][0][0][0] + 16 * d2);
#pragma GCC unroll 16
        for (int a = 0; a < nkb; a++) {
            const __m512bh kb = bc2(row[a] + 2 * d2);
#pragma GCC unroll 4
            for (int b = 0; b < nvb; b++) c[a][b] = _mm512_dpbf16_ps(c[a][b], kb, q[b]);
        }
    }
#pragma GCC unroll 16
    for (int a = 0; a < nkb; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nvb; b++) _mm512_store_ps(&w->sbuf[k0 + a][16 * (v0 + b)], c[a][b]);
}

/* O rows r0 .. r0 + 3, column tiles ct0 .. ct0 + 3 (16 zmm accumulators) += P V over nkq halves
 * of the chunk: each VDPBF16PS adds one row's pair of P (hi or lo), broadcast, times a pair of
 * V rows across 16 columns (vp's B layout). */
INL void pv_block(amx_ws *w, int r0, int ct0, int nkq)
{
    __m512 c[4][4];
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++)
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) c[a][b] = _mm512_load_ps(&w->acc[r0 + a][16 * (ct0 + b)]);
    const int v = r0 >> 4, rr = r0 & 15;
    for (int kq = 0; kq < nkq; kq++)
        for (int k2 = 0; k2 < 16; k2++) {
            __m512bh vv[4];
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) vv[b] = (__m512bh)_mm512_load_si512(w->vp[kq][ct0 + b][k2]);
#pragma GCC unroll 2
            for (int part = 0; part < 2; part++) /* P hi, then P lo */
#pragma GCC unroll 4
                for (int a = 0; a < 4; a++) {
                    const __m512bh pb = bc2((const uint16_t *)&w->pa[v][part][kq][rr + a][k2]);
#pragma GCC unroll 4
                    for (int b = 0; b < 4; b++) c[a][b] = _mm512_dpbf16_ps(c[a][b], pb, vv[b]);
                }
        }
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++)
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) _mm512_store_ps(&w->acc[r0 + a][16 * (ct0 + b)], c[a][b]);
}

/* 5. O += P V with P = hi + lo, 4 rows x 4 column tiles per block. */
INL void ws_pv(amx_ws *w, int nk)
{
    const int nkq = (nk + 31) / 32;
    for (int r = 0; r < 16 * w->nrt; r += 4)
        for (int ct = 0; ct < NCT; ct += 4) pv_block(w, r, ct, nkq);
}
#elif TL_FMA /* fp32 FMAs on AVX-512 F, K converted to fp32 once per chunk, P kept in fp32 */

/* 2. (FMA) the chunk's K rows as fp32 (bf16 bits << 16), keys below nk rounded up to 8 (S^T's
 *    key blocks; rows past nk are zeros in their source). V is the first 512 dims of
 *    the same rows; the clean step of the other builds happens after S^T (fma_clean_v). */
INL void ws_kv(amx_ws *w, int nk, int clean)
{
    (void)clean;
    const int64_t dqk = 32 * w->nkk;
    const int nkr = (nk + 7) & ~7; /* S^T's key blocks read up to here, P V below nk */
    for (int k = 0; k < nkr; k++) {
        const uint16_t *src = w->src.row[k];
        float *dst = w->k32[k];
        for (int64_t d = 0; d < dqk; d += 16) {
            const __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + d)));
            _mm512_store_ps(dst + d, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
        }
    }
}

/* After S^T: V's non-finite values as 0 where some row does not see some of the chunk's keys
 * (the reason is step 2's of the other builds). */
INL void fma_clean_v(amx_ws *w, int nk)
{
    const __m512i expo = _mm512_set1_epi32(0x7f800000);
    for (int k = 0; k < nk; k++)
        for (int d = 0; d < DV; d += 16) {
            const __m512i x = _mm512_load_si512(&w->k32[k][d]);
            const __mmask16 bad = _mm512_cmpeq_epi32_mask(_mm512_and_si512(x, expo), expo);
            _mm512_store_si512(&w->k32[k][d], _mm512_mask_mov_epi32(x, bad, _mm512_setzero_si512()));
        }
}

/* S^T for keys k0 .. k0 + nkb - 1 and row tiles v0 .. v0 + nvb - 1 (nkb x nvb <= 24 zmm
 * accumulators): per dim, one broadcast K value times the 16 rows' Q values. */
INL void st_block(amx_ws *w, int k0, int v0, const int nkb, const int nvb)
{
    __m512 c[8][4];
#pragma GCC unroll 8
    for (int a = 0; a < nkb; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nvb; b++) c[a][b] = _mm512_setzero_ps();
    const int dqk = 32 * w->nkk;
    for (int d = 0; d < dqk; d++) {
        __m512 q[4];
#pragma GCC unroll 4
        for (int b = 0; b < nvb; b++) q[b] = _mm512_load_ps(w->q32[v0 + b][d]);
#pragma GCC unroll 16
        for (int a = 0; a < nkb; a++) {
            const __m512 kb = _mm512_set1_ps(w->k32[k0 + a][d]);
#pragma GCC unroll 4
            for (int b = 0; b < nvb; b++) c[a][b] = _mm512_fmadd_ps(kb, q[b], c[a][b]);
        }
    }
#pragma GCC unroll 16
    for (int a = 0; a < nkb; a++)
#pragma GCC unroll 4
        for (int b = 0; b < nvb; b++) _mm512_store_ps(&w->sbuf[k0 + a][16 * (v0 + b)], c[a][b]);
}

/* O rows r0 .. r0 + nra - 1, column tiles ct0 .. ct0 + ncb - 1 (nra x ncb <= 24 zmm
 * accumulators) += P V over the chunk's nk keys: per key, one broadcast fp32 P per row times 16
 * columns of V. */
INL void pv_block(amx_ws *w, int r0, int ct0, int nk, const int nra, const int ncb)
{
    __m512 c[8][4];
#pragma GCC unroll 8
    for (int a = 0; a < nra; a++)
#pragma GCC unroll 4
        for (int b = 0; b < ncb; b++) c[a][b] = _mm512_load_ps(&w->acc[r0 + a][16 * (ct0 + b)]);
    for (int k = 0; k < nk; k++) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int b = 0; b < ncb; b++) vv[b] = _mm512_load_ps(&w->k32[k][16 * (ct0 + b)]);
#pragma GCC unroll 8
        for (int a = 0; a < nra; a++) {
            const __m512 pb = _mm512_set1_ps(w->sbuf[k][r0 + a]);
#pragma GCC unroll 4
            for (int b = 0; b < ncb; b++) c[a][b] = _mm512_fmadd_ps(pb, vv[b], c[a][b]);
        }
    }
#pragma GCC unroll 8
    for (int a = 0; a < nra; a++)
#pragma GCC unroll 4
        for (int b = 0; b < ncb; b++) _mm512_store_ps(&w->acc[r0 + a][16 * (ct0 + b)], c[a][b]);
}

/* 5. O += P V in blocks of 8 rows x 3 column tiles (the last block 8 x 2), columns in natural
 *    order. Column blocks outside, rows inside: a block's V columns (64 keys x 48 columns,
 *    12 KB) stay in L1 while every row reads them, where rows outside streamed the whole V
 *    (128 KB) from L2 once per row block (bench/micro/cpu_fma_blocks.c: +13-16%). */
INL void ws_pv(amx_ws *w, int nk)
{
    const int nr = 16 * w->nrt;
    int ct = 0;
    for (; ct + 3 <= NCT; ct += 3)
        for (int r = 0; r < nr; r += 8) pv_block(w, r, ct, nk, 8, 3);
    for (; ct < NCT; ct += 2)
        for (int r = 0; r < nr; r += 8) pv_block(w, r, ct, nk, 8, 2);
}
#elif TL_AVX2 /* the FMA build's scheme in ymm registers (16 of them, 8 lanes) */

/* 2. (AVX2) the chunk's K rows as fp32 (bf16 bits << 16), keys below nk rounded up to 2 (S^T's
 *    key blocks; a row past nk is zeros in its source). V is the first 512 dims of the same
 *    rows; the clean step happens after S^T (fma_clean_v). */
INL void ws_kv(amx_ws *w, int nk, int clean)
{
    (void)clean;
    const int64_t dqk = 32 * w->nkk;
    const int n2 = (nk + 1) & ~1;
    for (int k = 0; k < n2; k++) {
        const uint16_t *src = w->src.row[k];
        float *dst = w->k32[k];
        for (int64_t d = 0; d < dqk; d += 8) {
            const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + d)));
            _mm256_store_ps(dst + d, _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)));
        }
    }
}

/* After S^T: V's non-finite values as 0 where some row does not see some of the chunk's keys
 * (the reason is step 2's of the tile builds). */
INL void fma_clean_v(amx_ws *w, int nk)
{
    const __m256i expo = _mm256_set1_epi32(0x7f800000);
    for (int k = 0; k < nk; k++)
        for (int d = 0; d < DV; d += 8) {
            const __m256i x = _mm256_load_si256((const __m256i *)&w->k32[k][d]);
            const __m256i bad = _mm256_cmpeq_epi32(_mm256_and_si256(x, expo), expo);
            _mm256_store_si256((__m256i *)&w->k32[k][d], _mm256_andnot_si256(bad, x));
        }
}

/* S^T for keys k0 .. k0 + nkb - 1 (nkb <= 6, a compile-time count) and row tile v (two ymm of
 * 8 rows): 12 ymm accumulators; per dim, one broadcast K value times the tile's 16 Q values. */
INL void st_block(amx_ws *w, int k0, int v, const int nkb)
{
    __m256 c[6][2];
#pragma GCC unroll 6
    for (int a = 0; a < nkb; a++) c[a][0] = c[a][1] = _mm256_setzero_ps();
    const int dqk = 32 * w->nkk;
    const float *q = &w->q32[v][0][0];
    for (int d = 0; d < dqk; d++) {
        const __m256 q0 = _mm256_load_ps(q + 16 * d), q1 = _mm256_load_ps(q + 16 * d + 8);
#pragma GCC unroll 6
        for (int a = 0; a < nkb; a++) {
            const __m256 kb = _mm256_broadcast_ss(&w->k32[k0 + a][d]);
            c[a][0] = _mm256_fmadd_ps(kb, q0, c[a][0]);
            c[a][1] = _mm256_fmadd_ps(kb, q1, c[a][1]);
        }
    }
#pragma GCC unroll 6
    for (int a = 0; a < nkb; a++) {
        _mm256_store_ps(&w->sbuf[k0 + a][16 * v], c[a][0]);
        _mm256_store_ps(&w->sbuf[k0 + a][16 * v + 8], c[a][1]);
    }
}

/* 3. (AVX2) S^T = K Q^T into sbuf[key][row] for the chunk's keys rounded up to 2, per row tile
 *    in blocks of 6 keys (then 4 or 2: the count is even). */
INL void ws_st(amx_ws *w, int nk)
{
    const int n2 = (nk + 1) & ~1;
    for (int v = 0; v < w->nrt; v++) {
        int k = 0;
        for (; k + 6 <= n2; k += 6) st_block(w, k, v, 6);
        if (n2 - k == 4) st_block(w, k, v, 4);
        else if (n2 - k == 2) st_block(w, k, v, 2);
    }
}

/* O rows r0 .. r0 + nr - 1 (nr <= 6, a compile-time count), columns col .. col + 15 (two ymm)
 * += P V over the chunk's nk keys: 12 ymm accumulators; per key, one broadcast fp32 P per row
 * times 16 columns of V. */
INL void pv_block(amx_ws *w, int r0, int col, const int nr, int nk)
{
    __m256 c[6][2];
#pragma GCC unroll 6
    for (int a = 0; a < nr; a++) {
        c[a][0] = _mm256_load_ps(&w->acc[r0 + a][col]);
        c[a][1] = _mm256_load_ps(&w->acc[r0 + a][col + 8]);
    }
    for (int k = 0; k < nk; k++) {
        const __m256 v0 = _mm256_load_ps(&w->k32[k][col]), v1 = _mm256_load_ps(&w->k32[k][col + 8]);
#pragma GCC unroll 6
        for (int a = 0; a < nr; a++) {
            const __m256 pb = _mm256_broadcast_ss(&w->sbuf[k][r0 + a]);
            c[a][0] = _mm256_fmadd_ps(pb, v0, c[a][0]);
            c[a][1] = _mm256_fmadd_ps(pb, v1, c[a][1]);
        }
    }
#pragma GCC unroll 6
    for (int a = 0; a < nr; a++) {
        _mm256_store_ps(&w->acc[r0 + a][col], c[a][0]);
        _mm256_store_ps(&w->acc[r0 + a][col + 8], c[a][1]);
    }
}

/* 5. (AVX2) O += P V, per 16 columns in blocks of 6 rows (then 4 or 2: 16 nrt rows). */
INL void ws_pv(amx_ws *w, int nk)
{
    const int nr = 16 * w->nrt;
    for (int col = 0; col < DV; col += 16) {
        int r = 0;
        for (; r + 6 <= nr; r += 6) pv_block(w, r, col, 6, nk);
        if (nr - r == 4) pv_block(w, r, col, 4, nk);
        else if (nr - r == 2) pv_block(w, r, col, 2, nk);
    }
}

/* 4. (AVX2) softmax of row tile v, as two halves of 8 rows; rows whose maximum moved rescale
 *    their accumulator. */
INL void ws_softmax(amx_ws *w, int v, int64_t c0, int nk, float scale_log2)
{
    for (int h = 0; h < 2; h++) {
        const int r0 = 16 * v + 8 * h;
        const __m256i vis = _mm256_sub_epi32(_mm256_load_si256((const __m256i *)&w->lim[r0]),
                                             _mm256_set1_epi32((int)c0));
        float al[8];
        unsigned resc = softmax8(w->sbuf, r0, nk, vis, scale_log2, &w->m[r0], &w->l[r0], al);
        while (resc) {
            const int r = __builtin_ctz(resc);
            resc &= resc - 1;
            const __m256 f = _mm256_set1_ps(al[r]);
            float *o = w->acc[r0 + r];
            for (int d = 0; d < DV; d += 8) _mm256_store_ps(o + d, _mm256_mul_ps(_mm256_load_ps(o + d), f));
        }
    }
}
#else /* TL_NEON: the FMA build's scheme in 4-lane registers (32 of them) */

/* 2. (NEON) the chunk's K rows as fp32 (bf16 bits << 16), keys below nk rounded up to 4 (S^T's
 *    key blocks; a row past nk is zeros in its source). */
INL void ws_kv(amx_ws *w, int nk, int clean)
{
    (void)clean;
    const int64_t dqk = 32 * w->nkk;
    const int n4 = (nk + 3) & ~3;
    for (int k = 0; k < n4; k++) {
        const uint16_t *src = w->src.row[k];
        float *dst = w->k32[k];
        for (int64_t d = 0; d < dqk; d += 8) {
            const uint16x8_t x = vld1q_u16(src + d);
            vst1q_f32(dst + d, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(x), 16)));
            vst1q_f32(dst + d + 4, vreinterpretq_f32_u32(vshll_high_n_u16(x, 16)));
        }
    }
}

/* After S^T: V's non-finite values as 0 where some row does not see some of the chunk's keys. */
INL void fma_clean_v(amx_ws *w, int nk)
{
    const uint32x4_t expo = vdupq_n_u32(0x7f800000u);
    for (int k = 0; k < nk; k++)
        for (int d = 0; d < DV; d += 4) {
            const uint32x4_t x = vld1q_u32((const uint32_t *)&w->k32[k][d]);
            const uint32x4_t bad = vceqq_u32(vandq_u32(x, expo), expo);
            vst1q_u32((uint32_t *)&w->k32[k][d], vbicq_u32(x, bad));
        }
}

/* S^T for keys k0 .. k0 + 3 and row tile v (4 vectors of 4 rows): 16 accumulators; per 4 dims,
 * each key's 4 values in one register, used lane by lane (FMLA by element) against the tile's
 * 16 Q values of each dim. */
INL void st_block(amx_ws *w, int k0, int v)
{
    float32x4_t c[4][4];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) c[a][b] = vdupq_n_f32(0.0f);
    const int dqk = 32 * w->nkk;
    const float *q = &w->q32[v][0][0];
    for (int d = 0; d < dqk; d += 4) {
        float32x4_t kv[4];
        for (int a = 0; a < 4; a++) kv[a] = vld1q_f32(&w->k32[k0 + a][d]);
#define ST_LANE(dd)                                                                     \
        do {                                                                            \
            float32x4_t qv[4];                                                          \
            for (int b = 0; b < 4; b++) qv[b] = vld1q_f32(q + 16 * (d + (dd)) + 4 * b); \
            for (int a = 0; a < 4; a++)                                                 \
                for (int b = 0; b < 4; b++) c[a][b] = vfmaq_laneq_f32(c[a][b], qv[b], kv[a], (dd)); \
        } while (0)
        ST_LANE(0);
        ST_LANE(1);
        ST_LANE(2);
        ST_LANE(3);
#undef ST_LANE
    }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) vst1q_f32(&w->sbuf[k0 + a][16 * v + 4 * b], c[a][b]);
}

/* 3. (NEON) S^T = K Q^T into sbuf[key][row] for the chunk's keys rounded up to 4. */
INL void ws_st(amx_ws *w, int nk)
{
    for (int v = 0; v < w->nrt; v++)
        for (int k = 0; k < nk; k += 4) st_block(w, k, v);
}

/* O rows r0 .. r0 + 3, columns col .. col + 15 (4 vectors) += P V over the chunk's nk keys: 16
 * accumulators; per key, the 4 rows' P in one register, used lane by lane against 16 columns
 * of V. */
INL void pv_block(amx_ws *w, int r0, int col, int nk)
{
    float32x4_t c[4][4];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) c[a][b] = vld1q_f32(&w->acc[r0 + a][col + 4 * b]);
    for (int k = 0; k < nk; k++) {
        float32x4_t vv[4];
        for (int b = 0; b < 4; b++) vv[b] = vld1q_f32(&w->k32[k][col + 4 * b]);
        const float32x4_t pv = vld1q_f32(&w->sbuf[k][r0]);
        for (int b = 0; b < 4; b++) {
            c[0][b] = vfmaq_laneq_f32(c[0][b], vv[b], pv, 0);
            c[1][b] = vfmaq_laneq_f32(c[1][b], vv[b], pv, 1);
            c[2][b] = vfmaq_laneq_f32(c[2][b], vv[b], pv, 2);
            c[3][b] = vfmaq_laneq_f32(c[3][b], vv[b], pv, 3);
        }
    }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) vst1q_f32(&w->acc[r0 + a][col + 4 * b], c[a][b]);
}

/* 5. (NEON) O += P V, per 16 columns in blocks of 4 rows. */
INL void ws_pv(amx_ws *w, int nk)
{
    for (int col = 0; col < DV; col += 16)
        for (int r = 0; r < 16 * w->nrt; r += 4) pv_block(w, r, col, nk);
}

/* 4. (NEON) softmax of row tile v, as four quarters of 4 rows; rows whose maximum moved rescale
 *    their accumulator. */
INL void ws_softmax(amx_ws *w, int v, int64_t c0, int nk, float scale_log2)
{
    for (int h = 0; h < 4; h++) {
        const int r0 = 16 * v + 4 * h;
        const int32x4_t vis = vsubq_s32(vld1q_s32(&w->lim[r0]), vdupq_n_s32((int)c0));
        float al[4];
        unsigned resc = softmax4(w->sbuf, r0, nk, vis, scale_log2, &w->m[r0], &w->l[r0], al);
        while (resc) {
            const int r = __builtin_ctz(resc);
            resc &= resc - 1;
            float *o = w->acc[r0 + r];
            for (int d = 0; d < DV; d += 4) vst1q_f32(o + d, vmulq_n_f32(vld1q_f32(o + d), al[r]));
        }
    }
}
#endif

#if TL_DP
/* 3. (AVX512-BF16) S^T = K Q^T into sbuf[key][row] for the chunk's keys, rounded up to the
 *    block (the rows past nk are zeros in their source): 4 row tiles x 4 keys, 2 x 8 or 1 x 16
 *    per block of st_block. */
INL void ws_st(amx_ws *w, int nk)
{
    int v = 0;
    for (; v + 4 <= w->nrt; v += 4)
        for (int k = 0; k < nk; k += 4) st_block(w, k, v, 4, 4);
    for (; v + 2 <= w->nrt; v += 2)
        for (int k = 0; k < nk; k += 8) st_block(w, k, v, 8, 2);
    for (; v < w->nrt; v++)
        for (int k = 0; k < nk; k += 16) st_block(w, k, v, 16, 1);
}
#elif TL_FMA
/* 3. (AVX-512 FMA) S^T = K Q^T into sbuf[key][row] for the chunk's keys, rounded up to 8 (the
 *    rows past nk are zeros in their source): 8 keys x 3 row tiles per block (24 accumulators;
 *    3 Q loads per 24 FMAs, where 4 x 4 read 4 per 16 and streamed Q from L2 at twice the
 *    rate), then 8 x 2, a lone row tile 8 x 1; nrt = 4 runs as 2 + 2, 7 as 3 + 2 + 2. */
INL void ws_st(amx_ws *w, int nk)
{
    int v = 0;
    for (; w->nrt - v >= 3 && w->nrt - v != 4; v += 3)
        for (int k = 0; k < nk; k += 8) st_block(w, k, v, 8, 3);
    for (; v + 2 <= w->nrt; v += 2)
        for (int k = 0; k < nk; k += 8) st_block(w, k, v, 8, 2);
    for (; v < w->nrt; v++)
        for (int k = 0; k < nk; k += 8) st_block(w, k, v, 8, 1);
}
#endif

#if TL_ZMM
/* 4. softmax of row tile v; rows whose maximum moved rescale their accumulator; P as A tiles
 *    (pa[v][kq]: 16 rows x 32 keys; the FMA build keeps P in sbuf, fp32) */
INL void ws_softmax(amx_ws *w, int v, int64_t c0, int nk, float scale_log2)
{
    const __m512i vis = _mm512_sub_epi32(_mm512_load_si512(&w->lim[16 * v]), _mm512_set1_epi32((int)c0));
    __mmask16 resc;
#if TL_FMA
    const __m512 alpha = softmax_tile(w->sbuf, 16 * v, nk, vis, scale_log2, &w->m[16 * v],
                                      &w->l[16 * v], NULL, NULL, &resc);
#else
    const __m512 alpha = softmax_tile(w->sbuf, 16 * v, nk, vis, scale_log2, &w->m[16 * v],
                                      &w->l[16 * v], w->ptmp[0], w->ptmp[1], &resc);
#endif
    float al[16];
    _mm512_storeu_ps(al, alpha);
    while (resc) {
        const int r = __builtin_ctz(resc);
        resc &= (__mmask16)(resc - 1);
        const __m512 f = _mm512_set1_ps(al[r]);
        float *o = w->acc[16 * v + r];
        for (int d = 0; d < DV; d += 16) _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), f));
    }
#if !TL_FMA
    for (int part = 0; part < 2; part++)
        for (int kq = 0; kq < KC / 32; kq++)
            transpose16(&w->pa[v][part][kq][0][0], &w->ptmp[part][16 * kq][0]);
#endif
}
#endif

/* Steps 2-5 on one chunk of nk keys (w->src set, rows past nk zero): row r sees the chunk's keys
 * below lim[r] - c0. clean: some row does not see some of the chunk's keys (see step 2). The
 * next chunk's rows (w->pf; sparse calls only) are prefetched in four parts spread over the
 * steps, so that the requests overlap the tile work instead of stalling in one burst. */
INL void ws_chunk(amx_ws *w, int64_t c0, int nk, int clean, float scale_log2)
{
    ws_prefetch(w, 0);
    ws_kv(w, nk, clean); /* 2 */
    ws_prefetch(w, 1);
    ws_st(w, nk);    /* 3 */
#if TL_F32
    if (clean) fma_clean_v(w, nk);
#endif
    ws_prefetch(w, 2);
    for (int v = 0; v < w->nrt; v++) ws_softmax(w, v, c0, nk, scale_log2); /* 4 */
    ws_prefetch(w, 3);
    ws_pv(w, nk);    /* 5 */
}

/* Output column of accumulator column x: acc column 16 ct + c holds output column
 * 32 (ct / 2) + 8 (c / 4) + 4 (ct % 2) + c % 4 (the unpack order of step 2). */
static inline int out_col(int x)
{
#if TL_F32
    return x; /* the FMA build reads V in natural order */
#else
    const int ct = x >> 4, c = x & 15;
    return 32 * (ct >> 1) + 8 * (c >> 2) + 4 * (ct & 1) + (c & 3);
#endif
}

/* ---- dense decode --------------------------------------------------------------------------- */

/* Writes query row (request i, token j, head h): out = acc / l (acc in the kernel's column
 * order), lse = m + log2(l) in natural log, as the reference does; a NaN l gives a NaN row, l = 0
 * (no key seen) out 0 and lse +inf. */
INL void dense_write_row(const amx_job *job, int64_t i, int64_t j, int64_t h, const float *acc, float m,
                         float l)
{
    const mla_decode_args *a = job->args;
    const mla_dtype dt = job->shape->dtype;
    uint16_t *orow = (uint16_t *)a->out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
    float *lse = a->lse + i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2];
    if (l > 0.0f || l != l) {
        const float inv = job->nm.out_scale / l;
        for (int x = 0; x < DV; x++) orow[out_col(x)] = mla_float_to_half(dt, acc[x] * inv);
        *lse = (m + log2f(l)) * 0.69314718055994530942f;
    } else {
        for (int d = 0; d < DV; d++) orow[d] = 0;
        *lse = INFINITY;
    }
}

/* Row r of a key range's result as a partial row (internal.h: mla_cpu_split): O (acc's column
 * order; written only where l is not 0, the merge skips it otherwise), m, l. */
INL void ws_store_part(const amx_ws *w, int r, float *pr)
{
    pr[DV] = w->m[r];
    pr[DV + 1] = w->l[r];
    if (w->l[r] != 0.0f) memcpy(pr, w->acc[r], DV * sizeof(float));
}

/* Partial row rr (of request i, kv head g) of key range si: 514 floats (internal.h). */
static inline float *part_row(const amx_job *job, int64_t i, int64_t g, int64_t rr, int64_t si)
{
    const mla_cpu_split *sp = job->sp;
    const int64_t tile = (i * job->shape->h_kv + g) * sp->rt_total + rr / 16;
    return sp->part + ((tile * sp->nsplit + si) * 16 + rr % 16) * (int64_t)(DV + 2);
}

/* Item wi: rows r0..r1 of (request i, kv head g) over all their keys, or (split) over key range
 * wi % nsplit of the request's (mla_cpu_split_ranges), written as partial rows. */
INL void run_item(const amx_job *job, int64_t wi)
{
    const mla_decode_shape *sh = job->shape;
    const mla_decode_args *a = job->args;
    const int64_t dqk = sh->d_qk, hpk = job->hpk;
    const int64_t ns = job->nsplit, bi = wi / ns, si = wi % ns;
    const mla_dense_item it = mla_dense_item_of(sh, a, bi, job->nblk, job->rb, hpk);
    const int64_t g = it.g, i = it.i, n_i = it.n_i, r0 = it.r0, r1 = it.r1;
    if (r0 >= r1) return;
    const int nr = (int)(r1 - r0);
    const int64_t L = a->cache_seqlens[i];
    const int64_t ps = sh->page_size;
    int64_t nr_ranges = 1, per = 0;
    if (ns > 1) {
        mla_cpu_split_ranges(job->sp, L, &nr_ranges, &per);
        if (si >= nr_ranges) return; /* the request has fewer ranges: nothing here */
    }

    amx_ws ws, *w = &ws;
    int64_t kmax = 0, kmin = INT64_MAX; /* most / fewest keys a row of the item sees */
    ws_begin(w, (nr + 15) / 16, (int)(dqk / 32));
    for (int r = 0; r < nr; r++) {
        const int64_t rr = r0 + r, j = rr / hpk, h = g * hpk + rr % hpk;
        const int64_t lr = mla_visible_keys(L, n_i, j, sh->causal);
        w->lim[r] = (int32_t)lr;
        if (lr > kmax) kmax = lr;
        if (lr < kmin) kmin = lr;
        const char *qr = (const char *)a->q + (i * a->q_stride[0] + j * a->q_stride[1] +
                                               h * a->q_stride[2]) * (int64_t)job->nm.qsz;
        uint16_t row[DMAX];
        load_bf16_row(row, qr, dqk, job->nm.qdt);
        ws_q_row(w, r, row, dqk);
    }

    const int32_t *bt = a->block_table + i * a->block_table_stride;
    const char *kc = (const char *)a->k_cache;
    const int64_t ksz = (int64_t)job->nm.ksz;
    const int direct = job->nm.kdt == MLA_DTYPE_BF16 && ps % 16 == 0;
    /* bytes between the rows of a page, used only by direct tiles (page size >= 16: the stride
     * was validated; with one row per page it is any value and must not be scaled) */
    const int64_t krs = direct ? a->k_stride[1] * ksz : 0;
#define KROW(t) (kc + ((int64_t)bt[(t) / ps] * a->k_stride[0] + ((t) % ps) * a->k_stride[1] + \
                       g * a->k_stride[2]) * ksz)

    /* the item's keys: all of them, or the visible ones of the request's range si */
    int64_t cb = 0, ce = kmax;
    if (ns > 1) {
        cb = si * per * KC;
        ce = (si + 1) * per * KC < kmax ? (si + 1) * per * KC : kmax;
    }
    for (int64_t c0 = cb; c0 < ce; c0 += KC) {
        const int nk = (int)(ce - c0 < KC ? ce - c0 : KC);
        /* 1. the chunk's rows: whole 16-key tiles of a bf16 cache straight from their page,
         *    the rest gathered into kbuf (rows < kmax <= L only; zeros past nk) */
        chunk_src *src = &w->src;
        for (int kt = 0; kt < KC / 16; kt++) {
            const int k0 = 16 * kt;
            if (direct && k0 + 16 <= nk) {
                const char *p0 = KROW(c0 + k0);
                src->kt_base[kt] = p0;
                src->kt_stride[kt] = krs;
                for (int k = 0; k < 16; k++) src->row[k0 + k] = (const uint16_t *)(p0 + k * krs);
            } else {
                for (int k = k0; k < k0 + 16; k++) {
                    if (k < nk) load_bf16_row(w->kbuf[k], KROW(c0 + k), dqk, job->nm.kdt);
                    else memset(w->kbuf[k], 0, sizeof w->kbuf[k]);
                    src->row[k] = w->kbuf[k];
                }
                src->kt_base[kt] = w->kbuf[k0];
                src->kt_stride[kt] = DMAX * 2;
            }
        }
        /* no software prefetch (w->npf stays 0): a page's rows are contiguous and the
         * hardware prefetchers fetch them ahead; prefetcht1 of the next chunk cost 2-17% at
         * every page size tried, 1 to 64 (docs/performance.md section 20) */
        ws_chunk(w, c0, nk, c0 + nk > kmin, job->nm.scale_log2);
    }
#undef KROW
    ws_end();

    if (ns > 1) { /* partial rows: O (acc's column order), m, l; O only where l is not 0 */
        for (int r = 0; r < nr; r++) ws_store_part(w, r, part_row(job, i, g, r0 + r, si));
        return;
    }

    for (int r = 0; r < nr; r++) {
        const int64_t rr = r0 + r;
        dense_write_row(job, i, rr / hpk, g * hpk + rr % hpk, w->acc[r], w->m[r], w->l[r]);
    }
}

TGT static void run_item_fn(void *ctx, int64_t w) { run_item((const amx_job *)ctx, w); }

/* Combines one query row's partial rows over ns key ranges (range s at first + s x 16 rows):
 * with M the largest max among the ranges that saw a key, O = sum 2^(m_s - M) O_s, l = sum
 * 2^(m_s - M) l_s (o in acc's column order; *m = M). A NaN max or sum in any range (a NaN score)
 * makes l NaN; a row no range saw a key of gets l = 0. */
INL void merge_parts(const float *first, int64_t ns, float *o, float *m, float *l)
{
    const int64_t stride = 16 * (int64_t)(DV + 2);
    float mx = -INFINITY, sum = 0.0f;
    int nan = 0;
    for (int64_t s = 0; s < ns; s++) {
        const float *pr = first + s * stride;
        const float ms = pr[DV], ls = pr[DV + 1];
        if (ms != ms || ls != ls) nan = 1;
        else if (ls > 0.0f && ms > mx) mx = ms;
    }
    memset(o, 0, DV * sizeof(float));
    if (nan) sum = NAN; /* a NaN score in some range: the row is NaN */
    else if (mx > -INFINITY)
        for (int64_t s = 0; s < ns; s++) {
            const float *pr = first + s * stride;
            if (!(pr[DV + 1] > 0.0f)) continue; /* no key in this range: O not written */
            const float f = exp2f(pr[DV] - mx);
            sum += pr[DV + 1] * f;
            for (int x = 0; x < DV; x++) o[x] += pr[x] * f;
        }
    *m = mx;
    *l = sum;
}

/* Merges the partial rows of rows 8 u' .. 8 u' + 7 of row tile u / 2 (u' = u % 2; tiles in
 * (request, kv head, tile) order) over the request's ranges (merge_parts) and writes out and
 * lse as the unsplit write-out does. */
INL void merge_rows(const amx_job *job, int64_t u)
{
    const mla_decode_shape *sh = job->shape;
    const mla_decode_args *a = job->args;
    const mla_cpu_split *sp = job->sp;
    const int64_t hpk = job->hpk, tile = u / 2;
    const int64_t t = tile % sp->rt_total, g = (tile / sp->rt_total) % sh->h_kv, i = tile / (sp->rt_total * sh->h_kv);
    const int64_t n_i = a->cu_seqlens_q ? (int64_t)a->cu_seqlens_q[i + 1] - a->cu_seqlens_q[i] : sh->s_q;
    int64_t ns, per;
    mla_cpu_split_ranges(sp, a->cache_seqlens[i], &ns, &per);
    float o[DV] __attribute__((aligned(64)));
    const int64_t rq = 16 * t + 8 * (u % 2);
    for (int64_t rr = rq; rr < rq + 8 && rr < n_i * hpk; rr++) {
        float m, l;
        merge_parts(part_row(job, i, g, rr, 0), ns, o, &m, &l);
        dense_write_row(job, i, rr / hpk, g * hpk + rr % hpk, o, m, l);
    }
}

TGT static void merge_rows_fn(void *ctx, int64_t u) { merge_rows((const amx_job *)ctx, u); }

/* Query rows per item: up to RTMAX tiles (K gathered and V re-laid once for all of them), fewer
 * when that would leave threads idle (fewer than min_items items). rt_total row tiles per
 * group of rows that share keys, `groups` such groups: *rb rows per item, *nblk items per group. */
static void split_items(int64_t rt_total, int64_t groups, int64_t min_items, int64_t *rb,
                        int64_t *nblk, int64_t *items)
{
    int64_t rti = rt_total < RTMAX ? rt_total : RTMAX;
    while (rti > 1 && groups * ((rt_total + rti - 1) / rti) < min_items) rti = (rti + 1) / 2;
    *rb = 16 * rti;
    *nblk = (rt_total + rti - 1) / rti;
    *items = groups * *nblk;
}

mla_status TL_(decode)(const mla_decode_shape *shape, const mla_decode_args *args,
                       float softmax_scale, int num_threads, const mla_cpu_split *split)
{
    if (!TL_(available)())
        return mla_set_error(MLA_ERR_UNSUPPORTED, "this CPU or OS does not run " TL_WHAT);
    amx_job job;
    job.shape = shape;
    job.args = args;
    job.nm = mla_dense_numerics_of(shape, args, softmax_scale);
    if (job.nm.qdt == MLA_DTYPE_FP16 || job.nm.kdt == MLA_DTYPE_FP16)
        return mla_set_error(MLA_ERR_UNSUPPORTED, "the AMX path takes bf16 or FP8 q and k_cache, not fp16");
    job.hpk = shape->h_q / shape->h_kv;
    job.nsplit = 1;
    job.sp = split;
    const int64_t rt_total = (shape->s_q * job.hpk + 15) / 16;
    if (split && split->nsplit > 1) { /* (row block, key range) items, then the merge */
        job.nsplit = split->nsplit;
        /* row blocks halved until there are 4 items per thread, counting the ranges (no result
         * depends on the blocking; 2 per thread left 5 items of unequal ranges on 2 threads at
         * b=1 h_q=128: docs/performance.md §19); items: (request, kv head, row block, range) */
        split_items(rt_total, shape->b * shape->h_kv * split->nsplit, 4 * (int64_t)num_threads, &job.rb,
                    &job.nblk, &job.items);
        mla_cpu_parallel(job.items, num_threads, run_item_fn, &job);
        mla_cpu_parallel(shape->b * shape->h_kv * rt_total * 2, num_threads, merge_rows_fn, &job);
        return MLA_OK;
    }
    split_items(rt_total, shape->b * shape->h_kv, 2 * (int64_t)num_threads, &job.rb, &job.nblk, &job.items);
    mla_cpu_parallel(job.items, num_threads, run_item_fn, &job);
    return MLA_OK;
}

/* ---- sparse decode (FP8 paged cache) and sparse prefill (bf16 kv) ----------------------------
 * An item is (query token, kv head, block of up to 128 query heads): its rows share one key
 * list, the main indices (then the extra indices, decode), whose invalid positions are skipped
 * before anything is read, so every row sees every gathered key (lim = KC, never `clean`). Keys
 * are gathered in chunks of KC valid positions into kbuf as bf16: prefill copies the row;
 * decode dequantises the FP8 token (e4m3 code x tile scale, rounded to bf16 as the reference
 * does: exact for the power-of-two scales quantisation makes). The next chunk's positions are
 * found one chunk ahead, so that its rows are prefetched during the current one. The write-out
 * is the reference's (ref/mla_ref_sparse.c: write_row) in the natural-log domain: sink, lse,
 * max_logits, and empty rows (no valid key: out 0, lse +inf, max_logits -inf). */

/* A key list (ref/mla_ref_sparse.h) and its FP8 layout. */
typedef struct sp_list {
    mla_sparse_keys k;
    mla_fp8_layout lay; /* fp8 */
} sp_list;

typedef struct sp_job {
    const mla_sparse_decode_shape *dsh;
    const mla_sparse_decode_args *da;
    const mla_sparse_prefill_args *pa;
    const mla_cpu_split *sp; /* decode: the key split (nsplit > 1), else unused            */
    float scale_log2;
    int64_t dqk, hpk, nblk, rb, items, nsplit;
} sp_job;

/* A key of a chunk: its list and position. */
typedef struct sp_key {
    int list;
    int64_t pos;
} sp_key;

/* The next (up to) KC valid keys of lists[*li ..], from entry *k of list *li; advances them. */
static int sp_collect(const sp_list *lists, int nl, int *li, int64_t *k, sp_key *out)
{
    int n = 0;
    while (n < KC && *li < nl) {
        const mla_sparse_keys *s = &lists[*li].k;
        while (n < KC && *k < s->n) {
            const int64_t pos = s->idx[(*k)++];
            if (pos < 0 || pos >= s->limit) continue; /* masked, never dereferenced */
            out[n].list = *li;
            out[n].pos = pos;
            n++;
        }
        if (*k >= s->n) { (*li)++; *k = 0; }
    }
    return n;
}

/* The first byte of a key's row (FP8: the token's NoPE bytes; MODEL1's scales lie elsewhere). */
static inline const char *sp_row(const sp_list *sl, int64_t pos)
{
    const mla_sparse_keys *s = &sl->k;
    if (!s->fp8) return (const char *)s->base + pos * s->row_stride * 2;
    const int64_t page = pos / s->page_size, row = pos % s->page_size;
    return (const char *)mla_fp8_locate(s->fmt, s->base + page * s->page_stride_bytes, s->page_size, row).nope;
}

/* One key's row as d_qk bf16 values into dst. */
INL void sp_gather(const sp_list *sl, int64_t pos, int64_t dqk, uint16_t *dst)
{
    const mla_sparse_keys *s = &sl->k;
    if (!s->fp8) {
        memcpy(dst, (const uint16_t *)s->base + pos * s->row_stride, (size_t)dqk * 2);
        return;
    }
    const mla_fp8_layout l = sl->lay;
    const int64_t page = pos / s->page_size, row = pos % s->page_size;
    const mla_fp8_token t = mla_fp8_locate(s->fmt, s->base + page * s->page_stride_bytes, s->page_size, row);
    for (int k = 0; k < l.num_tiles; k++) {
        float sc;
        if (s->fmt == MLA_FP8_FORMAT_V32) {
            float raw;
            memcpy(&raw, t.scales + 4 * k, 4);
            sc = mla_bf16_to_float(mla_float_to_bf16(raw));
        } else {
            sc = mla_e8m0_to_float(t.scales[k]);
        }
        dequant_e4m3(dst + k * l.tile, t.nope + k * l.tile, l.tile, sc);
    }
    memcpy(dst + l.d_nope, t.rope, 2 * (size_t)l.d_rope);
}

/* Attention of the rows already in w (nr of them) over the keys of lists[0 .. nl). */
INL void sp_attend(amx_ws *w, const sp_list *lists, int nl, int nr, int64_t dqk, float scale_log2)
{
    sp_key cur[KC], next[KC];
    int li = 0;
    int64_t k = 0;
    int nnext = sp_collect(lists, nl, &li, &k, next);
    for (int r = 0; r < nr; r++) w->lim[r] = KC; /* every row sees every gathered key */
    /* V32 tokens are 656 contiguous bytes; MODEL1's 576 (NoPE + RoPE), its scales elsewhere */
    w->pf_bytes = !lists[0].k.fp8 ? dqk * 2 : lists[0].k.fmt == MLA_FP8_FORMAT_V32 ? 656 : 576;
    ws_src_kbuf(w);
    while (nnext > 0) {
        const int nk = nnext;
        memcpy(cur, next, sizeof(sp_key) * (size_t)nk);
        nnext = sp_collect(lists, nl, &li, &k, next);
        w->npf = nnext;
        for (int x = 0; x < nnext; x++) w->pf[x] = sp_row(&lists[next[x].list], next[x].pos);
        for (int x = 0; x < nk; x++) sp_gather(&lists[cur[x].list], cur[x].pos, dqk, w->kbuf[x]);
        /* only the last chunk is short: rows past nk are zero (P is 0 there, V must be finite) */
        for (int x = nk; x < KC; x++) memset(w->kbuf[x], 0, sizeof w->kbuf[x]);
        ws_chunk(w, 0, nk, 0, scale_log2);
    }
}

/* Writes a query row from its accumulator (acc's column order), max m (log2 domain, scaled) and
 * sum l: out (bf16, d_v 512), lse and max_logits (natural log; max_logits may be NULL), as
 * ref/mla_ref_sparse.c's write_row. */
INL void sp_write_row(const float *acc, float m2, float l, const float *sink, uint16_t *out, float *lse,
                      float *max_logits)
{
    const float ln2 = 0.69314718055994530942f;
    if (!(l > 0.0f || l != l)) { /* no valid key */
        for (int d = 0; d < DV; d++) out[d] = 0;
        *lse = INFINITY;
        if (max_logits) *max_logits = -INFINITY;
        return;
    }
    const float m = m2 * ln2;
    const float denom = sink ? l + expf(*sink - m) : l;
    const float inv = 1.0f / denom;
    for (int x = 0; x < DV; x++) out[out_col(x)] = mla_float_to_bf16(acc[x] * inv);
    *lse = (m2 + log2f(l)) * ln2;
    if (max_logits) *max_logits = m;
}

/* Partial row of head h of (request i, query token j) for position range si (sparse decode). */
static inline float *sp_part_row(const sp_job *jb, int64_t i, int64_t j, int64_t h, int64_t si)
{
    const mla_cpu_split *sp = jb->sp;
    const int64_t tile = (i * jb->dsh->s_q + j) * sp->rt_total + h / 16;
    return sp->part + ((tile * sp->nsplit + si) * 16 + h % 16) * (int64_t)(DV + 2);
}

/* Positions (entries of the index lists, main then extra) of request i's lists: their count. */
static inline int64_t sp_positions(const sp_list *lists, int nl)
{
    int64_t n = 0;
    for (int x = 0; x < nl; x++) n += lists[x].k.n;
    return n;
}

/* Restricts lists (positions [0, P) over the main then the extra list) to positions [p0, p1). */
static void sp_restrict(sp_list *lists, int nl, int64_t p0, int64_t p1)
{
    int64_t base = 0;
    for (int x = 0; x < nl; x++) {
        const int64_t n = lists[x].k.n;
        const int64_t a = p0 > base ? p0 - base : 0, b = p1 - base < n ? p1 - base : n;
        lists[x].k.idx += a < n ? a : n;
        lists[x].k.n = b > a ? b - a : 0;
        base += n;
    }
}

/* Item wi: heads h0 .. h0 + nr - 1 of (request i, query token j) over all their positions, or
 * (split) over position range wi % nsplit of the request's (mla_cpu_split_ranges), written as
 * partial rows. */
INL void sp_decode_item(const sp_job *jb, int64_t wi)
{
    const mla_sparse_decode_shape *sh = jb->dsh;
    const mla_sparse_decode_args *a = jb->da;
    const int64_t ns = jb->nsplit, si = wi % ns, bi = wi / ns;
    const int64_t hb = bi % jb->nblk, j = (bi / jb->nblk) % sh->s_q, i = bi / (jb->nblk * sh->s_q);
    const int64_t h0 = hb * jb->rb;
    const int nr = (int)(sh->h_q - h0 < jb->rb ? sh->h_q - h0 : jb->rb);

    sp_list lists[2];
    mla_sparse_keys keys[2];
    const int nl = mla_sparse_decode_keys(sh, a, i, j, keys);
    for (int x = 0; x < nl; x++) {
        lists[x].k = keys[x];
        mla_fp8_get_layout(sh->format, &lists[x].lay);
    }
    if (ns > 1) {
        const int64_t P = sp_positions(lists, nl);
        int64_t nrg, per;
        mla_cpu_split_ranges(jb->sp, P, &nrg, &per);
        if (si >= nrg) return; /* the request has fewer ranges: nothing here */
        sp_restrict(lists, nl, si * per * KC, (si + 1) * per * KC);
    }
    amx_ws ws, *w = &ws;
    ws_begin(w, (nr + 15) / 16, (int)(jb->dqk / 32));
    for (int r = 0; r < nr; r++)
        ws_q_row(w, r, (const uint16_t *)a->q + i * a->q_stride[0] + j * a->q_stride[1] + (h0 + r) * a->q_stride[2],
                 jb->dqk);
    sp_attend(w, lists, nl, nr, jb->dqk, jb->scale_log2);
    ws_end();
    if (ns > 1) { /* partial rows: O (acc's column order), m, l; O only where l is not 0 */
        for (int r = 0; r < nr; r++) ws_store_part(w, r, sp_part_row(jb, i, j, h0 + r, si));
        return;
    }
    for (int r = 0; r < nr; r++) {
        const int64_t h = h0 + r;
        sp_write_row(w->acc[r], w->m[r], w->l[r], a->attn_sink ? a->attn_sink + h : NULL,
                     (uint16_t *)a->out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2],
                     a->lse + i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2], NULL);
    }
}

/* Merges heads 16 t + 8 u' .. + 7 of (request i, query token j) over the request's position
 * ranges, u = ((i s_q + j) rt_total + t) 2 + u', and writes them as the unsplit write-out does
 * (the sink applies to the merged row). */
INL void sp_merge_rows(const sp_job *jb, int64_t u)
{
    const mla_sparse_decode_shape *sh = jb->dsh;
    const mla_sparse_decode_args *a = jb->da;
    const mla_cpu_split *sp = jb->sp;
    const int64_t tile = u / 2, t = tile % sp->rt_total, j = (tile / sp->rt_total) % sh->s_q,
                  i = tile / (sp->rt_total * sh->s_q);
    mla_sparse_keys keys[2];
    const int nl = mla_sparse_decode_keys(sh, a, i, j, keys);
    int64_t P = 0, ns, per;
    for (int x = 0; x < nl; x++) P += keys[x].n;
    mla_cpu_split_ranges(sp, P, &ns, &per);
    float o[DV] __attribute__((aligned(64)));
    const int64_t hq = 16 * t + 8 * (u % 2);
    for (int64_t h = hq; h < hq + 8 && h < sh->h_q; h++) {
        float m, l;
        merge_parts(sp_part_row(jb, i, j, h, 0), ns, o, &m, &l);
        sp_write_row(o, m, l, a->attn_sink ? a->attn_sink + h : NULL,
                     (uint16_t *)a->out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2],
                     a->lse + i * a->lse_stride[0] + h * a->lse_stride[1] + j * a->lse_stride[2], NULL);
    }
}

TGT static void sp_merge_rows_fn(void *ctx, int64_t u) { sp_merge_rows((const sp_job *)ctx, u); }

INL void sp_prefill_item(const sp_job *jb, int64_t wi)
{
    const mla_sparse_prefill_args *a = jb->pa;
    const int64_t hb = wi % jb->nblk, g = (wi / jb->nblk) % a->h_kv, s = wi / (jb->nblk * a->h_kv);
    const int64_t h0 = g * jb->hpk + hb * jb->rb;
    const int64_t left = jb->hpk - hb * jb->rb;
    const int nr = (int)(left < jb->rb ? left : jb->rb);

    sp_list list;
    list.k = mla_sparse_prefill_keys(a, s, g);
    memset(&list.lay, 0, sizeof list.lay);
    amx_ws ws, *w = &ws;
    ws_begin(w, (nr + 15) / 16, (int)(jb->dqk / 32));
    for (int r = 0; r < nr; r++)
        ws_q_row(w, r, (const uint16_t *)a->q + s * a->q_stride[0] + (h0 + r) * a->q_stride[1], jb->dqk);
    sp_attend(w, &list, 1, nr, jb->dqk, jb->scale_log2);
    ws_end();
    for (int r = 0; r < nr; r++) {
        const int64_t h = h0 + r;
        sp_write_row(w->acc[r], w->m[r], w->l[r], a->attn_sink ? a->attn_sink + h : NULL,
                     (uint16_t *)a->out + s * a->out_stride[0] + h * a->out_stride[1],
                     a->lse + s * a->lse_stride[0] + h * a->lse_stride[1],
                     a->max_logits + s * a->max_logits_stride[0] + h * a->max_logits_stride[1]);
    }
}

TGT static void sp_item_fn(void *ctx, int64_t w)
{
    const sp_job *jb = (const sp_job *)ctx;
    if (jb->da) sp_decode_item(jb, w);
    else sp_prefill_item(jb, w);
}

mla_status TL_(sparse_decode)(const mla_sparse_decode_shape *shape,
                                     const mla_sparse_decode_args *args, float softmax_scale,
                                     int num_threads, const mla_cpu_split *split)
{
    if (!TL_(available)())
        return mla_set_error(MLA_ERR_UNSUPPORTED, "this CPU or OS does not run " TL_WHAT);
    sp_job jb;
    memset(&jb, 0, sizeof jb);
    jb.dsh = shape;
    jb.da = args;
    jb.scale_log2 = softmax_scale * 1.4426950408889634f;
    jb.dqk = shape->d_qk;
    jb.hpk = shape->h_q;
    jb.nsplit = 1;
    const int64_t rt_total = (shape->h_q + 15) / 16;
    if (split && split->nsplit > 1) { /* (row block, position range) items, then the merge */
        jb.sp = split;
        jb.nsplit = split->nsplit;
        split_items(rt_total, shape->b * shape->s_q * split->nsplit, 4 * (int64_t)num_threads, &jb.rb,
                    &jb.nblk, &jb.items);
        mla_cpu_parallel(jb.items, num_threads, sp_item_fn, &jb);
        mla_cpu_parallel(shape->b * shape->s_q * rt_total * 2, num_threads, sp_merge_rows_fn, &jb);
        return MLA_OK;
    }
    split_items(rt_total, shape->b * shape->s_q, 2 * (int64_t)num_threads, &jb.rb, &jb.nblk, &jb.items);
    mla_cpu_parallel(jb.items, num_threads, sp_item_fn, &jb);
    return MLA_OK;
}

mla_status TL_(sparse_prefill)(const mla_sparse_prefill_args *args, int num_threads)
{
    if (!TL_(available)())
        return mla_set_error(MLA_ERR_UNSUPPORTED, "this CPU or OS does not run " TL_WHAT);
    sp_job jb;
    memset(&jb, 0, sizeof jb);
    jb.pa = args;
    jb.scale_log2 = args->softmax_scale * 1.4426950408889634f;
    jb.dqk = args->d_qk;
    jb.hpk = args->h_q / args->h_kv;
    jb.nsplit = 1;
    split_items((jb.hpk + 15) / 16, args->s_q * args->h_kv, 2 * (int64_t)num_threads, &jb.rb, &jb.nblk, &jb.items);
    mla_cpu_parallel(jb.items, num_threads, sp_item_fn, &jb);
    return MLA_OK;
}

#endif /* MLA_AMX_BUILD */
