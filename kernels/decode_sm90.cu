/* decode_sm90.cu — dense MLA decode on Hopper tensor cores (wgmma, sm_90a only).
 *
 * Same work decomposition, scheduler and combine as the mma.sync kernel (kernels/decode.cu): one
 * CTA per (64-row M block, KV head, scheduler part), 64-token K tiles read from the paged cache by
 * 16-byte cp.async from all 256 threads (per-row block_table lookup, any page size; rows past the
 * length or on invalid pages are zero-filled and masked), two K stages.
 *
 * Shared tiles use the wgmma 128-byte-swizzle K-major layout: a 64 x d tile is d/64 chunks of
 * 64 rows x 128 B (8 KB, 1024-aligned), 16-byte piece j of row r at r*128 + ((j ^ (r&7)) << 4).
 * Two warpgroups (FlashMLA v1 structure, hopper-c.md §3.5):
 *   WG0: S = Q K^T (SS m64n64k16 x 36), mask, online softmax in registers (log2 domain), P to bf16
 *        A fragments; P fragments + the row rescale factors go to smem for WG1; O[:, 0:256] *= alpha;
 *        O[:, 0:256] += P V[:, 0:256] (RS m64n256k16 x 4, V = the K tile read MN-major).
 *   WG1: waits for P, O[:, 256:512] *= alpha, O[:, 256:512] += P V[:, 256:512].
 */
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

#define SM90_BAR_P 1 /* named barrier: P fragments of WG0 ready for WG1 (256 threads) */

/* MLA_DIAG: timing experiments (kernels/common.cuh) */
#define DIAG_LOADS (MLA_DIAG != 1 && MLA_DIAG != 3)
#define DIAG_MMA (MLA_DIAG != 2 && MLA_DIAG != 3)

#include "sm90_tile.cuh"

#if MLA_DIAG == 7 /* per-CTA timeline (kernels/common.cuh); slots: 0 entry, 1 after the PDL wait, 2 after the
                   * part bounds; for the CTA's first two requests k: 3+5k prepared, 4+5k Q ready, 5+5k first
                   * tile landed, 6+5k tiles done, 7+5k epilogue done; 13 tiles, 14 requests, 15 end (clock64);
                   * 16 / 17 %globaltimer at entry / exit, 18 SM id */
__device__ unsigned long long mla_diag_dec[MLA_DIAG_CTAS][MLA_DIAG_SLOTS];
MLA_DIAG_IO_FN(mla_diag_dec_io, mla_diag_dec)
#define DTS(slot) DIAG_CLK(mla_diag_dec, slot)
#define DTV(slot, v) DIAG_VAL(mla_diag_dec, slot, v)
#define DTG(slot) DIAG_GT(mla_diag_dec, slot)
#define DTK(k, off) do { if ((k) < 2) DTS(3 + 5 * (k) + (off)); } while (0)
#define DT_DECL int dk_req = 0, dk_tiles = 0
#define DT_IF(c, stmt) do { if (c) { stmt; } } while (0)
#define DT_INC(x) x++
/* WG1's thread 128: its tile loop done (slot 19 / 21 for requests 0 / 1) */
#define DT_WG1(k)                                                                                   \
    do {                                                                                            \
        if (threadIdx.x == 128 && (k) < 2 && DIAG_CTA < MLA_DIAG_CTAS)                              \
            mla_diag_dec[DIAG_CTA][19 + 2 * (k)] = (unsigned long long)clock64();                   \
    } while (0)
#else /* nothing at all, so that the shipped kernels' code is the same as without these hooks */
#define DTS(slot)
#define DTV(slot, v)
#define DTG(slot)
#define DTK(k, off)
#define DT_DECL
#define DT_IF(c, stmt)
#define DT_INC(x)
#define DT_WG1(k)
#endif

/* (MLA_DIAG = 9 builds: v3's tile-loop counters, outside MLA_HAVE_SM90A so that the host pass sees them) */
#if MLA_DIAG == 9
__device__ unsigned long long mla_diag_v3[MLA_DIAG_CTAS][16];
MLA_DIAG_IO_FN(mla_diag_v3_io, mla_diag_v3)
#endif

#if MLA_HAVE_SM90A

