/* decode_narrow32.cu — dense MLA decode on an FP8 (e4m3) cache for 17..32 packed (s_q, head-in-group)
 * rows per KV head (sm_90a only), e.g. h_q = 32 with s_q = 1 or h_q = 16 with s_q = 2.
 *
 * The transposed products of decode_narrow.cu (S^T = K Q^T, O^T += V^T P^T, keys as the wgmma M, the
 * 32 query rows as N = 32), with both A operands (K, V^T) converted in registers from the raw e4m3
 * codes in shared memory, and the tiles shared out between two consumer warpgroups:
 * - WG2 (warp 8 only; warps 9..11 idle): the producer. It walks the CTA's tiles in order and copies
 *   each tile's token rows into raw stage n & 3 (cp.async.bulk, one copy per run of consecutive rows,
 *   zeros for rows whose token does not exist or whose page id is invalid), with the tile's
 *   valid-row mask; up to three tiles ahead of the consumers.
 * - WG0 / WG1: WG c takes the CTA's tiles n with n & 1 == c (so always stages c and c + 2), with its
 *   own running maxima (lazy: exchanged only when a score passes them by 2^8), sums and O^T (8 M
 *   blocks x 16 fp32 per thread); interior tiles skip the mask. At the end of a request the two
 *   states are merged through shared memory (pair_merge, sm90_tile.cuh: WG0 keeps output dims 8 per
 *   16-dim run, WG1 the other 8).
 * Why (docs/performance.md §7): decode_fp8t.cu converts each tile once into a 16-bit tile that both
 * consumers read by descriptor, ~276 KB of shared-memory traffic per tile (SS wgmma reads A + B at
 * 128 B per clock: measured, bench/micro/wgmma_rate.cu), and its shared-memory pipe ran 82% busy.
 * Here a tile costs ~172 KB (36 KB bulk write, 68 KB raw reads, 68 KB of Q^T / P^T operand reads),
 * and the conversion is spread over the 256 consumer threads; the 32-row decode_narrow.cu design
 * before it converted every tile in both warpgroups.
 * Index permutations, the bf16 q scaling (2^e) and the masking are decode_narrow.cu's (see there). */
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
#include "narrow.cuh"

#define N32_NS 4          /* raw stages: stage s always belongs to consumer warpgroup s & 1 */
#define N32_BAR_CONS 1    /* named barrier: the two consumer warpgroups (256 threads, aligned uses) */
#define N32_BAR_WG 2      /* named barriers 2 + wg: consumer warpgroup wg (128 threads) */
#define N32_REG_CONS 232  /* setmaxnreg: 232 + 232 + 40 = 3 x 168 */
#define N32_REG_PROD 40

/* shared memory (from a 1024-aligned base): Q^T [NU][32][128 B], P^T [2 wg][2][32][128 B], stages
 * [4][64][DQK] raw, valid-row masks [4][2], column maxima [2 wg][2][4][32], column sums [2 wg][4][32],
 * request maxima [2 wg][32], running column maxima [2 wg][2][32], each consumer thread's running column
 * sums [2 wg][8][128], row_lim [64], q row scales [32], full[4] and empty[4] mbarriers. The merge
 * at a request's end reuses Q^T as its exchange buffer (32 KB). */
static __host__ __device__ __forceinline__ int n32_q_bytes(int dqk) { return dqk / 64 * 32 * 128; }
static __host__ __device__ __forceinline__ int n32_smem_bytes(int dqk) {
    return n32_q_bytes(dqk) + 2 * 2 * 32 * 128 + N32_NS * 64 * dqk + N32_NS * 8 + 2 * 2 * 4 * 32 * 4 + 2 * 4 * 32 * 4 +
           2 * 32 * 4 + 4 * 32 * 4 + 2 * 8 * 128 * 4 + 64 * 4 + 32 * 4 + 2 * N32_NS * 8 + 1024;
}

