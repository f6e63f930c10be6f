/* sm90_tile.cuh — the per-tile pieces shared by the wgmma decode kernels (decode_sm90.cu: v2/v3,
 * FP8, v4; decode_seesaw.cu: v5): shared-memory size, K loaders (cp.async lines, TMA, FP8 via
 * registers), QK^T / PV wgmma sequences, the P hand-off in fragment order, online softmax, Q load and
 * the request epilogue. Included once per kernel file (static functions). */
#ifndef MLA_KERNELS_SM90_TILE_CUH
#define MLA_KERNELS_SM90_TILE_CUH

/* wgmma descriptors of the tiles below. MLA_DESC_AT 1, the default: from the tile base and a
 * constant offset (desc_sw128_at, one uniform add per operand; SSF's sm_90a code 6030 -> 5326 SASS
 * lines; on the H100 the dense h_q 64 / 128 rows -3..-4%, the prefill rows -0..-5%); 0 (build option):
 * desc_sw128 of each address. sm90_qk / sm90_scores / sm90_pv take the form as a compile-time argument
 * AT (callers pass MLA_DESC_AT, or 0 where the per-base form measured slower: the sparse crossover
 * decode, +1.3..2.3% on the H100); the others use SM90_DESC with this file's MLA_DESC_AT.
 * decode_seesaw2.cu sets 0 (with 1 its d_v 512 entry spills 8 bytes). */
#ifndef MLA_DESC_AT
#define MLA_DESC_AT 1
#endif
#define SM90_DESC_(AT, a, off, lbo, sbo) ((AT) ? desc_sw128_at(a, off, lbo, sbo) : desc_sw128(a + off, lbo, sbo))
#define SM90_DESC(a, off, lbo, sbo) SM90_DESC_(MLA_DESC_AT, a, off, lbo, sbo)

#include <cuda.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "params.h"
#include "ptx.cuh"
#include "common.cuh"
#include "wgmma_ops.cuh"
#include "sm90.cuh"

static __host__ __device__ __forceinline__ int sm90_smem_bytes(int dqk) {
    return 3 * MLA_BM * dqk * 2  /* Q + 2 K stages */
           + 16 * 128 * 4       /* P fragments */
           + 128 * 2 * 4        /* alpha per thread (2 rows) */
           + 2 * 64 * 4         /* 1/L, lse2 per row */
           + 64 * 4             /* row_lim */
           + 2 * 64             /* kvalid */
           + 8 * 8              /* mbarriers (v3: one per stage; v4: E, L, R full and V_L free per stage) */
           + 1024;              /* alignment slack */
}

#if MLA_HAVE_SM90A
/* K tile t of request r into stage `tile` by 16-byte cp.async from NT = 256 or 128 threads (tid within
 * them; rows past the length or on invalid pages zero-filled, kvalid[row] records which are real):
 * eight consecutive threads copy the eight 16-byte pieces of one 128-byte line (a 64-column chunk
 * of a row), so each warp instruction covers four whole lines (a row per 4 threads covered half
 * lines: twice the L1 wavefronts per byte, docs/performance.md "v2.1"). Rows rg, rg + NT/8, ...; chunk c of row r lands at
 * c * 8192 + r * 128 + ((j ^ (r & 7)) << 4). */
static __device__ __forceinline__ void sm90_load_k_lines(const mla_dec_params *p, int r, int kvh, int t, int L,
                                                         uint32_t tile, unsigned char *kvalid, int tid, const int NT,
                                                         const int NC64) {
    const int j = tid & 7, rg = tid >> 3;
#pragma unroll
    for (int i = 0; i < 64 / (NT / 8); i++) {
        const int row = rg + (NT / 8) * i;
        const char *src = k_row_ptr(p, r, kvh, (long long)t * MLA_BN + row, L);
        if (j == 0) kvalid[row] = src != 0;
        const int nb = src ? 16 : 0;
        const char *s = src ? src + 16 * j : (const char *)p->k;
        const int step = src ? 128 : 0;
        const uint32_t d = tile + row * 128 + ((j ^ (row & 7)) << 4);
#pragma unroll
        for (int c = 0; c < NC64; c++) cp_async16(d + 8192 * c, s + c * step, nb);
    }
}

/* (v3 and v5) The page slices of K tile t of request r (BR = gcd(page, 64) rows each): page id and first row of
 * each slice, with an out-of-range page id (num_pages: the copy engine zero-fills) for slices past
 * the length or with a page id outside [0, num_pages); returns the tile's valid-key mask (bit k:
 * token 64 t + k is below the length and on a page with a valid id). */
static __device__ __forceinline__ unsigned long long ss_slices(const mla_dec_params *p, int r, int t, int L,
                                                               int pid[4], int row0[4]) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    const unsigned long long slice = BR == 64 ? ~0ull : ((1ull << BR) - 1);
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
    return mask;
}

/* Thread-local: the 64-column chunks in cmask (bit c = chunk c) of K tile t of request r into
 * `tile` by TMA (one box per chunk and page slice; zero-filled slices still count), completion on
 * `bar` (BSTEP = 0: one barrier armed for all of them) or chunk c on bar + BSTEP c (each armed for
 * its 8 KB: v6's per-chunk barriers); km != NULL: first writes the tile's valid-key mask there (read
 * by the waiters of the barriers). */
static __device__ __forceinline__ void ss_tma_bars(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh,
                                                   int t, int L, uint32_t tile, uint32_t bar, const int BSTEP,
                                                   unsigned cmask, const int NC64, unsigned long long *km) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    int pid[4], row0[4];
    const unsigned long long mask = ss_slices(p, r, t, L, pid, row0);
    if (km) *km = mask;
    cmask &= (1u << NC64) - 1;
    if (BSTEP == 0) mbar_expect_tx(bar, __popc(cmask) * 8192);
    else
#pragma unroll
        for (int c = 0; c < 9; c++)
            if ((cmask >> c) & 1) mbar_expect_tx(bar + BSTEP * c, 8192);
#pragma unroll
    for (int k = 0; k < 4; k++)
        if (k < 64 / BR)
#pragma unroll
            for (int c = 0; c < 9; c++)
                if ((cmask >> c) & 1)
                    tma_load_4d(tile + c * 8192 + k * BR * 128, tm, bar + BSTEP * c, 64 * c, row0[k], kvh, pid[k]);
}
/* (MLA_V3_BTPF, v3's default) the block-table entry of slice k of K tile t (-1 where the slice starts
 * at or past the length), the read ss_tma_slice makes right before its issue, made a tile ahead by the
 * issuing thread and passed to ss_tma_slice_pre (both forms are ss_tma_slice_id) */
