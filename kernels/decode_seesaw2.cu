/* decode_seesaw2.cu — v6: dense MLA decode on Hopper, the seesaw in FlashMLA's order (sm_90a; wgmma + TMA).
 *
 * Same work decomposition, scheduler, combine and tile pieces as v3 (kernels/decode_sm90.cu tma_body)
 * and v5 (kernels/decode_seesaw.cu); 256 threads, O[:, 0:256] in warpgroup 0 and O[:, 256:512] in
 * warpgroup 1, tiles of a request in pairs: j0 = 2i in stage 0 (its S computed by WG0), j1 = 2i + 1 in
 * stage 1 (by WG1). What differs from v5 is the order of the pair (hopper-c.md §3.3; read from
 * FlashMLA's SM90 dense loop, written here in our own pieces):
 *
 *   WG0 (owns stage 0's S, O_L)                         WG1 (owns stage 1's S, O_R)
 *   1 softmax S0 against m -> m0, P0 (at m0); m0 -> sM0
 *     --M0-->  O_L *= a(m, m0); O_L += P0 V_L(j0) (RS),  2 (M0) f = a(m, m0); softmax S1 against m0 -> m1,
 *     waited                                                P1 (at m1); m1 -> sM1 --M1-->; P1 -> sP1;
 *   3 (M1) refill stage 0 chunks 0-3 (tile j0 + 2);         O_R *= f a(m0, m1); O_R += P1 V_R(j1) (RS)
 *     P0 *= a(m0, m1) -> sP0 --P0-->                     4 (P0) O_R += sP0 V_R(j0) (SS) --PV-->;
 *   5 (PV) O_L *= a(m0, m1); O_L += sP1 V_L(j1) (SS);       PV_R(j1) done: refill stage 1 chunks 4-8;
 *     S0' = Q K(j0 + 2)^T chunks 0-3; PV_L(j1) done:        sP0 V_R(j0) done: refill stage 0 chunks 4-8;
 *     refill stage 1 chunks 0-3; S0' chunks 4-8; waited    (next pair, first) S1' = Q K(j1 + 2)^T
 *                                                          chunks 4-8, 0-3; waited
 *
 * (a(x, y) = exp2(x - y).) One warpgroup's softmax runs while the other's wgmmas keep the tensor pipe
 * busy, and each chunk group of a stage is refilled by the last warpgroup to read it, as soon as that
 * read is done: the V_L chunks (0-3) after WG0's PV on them, the V_R chunks and RoPE (4-8) after WG1's.
 * The next S walks the chunks in the order they were requested. Each 64-column chunk of a stage has its
 * own transaction mbarrier (9 per stage), armed by the thread that issues its TMA (arrive.expect_tx),
 * and is waited right before its four wgmmas (MLA_SS2_CHUNK_WAIT = 1: a wgmma.fence and a commit group
 * per chunk, FlashMLA's choice; 0: one wait point per group of chunks).
 *
 * Shared memory (d_qk 576): Q (9 x 8 KB; its RoPE chunk is read into registers, 16 per thread, by both
 * warpgroups at the start of a request, and the chunk then holds sP1), K stage 0, K stage 1 (72 KB each),
 * sP0 (8 KB), maxima, row sums, 1/l and lse, row limits, two key masks, the request's epilogue fields,
 * 18 mbarriers: 232,112 bytes with the alignment slack. d_qk 512 keeps the same map (the ninth Q chunk
 * is sP1 from the start).
 *
 * Each warpgroup zeroes the V rows past the length of a request's last, partial tile in the half it
 * reads, before its PV on it (TMA loads whatever the page holds there; P = 0 times NaN is NaN); rows of
 * invalid pages are zero-filled by the copy engine and masked by the tile's key mask, which the thread
 * arming chunks 0-3 writes before its arrive (release) and the owner reads after its waits (acquire).
 * Hand-offs between the warpgroups are named barriers (arrive by the producer, sync by the consumer),
 * each used once per pair in a fixed order, so neither warpgroup can run a pair ahead. The whole order
 * is transcribed in tools/seesaw2_model.py and checked there for deadlocks and hazards: change both
 * together. Written without a GPU (fifteenth session); docs/performance.md §14.
 */
