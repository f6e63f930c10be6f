/* decode_fp8t.cu — dense MLA decode on an FP8 (e4m3) cache for narrow query groups (sm_90a only):
 * at most NR = 16 or 32 packed (s_q, head-in-group) rows per KV head, the transposed products of
 * decode_narrow.cu with the tile converted once, by a producer warpgroup, into a 16-bit tile:
 *   S^T[64 keys x NR] = K[64 x d_qk] Q^T            (SS m64nNRk16 x d_qk / 16)
 *   O^T[512 x NR]    += V^T[512 x 64 keys] P^T       (SS m64nNRk16, 8 M blocks x 4 k-steps; A = V^T
 *                                                     read MN-major from the same K tile)
 * Why: decode_narrow.cu builds K and V^T in registers from the raw codes in every consumer thread, ~1270
 * instructions per thread and tile (issue-bound, docs/performance.md §5), and its 32-row variant does
 * that conversion twice per tile. Here (384 threads, one CTA per SM):
 * - WG2 (producer): thread pt = tid - 256 owns half h = pt & 1 of token row pt >> 1 of every tile:
 *   the 32 code bytes [64 i + 32 h, +32) of each 64-column chunk i, loaded by ld.global.nc (chunks
 *   0..7 one tile ahead in two register sets, software-pipelined as the sparse producer), one
 *   cvt.rn.f16x2.e4m3x2 per code pair, st.shared.v4 into stage n & 1 of tile n (SW128, the bf16
 *   kernels' K layout), a valid-row flag; then mbarrier full[n & 1]. An L2 prefetch runs two tiles
 *   ahead. Rows whose token does not exist or whose page id is invalid are never read (zeros).
 * - WG0 / WG1 (consumers): WG c takes the CTA's tiles n with n & 1 == c, so it always reads stage c,
 *   with its own running max, sums and O^T (8 M blocks x NR / 2 fp32); empty[c] when its PV is done.
 *   The softmax runs per query column (the max exchanged across the 4 warps through smem per tile),
 *   P^T goes to the warpgroup's own 16-bit SW128 buffer. At the end of a request the two warpgroups'
 *   states are merged through shared memory (max, sums, then the O^T halves: WG0 keeps M blocks 0..3,
 *   WG1 4..7) and each stores its half. Same scheduler, partials and combine as the other kernels.
 * The MMA is fp16 whatever the output dtype: every e4m3 value is an fp16 value, and a bf16 q row is
 * scaled by 2^e into fp16's range (its largest magnitude into [2^14, 2^15)), its scores by 2^-e, as in
 * decode_narrow.cu (exact up to fp16 subnormals for values 2^24 below the row's largest). */
#include <cuda.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "params.h"
#include "ptx.cuh"
#include "common.cuh"
#include "wgmma_ops.cuh"
#include "launch.h"
#include "sm90.cuh"
#include "sm90_tile.cuh"

#define FT_BAR_CONS 1 /* named barrier: the two consumer warpgroups (256 threads; every one of its uses is
                        * reached by all of them at the same instruction: the aligned bar.sync) */
#define FT_BAR_WG 2   /* named barriers 2 + wg: consumer warpgroup wg (128 threads) */
/* shared memory (from a 1024-aligned base): Q^T [NU][NR][128 B], P^T [2][NR][128 B], K stages
 * [2][64][DQK] 16-bit, valid-row flags [2][64], column maxima [2 wg][2][4][NR], column sums [2][4][NR],
 * column maxima of the request [2][NR], running column maxima [2 wg][2][NR], each consumer thread's
 * running column sums [2 wg][NR / 4][128], row_lim [64], q row scales
 * [NR], full[2] and empty[2] mbarriers (ft_bar_off). The merge at a request's end reuses Q^T + P^T as its buffer. */
static __host__ __device__ __forceinline__ int ft_smem_bytes(int dqk, int nr) {
    return dqk * nr * 2 + 2 * nr * 128 + 2 * 64 * dqk * 2 + 2 * 64 + 2 * 2 * 4 * nr * 4 + 2 * 4 * nr * 4 + 2 * nr * 4 +
           4 * nr * 4 + 2 * (nr / 4) * 128 * 4 + 64 * 4 + nr * 4 + 4 * 8 + 1024;
}
/* offset of the mbarriers from the aligned base */
static __host__ __device__ __forceinline__ int ft_bar_off(int dqk, int nr) { return ft_smem_bytes(dqk, nr) - 1024 - 4 * 8; }

