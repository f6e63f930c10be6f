/* decode_seesaw.cu — v5: dense MLA decode on Hopper with the "seesaw" schedule (sm_90a; wgmma + TMA).
 *
 * Same work decomposition, scheduler, combine, shared-memory size and tile pieces as v2/v3
 * (kernels/sm90_tile.cuh); what changes is who computes what. In v2/v3 warpgroup 0 runs QK^T and
 * the softmax of every tile while warpgroup 1 waits, so per tile the ~0.7 us of softmax/hand-off
 * and the ~1.1 us of wgmma run in sequence (docs/performance.md "v2.1"). Here the tiles of a request
 * alternate between the warpgroups (tile j in stage j & 1, owned by WG j & 1) and the two share one
 * running row max, so one warpgroup's softmax runs while the other's wgmmas keep the tensor cores
 * busy (hopper-c.md §3.3). Per pair of tiles (j0 = 2i in stage 0, j1 = 2i + 1 in stage 1):
 *
 *   WG0 (owns O[:, 0:256])                         WG1 (owns O[:, 256:512])
 *   S0 = Q K(j0)^T (issued at the end of the last pair)   S1 = Q K(j1)^T (likewise)
 *   softmax S0 against m -> m0, P0; m0 -> smem  --S0-->  rescale factor m -> m0
 *   O_L *= a(m, m0); O_L += P0 V_L(j0)              softmax S1 against m0 -> m1, P1
 *   P1, m1 <- smem                              <--S1--  P1, m1 -> smem; O_R *= a(m, m1)
 *   P0 * a(m0, m1) -> smem                      --P0-->  O_R += P1 V_R(j1); O_R += P0' V_R(j0)
 *   O_L *= a(m0, m1); O_L += P1 V_L(j1)                  refill V_R groups of both stages
 *   refill V_L (+ RoPE) groups of both stages            S1 = Q K(j1 + 2)^T
 *   S0 = Q K(j0 + 2)^T
 *
 * Each warpgroup keeps its own partial row sums, at the shared max; they are added in the epilogue.
 * P moves in fragment order through one 8 KB buffer: slot [k][t] is written and read only by thread
 * t of each warpgroup, alternately (P1 by WG1, read by WG0, P0' by WG0, read by WG1), each hand-off
 * ordered by a named barrier, the next write by program order; the row maxima go through smem per
 * row. Each K stage is refilled in two chunk groups with their own transaction mbarriers, by the
 * warpgroup that reads the group last: A = chunks 0-3 (V_L) and 8 (RoPE), refilled by WG0 once its
 * PV_L on the stage is done; B = chunks 4-7 (V_R), refilled by WG1. The thread issuing group A also
 * writes the tile's 64-bit valid-key mask before arriving on the group's mbarrier (release), so the
 * owner reads it after its wait (acquire). The owner of a request's last, partial tile zeroes V
 * rows past the length before its QK^T (TMA loads whatever the page holds there; P = 0 times NaN is
 * NaN); rows of pages with an invalid id are zero-filled by the copy engine and masked.
 */
#include "sm90_tile.cuh"
#include "launch.h"

#define SS_BAR_S0 1  /* WG0 -> WG1: row max after tile j0 (256) */
#define SS_BAR_S1 2  /* WG1 -> WG0: row max after tile j1, P(j1) fragments (256) */
#define SS_BAR_P0 3  /* WG0 -> WG1: P(j0) fragments at the pair's max (256) */
#define SS_BAR_WG0 4 /* warpgroup 0 only (128) */
#define SS_BAR_WG1 5 /* warpgroup 1 only (128) */

#if MLA_HAVE_SM90A
#define SS_GROUP_A 0x10Fu /* chunks 0-3 (V_L) and 8 (RoPE; d_qk 576 only) */
#define SS_GROUP_B 0x0F0u /* chunks 4-7 (V_R) */

/* Thread-local: the 64-column chunks in cmask of K tile t of request r into `tile` by TMA (one box
 * per chunk and per page slice of BR = gcd(page, 64) rows; slices past the length or with a page id
 * outside [0, num_pages) use an out-of-range page coordinate, which the copy engine zero-fills and
 * still counts), completion on `bar`. km != NULL: first writes the tile's valid-key mask (bit k:
 * token 64 t + k is below the length and on a page with a valid id). */