static __device__ __forceinline__ int ss_slice_bt(const mla_dec_params *p, int r, int t, int L, int k, const int SPLIT) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    if (SPLIT) k = k % (64 / BR);
    const int tok0 = t * MLA_BN + k * BR;
    if (tok0 >= L) return -1;
    return p->block_table[(long long)r * p->bt_stride + (unsigned)tok0 / (unsigned)ps];
}
/* (v3's TMA refills, MLA_V3_SLICES=1: the default) page slice k (BR = gcd(page, 64) rows) of K tile t of request r,
 * every chunk, by this thread alone: its block-table read (ss_tma_slice; ss_tma_slice_pre takes the entry `id`
 * read earlier by ss_slice_bt), its part of the key mask in *km (a 16-, 32-
 * or 64-bit field of the 64-bit mask, so the 64 / BR slice threads never write the same bytes), then
 * one arrive.expect_tx for its NC64 boxes (the stage barrier counts 64 / BR arrivals per phase) and
 * the boxes: the 4 x 9 boxes of a 16-token page from four warps instead of one thread. */
/* SPLIT (timing switch MLA_V3_SLICES=3): four issuing threads whatever the page size; `k` is then the
 * thread's index w (0..3): slice w % (64 / BR), chunks c = w / (64 / BR) (mod 4 / (64 / BR)); the mask
 * is written by the threads of chunk group 0 only */
/* PRE = 1: the block-table entry was read earlier (ss_slice_bt) and is passed as id_pre */
static __device__ __forceinline__ void ss_tma_slice_id(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh,
                                                       int t, int L, uint32_t tile, uint32_t bar, int k, const int NC64,
                                                       unsigned long long *km, const int SPLIT, const int PRE,
                                                       int id_pre) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    int cg = 0, ng = 1; /* this thread's chunk group, the number of groups */
    if (SPLIT) {
        const int nsl = 64 / BR;
        ng = 4 / nsl;
        cg = k / nsl;
        k = k % nsl;
    }
    int pid = (int)p->num_pages, row0 = 0;
    unsigned long long m = 0;
    const int tok0 = t * MLA_BN + k * BR;
    if (tok0 < L) {
        const unsigned pidx = (unsigned)tok0 / (unsigned)ps;
        const int id = PRE ? id_pre : p->block_table[(long long)r * p->bt_stride + pidx];
        if (id >= 0 && (long long)id < p->num_pages) {
            pid = id;
            row0 = (int)((unsigned)tok0 - pidx * (unsigned)ps);
            const int nk = L - tok0; /* keys of this slice below the length */
            m = nk >= BR ? (BR == 64 ? ~0ull : ((1ull << BR) - 1)) : ((1ull << nk) - 1);
        }
    }
    if (SPLIT) {
        if (cg == 0) {
            if (BR == 64) *km = m;
            else if (BR == 32) ((unsigned *)km)[k] = (unsigned)m;
            else ((unsigned short *)km)[k] = (unsigned short)m;
        }
        mbar_expect_tx(bar, ((NC64 - cg + ng - 1) / ng) * BR * 128);
        for (int c = cg; c < NC64; c += ng) tma_load_4d(tile + c * 8192 + k * BR * 128, tm, bar, 64 * c, row0, kvh, pid);
        return;
    }
    if (BR == 64) *km = m;
    else if (BR == 32) ((unsigned *)km)[k] = (unsigned)m;
    else ((unsigned short *)km)[k] = (unsigned short)m;
    mbar_expect_tx(bar, NC64 * BR * 128);
    for (int c = 0; c < NC64; c++) tma_load_4d(tile + c * 8192 + k * BR * 128, tm, bar, 64 * c, row0, kvh, pid);
}
static __device__ __forceinline__ void ss_tma_slice(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh,
                                                    int t, int L, uint32_t tile, uint32_t bar, int k, const int NC64,
                                                    unsigned long long *km, const int SPLIT) {
    ss_tma_slice_id(p, tm, r, kvh, t, L, tile, bar, k, NC64, km, SPLIT, 0, 0);
}
static __device__ __forceinline__ void ss_tma_slice_pre(const mla_dec_params *p, const CUtensorMap *tm, int kvh, int t,
                                                        int L, uint32_t tile, uint32_t bar, int k, const int NC64,
                                                        unsigned long long *km, const int SPLIT, int id) {
    ss_tma_slice_id(p, tm, 0, kvh, t, L, tile, bar, k, NC64, km, SPLIT, 1, id);
}
/* (v6's MLA_SS2_L2PF builds) every box of K tile t of request r into L2 only, for a later ss_tma_bars */
static __device__ __forceinline__ void ss_tma_l2(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh, int t,
                                                 int L, const int NC64) {
    const int ps = p->page_size;
    const int BR = (ps % 64 == 0) ? 64 : ((ps % 32 == 0) ? 32 : 16);
    int pid[4], row0[4];
    ss_slices(p, r, t, L, pid, row0);
#pragma unroll
    for (int k = 0; k < 4; k++)
        if (k < 64 / BR)
#pragma unroll
            for (int c = 0; c < 9; c++)
                if (c < NC64) tma_prefetch_4d(tm, 64 * c, row0[k], kvh, pid[k]);
}
static __device__ __forceinline__ void ss_tma(const mla_dec_params *p, const CUtensorMap *tm, int r, int kvh, int t,
                                              int L, uint32_t tile, uint32_t bar, unsigned cmask, const int NC64,
                                              unsigned long long *km) {
    ss_tma_bars(p, tm, r, kvh, t, L, tile, bar, 0, cmask, NC64, km);
}

/* (the seesaw kernels) the row sums of the two warpgroups at their common max: WG1's, quad-reduced,
 * added to WG0's quad-lane 0 through sLx (a CTA barrier inside), for the request epilogue */
static __device__ __forceinline__ void ss_merge_sums(float *l0, float *l1, float *sLx, int wg, int lane, int r0,
                                                     int r1) {
    if (wg == 1) {
        *l0 = quad_sum(*l0);
        *l1 = quad_sum(*l1);
        if ((lane & 3) == 0) {
            sLx[r0] = *l0;
            sLx[r1] = *l1;
        }
    }
    __syncthreads();
    if (wg == 0 && (lane & 3) == 0) {
        *l0 += sLx[r0];
        *l1 += sLx[r1];
    }
}

/* ---- dense FP8 (e4m3) cache: K rows (and an FP8 q) go global -> registers -> 16-bit SW128 tile.
 * Thread (row = tid / 4, sub = tid % 4) holds codes [16 sub + 64 i, +16) of its row in kr[i]
 * (i < DQK / 64); they become 16-bit chunks 2 sub and 2 sub + 1 of 64-column block i. Every e4m3
 * value is exact in fp16 and bf16 (cvt e4m3x2 -> f16x2; bf16 through f32), NaN codes stay NaN. */
