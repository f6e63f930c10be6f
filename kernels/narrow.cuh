/* narrow.cuh — pieces of the transposed FP8 kernels that build their A operands in registers from raw
 * e4m3 codes in shared memory (kernels/decode_narrow.cu: 16 rows, one warpgroup per CTA;
 * kernels/decode_narrow32.cu: 32 rows, two consumer warpgroups on alternate tiles): shared loads, the
 * bulk copy of a tile's token rows, the V word loader and the RS wgmma of N = 16 / 32. sm_90a only. */
#ifndef MLA_KERNELS_NARROW_CUH
#define MLA_KERNELS_NARROW_CUH

#include <stdint.h>
#include "ptx.cuh"
#include "sm90.cuh"
#include "sm90_tile.cuh"
#include "wgmma_ops.cuh"
#include "params.h"
#include "common.cuh"

#if MLA_HAVE_SM90A
static __device__ __forceinline__ uint2 lds64(uint32_t a) {
    uint2 v;
    asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(a));
    return v;
}
static __device__ __forceinline__ uint4 lds128(uint32_t a) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(a));
    return v;
}
static __device__ __forceinline__ void nr_bulk_g2s(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
/* four e4m3 codes (byte k = element k) -> two fp16 pairs (element 2k in the low half), exact: f8x4_cvt
 * of sm90_tile.cuh with F16 = 1 (the narrow kernels multiply in fp16 whatever the output dtype: every
 * e4m3 value is an fp16 value) */
static __device__ __forceinline__ void nr_cvt4(uint32_t w, uint32_t *lo, uint32_t *hi) { f8x4_cvt(w, lo, hi, 1); }
static __device__ __forceinline__ unsigned long long lds_u64(uint32_t a) {
    unsigned long long v;
    asm volatile("ld.shared.u64 %0, [%1];\n" : "=l"(v) : "r"(a));
    return v;
}
static __device__ __forceinline__ uint32_t nr_prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}
/* keeps registers read by in-flight wgmmas alive (and unmodified) until after the wait that retires them */
static __device__ __forceinline__ void nr_keep(const uint32_t *a, const int n) {
#pragma unroll
    for (int i = 0; i < n; i++) asm volatile("" ::"r"(a[i]) : "memory");
}
/* NW 32-bit words of V (one 16- or 8-byte shared load) into y */
static __device__ __forceinline__ void nr_ld_v(uint32_t *y, uint32_t ad, const int NW) {
    if (NW == 4) {
        const uint4 v = lds128(ad);
        y[0] = v.x;
        y[1] = v.y;
        y[2] = v.z;
        y[3] = v.w;
    } else {
        const uint2 v = lds64(ad);
        y[0] = v.x;
        y[1] = v.y;
    }
}
/* D (m64 x NR, fp32) += A (registers) B (descriptor), fp16 */
static __device__ __forceinline__ void nr_mma(float *d, const uint32_t *a, uint64_t db, const int NR) {
    if (NR == 16) wgmma_rs_m64n16_tb0_f16(d, a, db, 1);
    else wgmma_rs_m64n32_tb0_f16(d, a, db, 1);
}
/* threads 0..63 (warps 0, 1), one token row each: the tile's rows into the stage by bulk copies, one
 * per run of rows that are consecutive in memory within a warp (a whole page slice when the cache rows
 * are packed, e.g. h_kv = 1), zeros for rows whose token does not exist or whose page id is invalid;
 * the tile's valid-row mask (bit row: a real key; one 32-bit word per warp), and each thread's arrival
 * on the stage's barrier (a run's first thread with its bytes) */