/* timing builds (MLA_DEFS=-DFT_DIAG=n): 1 the producer reads no cache (converts zeros), 2 the consumers
 * only hand each stage back (no MMA, no softmax) */
#ifndef FT_DIAG
#define FT_DIAG 0
#endif
/* FT_DIAG=3: phase clocks (clock()) of thread 0 of each role in CTA (0,0,0), written to ft_diag_buf by
 * every launch; mla_k_fp8t_diag copies the last launch's out for mla-bench to print (a timing build
 * only; the library itself never prints) */
#if FT_DIAG == 3
__device__ unsigned ft_diag_buf[3][8];
#define FT_CLK(v) const unsigned v = (unsigned)clock()
#define FT_ADD(acc, a, b) acc += (b) - (a)
static __device__ __forceinline__ void ft_diag_put(int role, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, int nt, int nx) {
    if (blockIdx.x | blockIdx.y | blockIdx.z || (threadIdx.x & 127)) return;
    unsigned *o = ft_diag_buf[role];
    o[0] = nt; o[1] = nx; o[2] = a; o[3] = b; o[4] = c; o[5] = d; o[6] = e;
}
/* per role (0, 1: consumer warpgroups, 2: producer): tiles, max exchanges, then the phase cycle sums
 * (consumer: full wait, QK^T, softmax + P^T, PV; producer: empty wait, put, fence + arrive, loads) */
extern "C" int mla_k_fp8t_diag(unsigned out[24]) {
    return cudaMemcpyFromSymbol(out, ft_diag_buf, 24 * sizeof(unsigned)) == cudaSuccess ? 0 : -1;
}
#else
#define FT_CLK(v)
#define FT_ADD(acc, a, b)
#endif

#if MLA_HAVE_SM90A
/* register budgets (setmaxnreg) of the 32-row variant: 384 threads start at 168 each; the consumers'
 * increases are served by the producer's decrease (192 + 192 + 120 = 3 x 168) */
#ifndef FT_REG_CONS
#define FT_REG_CONS 192
#define FT_REG_PROD 120
#endif


/* chunks [C0, C1) of half h of the FP8 row at src (zeros for src == 0) into x[2 (i - C0) + {0, 1}] */
static __device__ __forceinline__ void ft_load(const char *src, int h, uint4 *x, const int C0, const int C1) {
#pragma unroll
    for (int i = C0; i < C1; i++) x[2 * (i - C0)] = x[2 * (i - C0) + 1] = make_uint4(0, 0, 0, 0);
    if (src && FT_DIAG != 1) {
#pragma unroll
        for (int i = C0; i < C1; i++) {
            x[2 * (i - C0)] = f8_ldg16(src + 64 * i + 32 * h);
            x[2 * (i - C0) + 1] = f8_ldg16(src + 64 * i + 32 * h + 16);
        }
    }
}
/* x -> chunks [C0, C1) of half h of fp16 row `row` of the SW128 tile: 16 codes give two 16-byte pieces
 * (pieces 4 h .. 4 h + 3 of each chunk) */
static __device__ __forceinline__ void ft_put(uint32_t tile, int row, int h, const uint4 *x, const int C0, const int C1) {
    const uint32_t base = tile + row * 128;
    const int sw = row & 7;
#pragma unroll
    for (int i = C0; i < C1; i++) {
#pragma unroll
        for (int k = 0; k < 2; k++) {
            const uint4 v = x[2 * (i - C0) + k];
            uint4 a, b;
            f8x4_cvt(v.x, &a.x, &a.y, 1);
            f8x4_cvt(v.y, &a.z, &a.w, 1);
            f8x4_cvt(v.z, &b.x, &b.y, 1);
            f8x4_cvt(v.w, &b.z, &b.w, 1);
            sts128(base + i * 8192 + (((4 * h + 2 * k) ^ sw) << 4), a);
            sts128(base + i * 8192 + (((4 * h + 2 * k + 1) ^ sw) << 4), b);
        }
    }
}
/* L2 prefetch of a row: the lines of bytes 0, 128, .., 512 and DQK - 1 (every line the row touches,
 * whatever its alignment), split between the row's two threads */