/* codes of one row into kr (src NULL: zeros; nothing is read) */
static __device__ __forceinline__ void f8_get(const char *src, uint4 *kr, const int NU) {
    const int sub = threadIdx.x & 3;
#pragma unroll
    for (int i = 0; i < NU; i++) kr[i] = make_uint4(0, 0, 0, 0);
    if (src) {
#pragma unroll
        for (int i = 0; i < NU; i++) kr[i] = f8_ldg16(src + 16 * sub + 64 * i);
    }
}
static __device__ __forceinline__ uint32_t f16x2_to_bf16x2(uint32_t h) {
    uint32_t b;
    asm("{\n.reg .b16 lo, hi;\n.reg .f32 flo, fhi;\nmov.b32 {lo, hi}, %1;\ncvt.f32.f16 flo, lo;\n"
        "cvt.f32.f16 fhi, hi;\ncvt.rn.bf16x2.f32 %0, fhi, flo;\n}\n"
        : "=r"(b)
        : "r"(h));
    return b;
}
/* 4 codes (byte k = element k) -> 2 x (16-bit pair, element 2k in the low half) */
static __device__ __forceinline__ void f8x4_cvt(uint32_t w, uint32_t *d0, uint32_t *d1, const int F16) {
    uint32_t h0, h1;
    asm("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %2;\ncvt.rn.f16x2.e4m3x2 %0, lo;\ncvt.rn.f16x2.e4m3x2 %1, hi;\n}\n"
        : "=r"(h0), "=r"(h1)
        : "r"(w));
    if (!F16) {
        h0 = f16x2_to_bf16x2(h0);
        h1 = f16x2_to_bf16x2(h1);
    }
    *d0 = h0;
    *d1 = h1;
}
/* The fp16 q rows of the transposed FP8 kernels (decode_narrow.cu, decode_fp8t.cu), which multiply in
 * fp16 whatever the output dtype: the power-of-two exponent e that scales a bf16 row whose largest
 * magnitude is qmax into [2^14, 2^15) (0 for fp16 / e4m3 rows, zero or non-finite rows); the row's
 * scores are scaled by 2^-e */
static __device__ __forceinline__ int q_fp16_exp(float qmax, const int F16, int q_fp8) {
    int e = 0;
    if (!F16 && !q_fp8 && qmax > 0.f && qmax < INFINITY) {
        e = 15 - ((int)((__float_as_uint(qmax) >> 23) & 0xff) - 126); /* qmax < 2^(exponent - 126) */
        e = e < -100 ? -100 : (e > 100 ? 100 : e);
    }
    return e;
}
/* one word of such a q row (two elements; e4m3: the low two bytes) as an fp16 pair, a bf16 pair
 * scaled by qs = 2^e */
static __device__ __forceinline__ uint32_t q_word_fp16(uint32_t w, float qs, const int F16, int q_fp8) {
    uint32_t h;
    if (q_fp8) {
        uint32_t h1;
        f8x4_cvt(w, &h, &h1, 1);
    } else if (F16) {
        h = w;
    } else {
        const float f0 = __uint_as_float(w << 16) * qs, f1 = __uint_as_float(w & 0xffff0000u) * qs;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(h) : "f"(f1), "f"(f0));
    }
    return h;
}
/* keeps n accumulator registers in place across a wgmma fence / wait */
static __device__ __forceinline__ void pin_n(float *a, const int n) {
#pragma unroll
    for (int i = 0; i < n; i++) asm volatile("" : "+f"(a[i])::"memory");
}
/* kr -> row `row` of the SW128 tile (ordinary st.shared: fence.proxy.async before wgmma reads) */
static __device__ __forceinline__ void f8_put(uint32_t tile, const uint4 *kr, const int NU, const int F16) {
    const int row = threadIdx.x >> 2, sub = threadIdx.x & 3, x = row & 7;
    const uint32_t base = tile + row * 128;
    const int c0 = ((2 * sub) ^ x) * 16, c1 = ((2 * sub + 1) ^ x) * 16;
#pragma unroll
    for (int i = 0; i < NU; i++) {
        uint4 a, b;
        f8x4_cvt(kr[i].x, &a.x, &a.y, F16);
        f8x4_cvt(kr[i].y, &a.z, &a.w, F16);
        f8x4_cvt(kr[i].z, &b.x, &b.y, F16);
        f8x4_cvt(kr[i].w, &b.z, &b.w, F16);
        sts128(base + i * 8192 + c0, a);
        sts128(base + i * 8192 + c1, b);
    }
}
/* issues the loads of FP8 K tile t into kr and records which rows are real keys */
static __device__ __forceinline__ void f8_issue_k(const mla_dec_params *p, int r, int kvh, int t, int L, uint4 *kr,
                                                  unsigned char *kvalid, const int NU) {
    const int row = threadIdx.x >> 2;
    const char *src = k_row_ptr_es(p, r, kvh, (long long)t * MLA_BN + row, L, 1);
    if ((threadIdx.x & 3) == 0) kvalid[row] = src != 0;
    f8_get(src, kr, NU);
}
/* L2 prefetch of FP8 K tile t: every 128-byte line of each row (points 0, 128, .., 512, DQK-1) */
static __device__ __forceinline__ void f8_prefetch_k(const mla_dec_params *p, int r, int kvh, int t, int L,
                                                     const int DQK) {
    const int row = threadIdx.x >> 2, sub = threadIdx.x & 3;
    const char *src = k_row_ptr_es(p, r, kvh, (long long)t * MLA_BN + row, L, 1);
    if (src) {
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + 128 * sub));
        if (sub == 1) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + DQK - 1));
        if (sub == 0 && DQK > 512) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(src + 512));
    }
}

/* The CTA's tile order (requests of its part, tiles [tb, te) of each, m-block 0) as an iterator
 * for loads that run ahead of the consumer (decode_narrow.cu, decode_fp8t.cu). scr: 64 ints the
 * iterator's req_prepare may write (row_lim is the consumer's). */
typedef struct tile_iter { int r, t, te, L; } tile_iter;
static __device__ __forceinline__ void tile_seek(const mla_dec_params *p, mla_part_begin pb, mla_part_begin pe,
                                                 int r_last, int *scr, tile_iter *it) {
    while (it->r <= r_last && it->t >= it->te) {
        it->r++;
        it->t = 0;
        it->te = 0;
        if (it->r > r_last) break;
        req_work w;
        if (req_prepare(p, it->r, pb, pe, 0, scr, &w)) {
            it->t = w.tb;
            it->te = w.te;
            it->L = w.L;
        }
    }
}
/* The end-of-request merge of the two consumer warpgroups of the transposed FP8 kernels that split a
 * request's tiles between them (decode_fp8t.cu, decode_narrow32.cu), 256 threads, NR query columns,
 * NA accumulators per M block (O^T at o[NA i + 4 jn + 2 h + e], 8 M blocks): each thread's partial
 * column sums (sLt[wg][q][128]) and the warpgroup's running maxima (sMr[wg][mb][NR]) go to sSum
 * [2 wg][4 warps][NR] / sM [2 wg][NR]; each warpgroup rescales its O^T to the common maximum, and the
 * halves are exchanged through xch (4 NA x 128 floats): WG0 ends with the sum of M blocks 0..3, WG1
 * with 4..7. bar: the consumers' named barrier (aligned: reached by all 256 at the same place). */
