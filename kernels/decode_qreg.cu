/* decode_qreg.cu — dense MLA decode on Hopper with Q in registers and three warpgroups (sm_90a;
 * MLA_KERNEL_WGMMA_QR, twelfth session, docs/performance.md §8).
 *
 * The 64-row kernels before this one (decode_sm90.cu v2/v3, the seesaw v5) keep Q (72 KB) in shared
 * memory, which leaves room for two 64-token K stages only, and run QK^T (WG0), the softmax (WG0)
 * and PV (both) one after the other: per tile ~0.7 us of softmax and barriers with the tensor
 * pipe idle, and a K ring of two stages whose refill latency shows (docs/performance.md v2.1, v5).
 * Here:
 *   WG0 (softmax warpgroup): Q chunks 0..6 (448 columns) as 16-bit A fragments in registers (112
 *        per thread, loaded once per request from global memory), the other one or two 64-column
 *        chunks in smem; S = Q K^T as RS (SS for the smem chunks) m64n32k16 over 32-token K
 *        stages, masking, online softmax (log2 domain, lazy rescale), P (two k16 A fragments) and
 *        the two row factors to a double-buffered smem slot in fragment order.
 *   WG1, WG2 (PV warpgroups): O[:, 256 h : +256] (h = wg - 1) *= factor, += P V_h (RS m64n256k16
 *        x 2, V = the K stage read MN-major); WG2 frees the stage, thread 128 (WG1) refills it with
 *        the sub-tile NS ahead (TMA, one 64 x 32 box per 64-column chunk).
 * So WG0's softmax of sub-tile n runs while WG1/WG2 multiply sub-tile n - 1, and the ring holds
 * NS = 5 (d_qk 576) or 6 (512) stages of 32 tokens. With most of Q in registers, QK^T reads mostly
 * K from smem (1 KB per m64n32k16 instead of 3 KB: the SS form at N = 32 is shared-memory bound).
 * Registers: 168 per thread in every warpgroup (3 x 168 = the SM's 64K); no setmaxnreg: the PV
 * warpgroups need more than 160 (O 128 + P 8 + request state), which leaves WG0 too few for all
 * nine Q chunks (144 registers); with two S accumulators (QK^T of the next sub-tile runs during
 * the softmax of this one) QR_QCH = 6 chunks fit.
 *
 * Work decomposition, scheduler, split slots and combine are those of the other decode kernels
 * (kernels/decode.cu, common.cuh): a 64-token scheduler tile is two 32-token sub-tiles here. Used
 * for 16-bit caches with pages of a multiple of 32 tokens (all 32 rows of a sub-tile on one page:
 * one page id, one validity per stage). Rows past the length on a real page are zeroed in smem by
 * WG0 before they are published (V must not carry NaN into P V); sub-tiles on invalid pages come
 * zero-filled from TMA (out-of-range page coordinate) and are masked. */
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

#define QR_BN 32                   /* tokens per K stage */
/* QR_DIAG (timing builds, results wrong by design): 1 no K loads after the first NS sub-tiles (the
 * producer only arrives), 2 no QK^T wgmmas, 3 no PV wgmmas */
#ifndef QR_DIAG
#define QR_DIAG 0
#endif
#ifndef QR_QCH
#define QR_QCH 6                   /* 64-column chunks of Q in WG0's registers (the rest in smem) */
#endif
#define QR_BAR_READY 1             /* + slot: P slot ready (WG0 arrives 128, WG1 + WG2 sync 256) */
#define QR_BAR_FREE 3              /* + slot: P slot read (WG1 + WG2 arrive, WG0 syncs) */
#define QR_BAR_EPI_A 5             /* request end: 1/l in smem (WG0 arrives, WG1 + WG2 sync) */
#define QR_BAR_EPI_B 6             /* request end: 1/l read (WG1 + WG2 arrive, WG0 syncs) */
#define QR_BAR_WG0 7               /* WG0 only: its Q chunks in smem are written */
#define QR_BAR_PV 8                /* + h: PV warpgroup h only (its zeroed V rows are written) */