static __device__ __forceinline__ void ss_tma(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh, int t,
                                              int L, uint32_t tile, uint32_t bar, unsigned cmask, const int NC64,
                                              unsigned long long *km) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    const unsigned long long slice = BR == 64 ? ~0ull : ((1ull << BR) - 1);
    int pid[4], row0[4];
    unsigned long long mask = 0;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        pid[k] = (int)p->num_pages;
        row0[k] = 0;
        const int tok0 = t * MLA_BN + k * BR;
        if (k < 64 / BR && tok0 < L) {
            const unsigned pidx = (unsigned)tok0 / (unsigned)ps; /* 0 <= tok0 < L <= INT32_MAX */
            const int id = p->block_table[(long long)r * p->bt_stride + pidx];
            if (id >= 0 && (long long)id < p->num_pages) {
                pid[k] = id;
                row0[k] = (int)((unsigned)tok0 - pidx * (unsigned)ps);
                mask |= slice << (k * BR);
            }
        }
    }
    const int nk = L - t * MLA_BN;
    if (nk < 64) mask &= (1ull << nk) - 1;
    if (km) *km = mask;
    cmask &= (1u << NC64) - 1;
    mbar_expect_tx(bar, __popc(cmask) * 8192);
#pragma unroll
    for (int k = 0; k < 4; k++)
        if (k < 64 / BR)
#pragma unroll
            for (int c = 0; c < 9; c++)
                if ((cmask >> c) & 1) tma_load_4d(tile + c * 8192 + k * BR * 128, tm, bar, 64 * c, row0[k], kvh, pid[k]);
}

/* exp2(m_old - m_new) with the all-masked guard (m_new = -inf: 0 - ... as in the softmax) */
static __device__ __forceinline__ float ss_alpha(float m_old, float m_new) {
    return fast_exp2(m_old - (m_new == -INFINITY ? 0.f : m_new));
}

/* Online softmax step of one 64 x 64 S tile of this warpgroup (fragment s[32], rows r0 / r1): mask
 * (bit of km set and key below the row's limit), scale into the log2 domain, raise the running max
 * m0 / m1 (in: the max before this tile; out: after it), s <- exp2(s - max) (0 where masked), sum0 /
 * sum1 <- this thread's sums of its elements of each row. */
static __device__ __forceinline__ void ss_softmax(float *s, unsigned long long km, int key0, int lim0, int lim1,
                                                  float scale, float *m0, float *m1, float *sum0, float *sum1) {
    float mx0, mx1;
    sm90_mask_max(s, 0, km, key0, lim0, lim1, scale, &mx0, &mx1);
    *m0 = fmaxf(*m0, mx0);
    *m1 = fmaxf(*m1, mx1);
    sm90_exp_sum(s, *m0 == -INFINITY ? 0.f : *m0, *m1 == -INFINITY ? 0.f : *m1, sum0, sum1);
}

/* P (fp32 fragment s) times the row factors f0 (row r0) / f1 (r1) as 16-bit A fragments */
static __device__ __forceinline__ void ss_pack(const float *s, uint32_t a[4][4], float f0, float f1, const int F16) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) {
            const float f = (jj & 1) ? f1 : f0;
            a[kk][jj] = pack2(s[8 * kk + 2 * jj] * f, s[8 * kk + 2 * jj + 1] * f, F16);
        }
}
static __device__ __forceinline__ void ss_put_p(uint32_t *sPf, uint32_t a[4][4]) {
    const int t128 = threadIdx.x & 127;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) sPf[(kk * 4 + jj) * 128 + t128] = a[kk][jj];
}
static __device__ __forceinline__ void ss_get_p(const uint32_t *sPf, uint32_t a[4][4]) {
    const int t128 = threadIdx.x & 127;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) a[kk][jj] = sPf[(kk * 4 + jj) * 128 + t128];
}

/* S = Q K^T of the tile in stage `tile` (shared address uK) for the owning warpgroup, waited:
 * group A's chunks first, then B's. nk < 64 (the request's last tile): V rows [nk, 64) are zeroed
 * by this warpgroup first (both groups waited; every earlier reader of the stage is done, since the
 * groups were refilled after them). */