static __device__ __forceinline__ void pair_merged(const float *sSum, const float *sM, int col, int wg, const int NR,
                                                   float *mm, float *lt, float *fo) {
    const float m0 = sM[col], m1 = sM[NR + col];
    const float l0 = sSum[col] + sSum[NR + col] + sSum[2 * NR + col] + sSum[3 * NR + col];
    const float l1 = sSum[4 * NR + col] + sSum[5 * NR + col] + sSum[6 * NR + col] + sSum[7 * NR + col];
    *mm = fmaxf(m0, m1);
    const float mu = *mm == -INFINITY ? 0.f : *mm;
    const float f0 = fast_exp2(m0 - mu), f1 = fast_exp2(m1 - mu);
    *lt = l0 * f0 + l1 * f1;
    *fo = wg ? f1 : f0;
}
static __device__ __forceinline__ void pair_merge(float *o, const float *sLt, const float *sMr, int mb, float *sSum,
                                                  float *sM, float *xch, const int bar, const int NR, const int NA) {
    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, w4 = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, c = lane & 3, NQ = NR / 4;
#pragma unroll
    for (int q = 0; q < NQ; q++) {
        const int col = 8 * (q >> 1) + 2 * c + (q & 1);
        float v = sLt[(wg * NQ + q) * 128 + t128];
        v += __shfl_xor_sync(0xffffffffu, v, 4);
        v += __shfl_xor_sync(0xffffffffu, v, 8);
        v += __shfl_xor_sync(0xffffffffu, v, 16);
        if (g == 0) sSum[(wg * 4 + w4) * NR + col] = v;
        if (w4 == 0 && g == 0) sM[wg * NR + col] = sMr[(wg * 2 + mb) * NR + col];
    }
    bar_sync(bar, 256);
#pragma unroll
    for (int q = 0; q < NQ; q++) {
        float mm, lt, fo;
        pair_merged(sSum, sM, 8 * (q >> 1) + 2 * c + (q & 1), wg, NR, &mm, &lt, &fo);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            o[NA * i + 4 * (q >> 1) + (q & 1)] *= fo;
            o[NA * i + 4 * (q >> 1) + 2 + (q & 1)] *= fo;
        }
    }
#pragma unroll
    for (int round = 0; round < 2; round++) {
        const int snd = round == 0 ? 1 : 0, base = round == 0 ? 0 : 4 * NA;
        if (wg == snd) {
#pragma unroll
            for (int i = 0; i < 4 * NA; i++) xch[i * 128 + t128] = o[base + i];
        }
        bar_sync(bar, 256);
        if (wg != snd) {
#pragma unroll
            for (int i = 0; i < 4 * NA; i++) {
                o[base + i] += xch[i * 128 + t128];
                if (i % 16 == 15) asm volatile("" ::: "memory"); /* at most 16 loads in flight (registers) */
            }
        }
        if (round == 0) bar_sync(bar, 256);
    }
}
/* The lazy-maxima softmax step of the transposed FP8 kernels (decode_narrow32.cu, decode_fp8t.cu), after
 * the masked, scaled scores s (S^T fragment; this thread's NQ columns 8 (q >> 1) + 2 c + (q & 1)) and
 * `need` (some score passed its column's running maximum mold[col] + 8) are known: when any thread of
 * the warpgroup needs it (one barrier.red.or on named barrier `bar`, 128 threads) the column maxima are
 * exchanged through sRed (slot j & 1 of this warpgroup), the new maxima go to the other half of sMr
 * (*pmb flips) and the sums sLt and O^T (o, NA accumulators per M block) are rescaled; either way s
 * becomes exp2(s - max) and the sums grow by it. Returns 1 when the exchange ran. */
static __device__ __forceinline__ int nr_lazy_exp(float *s, float *o, int need, const float *mold, float *sMr,
                                                  float *sRed, float *sLt, int *pmb, int j, int wg, int bar, int c,
                                                  int g, int w4, int t128, const int NQ, const int NR, const int NA) {
    int mb = *pmb, ex = 0;
    if (nbar_red_or(bar, 128, need)) { /* (the same in every thread of the warpgroup) */
        float mx[8];
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int jn = q >> 1, e = q & 1;
            float mm = fmaxf(s[4 * jn + e], s[4 * jn + 2 + e]);
            mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 4));
            mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 8));
            mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 16));
            mx[q] = mm;
        }
        float *red = sRed + (wg * 2 + (j & 1)) * 4 * NR;
        if (g == 0) {
#pragma unroll
            for (int q = 0; q < NQ; q++) red[w4 * NR + 8 * (q >> 1) + 2 * c + (q & 1)] = mx[q];
        }
        nbar_sync(bar, 128);
        float *mnew = sMr + (wg * 2 + (mb ^ 1)) * NR;
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int col = 8 * (q >> 1) + 2 * c + (q & 1);
            const float tm = fmaxf(fmaxf(red[col], red[NR + col]), fmaxf(red[2 * NR + col], red[3 * NR + col]));
            const float mo = mold[col], mn = fmaxf(mo, tm);
            if (w4 == 0 && g == 0) mnew[col] = mn;
            const float mu = mn == -INFINITY ? 0.f : mn;
            const float al = fast_exp2(mo - mu);
            const int jn = q >> 1, e = q & 1;
            const float p0 = fast_exp2(s[4 * jn + e] - mu), p1 = fast_exp2(s[4 * jn + 2 + e] - mu);
            s[4 * jn + e] = p0;
            s[4 * jn + 2 + e] = p1;
            float *lp = sLt + (wg * NQ + q) * 128 + t128;
            *lp = *lp * al + p0 + p1;
            if (__any_sync(0xffffffffu, al != 1.f)) {
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    o[NA * i + 4 * jn + e] *= al;
                    o[NA * i + 4 * jn + 2 + e] *= al;
                }
            }
        }
        mb ^= 1;
        ex = 1;
    } else {
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int col = 8 * (q >> 1) + 2 * c + (q & 1);
            const float mo = mold[col], mu = mo == -INFINITY ? 0.f : mo;
            const int jn = q >> 1, e = q & 1;
            const float p0 = fast_exp2(s[4 * jn + e] - mu), p1 = fast_exp2(s[4 * jn + 2 + e] - mu);
            s[4 * jn + e] = p0;
            s[4 * jn + 2 + e] = p1;
            sLt[(wg * NQ + q) * 128 + t128] += p0 + p1;
        }
    }
    *pmb = mb;
    return ex;
}
/* S += Q K^T over the 64-column chunks [c0, c1) (SS m64n64k16, 4 per chunk) */
static __device__ __forceinline__ void sm90_qk(float *s, uint32_t uQ, uint32_t uK, const int c0, const int c1,
                                               const int F16, const int AT) {
#pragma unroll
    for (int c = c0; c < c1; c++)
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const uint64_t da = SM90_DESC_(AT, uQ, c * 8192 + kk * 32, 16, 1024);
            const uint64_t db = SM90_DESC_(AT, uK, c * 8192 + kk * 32, 16, 1024);
            if (F16) wgmma_ss_m64n64_tb0_f16(s, da, db, 1);
            else wgmma_ss_m64n64_tb0_bf16(s, da, db, 1);
        }
}
/* S = Q K^T from zero over all NC64 chunks, waited for (MMA = 0: no wgmma, for timing builds) */
static __device__ __forceinline__ void sm90_scores(float *s, uint32_t uQ, uint32_t uK, const int NC64, const int F16,
                                                   const int MMA, const int AT) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.f;
    pin32(s);
    wg_fence();
    if (MMA) sm90_qk(s, uQ, uK, 0, NC64, F16, AT);
    wg_commit();
    wg_wait0();
    pin32(s);
}
/* O[:, 256 h : +256] += P V[:, 256 h : +256] (RS m64n256k16, V = the K tile read MN-major) */
static __device__ __forceinline__ void sm90_pv(float *o, uint32_t a[4][4], uint32_t uK, const int h, const int F16,
                                               const int AT) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const uint64_t db = SM90_DESC_(AT, uK, h * 4 * 8192 + kk * 2048, 8192, 1024);
        if (F16) wgmma_rs_m64n256_tb1_f16(o, a[kk], db, 1);
        else wgmma_rs_m64n256_tb1_bf16(o, a[kk], db, 1);
    }
}