static __device__ __forceinline__ void sm90_body(const mla_dec_params *p, const int DQK, const int F16, const int FP8,
                                                 const int FUSED) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    DTG(16);
    DTS(0);
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    DTS(1);
    if (MLA_DIAG == 4) {
        pdl_trigger();
        return;
    }
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    unsigned char *sQ = smem, *sK0 = smem + TILE, *sK1 = smem + 2 * TILE;
    uint32_t *sPf = (uint32_t *)(smem + 3 * TILE);   /* [16][128] */
    float *sAl = (float *)(sPf + 16 * 128);           /* [128][2] */
    float *sInv = sAl + 256, *sLse = sInv + 64;       /* [64], [64] */
    int *row_lim = (int *)(sLse + 64);                /* [64] */
    unsigned char *kvalid = (unsigned char *)(row_lim + 64); /* [2][64] */

    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, lane = tid & 31;
    const int r0 = 16 * (t128 >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mb_cta = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int mb_u = 0; /* req_mblk: units of the part's requests so far, mod num_m_blocks */
    const int hg = p->hg;
    float scale = p->scale_log2, dk = 1.f;
    if (FP8) { /* per-tensor descales, read on the device (graph replays see new values) */
        dk = p->descale_k ? __ldg(p->descale_k) : 1.f;
        const float dq = p->descale_q ? __ldg(p->descale_q) : 1.f;
        scale *= dq * dk;
    }
    const int NU = DQK / 64; /* FP8: 16-code groups per thread and row */
    uint4 kr[9];
    const uint32_t uQ = smem_u32(sQ), uK0 = smem_u32(sK0), uK1 = smem_u32(sK1);

    mla_part_begin pb, pe;
    part_bounds(p, part, sPf, &pb, &pe, FUSED);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    DTS(2);
    DT_DECL;

    for (int r = pb.req; r <= r_last; r++) {
        const int mblk = req_mblk(p, r, mb_cta, &mb_u);
        req_work w;
        if (!req_prepare(p, r, pb, pe, mblk, row_lim, &w)) continue;
        DTK(dk_req, 0);
        float o[128];
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] = 0.f;
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

        if (w.tb < w.te) {
            if (FP8 && p->q_fp8) { /* e4m3 q -> 16-bit once per request */
                const int row = tid >> 2;
                const char *src = 0;
                if (row < w.nvalid) {
                    const int rr = mblk * MLA_BM + row, j = rr / hg, head = kvh * hg + rr % hg;
                    src = (const char *)p->q + ((long long)r * p->q_s0 + (long long)j * p->q_s1 + (long long)head * p->q_s2);
                }
                f8_get(src, kr, NU);
                f8_put(uQ, kr, NU, F16);
            } else {
                sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
            }
            if (FP8) {
                f8_issue_k(p, r, kvh, w.tb, w.L, kr, kvalid, NU);
                f8_put(uK0, kr, NU, F16);
            } else {
                sm90_load_k_lines(p, r, kvh, w.tb, w.L, uK0, kvalid, tid, 256, NC64);
            }
            cp_async_commit();

            for (int t = w.tb; t < w.te; t++) {
                const int buf = (t - w.tb) & 1;
                const uint32_t uK = buf ? uK1 : uK0;
                if (FP8) {
                    /* tile t + 1 into registers now (stored into the free stage during the PV
                     * wgmma below), tile t + 2 into L2 */
                    if (t + 1 < w.te) f8_issue_k(p, r, kvh, t + 1, w.L, kr, kvalid + 64 * (buf ^ 1), NU);
                    if (p->fp8_l2_prefetch && t + 2 < w.te) f8_prefetch_k(p, r, kvh, t + 2, w.L, DQK);
                    cp_async_wait0(); /* 16-bit Q (first tile of the request) */
                } else {
                    /* tile t: the prologue's group (all threads) or WG1's group issued during tile t - 1 */
                    cp_async_wait0();
                }
                fence_proxy_async(); /* this thread's cp.async / zeroing stores -> visible to wgmma */
                __syncthreads();
                DT_IF(t == w.tb, DTK(dk_req, 1); DTK(dk_req, 2));
                DT_INC(dk_tiles);
                /* v2: WG1, idle until P(t) is ready, loads tile t + 1 into the other stage (free: its
                 * last readers, the PV wgmmas of tile t - 1, finished before the barrier above) */
                if (!FP8 && wg == 1 && t + 1 < w.te) {
                    if (DIAG_LOADS) sm90_load_k_lines(p, r, kvh, t + 1, w.L, buf ? uK0 : uK1, kvalid + 64 * (buf ^ 1), t128, 128, NC64);
                    cp_async_commit();
                }

                uint32_t a[4][4];
                if (wg == 0) {
                    float s[32];
                    sm90_scores(s, uQ, uK, NC64, F16, DIAG_MMA, MLA_DESC_AT);
                    float al0, al1;
                    sm90_softmax(s, kvalid + 64 * buf, t * MLA_BN, row_lim[r0], row_lim[r1], scale, &m0, &m1, &l0, &l1,
                                 a, &al0, &al1, F16);
                    sm90_put_p(sPf, sAl, a, al0, al1);
                    bar_arrive(SM90_BAR_P, 256);
                    /* no row max of this warp moved (the common case past the first tiles): O as is */
                    if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) sm90_rescale(o, al0, al1);
                } else {
                    bar_sync(SM90_BAR_P, 256);
                    float al0, al1;
                    sm90_get_p(sPf, sAl, a, &al0, &al1);
                    if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) sm90_rescale(o, al0, al1);
                }
                /* O[:, 256*wg : +256] += P V[:, 256*wg : +256] */
                pin128(o);
                wg_fence();
                if (DIAG_MMA) sm90_pv(o, a, uK, wg, F16, MLA_DESC_AT);
                wg_commit();
                /* FP8: the other stage is free (its last wgmma finished before the barrier that
                 * ended the previous tile); the loads issued at the top of this tile land there */
                if (FP8 && t + 1 < w.te) f8_put(buf ? uK0 : uK1, kr, NU, F16);
                wg_wait0();
                pin128(o);
                /* no CTA barrier here: the top barrier of tile t + 1 orders every reuse (stage t & 1
                 * is refilled, and P(t + 1) written, only after it) */
            }
        }

        DTK(dk_req, 3);
        sm90_epilogue(p, &w, r, mblk, kvh, o, m0, m1, l0, l1, dk, sInv, sLse, F16, FP8, uQ);
        DTK(dk_req, 4);
        DT_INC(dk_req);
    }
    DTV(13, dk_tiles);
    DTV(14, dk_req);
    DTS(15);
    DTG(17);
    DTV(18, smid());
    pdl_trigger();
}
/* ---- v3: K tiles by TMA, no CTA barrier per tile (MLA_KERNEL_WGMMA_TMA) ------------------------
 * Until 54c09c9 the TMA path was part of sm90_body and ended every tile at a __syncthreads, so WG0
 * started QK^T(t + 1) only once WG1's PV_R(t) had finished, and the refill of a stage waited for both
 * (docs/performance.md §11-12; check out 54c09c9 for that path). Here the two warpgroups hand off
 * through named barriers only, each pairing one arrive with one sync per tile:
 *   P     WG0 -> WG1  P(t) and its row factors are in smem (as in sm90_body)
 *   PFREE WG1 -> WG0  WG1 has read P(t), so WG0 may write P(t + 1)   (tiles t + 1 < te; the
 *                     arrive releases the reads; racecheck reports this hand-off, notes §12)
 *   SFREE WG0 -> WG1  WG0's PV_L(t) is done, so stage t & 1 may take tile t + 2   (t + 2 < te)
 * WG1 (thread 128) refills the stage with tile t + 2 once its own PV_R(t) is done and SFREE is seen,
 * so the stage holds tile t until both PVs have read it; WG0's QK^T(t + 1) queues behind PV_R(t) on
 * the tensor pipe instead of waiting for it. The tile's valid-key mask is written by the issuing
 * thread before its arrive on the stage's mbarrier (ss_tma), and read after the wait. The last,
 * partial tile of a request is zeroed past the length by WG0 after its wait (before its QK^T and its
 * P arrive, which orders the zeroing before WG1's PV_R). Requests start with a CTA barrier (Q,
 * row limits) and end with the epilogue's. */
/* timing switch MLA_V3_QFIRST=1: every warp issues its Q cp.async before thread 0 reads the block table
 * and issues the request's first two tiles (as v6 does); 0 (shipped): the tiles first */