/* K stages: as many 32-token stages as fit beside the smem Q chunks and the rest (at most 8) */
static __host__ __device__ __forceinline__ int qr_ns(int dqk) {
    const int n = (232448 - 1024 - (dqk / 64 - QR_QCH) * 8192 - 10944) / (QR_BN * dqk * 2);
    return n > 8 ? 8 : n;
}
/* shared memory from a 1024-aligned base: stages [NS][DQK/64][32 rows][128 B], Q chunks QR_QCH..
 * [DQK/64 - QR_QCH][64 rows][128 B] (SW128), P slots [2][8][128]
 * u32, row factors [2][128][2] f32, 1/l [64] f32, valid keys per stage [8] int, full[8] and
 * empty[8] mbarriers, scratch [64] int (req_prepare's row_lim, not read), the producer's cursor */
static __host__ __device__ __forceinline__ int qr_smem_bytes(int dqk) {
    return qr_ns(dqk) * QR_BN * dqk * 2 + (dqk / 64 - QR_QCH) * 8192 + 2 * 8 * 128 * 4 + 2 * 128 * 2 * 4 + 64 * 4 + 8 * 4 + 16 * 8 + 64 * 4 + 32 + 1024;
}

#if MLA_HAVE_SM90A
/* byte offset of the Q chunks in smem and of the P slots */
static __device__ __forceinline__ int qr_q_off(int dqk) { return qr_ns(dqk) * QR_BN * dqk * 2; }
static __device__ __forceinline__ int qr_p_off(int dqk) { return qr_q_off(dqk) + (dqk / 64 - QR_QCH) * 8192; }
/* the sub-tiles [j0, j1) of request r for this m-block (0 when the m-block has no row of r): the
 * scheduler's 64-token tiles [tb, te) as 32-token halves, ending at the length */
typedef struct qr_req { req_work w; int j0, j1; } qr_req;
static __device__ __forceinline__ int qr_prepare(const mla_dec_params *p, int r, mla_part_begin pb, mla_part_begin pe,
                                                 int mblk, int *scr, qr_req *q) {
    if (!req_prepare(p, r, pb, pe, mblk, scr, &q->w)) return 0;
    q->j0 = 2 * q->w.tb;
    q->j1 = 2 * q->w.te;
    const int jl = (q->w.L + QR_BN - 1) / QR_BN;
    if (q->j1 > jl) q->j1 = jl;
    if (q->j0 > q->j1) q->j0 = q->j1;
    return 1;
}

/* The producer (thread 128): a cursor over the part's sub-tiles in the consumers' order, kept in smem
 * (registers are short in the PV warpgroups), the page id of the next sub-tile copied into it a step
 * ahead by cp.async (a global load waited for in thread 128 holds up WG1's next wgmma, and with it
 * every warpgroup: ncu put half of the PV warpgroups' stall samples there). */
typedef struct qr_cursor { int r, j, j1, L, pid; } qr_cursor;
static __device__ __forceinline__ int qr_page(const mla_dec_params *p, const qr_cursor *c) {
    if (c->j >= c->j1) return -1;
    const unsigned tok0 = (unsigned)c->j * QR_BN, ps = (unsigned)p->page_size;
    return p->block_table[(long long)c->r * p->bt_stride + tok0 / ps];
}
static __device__ __forceinline__ void qr_seek(const mla_dec_params *p, mla_part_begin pb, mla_part_begin pe, int r_last,
                                               int mblk, int *scr, qr_cursor *c) {
    while (c->r <= r_last && c->j >= c->j1) {
        c->r++;
        c->j = c->j1 = 0;
        if (c->r > r_last) break;
        qr_req q;
        if (qr_prepare(p, c->r, pb, pe, mblk, scr, &q)) {
            c->j = q.j0;
            c->j1 = q.j1;
            c->L = q.w.L;
        }
    }
}
/* sub-tile c->j of request c->r (page id c->pid, loaded earlier) into stage `stage`; its valid-key
 * count to *nk before the arrival that the consumers acquire */