/* P fragments and the two row rescale factors of this thread, WG0 -> smem -> WG1, in fragment order
 * (same thread index on both sides: no swizzle, no bank conflicts) */
static __device__ __forceinline__ void sm90_put_p(uint32_t *sPf, float *sAl, uint32_t a[4][4], float al0, float al1) {
    const int t128 = threadIdx.x & 127;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) sPf[(kk * 4 + jj) * 128 + t128] = a[kk][jj];
    sAl[2 * t128] = al0;
    sAl[2 * t128 + 1] = al1;
}
static __device__ __forceinline__ void sm90_get_p(const uint32_t *sPf, const float *sAl, uint32_t a[4][4], float *al0,
                                                  float *al1) {
    const int t128 = threadIdx.x & 127;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) a[kk][jj] = sPf[(kk * 4 + jj) * 128 + t128];
    *al0 = sAl[2 * t128];
    *al1 = sAl[2 * t128 + 1];
}
/* sm90_put_p / sm90_get_p with 16-byte accesses (v3): P as [4][128] uint4 (fragment row kk of this
 * thread in one vector), the two factors as one float2; 4 + 1 shared stores (loads) instead of 18 */
static __device__ __forceinline__ void sm90_put_p4(uint32_t *sPf, float *sAl, uint32_t a[4][4], float al0, float al1) {
    const int t128 = threadIdx.x & 127;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) ((uint4 *)sPf)[kk * 128 + t128] = make_uint4(a[kk][0], a[kk][1], a[kk][2], a[kk][3]);
    ((float2 *)sAl)[t128] = make_float2(al0, al1);
}
static __device__ __forceinline__ void sm90_get_p4(const uint32_t *sPf, const float *sAl, uint32_t a[4][4], float *al0,
                                                   float *al1) {
    const int t128 = threadIdx.x & 127;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const uint4 v = ((const uint4 *)sPf)[kk * 128 + t128];
        a[kk][0] = v.x;
        a[kk][1] = v.y;
        a[kk][2] = v.z;
        a[kk][3] = v.w;
    }
    const float2 f = ((const float2 *)sAl)[t128];
    *al0 = f.x;
    *al1 = f.y;
}
/* O rows r0 (fragment elements with bit 1 clear) and r1 scaled by their factors */
static __device__ __forceinline__ void sm90_rescale(float *o, float al0, float al1) {
#pragma unroll
    for (int i = 0; i < 128; i++) o[i] *= (i & 2) ? al1 : al0;
}

/* Masked, scaled row maxima of one 64 x 64 S tile (m64n64 accumulator fragment s[32], rows r0 / r1
 * of this thread): key k is real when kv[k] != 0 (kv non-NULL: v2/v3 byte flags) or bit k of km is
 * set (kv NULL: the seesaw kernel's mask), and visible to a row below its limit. s <- s * scale
 * (log2 domain), -inf where masked; *mx0 / *mx1 <- the rows' maxima over the quad. */