static __device__ __forceinline__ void ft_prefetch(const char *src, int h, const int DQK) {
    if (src) {
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + 128 * h));
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + 128 * (h + 2)));
        if (h == 0) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + DQK - 1));
        else if (DQK > 512) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + 512));
    }
}

/* WG2: every tile of the part in the consumers' order (tile counter n: stage n & 1) */
static __device__ __forceinline__ void ft_producer(const mla_dec_params *p, int kvh, mla_part_begin pb,
                                                   mla_part_begin pe, int r_last, uint32_t uK, uint32_t kvalid,
                                                   uint32_t full, uint32_t empty, const int DQK) {
    const int NU = DQK / 64, TILE = 64 * DQK * 2;
    const int pt = threadIdx.x - 256, row = pt >> 1, h = pt & 1;
    const int pf = p->fp8_l2_prefetch;
    tile_iter it; /* (req_prepare writes row_lim only in threads < 64: the producer passes none) */
    it.r = pb.req - 1;
    it.t = it.te = it.L = 0;
    tile_seek(p, pb, pe, r_last, 0, &it);
    if (it.r > r_last) return;
    /* row pointers of tiles n (s0), n + 1 (s1), n + 2 (s2); the iterator sits at tile n + 3 */
    const char *s0 = k_row_ptr_es(p, it.r, kvh, (long long)it.t * MLA_BN + row, it.L, 1), *s1 = 0, *s2 = 0;
    int h1 = 0, h2 = 0;
    it.t++;
    tile_seek(p, pb, pe, r_last, 0, &it);
    if (it.r <= r_last) {
        h1 = 1;
        s1 = k_row_ptr_es(p, it.r, kvh, (long long)it.t * MLA_BN + row, it.L, 1);
        it.t++;
        tile_seek(p, pb, pe, r_last, 0, &it);
    }
    if (it.r <= r_last) {
        h2 = 1;
        s2 = k_row_ptr_es(p, it.r, kvh, (long long)it.t * MLA_BN + row, it.L, 1);
        it.t++;
        tile_seek(p, pb, pe, r_last, 0, &it);
    }
    if (pf) ft_prefetch(s1, h, DQK); /* (tile n + 2 is prefetched in the loop) */
    /* chunks 0..3 (xa) and 4..7 (xb) of tile n + 1 are loaded during tile n; the RoPE chunk 8 (xc,
     * d_qk = 576) of tile n at its start: at most 64 + 8 data registers are live */
    uint4 xa[8], xb[8], xc[2];
    ft_load(s0, h, xa, 0, 4);
    ft_load(s0, h, xb, 4, 8);
#if FT_DIAG == 3
    unsigned dw = 0, dp = 0, dl = 0, dq = 0;
    int dn = 0;
#endif
    for (uint32_t n = 0;; n++) {
        const int st = n & 1;
        const uint32_t tile = uK + st * TILE;
        if (pf && h2) ft_prefetch(s2, h, DQK);
        FT_CLK(c0);
        mbar_wait(empty + 8 * st, ((n >> 1) & 1) ^ 1); /* consumer st is done with tile n - 2 */
        FT_CLK(c1);
        FT_ADD(dw, c0, c1);
        if (h == 0)
            asm volatile("st.shared.u8 [%0], %1;\n" ::"r"(kvalid + 64 * st + row), "h"((unsigned short)(s0 != 0)) : "memory");
        ft_put(tile, row, h, xa, 0, 4);
        if (NU > 8) ft_load(s0, h, xc, 8, 9);
        /* the row pointer of tile n + 3 (its block_table entry is read now, used a tile later) */
        const int h3 = it.r <= r_last;
        const char *s3 = 0;
        if (h3) {
            s3 = k_row_ptr_es(p, it.r, kvh, (long long)it.t * MLA_BN + row, it.L, 1);
            it.t++;
            tile_seek(p, pb, pe, r_last, 0, &it);
        }
        ft_put(tile, row, h, xb, 4, 8);
        if (h1) ft_load(s1, h, xa, 0, 4);
        if (NU > 8) ft_put(tile, row, h, xc, 8, 9);
        FT_CLK(c2);
        fence_proxy_async(); /* st.shared -> visible to the consumers' wgmma */
        mbar_arrive(full + 8 * st);
        FT_CLK(c3);
        FT_ADD(dp, c1, c2);
        FT_ADD(dq, c2, c3);
#if FT_DIAG == 3
        dn++;
#endif
        if (!h1) break;
        ft_load(s1, h, xb, 4, 8);
        FT_CLK(c4);
        FT_ADD(dl, c3, c4);
        s0 = s1;
        s1 = s2;
        s2 = s3;
        h1 = h2;
        h2 = h3;
    }
#if FT_DIAG == 3
    ft_diag_put(2, dw, dp, dq, dl, 0, dn, 0); /* wait, put (+loads of chunks 0..3, 8), fence+arrive, loads 4..7 */
#endif
}

