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
 *   softmax S0 against m -> m0, P0 (at m0);
 *   m0, P0 -> smem                               --S0-->  O_R = O_R a(m, m0) + P0 V_R(j0)
 *   O_L = O_L a(m, m0) + P0 V_L(j0)                        softmax S1 against m0 -> m1, P1 (at m1)
 *   refill group A of stage 0
 *   m1, P1 <- smem                               <--S1--  m1, P1 -> smem; refill group B of stage 0
 *   O_L = O_L a(m0, m1) + P1 V_L(j1)                       O_R = O_R a(m0, m1) + P1 V_R(j1)
 *   refill group A of stage 1; S0 = Q K(j0 + 2)^T          refill group B of stage 1; S1 = Q K(j1 + 2)^T
 *
 * (a(x, y) = exp2(x - y).) WG1's PV on tile j0 runs while it computes the softmax of tile j1, and
 * WG0's PV on j0 while it waits for it; stage 0's V_R is free, and refilled, before WG1 needs P1.
 * Each warpgroup keeps its own partial row sums, at the shared max; they are added in the epilogue.
 * Each warpgroup multiplies its own P from registers (RS) and the other's from one 8 KB SW128 tile
 * in smem (SS, FlashMLA's choice): WG0 writes P0 there before its arrive on S0; WG1 reads it with
 * its PV(j0) and writes P1 over it only after waiting for that wgmma, then arrives on S1; WG0's
 * PV(j1) reads P1 and is waited for before WG0 writes the next P0. Row maxima go through smem per
 * row. Each K stage is refilled in two chunk groups with their own transaction mbarriers, by the
 * warpgroup that reads the group last: A = chunks 0-3 (V_L) and 8 (RoPE), refilled by WG0 once its
 * PV_L on the stage is done; B = chunks 4-7 (V_R), refilled by WG1. The thread issuing group A also
 * writes the tile's 64-bit valid-key mask before arriving on the group's mbarrier (release), so the
 * owner reads it after its wait (acquire). The owner of a request's last, partial tile zeroes V
 * rows past the length before its QK^T (TMA loads whatever the page holds there; P = 0 times NaN is
 * NaN); rows of pages with an invalid id are zero-filled by the copy engine and masked.
 *
 * Measured on an H200 (docs/performance.md "v5"): correct, but slower than v3 (2584 vs 2015 us at
 * b=128 s_q=2 h_q=128 s_k=16384): with two 72 KB stages a stage is busy from its owner's QK^T to the
 * other warpgroup's PV, so at this pace a refill has ~1 us before it is needed, less than the TMA
 * latency under load; v3's one-tile-ahead load has a whole (longer) tile. Not the default.
 */
#include "sm90_tile.cuh"
#include "launch.h"

/* diagnosis build only (racecheck): both sides of each hand-off use bar.sync instead of arrive -> sync */
#ifndef MLA_SS_SYNC_ONLY
#define MLA_SS_SYNC_ONLY 0
#endif
#define SS_SIGNAL(id) (MLA_SS_SYNC_ONLY ? bar_sync(id, 256) : bar_arrive(id, 256))

#define SS_BAR_S0 1  /* WG0 -> WG1: row max after tile j0 (256) */
#define SS_BAR_S1 2  /* WG1 -> WG0: row max after tile j1, P(j1) fragments (256) */
#define SS_BAR_WG0 4 /* warpgroup 0 only (128) */
#define SS_BAR_WG1 5 /* warpgroup 1 only (128) */

#if MLA_HAVE_SM90A
#define SS_GROUP_A 0x10Fu /* chunks 0-3 (V_L) and 8 (RoPE; d_qk 576 only) */
#define SS_GROUP_B 0x0F0u /* chunks 4-7 (V_R) */

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
    if (NC64 == 9) sm90_qk(s, uQ, uK, 8, 9, F16, MLA_DESC_AT);
    sm90_qk(s, uQ, uK, 0, 4, F16, MLA_DESC_AT);
    mbar_wait(barB, ph);
    wg_fence();
    sm90_qk(s, uQ, uK, 4, 8, F16, MLA_DESC_AT);
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
    unsigned char *sP = smem + 3 * TILE; /* 64 x 64 16-bit P, SW128 (1024-aligned: TILE is) */
    float *sM0 = (float *)(sP + 8192), *sM1 = sM0 + 64, *sLx = sM0 + 128; /* [64] each */
    float *sInv = sM0 + 256, *sLse = sInv + 64;                       /* [64], [64] */
    int *row_lim = (int *)(sLse + 64);                                /* [64] */
    unsigned long long *kmask = (unsigned long long *)(row_lim + 64); /* [2] */
    uint64_t *bars = (uint64_t *)((unsigned char *)kmask + 128);      /* A[2], B[2] */

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    const int r0 = 16 * ((tid & 127) >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mb_cta = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int mb_u = 0; /* req_mblk: units of the part's requests so far, mod num_m_blocks */
    const float scale = p->scale_log2;
    const uint32_t uQ = smem_u32(smem), uK0 = uQ + TILE, uK1 = uQ + 2 * TILE, uP = uQ + 3 * TILE;
    unsigned char *sK0 = smem + TILE, *sK1 = smem + 2 * TILE;
    const uint32_t barA = smem_u32(bars), barB = barA + 16; /* + 8 * stage */

    mla_part_begin pb, pe;
    part_bounds(p, part, sP, &pb, &pe, 0);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    if (tid == 0) {
        for (int i = 0; i < 4; i++) mbar_init(barA + 8 * i, 1);
        mbar_fence_init();
    }
    __syncthreads();
    int u0 = 0, u1 = 0; /* tiles loaded into stage 0 / 1 before the current request (phase = count & 1) */

    for (int r = pb.req; r <= r_last; r++) {
        const int mblk = req_mblk(p, r, mb_cta, &mb_u);
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
            uint32_t a[4][4];
            if (wg == 0) ss_qk(s, uQ, uK0, sK0, barA, barB, u0 & 1, L - tb * MLA_BN, SS_BAR_WG0, NC64, F16);
            else if (N > 1)
                ss_qk(s, uQ, uK1, sK1, barA + 8, barB + 8, u1 & 1, L - (tb + 1) * MLA_BN, SS_BAR_WG1, NC64, F16);

            for (int j0 = 0; j0 < N; j0 += 2) {
                const int j1 = j0 + 1, has1 = j1 < N;
                if (wg == 0) {
                    /* softmax of tile j0 against the running max; its max and P0 (at that max) to WG1 */
                    float f0, f1;
                    ss_softmax(s, 0, kmask[0], (tb + j0) * MLA_BN, lim0, lim1, scale, &m0, &m1, &l0, &l1, &f0, &f1);
                    if ((lane & 3) == 0) {
                        sM0[r0] = m0;
                        sM0[r1] = m1;
                    }
                    ss_store_p(sP, s, F16); /* sP's last reader, PV_L(j1 - 2), was waited for */
                    SS_SIGNAL(SS_BAR_S0);
                    /* O_L = O_L a(m, m0) + P0 V_L(j0) */
                    ss_pack(s, a, 1.f, 1.f, F16);
                    ss_rescale_pv(o, f0, f1, a, uP, uK0, 0, 0, F16);
                    wg_wait0(); /* PV_L(j0) (WG1 is in its softmax meanwhile) */
                    pin128(o);
                    if (j0 + 2 < N) { /* group A of stage 0 is free (its readers: QK(j0), PV_L(j0)) */
                        bar_sync(SS_BAR_WG0, 128);
                        if (tid == 0)
                            ss_tma(p, tm, r, kvh, tb + j0 + 2, L, uK0, barA, SS_GROUP_A, NC64, kmask);
                    }
                    /* WG1's max after tile j1, and P1 in sP */
                    bar_sync(SS_BAR_S1, 256);
                    if (has1) { /* O_L = O_L a(m0, m1) + P1 V_L(j1) */
                        float g0, g1;
                        ss_take_max(sM1, r0, r1, &m0, &m1, &l0, &l1, &g0, &g1);
                        ss_rescale_pv(o, g0, g1, a, uP, uK1, 0, 1, F16);
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
                    /* WG0's max after tile j0 and P0: O_R = O_R a(m, m0) + P0 V_R(j0) */
                    bar_sync(SS_BAR_S0, 256);
                    float f0, f1;
                    ss_take_max(sM0, r0, r1, &m0, &m1, &l0, &l1, &f0, &f1);
                    ss_rescale_pv(o, f0, f1, a, uP, uK0, 1, 1, F16);
                    float g0 = 1.f, g1 = 1.f;
                    if (has1) { /* softmax of tile j1 against m0, while PV_R(j0) runs */
                        ss_softmax(s, 0, kmask[1], (tb + j1) * MLA_BN, lim0, lim1, scale, &m0, &m1, &l0, &l1, &g0, &g1);
                    }
                    wg_wait0(); /* PV_R(j0): sP (P0) and stage 0's group B are free */
                    pin128(o);
                    if (has1) { /* max and P1 to WG0 */
                        if ((lane & 3) == 0) {
                            sM1[r0] = m0;
                            sM1[r1] = m1;
                        }
                        ss_store_p(sP, s, F16);
                    }
                    SS_SIGNAL(SS_BAR_S1);
                    if (j0 + 2 < N) { /* group B of stage 0 is free (QK(j0) by WG0, PV_R(j0)) */
                        bar_sync(SS_BAR_WG1, 128);
                        if (tid == 128)
                            ss_tma(p, tm, r, kvh, tb + j0 + 2, L, uK0, barB, SS_GROUP_B, NC64, 0);
                    }
                    if (has1) { /* O_R = O_R a(m0, m1) + P1 V_R(j1) */
                        ss_pack(s, a, 1.f, 1.f, F16);
                        ss_rescale_pv(o, g0, g1, a, uP, uK1, 1, 0, F16);
                        wg_wait0();
                        pin128(o);
                        if (j1 + 2 < N) { /* group B of stage 1 is free (QK(j1), PV_R(j1)) */
                            bar_sync(SS_BAR_WG1, 128);
                            if (tid == 128)
                                ss_tma(p, tm, r, kvh, tb + j1 + 2, L, uK1, barB + 8, SS_GROUP_B, NC64, 0);
                        }
                        if (j1 + 2 < N)
                            ss_qk(s, uQ, uK1, sK1, barA + 8, barB + 8, (u1 + (j1 >> 1) + 1) & 1,
                                  L - (tb + j1 + 2) * MLA_BN, SS_BAR_WG1, NC64, F16);
                    }
                }
            }
            u0 += (N + 1) >> 1;
            u1 += N >> 1;
        }
        ss_merge_sums(&l0, &l1, sLx, wg, lane, r0, r1); /* then the shared epilogue */
        sm90_epilogue(p, &w, r, mblk, kvh, o, m0, m1, l0, l1, 1.f, sInv, sLse, F16, 0, 0);
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