static __device__ __forceinline__ void qr_issue(const mla_dec_params *p, const CUtensorMap *tm, int kvh,
                                                const qr_cursor *c, uint32_t stage, uint32_t bar, int *nk,
                                                const int NC64) {
    const unsigned tok0 = (unsigned)c->j * QR_BN, ps = (unsigned)p->page_size;
    const unsigned pidx = tok0 / ps;
    int pid = c->pid, n = c->L - (int)tok0;
    if (pid < 0 || (long long)pid >= p->num_pages) {
        pid = (int)p->num_pages; /* out of range: zero fill */
        n = 0;
    }
    *nk = n > QR_BN ? QR_BN : n;
    mbar_expect_tx(bar, NC64 * QR_BN * 128);
    const int row0 = (int)(tok0 - pidx * ps);
#pragma unroll
    for (int ch = 0; ch < NC64; ch++) tma_load_4d(stage + ch * QR_BN * 128, tm, bar, 64 * ch, row0, kvh, pid);
}

/* visible-key count of packed row `row` of this m-block (req_prepare's row_lim) */
static __device__ __forceinline__ int qr_row_lim(const mla_dec_params *p, const req_work *w, int mblk, int row) {
    if (row >= w->nvalid) return 0;
    int lim = w->L;
    if (p->causal) {
        const int j = (mblk * MLA_BM + row) / p->hg;
        lim = w->L - w->n_q + j + 1;
        lim = lim < 0 ? 0 : (lim > w->L ? w->L : lim);
    }
    return lim;
}

/* WG0: Q of request r, chunks [0, QR_QCH) (rows r0 / r1 of this thread) as A fragments: q[4 kk + jj]
 * holds row (jj & 1 ? r1 : r0), columns 16 kk + 8 (jj >> 1) + 2 (lane & 3) + {0, 1}; chunks
 * [QR_QCH, DQK / 64) into the SW128 tiles at sQ (16-byte pieces; rows >= nvalid zero), then this
 * thread's proxy fence (the caller orders the warpgroup before the first wgmma) */
static __device__ __forceinline__ void qr_load_q(const mla_dec_params *p, int r, int mblk, int kvh, int nvalid,
                                                 uint32_t *q, int r0, unsigned char *sQ, const int DQK) {
    const int lane = threadIdx.x & 31, hg = p->hg, t128 = threadIdx.x & 127, NQS = DQK / 64 - QR_QCH;
#pragma unroll
    for (int i = 0; i < NQS * 64 * 8 / 128; i++) {
        const int idx = t128 + 128 * i, row = idx >> 3, pc = idx & 7, ci = row >> 6, rw = row & 63;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (rw < nvalid) {
            const int rr = mblk * MLA_BM + rw, j = rr / hg, head = kvh * hg + rr % hg;
            v = __ldg((const uint4 *)((const char *)p->q +
                                      ((long long)r * p->q_s0 + (long long)j * p->q_s1 + (long long)head * p->q_s2 +
                                       64 * (QR_QCH + ci) + 8 * pc) * 2));
        }
        *(uint4 *)(sQ + ci * 8192 + rw * 128 + ((pc ^ (rw & 7)) << 4)) = v;
    }
    fence_proxy_async();
    const uint32_t *src[2] = {0, 0};
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = h ? r0 + 8 : r0;
        if (row < nvalid) {
            const int rr = mblk * MLA_BM + row, j = rr / hg, head = kvh * hg + rr % hg;
            src[h] = (const uint32_t *)((const char *)p->q +
                                        ((long long)r * p->q_s0 + (long long)j * p->q_s1 + (long long)head * p->q_s2) * 2) +
                     (lane & 3);
        }
    }
#pragma unroll
    for (int kk = 0; kk < 4 * QR_QCH; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) {
            const uint32_t *s = src[jj & 1];
            q[4 * kk + jj] = s ? __ldg(s + 8 * kk + 4 * (jj >> 1)) : 0u;
        }
}