/* WG0 / WG1: the consumers (see the top) */
static __device__ __forceinline__ void ft_consumer(const mla_dec_params *p, int kvh, mla_part_begin pb,
                                                   mla_part_begin pe, int r_last, unsigned char *smem, const int DQK,
                                                   const int F16, const int NR) {
    const int NU = DQK / 64, NQ = NR / 4, NA = NR / 2 /* accumulator registers per M block */;
    unsigned char *sQ = smem;
    unsigned char *sP = sQ + DQK * NR * 2;
    unsigned char *sK = sP + 2 * NR * 128;
    unsigned char *kvalid = sK + 2 * 64 * DQK * 2;
    float *sRed = (float *)(kvalid + 2 * 64); /* [2][2][4][NR] */
    float *sSum = sRed + 2 * 2 * 4 * NR;       /* [2][4][NR] */
    float *sM = sSum + 2 * 4 * NR;             /* [2][NR] */
    float *sMr = sM + 2 * NR;                  /* [2 wg][2][NR] running maxima */
    float *sLt = sMr + 4 * NR;                 /* [2 wg][NQ][128] each thread's running column sums */
    int *row_lim = (int *)(sLt + 2 * NQ * 128); /* [64] */
    float *sQs = (float *)(row_lim + 64);       /* [NR] */
    const uint32_t barF = smem_u32(smem) + ft_bar_off(DQK, NR), barE = barF + 16;
    float *xch = (float *)sQ; /* the merge's buffer (Q^T and P^T are free by then) */

    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, w4 = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, c = lane & 3;
    const int k0 = 16 * w4 + g, k1 = k0 + 8; /* this thread's S^T rows (keys of the tile) */
    const uint32_t uQ = smem_u32(sQ), uK = smem_u32(sK) + wg * 64 * DQK * 2, uP = smem_u32(sP) + wg * NR * 128;
    const int hg = p->hg;
    float scale = p->scale_log2, dk = 1.f;
    if (p->descale_k) { /* per-tensor descales, read on the device */
        dk = __ldg(p->descale_k);
        scale *= dk * (p->descale_q ? __ldg(p->descale_q) : 1.f);
    }
#if FT_DIAG == 3
    unsigned dw = 0, dq = 0, ds = 0, dv = 0;
    int dn = 0, dx = 0;
#endif
    int n = 0;      /* the CTA's tile counter at the start of the request */
    uint32_t j = 0; /* this warpgroup's tiles so far (stage wg's phase) */
    for (int r = pb.req; r <= r_last; r++) {
        req_work w;
        if (!req_prepare(p, r, pb, pe, 0, row_lim, &w)) continue;
        bar_sync(FT_BAR_CONS, 256); /* row_lim written; the previous request's merge is done */
        /* Q^T in fp16 (SW128, K-major: chunk u of 64 dims, row = query row): TPR threads per row, word x
         * = elements 2x, 2x + 1; a bf16 row scaled by 2^e (see the top) */
        {
            const int TPR = 256 / NR, NK = DQK / 2 / TPR;
            const int qrow = tid / TPR, qsub = tid % TPR;
            const char *qsrc = 0;
            if (qrow < w.nvalid) {
                const int jq = qrow / hg, head = kvh * hg + qrow % hg;
                qsrc = (const char *)p->q + ((long long)r * p->q_s0 + (long long)jq * p->q_s1 + (long long)head * p->q_s2) *
                                                (p->q_fp8 ? 1 : 2);
            }
            uint32_t qv[36];
            float qmax = 0.f;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                const int x = qsub + TPR * k;
                qv[k] = 0u;
                if (qsrc) qv[k] = p->q_fp8 ? (uint32_t)*(const uint16_t *)(qsrc + 2 * x) : *(const uint32_t *)(qsrc + 4 * x);
                if (!F16)
                    qmax = fmaxf(qmax, fmaxf(fabsf(__uint_as_float(qv[k] << 16)), fabsf(__uint_as_float(qv[k] & 0xffff0000u))));
            }
#pragma unroll
            for (int o = 1; o < TPR; o *= 2) qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, o));
            const int e = q_fp16_exp(qmax, F16, p->q_fp8);
            const float qs = ldexpf(1.f, e);
            if (qsub == 0) sQs[qrow] = ldexpf(1.f, -e);