static __device__ __forceinline__ void sm90_mask_max(float *s, const unsigned char *kv, unsigned long long km,
                                                     int key0, int lim0, int lim1, float scale, float *pmx0,
                                                     float *pmx1) {
    const int lane = threadIdx.x & 31;
    float mx0 = -INFINITY, mx1 = -INFINITY;
    /* fast path (warp-uniform): all 64 keys real (byte flags read as 16 words) and below both
     * rows' limits: no per-key mask */
    const int real = kv ? ((const uint32_t *)kv)[lane & 15] == 0x01010101u : km == ~0ull;
    const int full = __all_sync(0xffffffffu, real && key0 + 64 <= lim0 && key0 + 64 <= lim1);
    if (full) {
#pragma unroll
        for (int i = 0; i < 32; i++) {
            const float v = s[i] * scale;
            s[i] = v;
            if (i & 2) mx1 = fmaxf(mx1, v);
            else mx0 = fmaxf(mx0, v);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 32; i++) {
            const int key = 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
            const int lim = (i & 2) ? lim1 : lim0;
            const int ok = kv ? kv[key] != 0 : (int)((km >> key) & 1);
            const float v = (ok && key0 + key < lim) ? s[i] * scale : -INFINITY;
            s[i] = v;
            if (i & 2) mx1 = fmaxf(mx1, v);
            else mx0 = fmaxf(mx0, v);
        }
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    *pmx0 = mx0;
    *pmx1 = mx1;
}
/* s <- exp2(s - mu) per row (mu0 / mu1: the rows' maxima, 0 for an all-masked row); this
 * thread's sums of each row's elements */
static __device__ __forceinline__ void sm90_exp_sum(float *s, float mu0, float mu1, float *sum0, float *sum1) {
    float a0 = 0.f, a1 = 0.f;
#pragma unroll
    for (int i = 0; i < 32; i++) {
        const float e = fast_exp2(s[i] - ((i & 2) ? mu1 : mu0));
        s[i] = e;
        if (i & 2) a1 += e;
        else a0 += e;
    }
    *sum0 = a0;
    *sum1 = a1;
}

/* Online softmax of one 64 x 64 S tile (WG0's m64n64 accumulator fragment s[32], rows r0 / r1 of
 * this thread): mask (key row valid and below the row's visible-key limit), scale into the log2
 * domain, update the running max m and sum l, P as 16-bit A fragments a[kk][jj] for the PV wgmma;
 * al0 / al1 are the rescale factors of the two rows. Key validity: byte flags kv, or (kv NULL) the
 * bits of km (sm90_mask_max). */
static __device__ __forceinline__ void sm90_softmax_km(float *s, const unsigned char *kv, unsigned long long km,
                                                       int key0, int lim0, int lim1, float scale, float *m0, float *m1,
                                                       float *l0, float *l1, uint32_t a[4][4], float *al0, float *al1,
                                                       const int F16) {
    float mx0, mx1;
    sm90_mask_max(s, kv, km, key0, lim0, lim1, scale, &mx0, &mx1);
    const float mn0 = fmaxf(*m0, mx0), mn1 = fmaxf(*m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    *al0 = fast_exp2(*m0 - mu0);
    *al1 = fast_exp2(*m1 - mu1);
    *m0 = mn0;
    *m1 = mn1;
    float sum0, sum1;
    sm90_exp_sum(s, mu0, mu1, &sum0, &sum1);
    *l0 = *l0 * *al0 + sum0;
    *l1 = *l1 * *al1 + sum1;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) a[kk][jj] = pack2(s[8 * kk + 2 * jj], s[8 * kk + 2 * jj + 1], F16);
}
/* sm90_softmax_km for a positive scale (v3, whose scale is the 16-bit dense one: > 0 by
 * mla_effective_scale; sm90_softmax_pos_core, all of it but the packing of P, is also SSF's softmax, whose
 * scale the sparse API requires > 0), shorter on WG0's critical path: the row maxima of the raw scores, pairwise
 * (rounding s * scale is monotonic in s for scale > 0, so max(s) * scale is exactly the maximum of the
 * scaled scores; the final fmaxf with -inf keeps sm90_mask_max's answer for a row of NaNs); the scale
 * folded into the exponent's FFMA (one rounding less than s * scale - mu); the row sums pairwise. */
/* LAZY = 1 (MLA_V3_LAZY, v3's default since the thirty-sixth session): the running max moves only when a
 * row's new maximum exceeds it by more than MLA_LAZY_TH (log2 units), so P = exp2(s * scale - m) <=
 * 2^MLA_LAZY_TH and both warpgroups' O rescales (128 FMULs a thread each) run only on such jumps instead of
 * on every tile where some row of the warp found a new maximum. The result is the same softmax (any m
 * gives sum P V / sum P and lse = m + log2 l); only the rounding points of P differ, by the same relative
 * bound. With LAZY, m may trail a row's true maximum by up to MLA_LAZY_TH: a caller that reports the maximum
 * (the sparse prefill's max_logits) passes tm0 / tm1, raised here to the true running maxima (log2 units). */
#ifndef MLA_LAZY_TH
#define MLA_LAZY_TH 8.0f
#endif
static __device__ __forceinline__ void sm90_softmax_pos_core(float *s, const unsigned char *kv,
                                                             unsigned long long km, int key0, int lim0, int lim1,
                                                             float scale, float *m0, float *m1, float *l0, float *l1,
                                                             float *al0, float *al1, const int LAZY, float *tm0,
                                                             float *tm1) {
    const int lane = threadIdx.x & 31;
    const int real = kv ? ((const uint32_t *)kv)[lane & 15] == 0x01010101u : km == ~0ull;
    const int full = __all_sync(0xffffffffu, real && key0 + 64 <= lim0 && key0 + 64 <= lim1);
    if (!full) {
#pragma unroll
        for (int i = 0; i < 32; i++) {
            const int key = 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
            const int lim = (i & 2) ? lim1 : lim0;
            const int ok = kv ? kv[key] != 0 : (int)((km >> key) & 1);
            if (!(ok && key0 + key < lim)) s[i] = -INFINITY;
        }
    }
    float x0[8], x1[8]; /* row r0: elements with bit 1 of i clear; r1: set */
#pragma unroll
    for (int k = 0; k < 8; k++) {
        x0[k] = fmaxf(s[4 * k], s[4 * k + 1]);
        x1[k] = fmaxf(s[4 * k + 2], s[4 * k + 3]);
    }
#pragma unroll
    for (int w = 4; w >= 1; w >>= 1)
#pragma unroll
        for (int k = 0; k < w; k++) {
            x0[k] = fmaxf(x0[k], x0[k + w]);
            x1[k] = fmaxf(x1[k], x1[k + w]);
        }
    float mx0 = fmaxf(x0[0], -INFINITY), mx1 = fmaxf(x1[0], -INFINITY);
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    float mn0 = fmaxf(*m0, mx0 * scale), mn1 = fmaxf(*m1, mx1 * scale);
    if (tm0) { /* the rows' true maxima, which a lazy m may trail (max_logits) */
        *tm0 = fmaxf(*tm0, mx0 * scale);
        *tm1 = fmaxf(*tm1, mx1 * scale);
    }
    if (LAZY) { /* keep m unless the row jumped past it by more than the threshold (-inf + th = -inf) */
        mn0 = mn0 > *m0 + MLA_LAZY_TH ? mn0 : *m0;
        mn1 = mn1 > *m1 + MLA_LAZY_TH ? mn1 : *m1;
    }
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    *al0 = fast_exp2(*m0 - mu0);
    *al1 = fast_exp2(*m1 - mu1);
    *m0 = mn0;
    *m1 = mn1;
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = fast_exp2(fmaf(s[i], scale, (i & 2) ? -mu1 : -mu0));
#pragma unroll
    for (int k = 0; k < 8; k++) {
        x0[k] = s[4 * k] + s[4 * k + 1];
        x1[k] = s[4 * k + 2] + s[4 * k + 3];
    }
#pragma unroll
    for (int w = 4; w >= 1; w >>= 1)
#pragma unroll
        for (int k = 0; k < w; k++) {
            x0[k] += x0[k + w];
            x1[k] += x1[k + w];
        }
    *l0 = *l0 * *al0 + x0[0];
    *l1 = *l1 * *al1 + x1[0];
}
static __device__ __forceinline__ void sm90_softmax_pos(float *s, const unsigned char *kv, unsigned long long km,
                                                        int key0, int lim0, int lim1, float scale, float *m0,
                                                        float *m1, float *l0, float *l1, uint32_t a[4][4], float *al0,
                                                        float *al1, const int F16, const int LAZY) {
    sm90_softmax_pos_core(s, kv, km, key0, lim0, lim1, scale, m0, m1, l0, l1, al0, al1, LAZY, (float *)0, (float *)0);
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) a[kk][jj] = pack2(s[8 * kk + 2 * jj], s[8 * kk + 2 * jj + 1], F16);
}
/* the same with the keys' validity as byte flags kv (v2, FP8) */
static __device__ __forceinline__ void sm90_softmax(float *s, const unsigned char *kv, int key0, int lim0, int lim1,
                                                    float scale, float *m0, float *m1, float *l0, float *l1,
                                                    uint32_t a[4][4], float *al0, float *al1, const int F16) {
    sm90_softmax_km(s, kv, 0, key0, lim0, lim1, scale, m0, m1, l0, l1, a, al0, al1, F16);
}

/* ---- seesaw pieces (hopper-c.md §3.3): both warpgroups run QK^T on alternate tiles and share one
 * running max (kernels/decode_seesaw.cu, the sparse prefill seesaw in kernels/sparse_sm90.cu) ---- */