/* WG0: S (m64n32 fragment, 16 floats) = Q K^T over the stage at uK (NK k-steps: RS m64n32k16 with Q
 * from registers, then SS over the Q chunks at uQs), issued and committed, not waited (the first
 * k-step overwrites S: scale-d 0) */
static __device__ __forceinline__ void qr_qk_issue(float *s, const uint32_t *q, uint32_t uQs, uint32_t uK, const int NK,
                                                   const int F16) {
    pin_n(s, 16);
    wg_fence();
    /* descriptors as base + constant: the address field (bits 0-13, address / 16) of a shared address
     * below 256 KB never carries, so each k-step costs one add before its R2UR (a full desc_sw128 per
     * k-step was a 5-instruction dependent chain per wgmma, longer than an m64n32k16 takes) */
    const uint64_t dk0 = desc_sw128(uK, 16, 1024), dq0 = desc_sw128(uQs, 16, 1024);
#pragma unroll
    for (int kk = 0; kk < NK; kk++) {
        const uint64_t db = dk0 + (uint64_t)(((kk >> 2) * (QR_BN * 128) + (kk & 3) * 32) >> 4);
        if (QR_DIAG == 2) {
        } else if (kk < 4 * QR_QCH) {
            if (F16) wgmma_rs_m64n32_tb0_f16(s, q + 4 * kk, db, kk > 0);
            else wgmma_rs_m64n32_tb0_bf16(s, q + 4 * kk, db, kk > 0);
        } else {
            const uint64_t da = dq0 + (uint64_t)((((kk >> 2) - QR_QCH) * 8192 + (kk & 3) * 32) >> 4);
            if (F16) wgmma_ss_m64n32_tb0_f16(s, da, db, kk > 0);
            else wgmma_ss_m64n32_tb0_bf16(s, da, db, kk > 0);
        }
    }
    wg_commit();
}

/* WG0: mask (key < nk and key0 + key below the row's limit), scale, online softmax with the running
 * max m / sum l of rows r0 / r1; P as two k16 A fragments, the rows' factors al0 / al1 */
static __device__ __forceinline__ void qr_softmax(float *s, int nk, int key0, int lim0, int lim1, float scale, float *m0,
                                                  float *m1, float *l0, float *l1, uint32_t a[2][4], float *al0,
                                                  float *al1, const int F16) {
    const int lane = threadIdx.x & 31;
    float mx0 = -INFINITY, mx1 = -INFINITY;
    /* branch-free (a branch here, while the next QK^T is in flight, makes ptxas serialise the wgmmas):
     * key k of this tile is visible to row r when k < min(nk, lim_r - key0) */
    const int v0 = min(nk, lim0 - key0), v1 = min(nk, lim1 - key0);
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const int key = 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
        const float v = key < ((i & 2) ? v1 : v0) ? s[i] * scale : -INFINITY;
        s[i] = v;
        if (i & 2) mx1 = fmaxf(mx1, v);
        else mx0 = fmaxf(mx0, v);
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    /* lazy maxima: a row's max moves only when the tile's exceeds it (then alpha < 1) */
    const float mn0 = fmaxf(*m0, mx0), mn1 = fmaxf(*m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    *al0 = mn0 == *m0 ? 1.f : fast_exp2(*m0 - mu0);
    *al1 = mn1 == *m1 ? 1.f : fast_exp2(*m1 - mu1);
    *m0 = mn0;
    *m1 = mn1;
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const float e = fast_exp2(s[i] - ((i & 2) ? mu1 : mu0));
        s[i] = e;
        if (i & 2) sum1 += e;
        else sum0 += e;
    }
    *l0 = *l0 * *al0 + sum0;
    *l1 = *l1 * *al1 + sum1;
#pragma unroll
    for (int kk = 0; kk < 2; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) a[kk][jj] = pack2(s[8 * kk + 2 * jj], s[8 * kk + 2 * jj + 1], F16);
}