#pragma unroll
            for (int k = 0; k < NK; k++) {
                const int x = qsub + TPR * k;
                const uint32_t hv = q_word_fp16(qv[k], qs, F16, p->q_fp8);
                const int u = x >> 5, cin = (2 * x) & 63;
                const uint32_t a = uQ + u * (NR * 128) + qrow * 128 + ((((cin >> 3)) ^ (qrow & 7)) << 4) + (cin & 7) * 2;
                asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a), "r"(hv) : "memory");
            }
        }
        /* the running column maxima of both warpgroups (read before the first tile's barrier: the
         * writes must come before the one below) */
        if (t128 < NR) sMr[wg * 2 * NR + t128] = -INFINITY;
        fence_proxy_async();
        bar_sync(FT_BAR_CONS, 256);
        /* this thread's S^T columns: q -> column 8 (q >> 1) + 2 c + (q & 1); their key limits (row_lim)
         * and score scales (scale * sQs) are read from shared memory per tile (fewer live registers) */
        float o[128]; /* O^T: M block i (dims 64 i + 16 w4 + g + 8 h) at o[NA i + 4 jn + 2 h + e] */
#pragma unroll
        for (int i = 0; i < 8 * NA; i++) o[i] = 0.f;
        /* each thread's running column sums live in its own shared-memory slots (sLt), the running
         * column maxima (the same in every thread of the warpgroup) in sMr[wg][mb] */
        int mb = 0;