#undef MLA_DESC_AT
#define MLA_DESC_AT 0 /* sm90_tile.cuh's descriptors as before: with desc_sw128_at the d_v 512 entry spills 8 bytes */
#include "sm90_tile.cuh"
#include "launch.h"

#ifndef MLA_SS2_CHUNK_WAIT
#define MLA_SS2_CHUNK_WAIT 1
#endif
/* timing switch MLA_SS2_L2PF=1: the thread that refills a stage's chunks 0-3 with tile j + 2 also
 * prefetches tile j + 4 into L2 (cp.async.bulk.prefetch.tensor), so that the refills two tiles later
 * read L2 instead of HBM (the refill windows of the pair are shorter than an HBM tile load, §14) */
#ifndef MLA_SS2_L2PF
#define MLA_SS2_L2PF 0
#endif
/* timing switch MLA_SS2_EARLY_R1=1: WG0 waits for its PV_L(j1) and refills stage 1's chunks 0-3 before
 * its QK^T(j0 + 2) instead of between that QK^T's chunks 0-3 and 4-8 (FlashMLA's place, which assumes
 * chunks 0-3 have landed by then: when they have not, the refill waits for them too, docs §14) */
#ifndef MLA_SS2_EARLY_R1
#define MLA_SS2_EARLY_R1 0
#endif
/* timing switch MLA_SS2_BTPF=1: after a refill of tile t, the issuing thread prefetches the block_table
 * line of tile t + 2 (its next refill of that stage) into L1 (prefetch.global.L1), so that the next
 * refill's read does not wait for L2 / HBM (the first device run put ~1500 cycles on each s2_tma call) */
#ifndef MLA_SS2_BTPF
#define MLA_SS2_BTPF 0
#endif
/* timing switch MLA_SS2_BTSM=1: each issuing thread copies the block_table entries of its next refill of
 * a stage (tile t + 2) into smem by cp.async right after issuing tile t, and reads them from there, so
 * that no refill waits for a global load (the second device run put ~850 cycles per s2_tma call on its
 * block_table read, which an L1 prefetch did not shorten) */
#ifndef MLA_SS2_BTSM
#define MLA_SS2_BTSM 0
#endif
/* MLA_DIAG = 8 builds only: slot 5 times the whole s2_tma (0), only its block_table reads and key mask
 * (1), its mbarrier arming (2), or its box issue (3) */
#ifndef MLA_SS2_DIAG_TMA
#define MLA_SS2_DIAG_TMA 0
#endif

#define S2_BAR_M0 1  /* WG0 -> WG1: row maxima after tile j0 in sM0 (256) */
#define S2_BAR_M1 2  /* WG1 -> WG0: row maxima after tile j1 in sM1 (256) */
#define S2_BAR_P0 3  /* WG0 -> WG1: P0 at the pair's max in sP0 (256) */
#define S2_BAR_PV 4  /* WG1 -> WG0: P1 in sP1, and WG1's PV on sP0 issued (256) */
#define S2_BAR_WG0 5 /* warpgroup 0 only (128) */
#define S2_BAR_WG1 6 /* warpgroup 1 only (128) */
#define S2_QAREA (9 * 8192) /* the Q area whatever d_qk; its ninth chunk is sP1 */

/* MLA_DIAG = 8 (timing builds only): thread 0 of each warpgroup adds the clock64 cycles of each kind of
 * wait to smem counters, copied per CTA into mla_diag_ss2 at the end and printed by mla-bench with
 * MLA_BENCH_TIMELINE=1. Slots 8 wg + : 0 chunk mbarrier waits in QK^T, 1 named-barrier syncs (WG0: M1,
 * PV; WG1: M0, P0), 2 wgmma waits, 3 softmax (with the maxima hand-over), 4 the tile loop, 5 TMA
 * issue, 6 P rescale / store / pack, 7 pairs. S2D(slot, stmt) is just stmt in every other build. */
#define S2_NDIAG 16
#if MLA_DIAG == 8
__device__ unsigned long long mla_diag_ss2[MLA_DIAG_CTAS][S2_NDIAG];
MLA_DIAG_IO_FN(mla_diag_ss2_io, mla_diag_ss2)
/* (32-bit clock deltas and counters at a fixed shared address: the 576 entries have no register to spare) */
__shared__ unsigned long long s2d_acc[S2_NDIAG];
#define S2D(slot, stmt)                                                                             \
    do {                                                                                            \
        const unsigned s2d_t = (unsigned)clock();                                                   \
        stmt;                                                                                       \
        if ((threadIdx.x & 127) == 0) s2d_acc[8 * (threadIdx.x >> 7) + (slot)] += (unsigned)clock() - s2d_t; \
    } while (0)