#ifndef MLA_V3_QFIRST
#define MLA_V3_QFIRST 0
#endif
/* MLA_V3_SLICES (TMA tiles; 1, the default): each page slice of a K tile (64 / BR of them, BR =
 * gcd(page, 64)) issued by lane 0 of its own warp (ss_tma_slice), WG0's warps in the prologue and WG1's
 * for the refills; the stage barriers count one arrival per slice. On pages of 16 that is 4 threads
 * issuing 9 boxes each, where one thread issuing all 36 was 1.3x slower than the cp.async gather
 * (docs/performance.md §32). 0: one thread issues every slice (ss_tma), as before; 2: 1 with a
 * __syncwarp after each issue (a diagnosis build); 3 (timing): four issuing threads on every page
 * size, a slice's chunks split among them (pages of 64: chunks c, c + 4, c + 8 from warp c) */
#ifndef MLA_V3_SLICES
#define MLA_V3_SLICES 1
#endif
/* CPA = 1 (MLA_KERNEL_WGMMA_V3C, pages of 16 / 32 tokens): the same hand-offs, but the K tiles are
 * gathered by WG1's 128 threads with line-coalesced 16-byte cp.async (sm90_load_k_lines: rows past the
 * length or on invalid pages zero-filled, byte flags kvalid[stage][64]) instead of TMA boxes, which
 * at 16 rows per page slice cost four instructions per chunk from one thread (docs/performance.md
 * §24). Each stage's mbarrier then expects 256 arrivals per phase: each WG1 thread's
 * cp.async.mbarrier.arrive.noinc (made when its copies have landed) and its ordinary arrive after
 * its kvalid stores (release); both warpgroups fence generic -> async proxy after the wait, before
 * their wgmma read the stage (the pattern of the sparse prefill seesaw, kernels/sparse_sm90.cu). */
/* (CPA) K tile t of request r into stage `tile` by this WG1 thread (t128 = tid - 128), then its two
 * arrivals on the stage's mbarrier `bar`: one when its copies land, one now (after its kvalid stores,
 * release). Its own cp.async group, so the prologue can wait for Q alone. */
static __device__ __forceinline__ void v3c_fill(const mla_dec_params *p, int r, int kvh, int t, int L, uint32_t tile,
                                                unsigned char *kv, uint32_t bar, int t128, const int NC64) {
    sm90_load_k_lines(p, r, kvh, t, L, tile, kv, t128, 128, NC64);
    cp_async_commit();
    cp_async_mbar_arrive_noinc(bar);
    mbar_arrive(bar);
}
#define SM90_BAR_PFREE 2 /* WG1 -> WG0: P(t) read (256) */
#define SM90_BAR_SFREE 3 /* WG0 -> WG1: PV_L(t) done (256) */
#define SM90_BAR_WG0 4   /* WG0 only (128): V rows zeroed */
/* MLA_V3_SFREE2 (1, the default; 0: one id, as before, for timing): SFREE on two barrier ids by the
 * tile's parity (3 for even t, 5 for odd), so that WG0's arrival for tile t + 1 can never complete the
 * barrier WG1 syncs for tile t. With one id nothing orders WG0's second arrival after WG1's sync: WG0
 * needs only PFREE(t), which WG1 gives before its PV_R(t). Two generations ahead is impossible: WG0
 * waits for tile t + 2, which WG1 issues after its SFREE(t) sync. */
#ifndef MLA_V3_SFREE2
#define MLA_V3_SFREE2 1
#endif
#define SM90_BAR_SFREE_ODD 5
/* MLA_V3_BTPF (1, the default since 2026-12-07; 0 = the read after the SFREE sync, as before): each TMA
 * refill's block-table entries read by their issuing lanes at the top of WG1's iteration t (before its P
 * sync, some 2000 cycles before the refill with tile t + 2), so that the read is not on the refill's path
 * after the SFREE sync (ss_slice_bt / ss_tma_slice_pre; with MLA_V3_SLICES 1 or 3) */
#ifndef MLA_V3_BTPF
#define MLA_V3_BTPF 1
#endif
/* MLA_V3_SMX (1, the default): v3's softmax on raw-score maxima with the scale folded into the exponent's
 * FFMA, pairwise max and sum trees (sm90_softmax_pos), and P handed to WG1 with 16-byte shared stores and
 * loads (sm90_put_p4 / sm90_get_p4). Timing switches: 0 = the earlier softmax (sm90_softmax_km) and 4-byte
 * hand-off (sm90_put_p / sm90_get_p); 2 = the 16-byte hand-off alone. H100, three alternating rounds: 1 was
 * -0.2..-2.2% against 0 on every timed row, 2 matched 1 only at b=128 h_q=128 (docs/performance.md §36) */
#ifndef MLA_V3_SMX
#define MLA_V3_SMX 1
#endif
/* MLA_V3_LAZY (1, the default since the thirty-sixth session; 0 is a timing switch): with MLA_V3_SMX 1, the
 * running max moves only on jumps of more than MLA_LAZY_TH (8, log2 units), so the O rescales of both
 * warpgroups become rare (sm90_softmax_pos). H100, three alternating rounds against dc560e1: -1.0% at
 * b=128 s_q=1 h_q=128 s_k=8192, -1.9% at s_q=2 causal s_k=4096, memory-bound and small-batch rows
 * within +-0.5%; whole dense suite 1928/0 (docs/performance.md §41). */
#ifndef MLA_V3_LAZY
#define MLA_V3_LAZY 1
#endif
/* MLA_DIAG = 9 (timing builds only): thread 0 of each warpgroup adds the clock() cycles of each part of
 * v3's tile loop to per-CTA global counters (fire-and-forget atomic adds, no load on its path), printed
 * per tile by mla-bench with MLA_BENCH_TIMELINE=1. Slots 8 wg + : WG0: 0 tile wait, 1 PFREE sync, 2 QK^T
 * (issue to wait), 3 softmax, 4 the whole iteration, 5 PV_L (issue to wait), 6 P store + O rescale,
 * 7 tiles; WG1: 0 tile wait, 1 P sync, 2 SFREE sync, 3 P read + O rescale, 4 the whole iteration,
 * 5 refill issue, 6 PV_R (issue to wait), 7 tiles. V3D(slot, stmt) is just stmt in every other build. */