#pragma unroll
        for (int q = 0; q < NQ; q++) sLt[(wg * NQ + q) * 128 + t128] = 0.f;
        for (int t = w.tb + ((wg - n) & 1); t < w.te; t += 2, j++) {
            FT_CLK(c0);
            mbar_wait(barF + 8 * wg, j & 1);
            FT_CLK(c1);
            FT_ADD(dw, c0, c1);
            if (FT_DIAG == 2) {
                mbar_arrive(barE + 8 * wg);
                continue;
            }
            /* tile-variant copies of the tile addresses: keeps the compiler from hoisting the 136 wgmma
             * descriptors out of the loop into registers */
            uint32_t uKt = uK, uQt = uQ, uPt = uP;
            asm volatile("" : "+r"(uKt), "+r"(uQt), "+r"(uPt));
            const int ok0 = kvalid[64 * wg + k0], ok1 = kvalid[64 * wg + k1];
            float s[16];
#pragma unroll
            for (int i = 0; i < NA; i++) s[i] = 0.f;
            pin_n(s, NA);
            wg_fence();
#pragma unroll
            for (int u = 0; u < NU; u++)
#pragma unroll
                for (int v = 0; v < 4; v++) {
                    const uint64_t da = desc_sw128(uKt + u * 8192 + v * 32, 16, 1024);
                    const uint64_t db = desc_sw128(uQt + u * (NR * 128) + v * 32, 16, 1024);
                    if (NR == 16) wgmma_ss_m64n16_tb0_f16(s, da, db, 1);
                    else wgmma_ss_m64n32_tb0_f16(s, da, db, 1);
                }
            wg_commit();
            wg_wait0();
            pin_n(s, NA);
            FT_CLK(c2);
            FT_ADD(dq, c1, c2);
            /* mask and scale (log2 domain): s[4 jn + 2 h + e] is key (h ? k1 : k0), column 8 jn + 2 c + e.
             * Lazy maxima: the scores are exponentiated against the running column maximum mo as long
             * as none exceeds mo + 8 (p <= 2^8: exact in fp16 and fp32; the sums and O^T only need one
             * common reference per column), so most tiles need no max exchange and no rescale; one
             * barrier.red.or over the warpgroup tells whether any thread saw a larger score. */
            const int key0 = t * MLA_BN;
            const float *mold = sMr + (wg * 2 + mb) * NR;
            int need = 0;
#pragma unroll
            for (int q = 0; q < NQ; q++) {
                const int jn = q >> 1, e = q & 1, col = 8 * jn + 2 * c + e;
                const int lim = row_lim[col];
                const float sc = scale * sQs[col];
                const float v0 = (ok0 && key0 + k0 < lim) ? s[4 * jn + e] * sc : -INFINITY;
                const float v1 = (ok1 && key0 + k1 < lim) ? s[4 * jn + 2 + e] * sc : -INFINITY;
                s[4 * jn + e] = v0;
                s[4 * jn + 2 + e] = v1;
                need |= fmaxf(v0, v1) > mold[col] + 8.f;
            }
            {
                const int ex = nr_lazy_exp(s, o, need, mold, sMr, sRed, sLt, &mb, j, wg, FT_BAR_WG + wg, c, g, w4, t128, NQ, NR, NA);
#if FT_DIAG == 3
                dx += ex;
#else
                (void)ex;
#endif
            }
            /* P^T (NR rows x 64 keys, SW128 K-major, fp16): key k of column col at piece k / 8 */
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int key = hh ? k1 : k0;
#pragma unroll
                for (int q = 0; q < NQ; q++) {
                    const int col = 8 * (q >> 1) + 2 * c + (q & 1);
                    const uint32_t bits = pack2(s[4 * (q >> 1) + 2 * hh + (q & 1)], 0.f, 1) & 0xffffu;
                    const uint32_t a = uPt + col * 128 + ((((key >> 3)) ^ (col & 7)) << 4) + (key & 7) * 2;
                    asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(a), "h"((unsigned short)bits) : "memory");
                }
            }
            fence_proxy_async();
            nbar_sync(FT_BAR_WG + wg, 128); /* P^T complete */
            FT_CLK(c3);
            FT_ADD(ds, c2, c3);
            pin_n(o, 8 * NA);
            wg_fence();
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int kk = 0; kk < 4; kk++) {
                    const uint64_t da = desc_sw128(uKt + i * 8192 + kk * 2048, 8192, 1024);
                    const uint64_t db = desc_sw128(uPt + kk * 32, 16, 1024);
                    if (NR == 16) wgmma_ss_m64n16_ta1_f16(o + NA * i, da, db, 1);
                    else wgmma_ss_m64n32_ta1_f16(o + NA * i, da, db, 1);
                }
            wg_commit();
            wg_wait0();
            pin_n(o, 8 * NA);
            mbar_arrive(barE + 8 * wg); /* this thread's reads of stage wg are done */
            FT_CLK(c4);
            FT_ADD(dv, c3, c4);
#if FT_DIAG == 3
            dn++;
#endif
        }
        n += w.te - w.tb;

        /* merge: column sums and maxima of both warpgroups, then the O^T halves (sm90_tile.cuh) */
        pair_merge(o, sLt, sMr, mb, sSum, sM, xch, FT_BAR_CONS, NR, NA);
        /* store: warpgroup wg has the M blocks 4 wg .. 4 wg + 3 */
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int col = 8 * (q >> 1) + 2 * c + (q & 1);
            if (col >= w.nvalid) continue;
            float mm, lt, fo;
            pair_merged(sSum, sM, col, wg, NR, &mm, &lt, &fo);
            const float inv = row_inv(lt, dk); /* out = P V * descale_k */
            const int jq = col / hg, head = kvh * hg + col % hg;
            if (w.slot < 0) {
                unsigned short *dst = (unsigned short *)((char *)p->out +
                                                         out_row(p, r, jq, head) * 2);
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int k = 4 * (q >> 1) + 2 * hh + (q & 1), d = 64 * (4 * wg + i) + 16 * w4 + g + 8 * hh;
                        const float v = wg ? o[NA * (4 + i) + k] : o[NA * i + k]; /* (no dynamic index) */
                        dst[d] = (unsigned short)(pack2(v * inv, 0.f, F16) & 0xffffu);
                    }
            } else {
                const long long prow = part_row(p, w.slot, jq, head);
                float *dst = p->oacc + prow * MLA_DV;
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int k = 4 * (q >> 1) + 2 * hh + (q & 1), d = 64 * (4 * wg + i) + 16 * w4 + g + 8 * hh;
                        dst[d] = (wg ? o[NA * (4 + i) + k] : o[NA * i + k]) * inv;
                    }
            }
            if (wg == 0 && w4 == 0 && g == 0) store_lse(p, w.slot, r, jq, head, row_lse2(mm, lt));
        }
    }