#define S2D_COUNT(slot) do { if ((threadIdx.x & 127) == 0) s2d_acc[8 * (threadIdx.x >> 7) + (slot)] += 1; } while (0)
#define S2_SLACK 0 /* the static array puts the dynamic base at offset 1024: aligned already */
#else
#define S2D(slot, stmt) do { stmt; } while (0)
#define S2D_COUNT(slot) do {} while (0)
#define S2_SLACK 1024
#endif

/* the dynamic shared memory of v6 for d_qk */
static __host__ __device__ __forceinline__ int s2_smem_bytes(int dqk) {
    return S2_QAREA + 2 * (dqk / 64) * 8192 /* Q, two K stages */
           + 8192                          /* sP0 */
           + 6 * 64 * 4                    /* sM0, sM1, sLx, sInv, sLse, row_lim */
           + 2 * 8                         /* key masks */
           + 16                            /* the request's epilogue fields */
           + 18 * 8                        /* chunk mbarriers */
           + 16 * 4                        /* (MLA_SS2_BTSM) next refills' block_table entries */
           + S2_SLACK;                     /* alignment slack */
}

#if MLA_HAVE_SM90A
#if MLA_SS2_CHUNK_WAIT
#define S2_QA_GROUPS 4 /* commit groups of S's chunks 0-3 */
#else
#define S2_QA_GROUPS 1
#endif
#define S2_WAIT(n) asm volatile("wgmma.wait_group.sync.aligned " MLA_STR(n) ";\n" ::: "memory")

/* Thread-local: chunks [c0, c1) of K tile t of request r into the stage at `tile` by TMA, chunk c
 * completing on its own mbarrier bars + 8 c (armed here: arrive.expect_tx of its 8 KB); km != NULL:
 * first writes the tile's valid-key mask there (read by the owner after its waits). */
/* (MLA_SS2_BTSM) tile t's block_table entries (one per page slice, those below L) into ids[0..3] by
 * cp.async (completed by the copying thread's cp.async.wait_all) */
static __device__ __forceinline__ void s2_bt_copy(const mla_dec_params *p, int r, int t, int L, int *ids) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const int tok0 = t * MLA_BN + k * BR;
        if (k < 64 / BR && tok0 < L)
            asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_u32(ids + k)),
                         "l"(p->block_table + (long long)r * p->bt_stride + (unsigned)tok0 / (unsigned)ps)
                         : "memory");
    }
}
#if MLA_SS2_BTSM
#define S2_BT(th, st) (sBT + 8 * (th) + 4 * (st))
#else
#define S2_BT(th, st) ((int *)0)
#endif

#if MLA_DIAG == 8 && MLA_SS2_DIAG_TMA
#define S2_TPART(n) const unsigned s2t##n = (unsigned)clock()
#else
#define S2_TPART(n) do {} while (0)
#endif
/* ids != NULL (MLA_SS2_BTSM): tile t's block_table entries are read from ids (copied there by this
 * thread's cp.async when it issued tile t - 2, or at the request start), and tile t + 2's are copied
 * there for the next call */
static __device__ __forceinline__ void s2_tma(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh, int t,
                                              int L, uint32_t tile, uint32_t bars, const int c0, const int c1,
                                              unsigned long long *km, int *ids, int tend) {
    const unsigned cmask = ((1u << c1) - 1) & ~((1u << c0) - 1);
#if (MLA_DIAG == 8 && MLA_SS2_DIAG_TMA) || MLA_SS2_BTSM
    /* ss_tma_bars, optionally timed in three parts, optionally with the entries from smem */
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    int pid[4], row0[4];
    S2_TPART(0);
    unsigned long long mask;
    if (ids) {
        asm volatile("cp.async.wait_all;\n" ::: "memory");
        mask = 0;
        const unsigned long long slice = BR == 64 ? ~0ull : ((1ull << BR) - 1);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            pid[k] = (int)p->num_pages;
            row0[k] = 0;
            const int tok0 = t * MLA_BN + k * BR;
            if (k < 64 / BR && tok0 < L) {
                const int id = ids[k];
                if (id >= 0 && (long long)id < p->num_pages) {
                    pid[k] = id;
                    row0[k] = (int)((unsigned)tok0 - ((unsigned)tok0 / (unsigned)ps) * (unsigned)ps);
                    mask |= slice << (k * BR);
                }
            }
        }
        const int nk = L - t * MLA_BN;
        if (nk < 64) mask &= (1ull << nk) - 1;
    } else {
        mask = ss_slices(p, r, t, L, pid, row0);
    }
    unsigned dep;
    asm volatile("add.u32 %0, %1, %2;\n" : "=r"(dep) : "r"(pid[0]), "r"(row0[0])); /* waits for the reads */
    if (km) *km = mask;
    S2_TPART(1);