#if MLA_DIAG == 9
#define V3D_ADD(slot, v) MLA_WG_ADD(mla_diag_v3, slot, v)
#define V3D(slot, stmt) MLA_WG_TIME(mla_diag_v3, slot, stmt)
#define V3D_START const unsigned v3d_it = (unsigned)clock()
#define V3D_END do { V3D_ADD(4, (unsigned)clock() - v3d_it); V3D_ADD(7, 1u); } while (0)
#else
#define V3D(slot, stmt) do { stmt; } while (0)
#define V3D_START
#define V3D_END
#endif
static __device__ __forceinline__ void tma_body(const mla_dec_params *p, const CUtensorMap *tm, const int DQK,
                                                const int F16, const int CPA, const int FUSED) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    DTG(16);
    DTS(0);
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    DTS(1);
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    unsigned char *sK0 = smem + TILE, *sK1 = smem + 2 * TILE;
    uint32_t *sPf = (uint32_t *)(smem + 3 * TILE);                       /* [16][128] */
    float *sAl = (float *)(sPf + 16 * 128);                               /* [128][2] */
    float *sInv = sAl + 256, *sLse = sInv + 64;                           /* [64], [64] */
    int *row_lim = (int *)(sLse + 64);                                    /* [64] */
    unsigned long long *kmask = (unsigned long long *)(row_lim + 64);    /* [2] in the 128 B key slot */
    unsigned char *kvalid = (unsigned char *)kmask;                       /* CPA: [2][64] in the same slot */
    uint64_t *fullbar = (uint64_t *)((unsigned char *)kmask + 128);       /* [2] */

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    const int r0 = 16 * ((tid & 127) >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mb_cta = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int mb_u = 0; /* req_mblk: units of the part's requests so far, mod num_m_blocks */
    const float scale = p->scale_log2;
    const uint32_t uQ = smem_u32(smem), uK0 = uQ + TILE, uK1 = uQ + 2 * TILE;
    const uint32_t bar0 = smem_u32(fullbar), bar1 = bar0 + 8;

    mla_part_begin pb, pe;
    part_bounds(p, part, sPf, &pb, &pe, FUSED);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    const int nsl = MLA_V3_SLICES == 3 && !CPA ? 4 /* issuing threads: four, chunks split (MLA_V3_SLICES=3) */
                    : MLA_V3_SLICES && !CPA ? 64 / ((p->page_size % 64 == 0) ? 64 : ((p->page_size % 32 == 0) ? 32 : 16))
                                            : 1;
    if (tid == 0) {
        mbar_init(bar0, CPA ? 256 : nsl);
        mbar_init(bar1, CPA ? 256 : nsl);
        mbar_fence_init();
    }
    __syncthreads();
    DTS(2);
    int ncons = 0; /* tiles consumed by this CTA: tile n in stage n & 1, phase (n >> 1) & 1 */
    DT_DECL;

    for (int r = pb.req; r <= r_last; r++) {
        const int mblk = req_mblk(p, r, mb_cta, &mb_u);
        req_work w;
        if (!req_prepare(p, r, pb, pe, mblk, row_lim, &w)) continue;
        DTK(dk_req, 0);
        float o[128];
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] = 0.f;
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
        const int tb = w.tb, te = w.te, L = w.L;
        if (tb < te) {
            /* both stages are free (the previous request's readers finished before the epilogue's
             * CTA barrier): its first two tiles, in the stages their consumption order gives */
            if (CPA) {
                /* Q first (its own cp.async group), then WG1 gathers the two tiles; each thread waits
                 * for its Q group only */
                sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
                cp_async_commit();
                if (wg == 1) {
                    for (int j = 0; j < 2 && tb + j < te; j++) {
                        const int st = (ncons + j) & 1;
                        v3c_fill(p, r, kvh, tb + j, L, st ? uK1 : uK0, kvalid + 64 * st, st ? bar1 : bar0, tid - 128,
                                 NC64);
                    }
                    if (tb + 1 < te) cp_async_wait2();
                    else cp_async_wait1();
                } else {
                    cp_async_wait0();
                }
            } else {
                if (MLA_V3_QFIRST) {
                    sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
                    cp_async_commit();
                }
                if (MLA_V3_SLICES) {
                    if (lane == 0 && (tid >> 5) < nsl)
                        for (int j = 0; j < 2 && tb + j < te; j++) {
                            const int st = (ncons + j) & 1;
                            ss_tma_slice(p, tm, r, kvh, tb + j, L, st ? uK1 : uK0, st ? bar1 : bar0, tid >> 5, NC64,
                                         kmask + st, MLA_V3_SLICES == 3);
                        }
                    if (MLA_V3_SLICES > 1) __syncwarp();
                } else if (tid == 0)
                    for (int j = 0; j < 2 && tb + j < te; j++) {
                        const int st = (ncons + j) & 1;
                        ss_tma(p, tm, r, kvh, tb + j, L, st ? uK1 : uK0, st ? bar1 : bar0, 0x1FFu, NC64, kmask + st);
                    }
                if (!MLA_V3_QFIRST) {
                    sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
                    cp_async_commit();
                }
                cp_async_wait0();
            }
            fence_proxy_async();
            __syncthreads(); /* Q and the row limits */
            DTK(dk_req, 1);
            const int lim0 = row_lim[r0], lim1 = row_lim[r1];
            for (int t = tb; t < te; t++) {
                const int buf = ncons & 1, ph = (ncons >> 1) & 1;
                ncons++;
                const uint32_t uK = buf ? uK1 : uK0, bar = buf ? bar1 : bar0;
                uint32_t a[4][4];
                V3D_START;
                int nid = -1; /* (MLA_V3_BTPF) this issuing lane's block-table entry for the refill with t + 2 */
                if (wg == 0) {
                    float s[32];
#pragma unroll
                    for (int i = 0; i < 32; i++) s[i] = 0.f;
                    pin32(s);
                    V3D(0, mbar_wait(bar, ph));
                    DT_IF(t == tb, DTK(dk_req, 2));
                    const int nk = L - t * MLA_BN;
                    if (CPA) fence_proxy_async(); /* WG1's cp.async (generic proxy) writes -> this wgmma */
                    if (!CPA && nk < 64) { /* V rows [nk, 64) to zero (TMA loaded whatever the page holds) */
                        unsigned char *tile = buf ? sK1 : sK0;
                        for (int idx = tid; idx < (64 - nk) * 64; idx += 128) {
                            const int row = nk + (idx >> 6), rem = idx & 63;
                            *(uint4 *)(tile + (rem >> 3) * 8192 + row * 128 + (rem & 7) * 16) = make_uint4(0, 0, 0, 0);
                        }
                        fence_proxy_async();
                        bar_sync(SM90_BAR_WG0, 128);
                    }
                    V3D(2, wg_fence(); sm90_qk(s, uQ, uK, 0, NC64, F16, MLA_DESC_AT); wg_commit(); wg_wait0());
                    pin32(s);
                    float al0, al1;
                    if (MLA_V3_SMX == 1)
                        V3D(3, sm90_softmax_pos(s, CPA ? kvalid + 64 * buf : 0, CPA ? 0ull : kmask[buf], t * MLA_BN,
                                                lim0, lim1, scale, &m0, &m1, &l0, &l1, a, &al0, &al1, F16, MLA_V3_LAZY));
                    else
                        V3D(3, sm90_softmax_km(s, CPA ? kvalid + 64 * buf : 0, CPA ? 0ull : kmask[buf], t * MLA_BN,
                                               lim0, lim1, scale, &m0, &m1, &l0, &l1, a, &al0, &al1, F16));
                    if (t > tb) V3D(1, bar_sync(SM90_BAR_PFREE, 256)); /* WG1 has read P(t - 1) */
                    V3D(6, if (MLA_V3_SMX) sm90_put_p4(sPf, sAl, a, al0, al1); else sm90_put_p(sPf, sAl, a, al0, al1);
                        bar_arrive(SM90_BAR_P, 256);
                        if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) sm90_rescale(o, al0, al1));
                } else {
                    if (MLA_V3_BTPF && !CPA && MLA_V3_SLICES && t + 2 < te && lane == 0 && ((tid - 128) >> 5) < nsl)
                        nid = ss_slice_bt(p, r, t + 2, L, (tid - 128) >> 5, MLA_V3_SLICES == 3);
                    V3D(1, bar_sync(SM90_BAR_P, 256));
                    float al0, al1;
                    V3D(3, if (MLA_V3_SMX) sm90_get_p4(sPf, sAl, a, &al0, &al1); else sm90_get_p(sPf, sAl, a, &al0, &al1));
                    if (t + 1 < te) bar_arrive(SM90_BAR_PFREE, 256);
                    V3D(0, mbar_wait(bar, ph)); /* complete (WG0 waited on it before QK^T): this warpgroup's own observation */
                    if (CPA) fence_proxy_async();
                    V3D(3, if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) sm90_rescale(o, al0, al1));
                }
                /* O[:, 256*wg : +256] += P V[:, 256*wg : +256] */
                pin128(o);
                V3D(wg ? 6 : 5, wg_fence(); sm90_pv(o, a, uK, wg, F16, MLA_DESC_AT); wg_commit(); wg_wait0());
                pin128(o);
                if (t + 2 < te) {
                    if (wg == 0) {
                        bar_arrive(MLA_V3_SFREE2 && (t & 1) ? SM90_BAR_SFREE_ODD : SM90_BAR_SFREE, 256); /* PV_L(t) done */
                    } else {
                        /* and PV_R(t): stage buf takes tile t + 2 */
                        V3D(2, bar_sync(MLA_V3_SFREE2 && (t & 1) ? SM90_BAR_SFREE_ODD : SM90_BAR_SFREE, 256));
                        V3D(5, if (CPA) {
                            v3c_fill(p, r, kvh, t + 2, L, uK, kvalid + 64 * buf, bar, tid - 128, NC64);
                        } else if (MLA_V3_SLICES) {
                            if (lane == 0 && ((tid - 128) >> 5) < nsl) {
                                if (MLA_V3_BTPF)
                                    ss_tma_slice_pre(p, tm, kvh, t + 2, L, uK, bar, (tid - 128) >> 5, NC64, kmask + buf,
                                                     MLA_V3_SLICES == 3, nid);
                                else
                                    ss_tma_slice(p, tm, r, kvh, t + 2, L, uK, bar, (tid - 128) >> 5, NC64, kmask + buf,
                                                 MLA_V3_SLICES == 3);
                            }
                            if (MLA_V3_SLICES > 1) __syncwarp();
                        } else if (tid == 128) {
                            ss_tma(p, tm, r, kvh, t + 2, L, uK, bar, 0x1FFu, NC64, kmask + buf);
                        });
                    }
                }
                V3D_END;
            }
        }
        DTK(dk_req, 3);
        DT_WG1(dk_req);
        sm90_epilogue(p, &w, r, mblk, kvh, o, m0, m1, l0, l1, 1.f, sInv, sLse, F16, 0, uQ);
        DTK(dk_req, 4);
        DT_INC(dk_req);
    }
    DTV(13, ncons);
    DTV(14, dk_req);
    DTS(15);
    DTG(17);
    DTV(18, smid());
    pdl_trigger();
}