#if MLA_HAVE_SM90A
/* warp 8: every tile of the part in the consumers' order into stage n & 3 */
static __device__ __forceinline__ void n32_producer(const mla_dec_params *p, int kvh, mla_part_begin pb, mla_part_begin pe,
                                                    int r_last, uint32_t uSt, uint32_t *kvalid, uint32_t barF,
                                                    uint32_t barE, const int DQK) {
    const int lane = threadIdx.x & 31;
    tile_iter it; /* (req_prepare writes row_lim only in threads < 64: the producer passes none) */
    it.r = pb.req - 1;
    it.t = it.te = it.L = 0;
    tile_seek(p, pb, pe, r_last, 0, &it);
    for (uint32_t n = 0; it.r <= r_last; n++) {
        const int st = n & (N32_NS - 1);
        const long long tok = (long long)it.t * MLA_BN + lane;
        const char *s0 = k_row_ptr_es(p, it.r, kvh, tok, it.L, 1), *s1 = k_row_ptr_es(p, it.r, kvh, tok + 32, it.L, 1);
        if (n >= N32_NS) mbar_wait(barE + 8 * st, ((n / N32_NS) - 1) & 1); /* the stage's last tile is consumed */
        const uint32_t stage = uSt + st * 64 * DQK;
        nr_issue(stage, barF + 8 * st, kvalid + 2 * st, s0, lane, DQK);
        nr_issue(stage, barF + 8 * st, kvalid + 2 * st, s1, 32 + lane, DQK);
        it.t++;
        tile_seek(p, pb, pe, r_last, 0, &it);
    }
}