#pragma unroll
    for (int c = 0; c < 9; c++)
        if ((cmask >> c) & 1) mbar_expect_tx(bars + 8 * c, 8192);
    S2_TPART(2);
#pragma unroll
    for (int k = 0; k < 4; k++)
        if (k < 64 / BR)
#pragma unroll
            for (int c = 0; c < 9; c++)
                if ((cmask >> c) & 1)
                    tma_load_4d(tile + c * 8192 + k * BR * 128, tm, bars + 8 * c, 64 * c, row0[k], kvh, pid[k]);
    S2_TPART(3);
    if (ids && t + 2 < tend) s2_bt_copy(p, r, t + 2, L, ids); /* for this thread's next refill of the stage
                                                                 (which waits for it: no copy outlives the
                                                                 request) */
#if MLA_DIAG == 8 && MLA_SS2_DIAG_TMA
    s2d_acc[8 * (threadIdx.x >> 7) + 5] +=
        (MLA_SS2_DIAG_TMA == 1 ? s2t1 - s2t0 : MLA_SS2_DIAG_TMA == 2 ? s2t2 - s2t1 : s2t3 - s2t2) + (dep & 0u);
#else
    (void)dep;
#endif
#else
    (void)ids;
    (void)tend;
    ss_tma_bars(p, tm, r, kvh, t, L, tile, bars, 8, cmask, 9, km);
#endif
    if (MLA_SS2_BTPF && (t + 2) * MLA_BN < L)
        asm volatile("prefetch.global.L1 [%0];\n" ::"l"(p->block_table + (long long)r * p->bt_stride +
                                                        (unsigned)((t + 2) * MLA_BN) / (unsigned)p->page_size));
}
#if MLA_DIAG == 8 && MLA_SS2_DIAG_TMA
#define S2T(stmt) do { stmt; } while (0) /* (s2_tma times its own part) */
#else
#define S2T(stmt) S2D(5, stmt)
#endif

/* Q's RoPE chunk (64 x 64, SW128 at q8) as this thread's A fragments of the m64n64k16 wgmmas: the
 * words ss_store_p writes, read back (its address map is kept written out there: folding both into
 * one helper changed the SASS of the validated v5 and sparse kernels) */
static __device__ __forceinline__ void s2_load_rq8(uint32_t rq[4][4], const unsigned char *q8) {
    const int t128 = threadIdx.x & 127, lane = t128 & 31;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) {
            const int row = 16 * (t128 >> 5) + (lane >> 2) + 8 * (jj & 1), piece = 2 * kk + (jj >> 1);
            rq[kk][jj] = *(const uint32_t *)(q8 + row * 128 + ((piece ^ (row & 7)) << 4) + 4 * (lane & 3));
        }
}

/* S (+)= Q K^T over chunks [c0, c1) of the stage at uK, each waited on its mbarrier (parity ph) first;
 * chunk 8 (RoPE) multiplies Q's fragments rq from registers (RS), the others both from smem (SS).
 * FIRST: the first wgmma overwrites S (scale-d 0) instead of adding to it, so S is never zeroed by
 * ordinary instructions while another wgmma of the warpgroup is in flight (ptxas would serialise the
 * pipeline, C7515). Committed (one group per chunk, or one for all with MLA_SS2_CHUNK_WAIT = 0), not
 * waited. */