static __device__ __forceinline__ void nr_issue(uint32_t stage, uint32_t bar, uint32_t *kv, const char *src, int row,
                                                const int DQK) {
    const int lane = threadIdx.x & 31;
    const unsigned vm = __ballot_sync(0xffffffffu, src != 0);
    if (lane == 0) kv[row >> 5] = vm;
    const char *prev = (const char *)__shfl_up_sync(0xffffffffu, (unsigned long long)src, 1);
    const unsigned cont = __ballot_sync(0xffffffffu, src != 0 && lane > 0 && prev != 0 && prev + DQK == src);
    if (src && !((cont >> lane) & 1u)) {
        const unsigned rest = lane == 31 ? 0u : (~cont) >> (lane + 1);
        const int len = rest ? __ffs((int)rest) : 32 - lane;
        mbar_expect_tx(bar, len * DQK); /* (an arrival) */
        nr_bulk_g2s(stage + row * DQK, src, len * DQK, bar);
    } else {
        if (!src) { /* no key: zeros, so that the consumers can read a masked key's V (times p = 0) without
                     * a select (stale or uninitialised codes may be NaN); the fences order these generic
                     * stores after the row's earlier bulk copy and before its next one */
            fence_proxy_async();
#pragma unroll 4
            for (int i = 0; i < DQK / 16; i++) sts128(stage + row * DQK + 16 * i, make_uint4(0u, 0u, 0u, 0u));
            fence_proxy_async();
        }
        mbar_arrive(bar);
    }
}

/* Q^T of request r in fp16, permuted for the register-built A operands: thread (row tid / 8, sub
 * tid % 8) of the first 8 NR threads converts the pairs x = sub + 8 k of its query row, the pair at
 * d = 2 x landing at logical column 16 (4 u + v) + 2 cc + 8 hi (u = x / 32, y = x % 32 = 8 cc + 2 v +
 * hi), which is q[d] for d = 64 u + 16 cc + 4 v + 2 hi + e (decode_narrow.cu, top). A bf16 q row is
 * scaled by 2^e (its largest magnitude into [2^14, 2^15): exact, and in fp16's range) and sQs[row]
 * gets 2^-e, the factor of its scores. Rows >= nvalid are zeros. */
static __device__ __forceinline__ void nr_build_qt(const mla_dec_params *p, int r, int kvh, int nvalid, uint32_t uQ,
                                                   float *sQs, const int DQK, const int F16, const int NR) {
    const int tid = threadIdx.x, qrow = tid >> 3, qsub = tid & 7, NK = DQK / 64 * 4, hg = p->hg;
    const char *qsrc = 0;
    if (qrow < nvalid) {
        const int j = qrow / hg, head = kvh * hg + qrow % hg;
        qsrc = (const char *)p->q +
               ((long long)r * p->q_s0 + (long long)j * p->q_s1 + (long long)head * p->q_s2) * (p->q_fp8 ? 1 : 2);
    }
    uint32_t qv[36];
    float qmax = 0.f;
#pragma unroll
    for (int k = 0; k < NK; k++) {
        const int x = qsub + 8 * k;
        qv[k] = 0u;
        if (qsrc) qv[k] = p->q_fp8 ? (uint32_t)*(const uint16_t *)(qsrc + 2 * x) : *(const uint32_t *)(qsrc + 4 * x);
        if (!F16)
            qmax = fmaxf(qmax, fmaxf(fabsf(__uint_as_float(qv[k] << 16)), fabsf(__uint_as_float(qv[k] & 0xffff0000u))));
    }
    qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 1));
    qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 2));
    qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 4));
    const int e = q_fp16_exp(qmax, F16, p->q_fp8);
    const float qs = ldexpf(1.f, e);
    if (qsub == 0) sQs[qrow] = ldexpf(1.f, -e);
#pragma unroll
    for (int k = 0; k < NK; k++) {
        const int x = qsub + 8 * k, u = x >> 5, y = x & 31;
        const int cc = y >> 3, v = (y >> 1) & 3, hi = y & 1;
        const uint32_t h = q_word_fp16(qv[k], qs, F16, p->q_fp8);
        const int col = 16 * (4 * u + v) + 2 * cc + 8 * hi; /* logical column */
        const int cin = col & 63;
        const uint32_t a = uQ + (col >> 6) * (NR * 128) + qrow * 128 + ((((cin >> 3)) ^ (qrow & 7)) << 4) + (cin & 7) * 2;
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a), "r"(h) : "memory");
    }
}
#endif /* MLA_HAVE_SM90A */
#endif