/* WG0 / WG1 (see the top) */
static __device__ __forceinline__ void n32_consumer(const mla_dec_params *p, int kvh, mla_part_begin pb, mla_part_begin pe,
                                                    int r_last, unsigned char *smem, const int DQK, const int F16) {
    const int NR = 32, NU = DQK / 64, NQ = 8 /* S^T columns per thread */, NA = 16 /* accumulators per M block */;
    unsigned char *sQ = smem;
    unsigned char *sP = sQ + n32_q_bytes(DQK);                  /* [2 wg][2][NR x 128 B] */
    unsigned char *sStage = sP + 2 * 2 * NR * 128;              /* [NS][64][DQK] */
    uint32_t *kvalid = (uint32_t *)(sStage + N32_NS * 64 * DQK); /* [NS][2] */
    float *sRed = (float *)(kvalid + N32_NS * 2);               /* [2 wg][2][4][NR] */
    float *sSum = sRed + 2 * 2 * 4 * NR;                        /* [2 wg][4][NR] */
    float *sM = sSum + 2 * 4 * NR;                              /* [2 wg][NR] */
    float *sMr = sM + 2 * NR;                                   /* [2 wg][2][NR] running column maxima */
    float *sLt = sMr + 4 * NR;                                  /* [2 wg][8][128] each thread's column sums */
    int *row_lim = (int *)(sLt + 2 * 8 * 128);                  /* [64] */
    float *sQs = (float *)(row_lim + 64);                       /* [NR] */
    const uint32_t barF = smem_u32(sQs + NR), barE = barF + 8 * N32_NS;
    float *xch = (float *)sQ; /* the merge's buffer (Q^T is free by then) */

    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, w4 = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, c = lane & 3;
    const int k0 = 16 * w4 + g, k1 = k0 + 8; /* this thread's S^T rows (keys of the tile) */
    const uint32_t uQ = smem_u32(sQ), uSt = smem_u32(sStage), uP = smem_u32(sP) + wg * 2 * NR * 128;
    const int hg = p->hg;
    float scale = p->scale_log2, dk = 1.f;
    if (p->descale_k) { /* per-tensor descales, read on the device */
        dk = __ldg(p->descale_k);
        scale *= dk * (p->descale_q ? __ldg(p->descale_q) : 1.f);
    }
    int n = 0;      /* the CTA's tile counter at the start of the request */
    uint32_t j = 0; /* this warpgroup's tiles so far */
    for (int r = pb.req; r <= r_last; r++) {
        req_work w;
        if (!req_prepare(p, r, pb, pe, 0, row_lim, &w)) continue;
        bar_sync(N32_BAR_CONS, 256); /* row_lim written; the previous request's merge is done */
        nr_build_qt(p, r, kvh, w.nvalid, uQ, sQs, DQK, F16, NR); /* Q^T (narrow.cuh), 256 threads */
        /* the smallest key limit of the request's real columns: a tile below it whose 64 keys are all
         * real needs no masking (columns >= nvalid are never stored: their scores do not matter) */
        int lim_min = 0x7fffffff;
        for (int col = 0; col < w.nvalid; col++) lim_min = min(lim_min, row_lim[col]);
        /* the running column maxima (the same in every thread of a warpgroup: in shared memory, two
         * buffers, mb the current one; written before the barrier the first tile's reads rely on) */
        if (t128 < NR) sMr[wg * 2 * NR + t128] = -INFINITY;
        int mb = 0;
        fence_proxy_async();
        bar_sync(N32_BAR_CONS, 256);

        float o[128]; /* O^T: local M block i (dims d0 + 2 i + h) at o[NA i + 4 jn + 2 h + e] */
#pragma unroll
        for (int i = 0; i < 8 * NA; i++) o[i] = 0.f;
        /* this thread's partial column sums: its own shared-memory slots (registers) */
#pragma unroll
        for (int q = 0; q < NQ; q++) sLt[(wg * NQ + q) * 128 + t128] = 0.f;
        for (int t = w.tb + ((wg - n) & 1); t < w.te; t += 2, j++) {
            const int nt = n + (t - w.tb); /* the CTA's tile index: stage nt & 3 */
            const int st = nt & (N32_NS - 1);
            mbar_wait(barF + 8 * st, (nt / N32_NS) & 1);
            const uint32_t stage = uSt + st * 64 * DQK;
            const unsigned long long km = lds_u64(smem_u32(kvalid) + st * 8); /* bit k: key k is real */

            /* S^T = K Q^T: per u, two 16-byte chunks -> four k-steps of A fragments, converted while
             * the previous batch runs */
            float s[16];
#pragma unroll
            for (int i = 0; i < NA; i++) s[i] = 0.f;
            uint32_t ak[2][16];
            uint4 y0 = lds128(stage + k0 * DQK + 16 * c), y1 = lds128(stage + k1 * DQK + 16 * c);
#pragma unroll
            for (int u = 0; u < NU; u++) {
                const uint4 x0 = y0, x1 = y1;
                if (u + 1 < NU) {
                    y0 = lds128(stage + k0 * DQK + 64 * (u + 1) + 16 * c);
                    y1 = lds128(stage + k1 * DQK + 64 * (u + 1) + 16 * c);
                }
                uint32_t *a = ak[u & 1];
                if (u >= 2) {
                    wg_wait1(); /* the batch that read ak[u & 1] has retired */
                    nr_keep(a, 16);
                    pin_n(s, NA);
                }
                const uint32_t w0[4] = {x0.x, x0.y, x0.z, x0.w}, w1[4] = {x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                for (int v = 0; v < 4; v++) {
                    nr_cvt4(w0[v], &a[4 * v + 0], &a[4 * v + 2]);
                    nr_cvt4(w1[v], &a[4 * v + 1], &a[4 * v + 3]);
                }
                pin_n(s, NA);
                wg_fence();
#pragma unroll
                for (int v = 0; v < 4; v++) nr_mma(s, a + 4 * v, desc_sw128(uQ + u * (NR * 128) + v * 32, 16, 1024), NR);
                wg_commit();
            }
            wg_wait0();
            nr_keep(ak[0], 16);
            nr_keep(ak[1], 16);
            pin_n(s, NA);

            /* mask and scale (log2 domain): s[4 jn + 2 h + e] is key (h ? k1 : k0), column 8 jn + 2 c + e.
             * Lazy maxima (as decode_fp8t.cu): the scores are exponentiated against the running column
             * maximum as long as none exceeds it by more than 8 (p <= 2^8: exact in fp16 and fp32), so
             * most tiles need no max exchange and no O^T rescale; one barrier.red.or decides. The key
             * limits and scales are read from shared memory (registers). */
            const int key0 = t * MLA_BN;
            const int ok0 = (int)(km >> k0) & 1, ok1 = (int)(km >> k1) & 1;
            const float *mold = sMr + (wg * 2 + mb) * NR;
            int need = 0;
            if (km == ~0ull && key0 + MLA_BN <= lim_min) { /* an interior tile (the same in every thread) */
#pragma unroll
                for (int q = 0; q < NQ; q++) {
                    const int jn = q >> 1, e = q & 1, col = 8 * jn + 2 * c + e;
                    const float sc = scale * sQs[col];
                    const float v0 = s[4 * jn + e] * sc, v1 = s[4 * jn + 2 + e] * sc;
                    s[4 * jn + e] = v0;
                    s[4 * jn + 2 + e] = v1;
                    need |= fmaxf(v0, v1) > mold[col] + 8.f;
                }
            } else {
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
            }
            nr_lazy_exp(s, o, need, mold, sMr, sRed, sLt, &mb, j, wg, N32_BAR_WG + wg, c, g, w4, t128, NQ, NR, NA);
            /* P^T (NR rows x 64 logical keys, SW128 K-major, fp16) into this warpgroup's buffer j & 1 */
            const uint32_t pt = uP + (j & 1) * (NR * 128);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int kap = h ? k1 : k0, kin = kap & 15;
                const int L = (kap & ~15) + 2 * (kin & 3) + ((kin >> 2) & 1) + 8 * (kin >> 3);
#pragma unroll
                for (int q = 0; q < NQ; q++) {
                    const int col = 8 * (q >> 1) + 2 * c + (q & 1);
                    const uint32_t bits = pack2(s[4 * (q >> 1) + 2 * h + (q & 1)], 0.f, 1) & 0xffffu;
                    const uint32_t a = pt + col * 128 + ((((L >> 3)) ^ (col & 7)) << 4) + (L & 7) * 2;
                    asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(a), "h"((unsigned short)bits) : "memory");
                }
            }
            fence_proxy_async();
            nbar_sync(N32_BAR_WG + wg, 128); /* P^T complete */

            /* O^T += V^T P^T: per k-step kk, keys 16 kk + c + 4 e + 8 hi, the 4 words at byte 128 w4 +
             * 16 g of each (word q: local M blocks 2 q, 2 q + 1); batches of two words (4 M blocks) */
            uint32_t av[2][16];
            const uint32_t vofs = 128 * w4 + 16 * g;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
#pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    const int bt = 2 * kk + hf;
                    uint32_t *a = av[bt & 1];
                    /* words 2 hf, 2 hf + 1 (8 bytes) of keys 16 kk + c + 4 e + 8 hi */
                    uint32_t X[2][2][2]; /* [e][hi][word] */
#pragma unroll
                    for (int e = 0; e < 2; e++)
#pragma unroll
                        for (int hi = 0; hi < 2; hi++) {
                            const int kap = 16 * kk + c + 4 * e + 8 * hi; /* (rows without a key are zeros) */
                            const uint2 y = lds64(stage + kap * DQK + vofs + 8 * hf);
                            X[e][hi][0] = y.x;
                            X[e][hi][1] = y.y;
                        }
                    if (bt >= 2) {
                        wg_wait1();
                        nr_keep(a, 16);
                        pin_n(o, 8 * NA);
                    }
#pragma unroll
                    for (int hi = 0; hi < 2; hi++)
#pragma unroll
                        for (int qq = 0; qq < 2; qq++) {
                            const uint32_t lo = nr_prmt(X[0][hi][qq], X[1][hi][qq], 0x5140u);
                            const uint32_t up = nr_prmt(X[0][hi][qq], X[1][hi][qq], 0x7362u);
                            nr_cvt4(lo, &a[4 * (2 * qq) + 2 * hi + 0], &a[4 * (2 * qq) + 2 * hi + 1]);
                            nr_cvt4(up, &a[4 * (2 * qq + 1) + 2 * hi + 0], &a[4 * (2 * qq + 1) + 2 * hi + 1]);
                        }
                    pin_n(o, 8 * NA);
                    wg_fence();
#pragma unroll
                    for (int i = 0; i < 4; i++) nr_mma(o + NA * (4 * hf + i), a + 4 * i, desc_sw128(pt + kk * 32, 16, 1024), NR);
                    wg_commit();
                }
            }
            mbar_arrive(barE + 8 * st); /* this thread's reads of the stage are done */
            wg_wait0();
            nr_keep(av[0], 16);
            nr_keep(av[1], 16);
            pin_n(o, 8 * NA);
        }
        n += w.te - w.tb;

        /* merge: column sums and maxima of both warpgroups, then the O^T halves (sm90_tile.cuh) */
        pair_merge(o, sLt, sMr, mb, sSum, sM, xch, N32_BAR_CONS, NR, NA);
        /* store: warpgroup wg has local M blocks 4 wg .. 4 wg + 3, output dims d0 + 8 wg .. + 7 */
        const int d0 = 128 * w4 + 16 * g + 8 * wg;
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int col = 8 * (q >> 1) + 2 * c + (q & 1);
            if (col >= w.nvalid) continue;
            float mm, lt, fo;
            pair_merged(sSum, sM, col, wg, NR, &mm, &lt, &fo);
            const float inv = row_inv(lt, dk); /* out = P V * descale_k */
            const int jq = col / hg, head = kvh * hg + col % hg;
            float vals[8];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int k = 4 * (q >> 1) + 2 * h + (q & 1);
                    vals[2 * i + h] = (wg ? o[NA * (4 + i) + k] : o[NA * i + k]) * inv; /* (no dynamic index) */
                }
            if (w.slot < 0) {
                uint4 *dst = (uint4 *)((char *)p->out +
                                       (out_row(p, r, jq, head) + d0) * 2);
                *dst = make_uint4(pack2(vals[0], vals[1], F16), pack2(vals[2], vals[3], F16), pack2(vals[4], vals[5], F16),
                                  pack2(vals[6], vals[7], F16));
            } else if (MLA_DIAG != 6) {
                const long long prow = part_row(p, w.slot, jq, head);
                float4 *dst = (float4 *)(p->oacc + prow * MLA_DV + d0);
                dst[0] = make_float4(vals[0], vals[1], vals[2], vals[3]);
                dst[1] = make_float4(vals[4], vals[5], vals[6], vals[7]);
            }
            if (wg == 0 && w4 == 0 && g == 0) store_lse(p, w.slot, r, jq, head, row_lse2(mm, lt));
        }
    }
}