/* exp2(m_old - m_new) with the all-masked guard (m_new = -inf: 0 - ... as in the softmax) */
static __device__ __forceinline__ float ss_alpha(float m_old, float m_new) {
    return fast_exp2(m_old - (m_new == -INFINITY ? 0.f : m_new));
}

/* Online softmax step of one 64 x 64 S tile of this warpgroup (fragment s[32], rows r0 / r1): mask
 * (key real: kv[k] != 0, or with kv NULL bit k of km; and below the row's limit), scale into the
 * log2 domain, raise the running max m0 / m1, s <- exp2(s - max) (0 where masked); this
 * warpgroup's row sums l0 / l1 follow the new max and add the tile's, *f0 / *f1 <- a(m_old, m_new). */
static __device__ __forceinline__ void ss_softmax(float *s, const unsigned char *kv, unsigned long long km, int key0,
                                                  int lim0, int lim1, float scale, float *m0, float *m1, float *l0,
                                                  float *l1, float *f0, float *f1) {
    float mx0, mx1, sum0, sum1;
    const float mp0 = *m0, mp1 = *m1;
    sm90_mask_max(s, kv, km, key0, lim0, lim1, scale, &mx0, &mx1);
    *m0 = fmaxf(*m0, mx0);
    *m1 = fmaxf(*m1, mx1);
    sm90_exp_sum(s, *m0 == -INFINITY ? 0.f : *m0, *m1 == -INFINITY ? 0.f : *m1, &sum0, &sum1);
    *f0 = ss_alpha(mp0, *m0);
    *f1 = ss_alpha(mp1, *m1);
    *l0 = *l0 * *f0 + sum0;
    *l1 = *l1 * *f1 + sum1;
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
/* P (fp32 fragment s of this warpgroup) as a 16-bit 64 x 64 K-major SW128 tile at sP (the A operand
 * of the other warpgroup's PV), then this thread's fence for the async proxy. Element pair
 * (8 kk + 2 jj, +1) is row 16 w + lane / 4 + 8 (jj & 1), columns 8 (2 kk + jj / 2) + 2 (lane & 3) + {0, 1}:
 * in a warp, 8 rows x 4 words land in 32 distinct banks. */
static __device__ __forceinline__ void ss_store_pf(unsigned char *sP, const float *s, float f0, float f1,
                                                   const int F16) {
    const int t128 = threadIdx.x & 127, lane = t128 & 31;
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int jj = 0; jj < 4; jj++) {
            const int row = 16 * (t128 >> 5) + (lane >> 2) + 8 * (jj & 1), piece = 2 * kk + (jj >> 1);
            const float f = (jj & 1) ? f1 : f0;
            *(uint32_t *)(sP + row * 128 + ((piece ^ (row & 7)) << 4) + 4 * (lane & 3)) =
                pack2(s[8 * kk + 2 * jj] * f, s[8 * kk + 2 * jj + 1] * f, F16);
        }
    fence_proxy_async();
}
/* ss_store_pf into the tile at shared address uP by stmatrix: four .x4 a thread instead of 16 32-bit
 * stores; matrix q of column group kk is rows 16 w + 8 (q & 1) + 0..7, columns 8 (2 kk + q / 2) + 0..7, so
 * register q is the fragment's pair (8 kk + 2 q, +1), and the eight rows a matrix's lanes address land in
 * eight distinct 16-byte bank groups (the SW128 XOR) */
static __device__ __forceinline__ void ss_store_pf_sm(uint32_t uP, const float *s, float f0, float f1, const int F16) {
    const int t128 = threadIdx.x & 127, lane = t128 & 31, q = lane >> 3;
    const int row = 16 * (t128 >> 5) + 8 * (q & 1) + (lane & 7);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        uint32_t r[4];
#pragma unroll
        for (int jj = 0; jj < 4; jj++) {
            const float f = (jj & 1) ? f1 : f0;
            r[jj] = pack2(s[8 * kk + 2 * jj] * f, s[8 * kk + 2 * jj + 1] * f, F16);
        }
        const int piece = 2 * kk + (q >> 1);
        stsm_x4(uP + row * 128 + ((piece ^ (row & 7)) << 4), r[0], r[1], r[2], r[3]);
    }
    fence_proxy_async();
}
/* the same with P as it is (ss_store_pf times the row factors f0 / f1) */
static __device__ __forceinline__ void ss_store_p(unsigned char *sP, const float *s, const int F16) {
    ss_store_pf(sP, s, 1.f, 1.f, F16);
}
/* O[:, 256 h : +256] += P V[:, 256 h : +256], P from the SW128 tile at uP (SS m64n256k16) */
static __device__ __forceinline__ void ss_pv_smem(float *o, uint32_t uP, uint32_t uK, const int h, const int F16) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const uint64_t da = SM90_DESC(uP, kk * 32, 16, 1024);
        const uint64_t db = SM90_DESC(uK, h * 4 * 8192 + kk * 2048, 8192, 1024);
        if (F16) wgmma_ss_m64n256_tb1_f16(o, da, db, 1);
        else wgmma_ss_m64n256_tb1_bf16(o, da, db, 1);
    }
}

/* The other warpgroup's running max (rows r0 / r1 of sM) becomes this one's; this warpgroup's row
 * sums follow it, and *f0 / *f1 <- a(m_old, m_new), the factors for its O */
static __device__ __forceinline__ void ss_take_max(const float *sM, int r0, int r1, float *m0, float *m1, float *l0,
                                                   float *l1, float *f0, float *f1) {
    const float n0 = sM[r0], n1 = sM[r1];
    *f0 = ss_alpha(*m0, n0);
    *f1 = ss_alpha(*m1, n1);
    *m0 = n0;
    *m1 = n1;
    *l0 *= *f0;
    *l1 *= *f1;
}
/* O *= (f0, f1) per row (skipped when every factor in the warp is 1), then O[:, 256 h : +256] +=
 * P V_h issued and committed, not waited: P from registers a (SMEM = 0) or the SW128 tile at uP */
static __device__ __forceinline__ void ss_rescale_pv(float *o, float f0, float f1, uint32_t a[4][4], uint32_t uP,
                                                     uint32_t uK, const int h, const int SMEM, const int F16) {
    if (__any_sync(0xffffffffu, f0 != 1.f || f1 != 1.f)) sm90_rescale(o, f0, f1);
    pin128(o);
    wg_fence();
    if (SMEM) ss_pv_smem(o, uP, uK, h, F16);
    else sm90_pv(o, a, uK, h, F16, MLA_DESC_AT);
    wg_commit();
}