static __device__ __forceinline__ void s2_qk(float *s, uint32_t uQ, uint32_t rq[4][4], uint32_t uK, uint32_t bars,
                                             int ph, const int c0, const int c1, const int FIRST,
                                             const int F16) {
    if (!MLA_SS2_CHUNK_WAIT) {
#pragma unroll
        for (int c = c0; c < c1; c++) S2D(0, mbar_wait(bars + 8 * c, ph));
        wg_fence();
    }
#pragma unroll
    for (int c = c0; c < c1; c++) {
        if (MLA_SS2_CHUNK_WAIT) {
            S2D(0, mbar_wait(bars + 8 * c, ph));
            wg_fence();
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const uint64_t db = desc_sw128(uK + c * 8192 + kk * 32, 16, 1024);
            const int acc = !(FIRST && c == c0 && kk == 0);
            if (c == 8) {
                if (F16) wgmma_rs_m64n64_tb0_f16(s, rq[kk], db, acc);
                else wgmma_rs_m64n64_tb0_bf16(s, rq[kk], db, acc);
            } else {
                const uint64_t da = desc_sw128(uQ + c * 8192 + kk * 32, 16, 1024);
                if (F16) wgmma_ss_m64n64_tb0_f16(s, da, db, acc);
                else wgmma_ss_m64n64_tb0_bf16(s, da, db, acc);
            }
        }
        if (MLA_SS2_CHUNK_WAIT) wg_commit();
    }
    if (!MLA_SS2_CHUNK_WAIT) wg_commit();
}

/* V rows [nk, 64) of half h (chunks 4h .. 4h + 3) of the stage at `tile` set to zero by this warpgroup,
 * fenced for the async proxy, then a barrier of the warpgroup (wbar) before its wgmma reads them */
static __device__ __forceinline__ void s2_zero_v(unsigned char *tile, int nk, const int h, int wbar) {
    const int n = (64 - nk) * 32; /* 4 chunks x 8 pieces per row */
    for (int idx = threadIdx.x & 127; idx < n; idx += 128) {
        const int row = nk + (idx >> 5), rem = idx & 31;
        *(uint4 *)(tile + (4 * h + (rem >> 3)) * 8192 + row * 128 + (rem & 7) * 16) = make_uint4(0, 0, 0, 0);
    }
    fence_proxy_async();
    bar_sync(wbar, 128);
}

static __device__ __forceinline__ void s2_body(const mla_dec_params *p, const CUtensorMap *tm, const int DQK,
                                               const int F16) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    unsigned char *smem = smem_align1024(smem_raw); /* (stays a shared-space pointer: 32-bit addresses) */
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = NC64 * 8192;
    unsigned char *sK0 = smem + S2_QAREA, *sK1 = sK0 + TILE, *sP0 = sK1 + TILE, *sP1 = smem + 8 * 8192;
    float *sM0 = (float *)(sP0 + 8192), *sM1 = sM0 + 64, *sLx = sM1 + 64; /* [64] each */
    float *sInv = sLx + 64, *sLse = sInv + 64;                               /* [64], [64] */
    int *row_lim = (int *)(sLse + 64);                                       /* [64] */
    unsigned long long *kmask = (unsigned long long *)(row_lim + 64);        /* [2] */
    int *sW = (int *)(kmask + 2);                                            /* [4]: slot, nvalid */
    uint64_t *bars = (uint64_t *)(sW + 4);                                   /* [2][9] */
    int *sBT = (int *)(bars + 18); /* [2 issuing threads][2 stages][4 slices] (MLA_SS2_BTSM) */
    (void)sBT;

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    const int r0 = 16 * ((tid & 127) >> 5) + (lane >> 2), r1 = r0 + 8;
    /* the fixed m-block of each CTA even with cu_seqlens_q (req_mblk's round robin needs one more live
     * register than this kernel has: it spilled) */
    const int mblk = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const float scale = p->scale_log2;
    const uint32_t uQ = smem_u32(smem), uK0 = uQ + S2_QAREA, uK1 = uK0 + TILE, uP0 = uK1 + TILE;
    const uint32_t uP1 = uQ + 8 * 8192;
    const uint32_t bar0 = smem_u32(bars), bar1 = bar0 + 72; /* chunk c of stage s: bar_s + 8 c */

    mla_part_begin pb, pe;
    part_bounds(p, part, sP0, &pb, &pe, 0);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    if (tid == 0) {
        for (int i = 0; i < 18; i++) mbar_init(bar0 + 8 * i, 1);
        mbar_fence_init();
    }