static __device__ __forceinline__ void n32_body(const mla_dec_params *p, const int DQK, const int F16) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *smem = smem_align1024(smem_raw);
    const uint32_t uSt = smem_u32(smem) + n32_q_bytes(DQK) + 2 * 2 * 32 * 128;
    uint32_t *kvalid = (uint32_t *)(smem + n32_q_bytes(DQK) + 2 * 2 * 32 * 128 + N32_NS * 64 * DQK);
    const uint32_t barF = smem_u32(smem) + n32_smem_bytes(DQK) - 1024 - 2 * N32_NS * 8, barE = barF + 8 * N32_NS;
    if (threadIdx.x == 0) {
        for (int s = 0; s < N32_NS; s++) {
            mbar_init(barF + 8 * s, 64);  /* the producer warp's lanes, one arrival per row */
            mbar_init(barE + 8 * s, 128); /* the consumer warpgroup of the stage */
        }
        mbar_fence_init();
    }
    __syncthreads();
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    mla_part_begin pb, pe;
    if (threadIdx.x >= 256) {
        SETMAXNREG_DEC(N32_REG_PROD);
        if (threadIdx.x < 288) {
            part_bounds(p, blockIdx.z, 0, &pb, &pe, 0);
            n32_producer(p, blockIdx.y, pb, pe, pe.tile > 0 ? pe.req : pe.req - 1, uSt, kvalid, barF, barE, DQK);
        }
    } else {
        SETMAXNREG_INC(N32_REG_CONS);
        part_bounds(p, blockIdx.z, 0, &pb, &pe, 0);
        n32_consumer(p, blockIdx.y, pb, pe, pe.tile > 0 ? pe.req : pe.req - 1, smem, DQK, F16);
    }
    /* the producer's warps wait here rather than exit while the consumers still use named barriers */
    __syncthreads();
    pdl_trigger();
}
#define MLA_N32_BODY(DQK, F16) n32_body(&p, DQK, F16);
#else
#define MLA_N32_BODY(DQK, F16)
#endif

#define MLA_N32_KERNEL(name, DQK, F16)                                                                      \
    __global__ void __launch_bounds__(MLA_N32_THREADS, 1) name(const __grid_constant__ mla_dec_params p) {  \
        MLA_N32_BODY(DQK, F16)                                                                             \
    }
MLA_N32_KERNEL(mla_decode_sm90n32_bf16_576, 576, 0)
MLA_N32_KERNEL(mla_decode_sm90n32_bf16_512, 512, 0)
MLA_N32_KERNEL(mla_decode_sm90n32_fp16_576, 576, 1)
MLA_N32_KERNEL(mla_decode_sm90n32_fp16_512, 512, 1)

extern "C" const void *mla_k_n32_fn(int dqk, int f16) {
    if (dqk == 576) return f16 ? (const void *)mla_decode_sm90n32_fp16_576 : (const void *)mla_decode_sm90n32_bf16_576;
    return f16 ? (const void *)mla_decode_sm90n32_fp16_512 : (const void *)mla_decode_sm90n32_bf16_512;
}
extern "C" int mla_k_n32_smem(int dqk) { return n32_smem_bytes(dqk); }