/* WG0: waits for sub-tile n's stage and returns its valid-key count (rows past it are masked here
 * and zeroed by the PV warpgroups: divergent stores between WG0's wgmmas would serialise them) */
static __device__ __forceinline__ int qr_stage_ready(unsigned char *smem, unsigned n, const int DQK) {
    const int NS = qr_ns(DQK), st = n % NS;
    const int *sNk = (const int *)(smem + qr_p_off(DQK) + 2 * 8 * 128 * 4 + 2 * 256 * 4 + 64 * 4);
    mbar_wait(smem_u32(sNk + 8) + 8 * st, (n / NS) & 1);
    return sNk[st];
}
/* WG0: softmax of the waited S of sub-tile j (valid keys nk), P(j) and the row factors to slot n & 1
 * (branch-free: it runs while the next QK^T is in flight, and a branch there makes ptxas serialise
 * the wgmmas) */
static __device__ __forceinline__ void qr_publish(unsigned char *smem, float *s, int nk, int j, unsigned n, int lim0,
                                                  int lim1, float scale, float *m0, float *m1, float *l0, float *l1,
                                                  const int DQK, const int F16) {
    const int t128 = threadIdx.x & 127;
    uint32_t a[2][4];
    float al0, al1;
    qr_softmax(s, nk, j * QR_BN, lim0, lim1, scale, m0, m1, l0, l1, a, &al0, &al1, F16);
    const int slot = n & 1;
    uint32_t *sP = (uint32_t *)(smem + qr_p_off(DQK)) + slot * 8 * 128;
    float *sAl = (float *)(smem + qr_p_off(DQK) + 2 * 8 * 128 * 4) + slot * 256;
    nbar_sync(QR_BAR_FREE + slot, 384); /* (the PV warpgroups pre-arrive once per slot) */
#pragma unroll
    for (int kk = 0; kk < 2; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) sP[(4 * kk + jj) * 128 + t128] = a[kk][jj];
    sAl[2 * t128] = al0;
    sAl[2 * t128 + 1] = al1;
    nbar_arrive(QR_BAR_READY + slot, 384);
}