/* ---- v4: warp-specialised TMA pipeline (MLA_KERNEL_WGMMA_WS) ----------------------------------
 * Each K stage is refilled in three chunk groups, each by the first thread that knows the group's
 * last reader is done, with its own transaction mbarrier:
 *   E = chunk 8 (RoPE dims; d_qk 576 only): last read by QK^T(t)      -> refilled by thread 128 at P_READY(t)
 *   L = chunks 0-3 (V[:, 0:256]):           last read by PV_L(t), WG0 -> refilled by thread 128 after it
 *   R = chunks 4-7 (V[:, 256:512]):         last read by PV_R(t), WG1 -> refilled by thread 128 after it
 * WG0: softmax(t) -> P(t) to smem -> O_L += P V_L(t), wait -> arrive on the V_L-free mbarrier -> [WG1 issued
 * PV_R(t)] QK^T(t+1), consuming the groups in arrival order E, L, R -> S(t+1). (Signalling V_L free
 * before waiting for tile t+1 keeps the refill of tile t+2 independent of tile t+1's arrival:
 * with the signal after QK^T(t+1), as first built, only one tile was ever in flight.)
 * WG1: P(t) from smem -> O_R += P V_R(t) -> refill R(t+2), then L(t+2) once V_L is free. (An mbarrier,
 * not a named barrier: WG0 may signal tile t+1 before WG1 has waited for tile t, and a named
 * barrier would then complete with two of WG0's arrivals; that deadlocked on the H100.)
 * (WG1 issues every refill after the prologue: divergent code in WG0 while its wgmmas are in
 * flight makes ptxas serialise them, C7520.)
 * So the tensor pipe sees PV_L(t) | PV_R(t) | QK^T(t+1) back to back; the 64 rows past the length of
 * a request's last tile are zeroed in smem (V must not carry NaN) by the warpgroup that reads them. */