#if MLA_DIAG == 8
    if (tid < S2_NDIAG) s2d_acc[tid] = 0;
#endif
    __syncthreads();
    int uph = 0; /* bit s: parity of the tiles loaded into stage s before the current request (its phase) */

    for (int r = pb.req; r <= r_last; r++) {
        req_work w;
        { /* the part's bounds read again per request rather than kept in 8 registers across it */
            const mla_part_begin b = p->part_begin[part], e = p->part_begin[part + 1];
            if (!req_prepare(p, r, b, e, mblk, row_lim, &w)) continue;
        }
        if (tid == 0) { /* the epilogue's fields, kept in smem rather than registers across the tiles */
            sW[0] = w.slot;
            sW[1] = w.nvalid;
        }
        float o[128];
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] = 0.f;
        /* rows r0 / r1: running max (log2 domain; equal in both warpgroups after each pair) and this
         * warpgroup's row sums at it */
        float ma = -INFINITY, mb = -INFINITY, la = 0.f, lb = 0.f;
        const int tb = w.tb, N = w.te - w.tb, L = w.L;

        if (N > 0) {
            /* Q first (every warp issues its cp.async before thread 0 reads the block table), then
             * tiles tb (chunks in WG0's order) and tb + 1 (in WG1's: 4-8, then 0-3) */
            sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
            cp_async_commit();
            if (tid == 0) {
                s2_tma(p, tm, r, kvh, tb, L, uK0, bar0, 0, NC64, kmask, 0, 0);
                if (N > 1) {
                    s2_tma(p, tm, r, kvh, tb + 1, L, uK1, bar1, 4, NC64, 0, 0, 0);
                    s2_tma(p, tm, r, kvh, tb + 1, L, uK1, bar1, 0, 4, kmask + 1, 0, 0);
                }
                if (MLA_SS2_BTSM) { /* the first refills' entries, for both issuing threads (landed by the
                                       cp.async wait and the CTA barrier below) */
                    if (N > 2) {
                        s2_bt_copy(p, r, tb + 2, L, S2_BT(0, 0));
                        s2_bt_copy(p, r, tb + 2, L, S2_BT(1, 0));
                    }
                    if (N > 3) {
                        s2_bt_copy(p, r, tb + 3, L, S2_BT(0, 1));
                        s2_bt_copy(p, r, tb + 3, L, S2_BT(1, 1));
                    }
                    cp_async_commit();
                }
            }
            cp_async_wait0();
            fence_proxy_async();
            __syncthreads(); /* Q and the row limits */
            uint32_t rq[4][4]; /* Q's RoPE chunk (d_qk 576); its smem becomes sP1 after the first M0 barrier */
            if (NC64 == 9) s2_load_rq8(rq, smem + 8 * 8192);
            float s[32];
            uint32_t a[4][4];
            if (wg == 0) { /* (WG1 computes the S of its tile at the top of each pair) */
                s2_qk(s, uQ, rq, uK0, bar0, uph & 1, 0, NC64, 1, F16);
                wg_wait0();
                pin32(s);
            }

#if MLA_DIAG == 8 /* (start subtracted now, end added after the loop: no register held across it) */
            if ((tid & 127) == 0) s2d_acc[8 * wg + 4] -= (unsigned long long)clock64();
#endif
            for (int j0 = 0; j0 < N; j0 += 2) {
                const int j1 = j0 + 1, has1 = j1 < N, more0 = j0 + 2 < N, more1 = j1 + 2 < N;
                S2D_COUNT(7);
                const int nk0 = L - (tb + j0) * MLA_BN, nk1 = L - (tb + j1) * MLA_BN; /* keys in j0 / j1 */
                if (wg == 0) {
                    /* 1: softmax of tile j0 against the running max; its maxima to WG1; O_L += P0 V_L(j0) */
                    float f0, f1;
                    S2D(3, ss_softmax(s, 0, kmask[0], (tb + j0) * MLA_BN, row_lim[r0], row_lim[r1], scale, &ma, &mb,
                                      &la, &lb, &f0, &f1));
                    if ((lane & 3) == 0) {
                        sM0[r0] = ma;
                        sM0[r1] = mb;
                    }
                    bar_arrive(S2_BAR_M0, 256);
                    ss_pack(s, a, 1.f, 1.f, F16);
                    if (nk0 < 64) s2_zero_v(sK0, nk0, 0, S2_BAR_WG0);
                    ss_rescale_pv(o, f0, f1, a, 0, uK0, 0, 0, F16);
                    S2D(2, wg_wait0());
                    pin128(o);
                    /* 3: WG1's maxima after tile j1; stage 0's chunks 0-3 are free (QK(j0), PV_L(j0) done) */
                    S2D(1, bar_sync(S2_BAR_M1, 256));
                    if (more0 && tid == 0) {
                        S2T(s2_tma(p, tm, r, kvh, tb + j0 + 2, L, uK0, bar0, 0, 4, kmask, S2_BT(0, 0), tb + N));
                        if (MLA_SS2_L2PF && j0 + 4 < N) ss_tma_l2(p, tm, r, kvh, tb + j0 + 4, L, NC64);
                    }
                    float g0, g1;
                    ss_take_max(sM1, r0, r1, &ma, &mb, &la, &lb, &g0, &g1);
#pragma unroll
                    for (int i = 0; i < 32; i++) s[i] *= (i & 2) ? g1 : g0;
                    S2D(6, ss_store_p(sP0, s, F16)); /* P0 at the pair's max, fenced */
                    bar_arrive(S2_BAR_P0, 256);
                    /* 5: O_L += P1 V_L(j1); S of tile j0 + 2 */
                    if (has1) {
                        if (nk1 < 64) s2_zero_v(sK1, nk1, 0, S2_BAR_WG0);
                        S2D(1, bar_sync(S2_BAR_PV, 256));
                        ss_rescale_pv(o, g0, g1, a, uP1, uK1, 0, 1, F16);
                    }
                    if (more0) { /* (so has1: PV_L(j1) is in flight) */
                        const int ph = (uph ^ ((j0 >> 1) + 1)) & 1;
                        if (MLA_SS2_EARLY_R1) {
                            S2D(2, wg_wait0());
                            if (more1 && tid == 0) {
                                S2T(s2_tma(p, tm, r, kvh, tb + j1 + 2, L, uK1, bar1, 0, 4, kmask + 1, S2_BT(0, 1), tb + N));
                                if (MLA_SS2_L2PF && j1 + 4 < N) ss_tma_l2(p, tm, r, kvh, tb + j1 + 4, L, NC64);
                            }
                        }
                        s2_qk(s, uQ, rq, uK0, bar0, ph, 0, 4, 1, F16);
                        if (!MLA_SS2_EARLY_R1 && more1) { /* PV_L(j1) done: stage 1's chunks 0-3 are free */
                            S2D(2, S2_WAIT(S2_QA_GROUPS));
                            if (tid == 0) {
                                S2T(s2_tma(p, tm, r, kvh, tb + j1 + 2, L, uK1, bar1, 0, 4, kmask + 1, S2_BT(0, 1), tb + N));
                                if (MLA_SS2_L2PF && j1 + 4 < N) ss_tma_l2(p, tm, r, kvh, tb + j1 + 4, L, NC64);
                            }
                        }
                        s2_qk(s, uQ, rq, uK0, bar0, ph, 4, NC64, 0, F16);
                    }
                    S2D(2, wg_wait0());
                    pin32(s);
                    pin128(o);
                } else {
                    /* S of tile j1, in the order its chunks were requested (4-8 first), waited. Issued
                     * here rather than at the end of the last pair (FlashMLA's place; the same moment
                     * in this warpgroup's stream), so that S is not live across the loop's back edge
                     * and the PVs below (the 576 entries then fit 255 registers) */
                    if (has1) {
                        const int ph = ((uph >> 1) ^ (j1 >> 1)) & 1;
                        s2_qk(s, uQ, rq, uK1, bar1, ph, 4, NC64, 1, F16);
                        s2_qk(s, uQ, rq, uK1, bar1, ph, 0, 4, 0, F16);
                        S2D(2, wg_wait0());
                        pin32(s);
                    }
                    /* 2: WG0's maxima after tile j0 become the running max; softmax of tile j1 against
                     * it; maxima to WG0; P1 to sP1; O_R += P1 V_R(j1) */
                    S2D(1, bar_sync(S2_BAR_M0, 256));
                    float f0, f1, g0 = 1.f, g1 = 1.f;
                    ss_take_max(sM0, r0, r1, &ma, &mb, &la, &lb, &f0, &f1);
                    if (has1)
                        S2D(3, ss_softmax(s, 0, kmask[1], (tb + j1) * MLA_BN, row_lim[r0], row_lim[r1], scale, &ma,
                                          &mb, &la, &lb, &g0, &g1));
                    if ((lane & 3) == 0) {
                        sM1[r0] = ma;
                        sM1[r1] = mb;
                    }
                    bar_arrive(S2_BAR_M1, 256);
                    /* the V_R rows of both tiles past the length (QK of both done: M0) */
                    if (nk0 < 64) s2_zero_v(sK0, nk0, 1, S2_BAR_WG1);
                    if (has1 && nk1 < 64) s2_zero_v(sK1, nk1, 1, S2_BAR_WG1);
                    f0 *= g0;
                    f1 *= g1;
                    if (has1) {
                        S2D(6, ss_store_p(sP1, s, F16); ss_pack(s, a, 1.f, 1.f, F16));
                        ss_rescale_pv(o, f0, f1, a, 0, uK1, 1, 0, F16);
                    } else if (__any_sync(0xffffffffu, f0 != 1.f || f1 != 1.f)) {
                        sm90_rescale(o, f0, f1);
                    }
                    /* 4: O_R += P0 V_R(j0) */
                    S2D(1, bar_sync(S2_BAR_P0, 256));
                    wg_fence(); /* (no pin of O here: PV_R(j1) may be in flight on it, C7515) */
                    ss_pv_smem(o, uP0, uK0, 1, F16);
                    wg_commit();
                    if (has1) bar_arrive(S2_BAR_PV, 256);
                    if (more1) { /* PV_R(j1) done: stage 1's chunks 4-8 are free */
                        S2D(2, wg_wait1());
                        if (tid == 128) S2T(s2_tma(p, tm, r, kvh, tb + j1 + 2, L, uK1, bar1, 4, NC64, 0, S2_BT(1, 1), tb + N));
                    }
                    S2D(2, wg_wait0());
                    pin128(o);
                    if (more0 && tid == 128) /* PV_R(j0) done: stage 0's chunks 4-8 are free */
                        S2T(s2_tma(p, tm, r, kvh, tb + j0 + 2, L, uK0, bar0, 4, NC64, 0, S2_BT(1, 0), tb + N));
                }
            }
#if MLA_DIAG == 8
            if ((tid & 127) == 0) s2d_acc[8 * wg + 4] += (unsigned long long)clock64();
#endif
            uph ^= (((N + 1) >> 1) & 1) | (((N >> 1) & 1) << 1);
        }
        /* the row sums of both warpgroups, then the shared epilogue, staged in the Q / K area (every
         * wgmma and TMA of the request is done) */
        ss_merge_sums(&la, &lb, sLx, wg, lane, r0, r1);
        w.slot = sW[0];
        w.nvalid = sW[1];
        sm90_epilogue(p, &w, r, mblk, kvh, o, ma, mb, la, lb, 1.f, sInv, sLse, F16, 0, uQ);
    }