/* WG0 */
static __device__ __forceinline__ void qr_softmax_wg(const mla_dec_params *p, mla_part_begin pb, mla_part_begin pe,
                                                     int r_last, unsigned char *smem, const int DQK, const int F16) {
    const int NS = qr_ns(DQK), NK = DQK / 16;
    const int t128 = threadIdx.x & 127, lane = t128 & 31;
    const int r0 = 16 * (t128 >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mblk = blockIdx.x, kvh = blockIdx.y;
    const uint32_t uSt = smem_u32(smem);
    uint32_t *sP = (uint32_t *)(smem + qr_p_off(DQK));
    const uint32_t uQs = uSt + qr_q_off(DQK);
    float *sAl = (float *)(sP + 2 * 8 * 128), *sInv = sAl + 2 * 256;
    int *sNk = (int *)(sInv + 64);
    const uint32_t barF = smem_u32(sNk + 8);
    int *scr = sNk + 8 + 32;
    const float scale = p->scale_log2;
    uint32_t q[4 * 4 * QR_QCH];
    unsigned n = 0;   /* sub-tiles consumed by this CTA */
    int nreq = 0;     /* requests finished */
    for (int r = pb.req; r <= r_last; r++) {
        qr_req rq;
        if (!qr_prepare(p, r, pb, pe, mblk, scr, &rq)) continue;
        const int lim0 = qr_row_lim(p, &rq.w, mblk, r0), lim1 = qr_row_lim(p, &rq.w, mblk, r1);
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
        if (rq.j0 < rq.j1) { /* (WG0's own wgmmas of the previous request are complete) */
            qr_load_q(p, r, mblk, kvh, rq.w.nvalid, q, r0, smem + qr_q_off(DQK), DQK);
            nbar_sync(QR_BAR_WG0, 128);
        }
        /* sub-tiles in pairs: S(j) and S(j + 1) issued back to back, the softmax of j runs while S(j + 1)
         * is computed, that of j + 1 while the PV warpgroups multiply j. Nothing is in flight across
         * the loop's back edge (an accumulator in flight there made ptxas serialise the wgmmas). Past
         * the request's last sub-tile the second product is issued on the first's stage and unused. */
        for (int j = rq.j0; j < rq.j1; j += 2) {
            float sa[16], sb[16];
            const int two = j + 1 < rq.j1;
            const unsigned n1 = two ? n + 1 : n;
            const int nka = qr_stage_ready(smem, n, DQK);
            qr_qk_issue(sa, q, uQs, uSt + (n % NS) * QR_BN * DQK * 2, NK, F16);
            const int nkb = qr_stage_ready(smem, n1, DQK);
            qr_qk_issue(sb, q, uQs, uSt + (n1 % NS) * QR_BN * DQK * 2, NK, F16);
            wg_wait1();
            pin_n(sa, 16);
            qr_publish(smem, sa, nka, j, n, lim0, lim1, scale, &m0, &m1, &l0, &l1, DQK, F16);
            wg_wait0();
            pin_n(sb, 16);
            if (two) qr_publish(smem, sb, nkb, j + 1, n + 1, lim0, lim1, scale, &m0, &m1, &l0, &l1, DQK, F16);
            n += 1 + two;
        }
        /* request end: lse from here, 1/l to the PV warpgroups */
        l0 = quad_sum(l0);
        l1 = quad_sum(l1);
        if (nreq > 0) nbar_sync(QR_BAR_EPI_B, 384);
        if ((lane & 3) == 0) {
            sInv[r0] = row_inv(l0, 1.f);
            sInv[r1] = row_inv(l1, 1.f);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = h ? r1 : r0;
                if (row < rq.w.nvalid) {
                    const int rr = mblk * MLA_BM + row, jq = rr / p->hg, head = kvh * p->hg + rr % p->hg;
                    store_lse(p, rq.w.slot, r, jq, head, row_lse2(h ? m1 : m0, h ? l1 : l0));
                }
            }
        }
        nbar_arrive(QR_BAR_EPI_A, 384);
        nreq++;
    }
    /* the PV warpgroups' last arrivals */
    if (nreq > 0) nbar_sync(QR_BAR_EPI_B, 384);
    nbar_sync(QR_BAR_FREE, 384);
    nbar_sync(QR_BAR_FREE + 1, 384);
}