#define WS_BAR_PFREE 2 /* WG1 has read P(t): WG0 may write P(t+1) (256) */
#define WS_BAR_PVR 3   /* WG1 has issued PV_R(t): WG0 may issue QK^T(t+1) (256) */
#define WS_BAR_WG0 4   /* WG0 only (128) */
#define WS_BAR_WG1 5   /* WG1 only (128) */

/* thread-local: chunks [c0, c1) of K tile t of request r into `tile`, completion (full boxes,
 * zero-filled out-of-range page slices included) on `bar` */
static __device__ __forceinline__ void ws_tma_group(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh,
                                                    int t, int L, uint32_t tile, uint32_t bar, int c0, int c1) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    int pid[4], row0[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        pid[k] = (int)p->num_pages; /* out of range: zero fill */
        row0[k] = 0;
        const int tok0 = t * MLA_BN + k * BR;
        if (k < 64 / BR && tok0 < L) {
            const int pidx = tok0 / ps;
            const int id = p->block_table[(long long)r * p->bt_stride + pidx];
            if (id >= 0 && (long long)id < p->num_pages) {
                pid[k] = id;
                row0[k] = tok0 - pidx * ps;
            }
        }
    }
    mbar_expect_tx(bar, (c1 - c0) * 8192);
#pragma unroll
    for (int k = 0; k < 4; k++)
        if (k < 64 / BR)
            for (int c = c0; c < c1; c++) tma_load_4d(tile + c * 8192 + k * BR * 128, tm, bar, 64 * c, row0[k], kvh, pid[k]);
}
/* Warpgroup h: O[:, 256 h : +256] += P V[:, 256 h : +256] of the K tile at `tile` (shared address
 * uK), issued and committed (not waited). nk = keys of the tile before the length: when < 64, the
 * rows [nk, 64) of this half of V are zeroed first (TMA loaded whatever the page holds there, and
 * P = 0 times NaN is NaN). */
static __device__ __forceinline__ void ws_pv_half(float *o, uint32_t a[4][4], unsigned char *tile, uint32_t uK, int nk,
                                                  const int h, const int F16) {
    if (nk < 64) {
        const int n = (64 - nk) * 32;
        for (int idx = threadIdx.x & 127; idx < n; idx += 128) {
            const int row = nk + (idx >> 5), rem = idx & 31;
            *(uint4 *)(tile + (4 * h + (rem >> 3)) * 8192 + row * 128 + (rem & 7) * 16) = make_uint4(0, 0, 0, 0);
        }
        fence_proxy_async();
        bar_sync(h ? WS_BAR_WG1 : WS_BAR_WG0, 128);
    }
    pin128(o);
    wg_fence();
    sm90_pv(o, a, uK, h, F16, MLA_DESC_AT);
    wg_commit();
}

