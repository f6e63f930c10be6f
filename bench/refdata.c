/* refdata.c — FlashMLA's published dense-decode figures, copied from spec §7 (docs/spec.md,
 * "Reference figures"): FlashMLA HEAD 9241ae3 on one H100 80GB HBM3 SXM, CUDA 13.0, bf16,
 * page 64, h_kv 1, the same formulas, CUDA-graph timing WITHOUT the L2 flush (measured copy
 * ceiling 2991-3005 GB/s, cuBLAS bf16 8192^3 754-771 TFLOPS). The flushed_* columns are the
 * spec's L2-flushed figures: another H100 (copy 3003 GB/s, cuBLAS 780 TFLOPS) and one H200
 * (copy 4223 GB/s, cuBLAS 772 TFLOPS). Ranges are lo-hi over FlashMLA's repeated runs. */
#include "bench.h"

#include <stddef.h>

const char *const flashmla_ref_source =
    "FlashMLA HEAD 9241ae3, H100 80GB HBM3 SXM, CUDA 13.0, graph replay without L2 flush "
    "(copy 2991-3005 GB/s, cuBLAS bf16 754-771 TFLOPS); source: docs/spec.md section 7";
const char *const flashmla_ref_flushed_source =
    "FlashMLA, L2 flushed: H100 (copy 3003 GB/s, cuBLAS 780 TFLOPS), H200 (copy 4223 GB/s, "
    "cuBLAS 772 TFLOPS); source: docs/spec.md section 7";

#define R(b, sq, hq, sk, causal, varlen, ul, uh, gl, gh, tl, th) \
    {b, sq, hq, sk, causal, varlen, ul, uh, gl, gh, tl, th, NULL, 0, 0}
#define RF(b, sq, hq, sk, causal, varlen, ul, uh, gl, gh, tl, th, metric, f100, f200) \
    {b, sq, hq, sk, causal, varlen, ul, uh, gl, gh, tl, th, metric, f100, f200}

static const flashmla_ref refs[] = {
    /*  b   s_q h_q  s_k   c  v   us lo-hi      GB/s lo-hi     TFLOPS lo-hi */
    R(128, 1, 16, 4096, 0, 1, 222, 222, 2750, 2750, 82, 82),
    R(128, 1, 16, 8192, 0, 1, 430, 430, 2830, 2830, 85, 85),
    RF(128, 1, 16, 16384, 0, 1, 834, 834, 2915, 2915, 88, 88, "GB/s", 2833, 3722),
    R(128, 1, 32, 4096, 0, 1, 239, 239, 2575, 2575, 153, 153),
    R(128, 1, 32, 8192, 0, 1, 451, 455, 2690, 2690, 162, 162),
    R(128, 1, 32, 16384, 0, 1, 863, 983, 2480, 2820, 150, 170),
    R(128, 1, 64, 4096, 0, 1, 256, 313, 2000, 2440, 234, 286),
    R(128, 1, 64, 8192, 0, 1, 471, 479, 2600, 2600, 307, 311),
    R(128, 1, 64, 16384, 0, 1, 890, 901, 2730, 2730, 326, 330),
    R(128, 1, 128, 4096, 0, 1, 289, 295, 2200, 2200, 498, 507),
    R(128, 1, 128, 8192, 0, 1, 528, 539, 2340, 2340, 545, 556),
    RF(128, 1, 128, 16384, 0, 1, 993, 1002, 2470, 2470, 586, 591, "TFLOPS", 598, 656),
    R(128, 2, 128, 4096, 1, 1, 455, 461, 1480, 1480, 637, 646),
    R(128, 2, 128, 8192, 1, 1, 858, 861, 1495, 1495, 682, 684),
    RF(128, 2, 128, 16384, 1, 1, 1669, 1699, 1480, 1480, 691, 703, "TFLOPS", 710, 721),
    RF(1, 1, 128, 8192, 0, 0, 34, 36, 273, 285, 64, 67, "us", 35.1, 33.2),
    RF(8, 1, 128, 8192, 0, 0, 63, 64, 1210, 1233, 284, 290, "us", 56.7, 53.6),
    RF(32, 1, 128, 2048, 0, 1, 57, 58, 1430, 1453, 308, 313, "us", 55.9, 51.8),
};

/* FlashMLA measured bf16, h_kv 1, d_qk 576, page 64; other cases have no published figure. */
const flashmla_ref *bench_find_ref(const bench_case *c, mla_dtype dtype)
{
    if (dtype != MLA_DTYPE_BF16 || c->h_kv != 1 || c->page != 64)
        return NULL;
    int causal = c->s_q > 1 && c->causal;
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        const flashmla_ref *r = &refs[i];
        if (r->b == c->b && r->s_q == c->s_q && r->h_q == c->h_q && r->s_k == c->s_k &&
            r->causal == causal && r->varlen == c->varlen)
            return r;
    }
    return NULL;
}