static __device__ __forceinline__ void ss_qk(float *s, uint32_t uQ, uint32_t uK, unsigned char *tile, uint32_t barA,
                                             uint32_t barB, int ph, int nk, int wbar, const int NC64, const int F16) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.f;
    pin32(s);
    mbar_wait(barA, ph);
    if (nk < 64) {
        mbar_wait(barB, ph);
        const int n = (64 - nk) * 64; /* 8 V chunks x 8 pieces per row */
        for (int idx = threadIdx.x & 127; idx < n; idx += 128) {
            const int row = nk + (idx >> 6), rem = idx & 63;
            *(uint4 *)(tile + (rem >> 3) * 8192 + row * 128 + (rem & 7) * 16) = make_uint4(0, 0, 0, 0);
        }
        fence_proxy_async();
        bar_sync(wbar, 128);
    }
    wg_fence();
    if (NC64 == 9) sm90_qk(s, uQ, uK, 8, 9, F16);
    sm90_qk(s, uQ, uK, 0, 4, F16);
    mbar_wait(barB, ph);
    wg_fence();
    sm90_qk(s, uQ, uK, 4, 8, F16);
    wg_commit();
    wg_wait0();
    pin32(s);
}

static __device__ __forceinline__ void ss_body(const mla_dec_params *p, const CUtensorMap *tm, const int DQK,
                                               const int F16) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    /* the layout of sm90_smem_bytes: Q, 2 K stages, 8 KB P fragments, 1 KB (here: row maxima of
     * both warpgroups and WG1's row sums), 1/l and lse, row limits, 128 B (here: 2 key masks), bars */
    uint32_t *sPf = (uint32_t *)(smem + 3 * TILE);                    /* [16][128] */
    float *sM0 = (float *)(sPf + 16 * 128), *sM1 = sM0 + 64, *sLx = sM0 + 128; /* [64] each */
    float *sInv = sM0 + 256, *sLse = sInv + 64;                       /* [64], [64] */
    int *row_lim = (int *)(sLse + 64);                                /* [64] */
    unsigned long long *kmask = (unsigned long long *)(row_lim + 64); /* [2] */
    uint64_t *bars = (uint64_t *)((unsigned char *)kmask + 128);      /* A[2], B[2] */

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    const int r0 = 16 * ((tid & 127) >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mblk = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const float scale = p->scale_log2;
    const uint32_t uQ = smem_u32(smem), uK0 = uQ + TILE, uK1 = uQ + 2 * TILE;
    unsigned char *sK0 = smem + TILE, *sK1 = smem + 2 * TILE;
    const uint32_t barA = smem_u32(bars), barB = barA + 16; /* + 8 * stage */

    const mla_part_begin pb = p->part_begin[part];
    const mla_part_begin pe = p->part_begin[part + 1];
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    if (tid == 0) {
        for (int i = 0; i < 4; i++) mbar_init(barA + 8 * i, 1);
        mbar_fence_init();
    }
    __syncthreads();
    int u0 = 0, u1 = 0; /* tiles loaded into stage 0 / 1 before the current request (phase = count & 1) */

    for (int r = pb.req; r <= r_last; r++) {
        req_work w;
        if (!req_prepare(p, r, pb, pe, mblk, row_lim, &w)) continue;
        float o[128];
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] = 0.f;
        /* running max (log2 domain; equal in both warpgroups after each pair), this WG's row sums */
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
        const int tb = w.tb, N = w.te - w.tb, L = w.L;

        if (N > 0) {
            if (tid == 0)
                for (int j = 0; j < 2 && j < N; j++) {
                    const uint32_t uK = j ? uK1 : uK0;
                    ss_tma(p, tm, r, kvh, tb + j, L, uK, barA + 8 * j, SS_GROUP_A, NC64, kmask + j);
                    ss_tma(p, tm, r, kvh, tb + j, L, uK, barB + 8 * j, SS_GROUP_B, NC64, 0);
                }
            sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
            cp_async_commit();
            cp_async_wait0();
            fence_proxy_async();
            __syncthreads();
            const int lim0 = row_lim[r0], lim1 = row_lim[r1];
            float s[32];
            uint32_t a[4][4], b[4][4];
            if (wg == 0) ss_qk(s, uQ, uK0, sK0, barA, barB, u0 & 1, L - tb * MLA_BN, SS_BAR_WG0, NC64, F16);
            else if (N > 1)
                ss_qk(s, uQ, uK1, sK1, barA + 8, barB + 8, u1 & 1, L - (tb + 1) * MLA_BN, SS_BAR_WG1, NC64, F16);

            for (int j0 = 0; j0 < N; j0 += 2) {
                const int j1 = j0 + 1, has1 = j1 < N;
                if (wg == 0) {
                    /* softmax of tile j0 against the running max; the new max to WG1 */
                    const float mp0 = m0, mp1 = m1;
                    float sum0, sum1;
                    ss_softmax(s, kmask[0], (tb + j0) * MLA_BN, lim0, lim1, scale, &m0, &m1, &sum0, &sum1);
                    const float f0 = ss_alpha(mp0, m0), f1 = ss_alpha(mp1, m1);
                    l0 = l0 * f0 + sum0;
                    l1 = l1 * f1 + sum1;
                    if ((lane & 3) == 0) {
                        sM0[r0] = m0;
                        sM0[r1] = m1;
                    }
                    bar_arrive(SS_BAR_S0, 256);
                    /* O_L += P0 V_L(j0) */
                    if (__any_sync(0xffffffffu, f0 != 1.f || f1 != 1.f)) sm90_rescale(o, f0, f1);
                    ss_pack(s, a, 1.f, 1.f, F16);
                    pin128(o);
                    wg_fence();
                    sm90_pv(o, a, uK0, 0, F16);
                    wg_commit();
                    /* WG1's max after tile j1 and P(j1); then P0 at that max to WG1. (PV_L(j0) is
                     * waited first, so P(j1) can take P0's registers: holding both with P0's fp32
                     * values spilled at 255 registers; PV_L(j0) is done by the time WG1's softmax is.) */
                    bar_sync(SS_BAR_S1, 256);
                    wg_wait0(); /* PV_L(j0) */
                    pin128(o);
                    float g0 = 1.f, g1 = 1.f;
                    if (has1) {
                        const float n0 = sM1[r0], n1 = sM1[r1];
                        g0 = ss_alpha(m0, n0);
                        g1 = ss_alpha(m1, n1);
                        m0 = n0;
                        m1 = n1;
                        ss_get_p(sPf, a);
                    }
                    {
                        uint32_t c[4][4];
                        ss_pack(s, c, g0, g1, F16);
                        ss_put_p(sPf, c);
                    }
                    bar_arrive(SS_BAR_P0, 256);
                    if (j0 + 2 < N) { /* group A of stage 0 is free (its readers: QK(j0), PV_L(j0)) */
                        bar_sync(SS_BAR_WG0, 128);
                        if (tid == 0)
                            ss_tma(p, tm, r, kvh, tb + j0 + 2, L, uK0, barA, SS_GROUP_A, NC64, kmask);
                    }
                    if (has1) { /* O_L += P1 V_L(j1) */
                        if (__any_sync(0xffffffffu, g0 != 1.f || g1 != 1.f)) sm90_rescale(o, g0, g1);
                        l0 *= g0;
                        l1 *= g1;
                        pin128(o);
                        wg_fence();
                        sm90_pv(o, a, uK1, 0, F16);
                        wg_commit();
                        wg_wait0();
                        pin128(o);
                        if (j1 + 2 < N) { /* group A of stage 1 is free (QK(j1) by WG1, PV_L(j1)) */
                            bar_sync(SS_BAR_WG0, 128);
                            if (tid == 0)
                                ss_tma(p, tm, r, kvh, tb + j1 + 2, L, uK1, barA + 8, SS_GROUP_A, NC64, kmask + 1);
                        }
                    }
                    if (j0 + 2 < N)
                        ss_qk(s, uQ, uK0, sK0, barA, barB, (u0 + (j0 >> 1) + 1) & 1, L - (tb + j0 + 2) * MLA_BN,
                              SS_BAR_WG0, NC64, F16);
                } else {
                    /* WG0's max after tile j0 */
                    bar_sync(SS_BAR_S0, 256);
                    const float n0 = sM0[r0], n1 = sM0[r1];
                    float f0 = ss_alpha(m0, n0), f1 = ss_alpha(m1, n1);
                    m0 = n0;
                    m1 = n1;
                    if (has1) {
                        /* softmax of tile j1 against it; max and P(j1) to WG0; O_R += P1 V_R(j1) */
                        const float mp0 = m0, mp1 = m1;
                        float sum0, sum1;
                        ss_softmax(s, kmask[1], (tb + j1) * MLA_BN, lim0, lim1, scale, &m0, &m1, &sum0, &sum1);
                        f0 *= ss_alpha(mp0, m0);
                        f1 *= ss_alpha(mp1, m1);
                        l0 = l0 * f0 + sum0;
                        l1 = l1 * f1 + sum1;
                        if ((lane & 3) == 0) {
                            sM1[r0] = m0;
                            sM1[r1] = m1;
                        }
                        ss_pack(s, a, 1.f, 1.f, F16);
                        ss_put_p(sPf, a);
                        bar_arrive(SS_BAR_S1, 256);
                        if (__any_sync(0xffffffffu, f0 != 1.f || f1 != 1.f)) sm90_rescale(o, f0, f1);
                        pin128(o);
                        wg_fence();
                        sm90_pv(o, a, uK1, 1, F16);
                        wg_commit();
                    } else {
                        l0 *= f0;
                        l1 *= f1;
                        bar_arrive(SS_BAR_S1, 256);
                        if (__any_sync(0xffffffffu, f0 != 1.f || f1 != 1.f)) sm90_rescale(o, f0, f1);
                        pin128(o);
                    }
                    /* O_R += P0' V_R(j0) */
                    bar_sync(SS_BAR_P0, 256);
                    ss_get_p(sPf, b);
                    wg_fence();
                    sm90_pv(o, b, uK0, 1, F16);
                    wg_commit();
                    wg_wait0();
                    pin128(o);
                    if (j0 + 2 < N) { /* group B of both stages is free (last reader: PV_R) */
                        bar_sync(SS_BAR_WG1, 128);
                        if (tid == 128) {
                            if (j1 + 2 < N) ss_tma(p, tm, r, kvh, tb + j1 + 2, L, uK1, barB + 8, SS_GROUP_B, NC64, 0);
                            ss_tma(p, tm, r, kvh, tb + j0 + 2, L, uK0, barB, SS_GROUP_B, NC64, 0);
                        }
                    }
                    if (j1 + 2 < N)
                        ss_qk(s, uQ, uK1, sK1, barA + 8, barB + 8, (u1 + (j1 >> 1) + 1) & 1,
                              L - (tb + j1 + 2) * MLA_BN, SS_BAR_WG1, NC64, F16);
                }
            }
            u0 += (N + 1) >> 1;
            u1 += N >> 1;
        }
        /* row sums: WG1's (quad-reduced) into WG0's quad-lane 0, then the shared epilogue */
        if (wg == 1) {
            l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
            if ((lane & 3) == 0) {
                sLx[r0] = l0;
                sLx[r1] = l1;
            }
        }
        __syncthreads();
        if (wg == 0 && (lane & 3) == 0) {
            l0 += sLx[r0];
            l1 += sLx[r1];
        }
        sm90_epilogue(p, &w, r, mblk, kvh, o, m0, m1, l0, l1, 1.f, sInv, sLse, F16, 0);
    }
    pdl_trigger();
}
#endif /* MLA_HAVE_SM90A */

MLA_SM90_TM_KERNEL(mla_decode_seesaw_bf16_576, ss_body(&p, &tm, 576, 0))
MLA_SM90_TM_KERNEL(mla_decode_seesaw_bf16_512, ss_body(&p, &tm, 512, 0))
MLA_SM90_TM_KERNEL(mla_decode_seesaw_fp16_576, ss_body(&p, &tm, 576, 1))
MLA_SM90_TM_KERNEL(mla_decode_seesaw_fp16_512, ss_body(&p, &tm, 512, 1))

extern "C" const void *mla_k_seesaw_fn(int dqk, int f16) {
    if (dqk == 576) return f16 ? (const void *)mla_decode_seesaw_fp16_576 : (const void *)mla_decode_seesaw_bf16_576;
    return f16 ? (const void *)mla_decode_seesaw_fp16_512 : (const void *)mla_decode_seesaw_bf16_512;
}