#if MLA_DIAG == 8
    __syncthreads();
    {
        const unsigned cta = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
        if (tid < S2_NDIAG && cta < MLA_DIAG_CTAS) mla_diag_ss2[cta][tid] = s2d_acc[tid];
    }
#endif
    pdl_trigger();
}
#endif /* MLA_HAVE_SM90A */

MLA_SM90_TM_KERNEL(mla_decode_ss2_bf16_576, s2_body(&p, &tm, 576, 0))
MLA_SM90_TM_KERNEL(mla_decode_ss2_bf16_512, s2_body(&p, &tm, 512, 0))
MLA_SM90_TM_KERNEL(mla_decode_ss2_fp16_576, s2_body(&p, &tm, 576, 1))
MLA_SM90_TM_KERNEL(mla_decode_ss2_fp16_512, s2_body(&p, &tm, 512, 1))

extern "C" const void *mla_k_ss2_fn(int dqk, int f16) {
    if (dqk == 576) return f16 ? (const void *)mla_decode_ss2_fp16_576 : (const void *)mla_decode_ss2_bf16_576;
    return f16 ? (const void *)mla_decode_ss2_fp16_512 : (const void *)mla_decode_ss2_bf16_512;
}
extern "C" int mla_k_ss2_smem(int dqk) { return s2_smem_bytes(dqk); }