/* WG1 / WG2 */
static __device__ __forceinline__ void qr_pv_wg(const mla_dec_params *p, const CUtensorMap *tm, mla_part_begin pb,
                                                mla_part_begin pe, int r_last, unsigned char *smem, const int DQK,
                                                const int F16) {
    const int NS = qr_ns(DQK), NC64 = DQK / 64;
    const int wg = threadIdx.x >> 7, h = wg - 1, t128 = threadIdx.x & 127, lane = t128 & 31;
    const int r0 = 16 * (t128 >> 5) + (lane >> 2), r1 = r0 + 8;
    const int mblk = blockIdx.x, kvh = blockIdx.y;
    const uint32_t uSt = smem_u32(smem);
    const uint32_t *sP = (const uint32_t *)(smem + qr_p_off(DQK));
    const float *sAl = (const float *)(sP + 2 * 8 * 128), *sInv = sAl + 2 * 256;
    int *sNk = (int *)(sInv + 64);
    const uint32_t barF = smem_u32(sNk + 8), barE = barF + 64;
    int *scr = sNk + 8 + 32;
    const int prod = wg == 1 && t128 == 0;
    qr_cursor *cs = (qr_cursor *)(scr + 64); /* the producer's cursor lives in smem: registers are
                                                * short here (O is 128 of 168) */
    if (prod) { /* the first NS sub-tiles of the part */
        qr_cursor cur;
        cur.r = pb.req - 1;
        cur.j = cur.j1 = cur.L = 0;
        qr_seek(p, pb, pe, r_last, mblk, scr, &cur);
        cur.pid = qr_page(p, &cur);
        for (int i = 0; i < NS && cur.r <= r_last; i++) {
            qr_issue(p, tm, kvh, &cur, uSt + i * QR_BN * DQK * 2, barF + 8 * i, sNk + i, NC64);
            cur.j++;
            qr_seek(p, pb, pe, r_last, mblk, scr, &cur);
            cur.pid = qr_page(p, &cur);
        }
        *cs = cur;
    }
    nbar_arrive(QR_BAR_FREE, 384); /* both P slots start free */
    nbar_arrive(QR_BAR_FREE + 1, 384);
    unsigned n = 0;
    for (int r = pb.req; r <= r_last; r++) {
        qr_req rq;
        if (!qr_prepare(p, r, pb, pe, mblk, scr, &rq)) continue;
        float o[128];
#pragma unroll
        for (int i = 0; i < 128; i++) o[i] = 0.f;
        for (int j = rq.j0; j < rq.j1; j++, n++) {
            const int st = n % NS, slot = n & 1;
            nbar_sync(QR_BAR_READY + slot, 384);
            uint32_t a[2][4];
            const uint32_t *src = sP + slot * 8 * 128;
#pragma unroll
            for (int kk = 0; kk < 2; kk++)
#pragma unroll
                for (int jj = 0; jj < 4; jj++) a[kk][jj] = src[(4 * kk + jj) * 128 + t128];
            const float al0 = sAl[slot * 256 + 2 * t128], al1 = sAl[slot * 256 + 2 * t128 + 1];
            nbar_arrive(QR_BAR_FREE + slot, 384);
            if (__any_sync(0xffffffffu, al0 != 1.f || al1 != 1.f)) sm90_rescale(o, al0, al1);
            const uint32_t uK = uSt + st * QR_BN * DQK * 2;
            const int nk = sNk[st]; /* (written before the stage's arrival, which WG0 acquired before READY) */
            if (nk < QR_BN) { /* this half of V: rows past the length -> 0 (0 * NaN = NaN in P V) */
                unsigned char *tile = smem + st * QR_BN * DQK * 2 + h * 4 * (QR_BN * 128);
                const int z0 = nk > 0 ? nk : 0, cnt = (QR_BN - z0) * 4 * 8;
                for (int idx = t128; idx < cnt; idx += 128) {
                    const int row = z0 + (idx >> 5), rem = idx & 31;
                    *(uint4 *)(tile + (rem >> 3) * (QR_BN * 128) + row * 128 + (rem & 7) * 16) = make_uint4(0, 0, 0, 0);
                }
                fence_proxy_async();
                nbar_sync(QR_BAR_PV + h, 128);
            }
            pin128(o);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                const uint64_t db = desc_sw128(uK + h * 4 * (QR_BN * 128) + kk * 2048, QR_BN * 128, 1024);
                if (QR_DIAG == 3) {
                } else if (F16) wgmma_rs_m64n256_tb1_f16(o, a[kk], db, 1);
                else wgmma_rs_m64n256_tb1_bf16(o, a[kk], db, 1);
            }
            wg_commit();
            wg_wait0();
            pin128(o);
            if (wg == 2 && t128 == 0) mbar_arrive(barE + 8 * st);
            if (prod && cs->r <= r_last) { /* refill this stage once WG2 is done with it too */
                cp_async_wait0(); /* the page id copied during the previous step */
                qr_cursor cur = *cs;
                mbar_wait(barE + 8 * st, (n / NS) & 1);
                if (QR_DIAG == 1) {
                    sNk[st] = QR_BN;
                    mbar_arrive(barF + 8 * st);
                } else
                    qr_issue(p, tm, kvh, &cur, uK, barF + 8 * st, sNk + st, NC64);
                cur.j++;
                qr_seek(p, pb, pe, r_last, mblk, scr, &cur);
                cs->r = cur.r;
                cs->j = cur.j;
                cs->j1 = cur.j1;
                cs->L = cur.L;
                if (cur.r <= r_last && cur.j < cur.j1) {
                    const unsigned tok0 = (unsigned)cur.j * QR_BN, ps = (unsigned)p->page_size;
                    cp_async4(smem_u32(&cs->pid), p->block_table + (long long)cur.r * p->bt_stride + tok0 / ps);
                    cp_async_commit();
                }
            }
        }
        /* request end: normalise and store this warpgroup's 256 columns */
        nbar_sync(QR_BAR_EPI_A, 384);
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int row = hh ? r1 : r0;
            if (row >= rq.w.nvalid) continue;
            const float inv = sInv[row];
            const int rr = mblk * MLA_BM + row, jq = rr / p->hg, head = kvh * p->hg + rr % p->hg;
#pragma unroll
            for (int qq = 0; qq < 32; qq++) {
                const int i = 4 * qq + 2 * hh;
                const int col = 256 * h + 8 * qq + 2 * (lane & 3);
                store_out2(p, rq.w.slot, r, jq, head, col, o[i] * inv, o[i + 1] * inv, F16);
            }
        }
        nbar_arrive(QR_BAR_EPI_B, 384);
    }
}