static __device__ __forceinline__ void sm90_ws_body(const mla_dec_params *p, const CUtensorMap *tm, const int DQK,
                                                    const int F16) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    DTG(16);
    DTS(0);
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    DTS(1);
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    unsigned char *sQ = smem;
    uint32_t *sPf = (uint32_t *)(smem + 3 * TILE);   /* [16][128] */
    float *sAl = (float *)(sPf + 16 * 128);           /* [128][2] */
    float *sInv = sAl + 256, *sLse = sInv + 64;       /* [64], [64] */
    int *row_lim = (int *)(sLse + 64);                /* [64] */
    unsigned char *kvalid = (unsigned char *)(row_lim + 64); /* [2][64] */
    uint64_t *bars = (uint64_t *)(kvalid + 128);             /* [4][2]: E, L, R full; V_L free; per stage */

    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, lane = tid & 31;
    const int r0 = 16 * (t128 >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mb_cta = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int mb_u = 0; /* req_mblk: units of the part's requests so far, mod num_m_blocks */
    const float scale = p->scale_log2;
    const uint32_t uQ = smem_u32(sQ), uK0 = uQ + TILE;
    const uint32_t barE = smem_u32(bars), barL = barE + 16, barR = barE + 32; /* + 8 * stage */
    const uint32_t barF = barE + 48; /* V_L free (WG0's 128 threads arrive once per tile) */

    mla_part_begin pb, pe;
    part_bounds(p, part, sPf, &pb, &pe, 0);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    if (tid == 0) {
        for (int i = 0; i < 6; i++) mbar_init(barE + 8 * i, 1);
        mbar_init(barF, 128);
        mbar_init(barF + 8, 128);
        mbar_fence_init();
    }
    __syncthreads();
    int n0 = 0; /* tiles this CTA loaded before the current request (stage = n & 1, phase = (n >> 1) & 1) */

    for (int r = pb.req; r <= r_last; r++) {
        const int mblk = req_mblk(p, r, mb_cta, &mb_u);
        req_work w;
        if (!req_prepare(p, r, pb, pe, mblk, row_lim, &w)) continue;
        float o[128];
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] = 0.f;
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
        const int tb = w.tb, te = w.te, L = w.L;

        if (tb < te) {
            /* the first two tiles, whole; the rows' validity of both */
            if (tid == 0)
                for (int j = 0; j < 2 && tb + j < te; j++) {
                    const int st = (n0 + j) & 1;
                    const uint32_t uK = uK0 + st * TILE;
                    if (DQK == 576) ws_tma_group(p, tm, r, kvh, tb + j, L, uK, barE + 8 * st, 8, 9);
                    ws_tma_group(p, tm, r, kvh, tb + j, L, uK, barL + 8 * st, 0, 4);
                    ws_tma_group(p, tm, r, kvh, tb + j, L, uK, barR + 8 * st, 4, 8);
                }
            if (tid < 64) {
                kvalid[64 * (n0 & 1) + tid] = k_row_ptr(p, r, kvh, (long long)tb * MLA_BN + tid, L) != 0;
                if (tb + 1 < te)
                    kvalid[64 * ((n0 + 1) & 1) + tid] = k_row_ptr(p, r, kvh, (long long)(tb + 1) * MLA_BN + tid, L) != 0;
            }
            sm90_load_q(p, r, mblk, kvh, w.nvalid, uQ, NCH);
            cp_async_commit();
            cp_async_wait0();
            fence_proxy_async();
            __syncthreads();

            uint32_t a[4][4];
            if (wg == 0) {
                float s[32];
                const int lim0 = row_lim[r0], lim1 = row_lim[r1];
                /* S(tb) */
                {
                    const int st = n0 & 1, ph = (n0 >> 1) & 1;
                    const uint32_t uK = uK0 + st * TILE;
#pragma unroll
                    for (int i = 0; i < 32; i++) s[i] = 0.f;
                    pin32(s);
                    if (DQK == 576) mbar_wait(barE + 8 * st, ph);
                    mbar_wait(barL + 8 * st, ph);
                    mbar_wait(barR + 8 * st, ph);
                    wg_fence();
                    sm90_qk(s, uQ, uK, 0, NC64, F16, MLA_DESC_AT);
                    wg_commit();
                    wg_wait0();
                    pin32(s);
                }
                for (int t = tb; t < te; t++) {
                    const int n = n0 + (t - tb), st = n & 1;
                    const uint32_t uK = uK0 + st * TILE;
                    float al0, al1;
                    sm90_softmax(s, kvalid + 64 * st, t * MLA_BN, lim0, lim1, scale, &m0, &m1, &l0, &l1, a, &al0,
                                 &al1, F16);
                    if (t > tb) bar_sync(WS_BAR_PFREE, 256);
                    sm90_put_p(sPf, sAl, a, al0, al1);
                    bar_arrive(SM90_BAR_P, 256);
                    sm90_rescale(o, al0, al1);
                    ws_pv_half(o, a, smem + TILE + st * TILE, uK, L - t * MLA_BN, 0, F16); /* O_L += P V_L(t) */
                    wg_wait0(); /* PV_L(t) done: V_L of stage st may be refilled */
                    pin128(o);
                    mbar_arrive(barF + 8 * st); /* every tile (keeps its phase = n >> 1) */
                    if (t + 1 < te) {
                        /* S(t+1) = Q K(t+1)^T, groups in arrival order E, L, R */
                        const int n1 = n + 1, st1 = n1 & 1, ph1 = (n1 >> 1) & 1;
                        const uint32_t uK1 = uK0 + st1 * TILE;
#pragma unroll
                        for (int i = 0; i < 32; i++) s[i] = 0.f;
                        pin32(s);
                        bar_sync(WS_BAR_PVR, 256);
                        if (DQK == 576) {
                            mbar_wait(barE + 8 * st1, ph1);
                            wg_fence();
                            sm90_qk(s, uQ, uK1, 8, 9, F16, MLA_DESC_AT);
                        }
                        mbar_wait(barL + 8 * st1, ph1);
                        wg_fence();
                        sm90_qk(s, uQ, uK1, 0, 4, F16, MLA_DESC_AT);
                        mbar_wait(barR + 8 * st1, ph1);
                        wg_fence();
                        sm90_qk(s, uQ, uK1, 4, 8, F16, MLA_DESC_AT);
                        wg_commit();
                        wg_wait0();
                        pin32(s);
                    }
                }
            } else {
                for (int t = tb; t < te; t++) {
                    const int n = n0 + (t - tb), st = n & 1, ph = (n >> 1) & 1;
                    const uint32_t uK = uK0 + st * TILE;
                    bar_sync(SM90_BAR_P, 256); /* P(t); QK^T(t) is complete */
                    if (DQK == 576 && t + 2 < te && tid == 128)
                        ws_tma_group(p, tm, r, kvh, t + 2, L, uK, barE + 8 * st, 8, 9);
                    float al0, al1;
                    sm90_get_p(sPf, sAl, a, &al0, &al1);
                    if (t + 1 < te) bar_arrive(WS_BAR_PFREE, 256);
                    sm90_rescale(o, al0, al1);
                    mbar_wait(barR + 8 * st, ph); /* complete (WG0 waited on it before QK^T(t)) */
                    ws_pv_half(o, a, smem + TILE + st * TILE, uK, L - t * MLA_BN, 1, F16); /* O_R += P V_R(t) */
                    if (t + 1 < te) bar_arrive(WS_BAR_PVR, 256);
                    wg_wait0();
                    pin128(o);
                    if (t + 2 < te) {
                        /* tile t + 2 into stage st: V_R now, V_L once WG0's PV_L(t) is done; the rows'
                         * validity for WG0's softmax(t + 2) (ordered by WS_BAR_PVR of tile t + 1) */
                        if (tid == 128) ws_tma_group(p, tm, r, kvh, t + 2, L, uK, barR + 8 * st, 4, 8);
                        if (t128 < 64)
                            kvalid[64 * st + t128] = k_row_ptr(p, r, kvh, (long long)(t + 2) * MLA_BN + t128, L) != 0;
                        if (tid == 128) {
                            mbar_wait(barF + 8 * st, ph);
                            ws_tma_group(p, tm, r, kvh, t + 2, L, uK, barL + 8 * st, 0, 4);
                        }
                    }
                }
            }
            n0 += te - tb;
        }
        sm90_epilogue(p, &w, r, mblk, kvh, o, m0, m1, l0, l1, 1.f, sInv, sLse, F16, 0, 0);
    }
    pdl_trigger();
}
#endif /* MLA_HAVE_SM90A */