#if FT_DIAG == 3
    ft_diag_put(wg, dw, dq, ds, dv, 0, dn, dx);
#endif
}

static __device__ __forceinline__ void ft_body(const mla_dec_params *p, const int DQK, const int F16, const int NR) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *smem = smem_align1024(smem_raw);
    const uint32_t barF = smem_u32(smem) + ft_bar_off(DQK, NR), barE = barF + 16;
    if (threadIdx.x == 0) {
        for (int s = 0; s < 2; s++) {
            mbar_init(barF + 8 * s, 128); /* the producer's threads */
            mbar_init(barE + 8 * s, 128); /* consumer warpgroup s */
        }
        mbar_fence_init();
    }
    __syncthreads();
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    /* (each role reads its part bounds after the register reallocation: nothing is live across it) */
    mla_part_begin pb, pe;
    if (threadIdx.x >= 256) {
        if (NR == 32) SETMAXNREG_DEC(FT_REG_PROD);
        part_bounds(p, blockIdx.z, 0, &pb, &pe, 0);
        const uint32_t uK = smem_u32(smem) + DQK * NR * 2 + 2 * NR * 128;
        ft_producer(p, blockIdx.y, pb, pe, pe.tile > 0 ? pe.req : pe.req - 1, uK, uK + 2 * 64 * DQK * 2, barF, barE,
                    DQK);
    } else {
        if (NR == 32) SETMAXNREG_INC(FT_REG_CONS);
        part_bounds(p, blockIdx.z, 0, &pb, &pe, 0);
        ft_consumer(p, blockIdx.y, pb, pe, pe.tile > 0 ? pe.req : pe.req - 1, smem, DQK, F16, NR);
    }
    /* the producer's warps wait here rather than exit while the consumers still use named barriers
     * (compute-sanitizer's racecheck reported the consumers' merge as racing when they had exited) */
    __syncthreads();
    pdl_trigger();
}
#define MLA_FT_BODY(DQK, F16, NR) ft_body(&p, DQK, F16, NR);
#else
#define MLA_FT_BODY(DQK, F16, NR)
#endif

#define MLA_FT_KERNEL(name, DQK, F16, NR)                                                                   \
    __global__ void __launch_bounds__(MLA_FP8T_THREADS, 1) name(const __grid_constant__ mla_dec_params p) {             \
        MLA_FT_BODY(DQK, F16, NR)                                                                          \
    }
MLA_FT_KERNEL(mla_decode_sm90ft16_bf16_576, 576, 0, 16)
MLA_FT_KERNEL(mla_decode_sm90ft16_bf16_512, 512, 0, 16)
MLA_FT_KERNEL(mla_decode_sm90ft16_fp16_576, 576, 1, 16)
MLA_FT_KERNEL(mla_decode_sm90ft16_fp16_512, 512, 1, 16)
MLA_FT_KERNEL(mla_decode_sm90ft32_bf16_576, 576, 0, 32)
MLA_FT_KERNEL(mla_decode_sm90ft32_bf16_512, 512, 0, 32)
MLA_FT_KERNEL(mla_decode_sm90ft32_fp16_576, 576, 1, 32)
MLA_FT_KERNEL(mla_decode_sm90ft32_fp16_512, 512, 1, 32)

/* nr: 16 or 32 query rows per CTA */
extern "C" const void *mla_k_fp8t_fn(int dqk, int f16, int nr) {
    if (nr == 32) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90ft32_fp16_576 : (const void *)mla_decode_sm90ft32_bf16_576;
        return f16 ? (const void *)mla_decode_sm90ft32_fp16_512 : (const void *)mla_decode_sm90ft32_bf16_512;
    }
    if (dqk == 576) return f16 ? (const void *)mla_decode_sm90ft16_fp16_576 : (const void *)mla_decode_sm90ft16_bf16_576;
    return f16 ? (const void *)mla_decode_sm90ft16_fp16_512 : (const void *)mla_decode_sm90ft16_bf16_512;
}
extern "C" int mla_k_fp8t_smem(int dqk, int nr) { return ft_smem_bytes(dqk, nr); }