static __device__ __forceinline__ void qr_body(const mla_dec_params *p, const CUtensorMap *tm, const int DQK,
                                               const int F16) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    unsigned char *smem = smem_align1024(smem_raw);
    const int NS = qr_ns(DQK);
    (void)NS;
    int *sNk = (int *)(smem + qr_p_off(DQK) + 2 * 8 * 128 * 4 + 2 * 256 * 4 + 64 * 4);
    const uint32_t barF = smem_u32(sNk + 8), barE = barF + 64;
    if (threadIdx.x == 0) {
        for (int i = 0; i < NS; i++) {
            mbar_init(barF + 8 * i, 1);
            mbar_init(barE + 8 * i, 1);
        }
        mbar_fence_init();
    }
    __syncthreads();
    mla_part_begin pb, pe;
    part_bounds(p, blockIdx.z, 0, &pb, &pe, 0);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    if (threadIdx.x < 128) qr_softmax_wg(p, pb, pe, r_last, smem, DQK, F16);
    else qr_pv_wg(p, tm, pb, pe, r_last, smem, DQK, F16);
    __syncthreads();
    pdl_trigger();
}
#endif /* MLA_HAVE_SM90A */

#if MLA_HAVE_SM90A
#define MLA_QR_KERNEL(name, DQK, F16)                                                                     \
    __global__ void __launch_bounds__(MLA_QR_THREADS, 1) name(const __grid_constant__ mla_dec_params p,    \
                                                              const __grid_constant__ CUtensorMap tm) {    \
        qr_body(&p, &tm, DQK, F16);                                                                       \
    }
#else
#define MLA_QR_KERNEL(name, DQK, F16)                                                                     \
    __global__ void __launch_bounds__(MLA_QR_THREADS, 1) name(const __grid_constant__ mla_dec_params p,    \
                                                              const __grid_constant__ CUtensorMap tm) {}
#endif
MLA_QR_KERNEL(mla_decode_sm90qr_bf16_576, 576, 0)
MLA_QR_KERNEL(mla_decode_sm90qr_bf16_512, 512, 0)
MLA_QR_KERNEL(mla_decode_sm90qr_fp16_576, 576, 1)
MLA_QR_KERNEL(mla_decode_sm90qr_fp16_512, 512, 1)

extern "C" const void *mla_k_qr_fn(int dqk, int f16) {
    if (dqk == 576) return f16 ? (const void *)mla_decode_sm90qr_fp16_576 : (const void *)mla_decode_sm90qr_bf16_576;
    return f16 ? (const void *)mla_decode_sm90qr_fp16_512 : (const void *)mla_decode_sm90qr_bf16_512;
}
extern "C" int mla_k_qr_smem(int dqk) { return qr_smem_bytes(dqk); }