/* v2 */
MLA_SM90_P_KERNEL(mla_decode_sm90_bf16_576, sm90_body(&p, 576, 0, 0, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90_bf16_512, sm90_body(&p, 512, 0, 0, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90_fp16_576, sm90_body(&p, 576, 1, 0, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90_fp16_512, sm90_body(&p, 512, 1, 0, 0))
/* v2 with the fused schedule (no scheduler launch; small batches, src/gpu.cu) */
#ifndef MLA_NO_FUSED_ENTRIES /* (PTX comparisons of the other entries only) */
MLA_SM90_P_KERNEL(mla_decode_sm90fs_bf16_576, sm90_body(&p, 576, 0, 0, 1))
MLA_SM90_P_KERNEL(mla_decode_sm90fs_bf16_512, sm90_body(&p, 512, 0, 0, 1))
MLA_SM90_P_KERNEL(mla_decode_sm90fs_fp16_576, sm90_body(&p, 576, 1, 0, 1))
MLA_SM90_P_KERNEL(mla_decode_sm90fs_fp16_512, sm90_body(&p, 512, 1, 0, 1))
#endif
/* v3 */
MLA_SM90_TM_KERNEL(mla_decode_sm90tma_bf16_576, tma_body(&p, &tm, 576, 0, 0, 0))
MLA_SM90_TM_KERNEL(mla_decode_sm90tma_bf16_512, tma_body(&p, &tm, 512, 0, 0, 0))
MLA_SM90_TM_KERNEL(mla_decode_sm90tma_fp16_576, tma_body(&p, &tm, 576, 1, 0, 0))
MLA_SM90_TM_KERNEL(mla_decode_sm90tma_fp16_512, tma_body(&p, &tm, 512, 1, 0, 0))
/* v3 with the fused schedule (no scheduler launch; small batches, src/gpu.cu) */
#ifndef MLA_NO_FUSED_ENTRIES
MLA_SM90_TM_KERNEL(mla_decode_sm90tmafs_bf16_576, tma_body(&p, &tm, 576, 0, 0, 1))
MLA_SM90_TM_KERNEL(mla_decode_sm90tmafs_bf16_512, tma_body(&p, &tm, 512, 0, 0, 1))
MLA_SM90_TM_KERNEL(mla_decode_sm90tmafs_fp16_576, tma_body(&p, &tm, 576, 1, 0, 1))
MLA_SM90_TM_KERNEL(mla_decode_sm90tmafs_fp16_512, tma_body(&p, &tm, 512, 1, 0, 1))
#endif
/* v3 with cp.async tiles (MLA_KERNEL_WGMMA_V3C): no tensor map */
MLA_SM90_P_KERNEL(mla_decode_sm90v3c_bf16_576, tma_body(&p, 0, 576, 0, 1, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90v3c_bf16_512, tma_body(&p, 0, 512, 0, 1, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90v3c_fp16_576, tma_body(&p, 0, 576, 1, 1, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90v3c_fp16_512, tma_body(&p, 0, 512, 1, 1, 0))
/* v3 with cp.async tiles and the fused schedule */
#ifndef MLA_NO_FUSED_ENTRIES
MLA_SM90_P_KERNEL(mla_decode_sm90v3cfs_bf16_576, tma_body(&p, 0, 576, 0, 1, 1))
MLA_SM90_P_KERNEL(mla_decode_sm90v3cfs_bf16_512, tma_body(&p, 0, 512, 0, 1, 1))
MLA_SM90_P_KERNEL(mla_decode_sm90v3cfs_fp16_576, tma_body(&p, 0, 576, 1, 1, 1))
MLA_SM90_P_KERNEL(mla_decode_sm90v3cfs_fp16_512, tma_body(&p, 0, 512, 1, 1, 1))
#endif
/* dense FP8 e4m3 cache; the MMA and out dtype is bf16/fp16 (shape.dtype); q 16-bit or e4m3 */
MLA_SM90_P_KERNEL(mla_decode_sm90f8_bf16_576, sm90_body(&p, 576, 0, 1, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90f8_bf16_512, sm90_body(&p, 512, 0, 1, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90f8_fp16_576, sm90_body(&p, 576, 1, 1, 0))
MLA_SM90_P_KERNEL(mla_decode_sm90f8_fp16_512, sm90_body(&p, 512, 1, 1, 0))
/* v4: warp-specialised TMA pipeline */
MLA_SM90_TM_KERNEL(mla_decode_sm90ws_bf16_576, sm90_ws_body(&p, &tm, 576, 0))
MLA_SM90_TM_KERNEL(mla_decode_sm90ws_bf16_512, sm90_ws_body(&p, &tm, 512, 0))
MLA_SM90_TM_KERNEL(mla_decode_sm90ws_fp16_576, sm90_ws_body(&p, &tm, 576, 1))
MLA_SM90_TM_KERNEL(mla_decode_sm90ws_fp16_512, sm90_ws_body(&p, &tm, 512, 1))

/* variant: 0 cp.async, 1 TMA, 2 FP8 cache, 3 warp-specialised TMA pipeline, 4 seesaw (decode_seesaw.cu),
 * 5 cp.async with the fused schedule, 6 v3 with cp.async tiles, 7 TMA (v3) with the fused schedule, 8 v3 with
 * cp.async tiles and the fused schedule */
extern "C" const void *mla_k_sm90_fn(int dqk, int f16, int tma) {
    if (tma == 4) return mla_k_seesaw_fn(dqk, f16);
    if (tma == 6) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90v3c_fp16_576 : (const void *)mla_decode_sm90v3c_bf16_576;
        return f16 ? (const void *)mla_decode_sm90v3c_fp16_512 : (const void *)mla_decode_sm90v3c_bf16_512;
    }
#ifndef MLA_NO_FUSED_ENTRIES
    if (tma == 8) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90v3cfs_fp16_576 : (const void *)mla_decode_sm90v3cfs_bf16_576;
        return f16 ? (const void *)mla_decode_sm90v3cfs_fp16_512 : (const void *)mla_decode_sm90v3cfs_bf16_512;
    }
    if (tma == 7) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90tmafs_fp16_576 : (const void *)mla_decode_sm90tmafs_bf16_576;
        return f16 ? (const void *)mla_decode_sm90tmafs_fp16_512 : (const void *)mla_decode_sm90tmafs_bf16_512;
    }
    if (tma == 5) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90fs_fp16_576 : (const void *)mla_decode_sm90fs_bf16_576;
        return f16 ? (const void *)mla_decode_sm90fs_fp16_512 : (const void *)mla_decode_sm90fs_bf16_512;
    }
#endif
    if (tma == 3) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90ws_fp16_576 : (const void *)mla_decode_sm90ws_bf16_576;
        return f16 ? (const void *)mla_decode_sm90ws_fp16_512 : (const void *)mla_decode_sm90ws_bf16_512;
    }
    if (tma == 2) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90f8_fp16_576 : (const void *)mla_decode_sm90f8_bf16_576;
        return f16 ? (const void *)mla_decode_sm90f8_fp16_512 : (const void *)mla_decode_sm90f8_bf16_512;
    }
    if (tma) {
        if (dqk == 576) return f16 ? (const void *)mla_decode_sm90tma_fp16_576 : (const void *)mla_decode_sm90tma_bf16_576;
        return f16 ? (const void *)mla_decode_sm90tma_fp16_512 : (const void *)mla_decode_sm90tma_bf16_512;
    }
    if (dqk == 576) return f16 ? (const void *)mla_decode_sm90_fp16_576 : (const void *)mla_decode_sm90_bf16_576;
    return f16 ? (const void *)mla_decode_sm90_fp16_512 : (const void *)mla_decode_sm90_bf16_512;
}
extern "C" int mla_k_sm90_smem(int dqk) { return sm90_smem_bytes(dqk); }
extern "C" int mla_k_sm90_native(void) {
    cudaFuncAttributes a;
    if (cudaFuncGetAttributes(&a, (const void *)mla_decode_sm90_bf16_576) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return a.ptxVersion >= 90;
}