/* 16-bit Q rows of request r, m-block mblk into the SW128 tile uQ by cp.async (rows >= nvalid zero) */
static __device__ __forceinline__ void sm90_load_q(const mla_dec_params *p, int r, int mblk, int kvh, int nvalid,
                                                   uint32_t uQ, const int NCH) {
    const int row = threadIdx.x >> 2, sub = threadIdx.x & 3, hg = p->hg;
    const char *src = (const char *)p->q;
    if (row < nvalid) {
        const int rr = mblk * MLA_BM + row, j = rr / hg, head = kvh * hg + rr % hg;
        src += ((long long)r * p->q_s0 + (long long)j * p->q_s1 + (long long)head * p->q_s2) * 2;
    }
    sw128_copy_row(uQ, row, sub, src, row < nvalid, NCH);
}

static __device__ __forceinline__ void sts_v2f(uint32_t a, float x, float y) {
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(a), "f"(x), "f"(y) : "memory");
}
static __device__ __forceinline__ void sts_b32(uint32_t a, uint32_t x) {
    asm volatile("st.shared.b32 [%0], %1;" ::"r"(a), "r"(x) : "memory");
}
static __device__ __forceinline__ uint4 lds_v4(uint32_t a) {
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(a) : "memory");
    return v;
}
/* Staged epilogue rows (sm90_epilogue with a staging area): fp32 partial rows 2048 B + 32 B of pad, 16-bit out rows 1024 + 16
 * (the pads keep the fragment writes at two / one wavefronts per warp) */
#define EPI_PITCH32 2080
#define EPI_PITCH16 1040

/* Request epilogue: WG0 reduces the row sums and writes 1/l (descale_k / l for FP8) and the log2
 * lse to smem; both warpgroups normalise their 256 columns of O. With a staging area (uStage != 0:
 * >= 64 * EPI_PITCH32 bytes of smem that no one reads or writes once every PV of the request is
 * done, i.e. after the first barrier below), the rows go to smem first and leave as 16-byte stores,
 * a warp writing 512 contiguous bytes of one row (the fragment layout stores 32 bytes of each of 8
 * rows per warp instruction: 4x the L2 write requests); otherwise straight from the fragments. Ends
 * with a CTA barrier (sQ, row_lim, sInv and the staging area reused by the next request). */
static __device__ __forceinline__ void sm90_epilogue(const mla_dec_params *p, const req_work *w, int r, int mblk,
                                                     int kvh, float *o, float m0, float m1, float l0, float l1,
                                                     float dk, float *sInv, float *sLse, const int F16,
                                                     const int FP8, const uint32_t uStage) {
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, hg = p->hg;
    const int r0 = 16 * ((tid & 127) >> 5) + (lane >> 2), r1 = r0 + 8;
    if (wg == 0) {
        l0 = quad_sum(l0);
        l1 = quad_sum(l1);
        if ((lane & 3) == 0) {
            sInv[r0] = row_inv(l0, FP8 ? dk : 1.f); /* FP8: out = P V * descale_k */
            sInv[r1] = row_inv(l1, FP8 ? dk : 1.f);
            sLse[r0] = row_lse2(m0, l0);
            sLse[r1] = row_lse2(m1, l1);
        }
    }
    __syncthreads();
    if (uStage) {
        const int part = w->slot >= 0;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = h ? r1 : r0;
            if (row >= w->nvalid) continue;
            const float inv = sInv[row];
            const uint32_t rowa = uStage + row * (part ? EPI_PITCH32 : EPI_PITCH16);
#pragma unroll
            for (int q = 0; q < 32; q++) {
                const int i = 4 * q + 2 * h;
                const int col = 256 * wg + 8 * q + 2 * (lane & 3);
                if (part) sts_v2f(rowa + col * 4, o[i] * inv, o[i + 1] * inv);
                else sts_b32(rowa + col * 2, pack2(o[i] * inv, o[i + 1] * inv, F16));
            }
            if (wg == 0 && (lane & 3) == 0) {
                const int rr = mblk * MLA_BM + row;
                store_lse(p, w->slot, r, rr / hg, kvh * hg + rr % hg, sLse[row]);
            }
        }
        __syncthreads();
        if (part) {
            if (MLA_DIAG != 6)
                for (int idx = tid; idx < w->nvalid * 128; idx += MLA_THREADS) {
                    const int row = idx >> 7, c = idx & 127, rr = mblk * MLA_BM + row;
                    const long long prow = (long long)w->slot * p->rows_per_slot + (long long)(rr / hg) * p->h_q +
                                           kvh * hg + rr % hg;
                    *(uint4 *)(p->oacc + prow * MLA_DV + c * 4) = lds_v4(uStage + row * EPI_PITCH32 + c * 16);
                }
        } else {
            for (int idx = tid; idx < w->nvalid * 64; idx += MLA_THREADS) {
                const int row = idx >> 6, c = idx & 63, rr = mblk * MLA_BM + row;
                char *dst = (char *)p->out + out_row(p, r, rr / hg, kvh * hg + rr % hg) * 2 + c * 16;
                *(uint4 *)dst = lds_v4(uStage + row * EPI_PITCH16 + c * 16);
            }
        }
        fence_proxy_async(); /* generic reads of the area before the next request's TMA / wgmma use of it */
        __syncthreads();
        return;
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = h ? r1 : r0;
        if (row >= w->nvalid) continue;
        const float inv = sInv[row];
        const int rr = mblk * MLA_BM + row, j = rr / hg, head = kvh * hg + rr % hg;
#pragma unroll
        for (int q = 0; q < 32; q++) {
            const int i = 4 * q + 2 * h;
            const int col = 256 * wg + 8 * q + 2 * (lane & 3);
            store_out2(p, w->slot, r, j, head, col, o[i] * inv, o[i + 1] * inv, F16);
        }
        if (wg == 0 && (lane & 3) == 0) store_lse(p, w->slot, r, j, head, sLse[row]);
    }
    __syncthreads();
}
#endif /* MLA_HAVE_SM90A */

/* A wgmma kernel entry taking the K-cache tensor map (TM) or the parameters only (P); `call` (its
 * body) exists only in the sm_90a pass (the compute_80 PTX gets an empty kernel, never launched:
 * src/gpu.cu checks the SASS). */
#if MLA_HAVE_SM90A
#define MLA_SM90_P_KERNEL(name, call)                                                                     \
    __global__ void __launch_bounds__(MLA_THREADS, 1) name(const __grid_constant__ mla_dec_params p) { call; }
#else
#define MLA_SM90_P_KERNEL(name, call)                                                                     \
    __global__ void __launch_bounds__(MLA_THREADS, 1) name(const __grid_constant__ mla_dec_params p) {}
#endif
#if MLA_HAVE_SM90A
#define MLA_SM90_TM_KERNEL(name, call)                                                                    \
    __global__ void __launch_bounds__(MLA_THREADS, 1) name(const __grid_constant__ mla_dec_params p,       \
                                                           const __grid_constant__ CUtensorMap tm) {       \
        call;                                                                                             \
    }
#else
#define MLA_SM90_TM_KERNEL(name, call)                                                                    \
    __global__ void __launch_bounds__(MLA_THREADS, 1) name(const __grid_constant__ mla_dec_params p,       \
                                                           const __grid_constant__ CUtensorMap tm) {}
#endif

#endif
