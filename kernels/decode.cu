/* decode.cu — dense MLA decode on tensor cores (mma.sync m16n8k16, sm_80+), the split-KV
 * scheduler and the combine kernel, plus thin host launchers (kernels/launch.h).
 *
 * Decode CTA: 256 threads = 8 warps over a 64-row M tile (packed (s_q, head-in-group) rows that
 * share one KV head) and 64-token K tiles read straight from the paged cache with 16-byte cp.async
 * (one block_table lookup per row, so any page size works; rows past the length or on an invalid
 * page are zero-filled and masked). Warp w: rows 16*(w%4).., S for keys 32*(w/4).. of the tile,
 * O for dims 256*(w/4).. (128 fp32 registers). Row max / row sum are shared between the two warps
 * of a row group through shared memory and a named barrier; P goes through shared memory.
 * Online softmax in the log2 domain. All shared tiles are XOR-swizzled in 16-byte chunks.
 */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "params.h"
#include "ptx.cuh"
#include "common.cuh"
#include "launch.h"

#if MLA_DIAG == 7 /* timeline (kernels/common.cuh): %globaltimer, combine [0] first entry, [1] first past its
                   * PDL wait, [2] last exit, [3] last past its wait; scheduler [4] entry, [5] exit */
__device__ unsigned long long mla_diag_cmb[8];
extern "C" __attribute__((visibility("default"))) int mla_diag_cmb_io(void *host, int reset) {
    if (reset) {
        const unsigned long long init[8] = {~0ull, ~0ull, 0, 0, 0, 0, 0, 0};
        return cudaMemcpyToSymbol(mla_diag_cmb, init, sizeof init) != cudaSuccess;
    }
    return cudaMemcpyFromSymbol(host, mla_diag_cmb, sizeof(mla_diag_cmb)) != cudaSuccess;
}
#define DIAG_CMB_MIN(i) do { if (threadIdx.x == 0) atomicMin(&mla_diag_cmb[i], diag_gtime()); } while (0)
#define DIAG_CMB_MAX(i) do { if (threadIdx.x == 0) atomicMax(&mla_diag_cmb[i], diag_gtime()); } while (0)
#else
#define DIAG_CMB_MIN(i) do {} while (0)
#define DIAG_CMB_MAX(i) do {} while (0)
#endif

/* ------------------------------------------------------------------------------------------ */
/* Scheduler: one CTA of 1024 threads, loops over the batch in chunks with block-wide scans.    */
/* ------------------------------------------------------------------------------------------ */

/* Scheduler weight of request r: 1 unless the call hands m-blocks round robin (p->qmix_rr, which
 * passes cu_q); then the request's m-blocks of existing query rows (0 .. M), which the CTAs of a part
 * share (req_mblk), so a part's cost is its CTAs' work. MLA_SCHED_QWEIGHT=0 (timing builds): 1. */
#ifndef MLA_SCHED_QWEIGHT
#define MLA_SCHED_QWEIGHT 1
#endif
static __device__ __forceinline__ int sched_weight(const int32_t *cu_q, int r, int s_q, int hg) {
    if (!MLA_SCHED_QWEIGHT || !cu_q) return 1;
    int n = cu_q[r + 1] - cu_q[r];
    n = n < 0 ? 0 : (n > s_q ? s_q : n);
    return (n * hg + MLA_BM - 1) / MLA_BM;
}

/* Request r costs w (ntiles + F) (w: sched_weight); part i begins at cost i * payload, i.e. inside the
 * request whose cost range holds it, at tile floor((offset - w F) / w) (0 inside the fixed part). */
__global__ void __launch_bounds__(MLA_SCHED_THREADS, 1)
mla_sched_kernel(const int32_t *seqlens, const int32_t *cu_q, int s_q, int hg, int b, long long max_tokens, int P,
                 mla_part_begin *part_begin, int32_t *req_slot, mla_split_entry *split_list, int32_t *num_split) {
    __shared__ long long tmp[72];
    DIAG_CMB_MAX(4);
    pdl_trigger(); /* the decode grid may launch now; it waits (griddepcontrol.wait) for this grid's end */
    const int F = MLA_SCHED_FIXED_COST;
    const int tid = threadIdx.x;
    long long total = 0;
    for (int base = 0; base < b; base += MLA_SCHED_THREADS) {
        int r = base + tid;
        long long c = r < b ? ((long long)sched_ntiles(seqlens, r, max_tokens) + F) * sched_weight(cu_q, r, s_q, hg) : 0;
        long long t;
        block_scan64(c, tmp, &t);
        total += t;
    }
    const long long payload = total > 0 ? (total + P - 1) / P : 1;
    long long run_cost = 0, run_slot = 0, run_split = 0;
    for (int base = 0; base < b; base += MLA_SCHED_THREADS) {
        int r = base + tid;
        int nt = r < b ? sched_ntiles(seqlens, r, max_tokens) : 0;
        const int wt = r < b ? sched_weight(cu_q, r, s_q, hg) : 1;
        long long cost = r < b ? ((long long)nt + F) * wt : 0;
        long long chunk_total;
        long long C = run_cost + block_scan64(cost, tmp, &chunk_total);
        run_cost += chunk_total;
        const int nsplits = r < b ? sched_put_parts(part_begin, r, C, cost, wt, payload, P) : 0;
        int split = nsplits > 0;
        long long packed = split ? (((long long)(nsplits + 1)) << 32) | 1ll : 0;
        long long ptot;
        long long pex = block_scan64(packed, tmp, &ptot);
        if (r < b)
            sched_put_req(req_slot, split_list, r, nsplits, (int)(run_slot + (pex >> 32)),
                          (int)(run_split + (pex & 0xffffffffll)));
        run_slot += ptot >> 32;
        run_split += ptot & 0xffffffffll;
    }
    sched_put_ends(part_begin, b, P, payload, total, tid, MLA_SCHED_THREADS);
    if (tid == 0) num_split[0] = (int)run_split;
    DIAG_CMB_MAX(5);
}

/* ------------------------------------------------------------------------------------------ */
/* Decode kernel                                                                               */
/* ------------------------------------------------------------------------------------------ */

static __host__ __device__ __forceinline__ int dec_smem_bytes(int dqk, int stages) {
    return (1 + stages) * MLA_BM * dqk * 2 /* Q + K stages */ + MLA_BM * MLA_BN * 2 /* P */
           + 4 * 64 * 4 /* red_max, red_sum */ + 64 * 4 /* row_lim */ + 2 * 64 /* kvalid */ + 128 /* align */;
}

/* 16-byte cp.async of one row's chunks c = sub, sub+4, ... into a swizzled smem row at `drow`.
 * Chunk c lands at 16 * (c ^ (row & 7)); with c = sub + 4i that is two bases and +128 B steps,
 * written out so that no per-chunk address has to live in a register. */
static __device__ __forceinline__ void copy_row(uint32_t drow, int row, int sub, const char *src, int valid,
                                                const int NCH) {
    const int x = sub ^ (row & 7);
    const uint32_t d0 = drow + 16 * x, d1 = drow + 16 * (x ^ 4);
    const int nb = valid ? 16 : 0;
    const char *s = src + (valid ? 16 * sub : 0);
    const int step = valid ? 64 : 0;
#pragma unroll
    for (int i = 0; i < NCH / 4; i++) cp_async16((i & 1 ? d1 : d0) + 128 * (i >> 1), s + i * step, nb);
}

/* Issue the cp.async loads of K tile `t` of request r (head kvh) into `dst`; writes kvalid[0..63]. */
static __device__ __forceinline__ void load_k_tile(const mla_dec_params *p, int r, int kvh, int t, int L,
                                                   unsigned char *dst, unsigned char *kvalid, const int DQK) {
    const int RB = DQK * 2, NCH = DQK / 8;
    const int tid = threadIdx.x, row = tid >> 2, sub = tid & 3;
    const long long tok = (long long)t * MLA_BN + row;
    int valid = 0;
    const char *src = (const char *)p->k;
    if (tok < L) {
        long long pidx = tok / p->page_size;
        long long prow = tok - pidx * p->page_size;
        int pid = p->block_table[(long long)r * p->bt_stride + pidx];
        if (pid >= 0 && (long long)pid < p->num_pages) {
            valid = 1;
            src += ((long long)pid * p->k_s0 + prow * p->k_s1 + (long long)kvh * p->k_s2) * 2;
        }
    }
    if (sub == 0) kvalid[row] = (unsigned char)valid;
    copy_row(smem_u32(dst) + row * RB, row, sub, src, valid, NCH);
}

static __device__ __forceinline__ void decode_body(const mla_dec_params *p, const int DQK, const int F16) {
    extern __shared__ unsigned char smem_raw[];
    pdl_wait(); /* launched with PDL behind the scheduler: its schedule is complete and visible after this */
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 127) & ~(uintptr_t)127);
    const int RB = DQK * 2, NCH = DQK / 8;
    const int stages = p->stages;
    unsigned char *sQ = smem;
    unsigned char *sK0 = sQ + MLA_BM * RB;
    unsigned char *sK1 = stages == 2 ? sK0 + MLA_BM * RB : sK0;
    unsigned char *sP = sK0 + stages * MLA_BM * RB;
    float *red_max = (float *)(sP + MLA_BM * MLA_BN * 2); /* [2][64] */
    float *red_sum = red_max + 128;                      /* [2][64] */
    int *row_lim = (int *)(red_sum + 128);               /* [64] */
    unsigned char *kvalid = (unsigned char *)(row_lim + 64); /* [2][64] */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp & 3, kh = warp >> 2, g = lane >> 2, tq = lane & 3;
    const int mb_cta = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int mb_u = 0; /* req_mblk: units of the part's requests so far, mod num_m_blocks */
    const int hg = p->hg;

    mla_part_begin pb, pe;
    part_bounds(p, part, sP, &pb, &pe, 0);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;

    const uint32_t uQ = smem_u32(sQ), uP = smem_u32(sP);
    /* ldmatrix lane roles */
    const int a_row = 16 * wm + (lane & 7) + 8 * ((lane >> 3) & 1), a_coff = lane >> 4;
    const int b_key = 32 * kh + (lane & 7) + 8 * (lane >> 4), b_coff = (lane >> 3) & 1;
    const int v_key = (lane & 7) + 8 * ((lane >> 3) & 1), v_coff = lane >> 4;
    const int row0 = 16 * wm + g, row1 = row0 + 8;

    for (int r = pb.req; r <= r_last; r++) {
        const int mblk = req_mblk(p, r, mb_cta, &mb_u);
        req_work w;
        if (!req_prepare(p, r, pb, pe, mblk, row_lim, &w)) continue; /* block-uniform */
        const int L = w.L, tb = w.tb, te = w.te, nvalid = w.nvalid, slot = w.slot;

        float o[32][4];
#pragma unroll
        for (int i = 0; i < 32; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
        const int active = 16 * wm < nvalid; /* warp-pair uniform */

        if (tb < te) {
            /* Q tile: 4 threads per row */
            {
                const int row = tid >> 2, sub = tid & 3;
                const char *src = (const char *)p->q;
                int ok = row < nvalid;
                if (ok) {
                    int rr = mblk * MLA_BM + row;
                    int j = rr / hg, head = kvh * hg + rr % hg;
                    src += ((long long)r * p->q_s0 + (long long)j * p->q_s1 + (long long)head * p->q_s2) * 2;
                }
                copy_row(uQ + row * RB, row, sub, src, ok, NCH);
            }
            load_k_tile(p, r, kvh, tb, L, sK0, kvalid, DQK);
            cp_async_commit();

            for (int t = tb; t < te; t++) {
                const int buf = stages == 2 ? ((t - tb) & 1) : 0;
                unsigned char *sK = buf ? sK1 : sK0;
                if (stages == 2 && t + 1 < te) {
                    load_k_tile(p, r, kvh, t + 1, L, buf ? sK0 : sK1, kvalid + 64 * (buf ^ 1), DQK);
                    cp_async_commit();
                    cp_async_wait1();
                } else {
                    cp_async_wait0();
                }
                __syncthreads();

                if (active) {
                    const uint32_t uK = smem_u32(sK);
                    float s[4][4];
#pragma unroll
                    for (int i = 0; i < 4; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll 2
                    for (int kk = 0; kk < DQK / 16; kk++) {
                        uint32_t a[4], bb[4];
                        ldsm_x4(a, uQ + swz(a_row, 2 * kk + a_coff, RB));
#pragma unroll
                        for (int nb = 0; nb < 2; nb++) {
                            ldsm_x4(bb, uK + swz(b_key + 16 * nb, 2 * kk + b_coff, RB));
                            mma16816(s[2 * nb], a, bb[0], bb[1], F16);
                            mma16816(s[2 * nb + 1], a, bb[2], bb[3], F16);
                        }
                    }
                    /* mask + scale, row max over this warp's 32 keys */
                    const int lim0 = row_lim[row0], lim1 = row_lim[row1];
                    const unsigned char *kv = kvalid + 64 * buf;
                    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
#pragma unroll
                        for (int c = 0; c < 2; c++) {
                            int kcol = 32 * kh + 8 * nt + 2 * tq + c;
                            int key = t * MLA_BN + kcol;
                            int okk = kv[kcol];
                            s[nt][c] = (okk && key < lim0) ? s[nt][c] * p->scale_log2 : -INFINITY;
                            s[nt][2 + c] = (okk && key < lim1) ? s[nt][2 + c] * p->scale_log2 : -INFINITY;
                            mx0 = fmaxf(mx0, s[nt][c]);
                            mx1 = fmaxf(mx1, s[nt][2 + c]);
                        }
                    }
                    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                    if (tq == 0) {
                        red_max[64 * kh + row0] = mx0;
                        red_max[64 * kh + row1] = mx1;
                    }
                    bar_sync(1 + wm, 64);
                    mx0 = fmaxf(red_max[row0], red_max[64 + row0]);
                    mx1 = fmaxf(red_max[row1], red_max[64 + row1]);
                    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
                    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
                    const float al0 = fast_exp2(m0 - mu0), al1 = fast_exp2(m1 - mu1);
                    m0 = mn0;
                    m1 = mn1;
                    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
                        float p0 = fast_exp2(s[nt][0] - mu0), p1 = fast_exp2(s[nt][1] - mu0);
                        float p2 = fast_exp2(s[nt][2] - mu1), p3 = fast_exp2(s[nt][3] - mu1);
                        sum0 += p0 + p1;
                        sum1 += p2 + p3;
                        const int chunk = 4 * kh + nt;
                        *(uint32_t *)(sP + swz(row0, chunk, 128) + 4 * tq) = pack2(p0, p1, F16);
                        *(uint32_t *)(sP + swz(row1, chunk, 128) + 4 * tq) = pack2(p2, p3, F16);
                    }
                    l0 = l0 * al0 + sum0;
                    l1 = l1 * al1 + sum1;
#pragma unroll
                    for (int i = 0; i < 32; i++) {
                        o[i][0] *= al0;
                        o[i][1] *= al0;
                        o[i][2] *= al1;
                        o[i][3] *= al1;
                    }
                    bar_sync(1 + wm, 64);
                    /* O[16 x 256] += P[16 x 64] . V[64 x 256] */
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) {
                        uint32_t a[4];
                        ldsm_x4(a, uP + swz(a_row, 2 * kk + a_coff, 128));
#pragma unroll
                        for (int nb = 0; nb < 16; nb++) {
                            uint32_t bb[4];
                            ldsm_x4_t(bb, uK + swz(16 * kk + v_key, 32 * kh + 2 * nb + v_coff, RB));
                            mma16816(o[2 * nb], a, bb[0], bb[1], F16);
                            mma16816(o[2 * nb + 1], a, bb[2], bb[3], F16);
                        }
                    }
                }
                __syncthreads();
                if (stages == 1 && t + 1 < te) {
                    load_k_tile(p, r, kvh, t + 1, L, sK0, kvalid, DQK);
                    cp_async_commit();
                }
            }
        }

        /* epilogue: full row sums, normalise, write */
        l0 = quad_sum(l0);
        l1 = quad_sum(l1);
        if (tq == 0) {
            red_sum[64 * kh + row0] = l0;
            red_sum[64 * kh + row1] = l1;
        }
        bar_sync(1 + wm, 64);
        const float L0 = red_sum[row0] + red_sum[64 + row0];
        const float L1 = red_sum[row1] + red_sum[64 + row1];
        const float inv0 = row_inv(L0, 1.f), inv1 = row_inv(L1, 1.f);
        const float lse0 = row_lse2(m0, L0);
        const float lse1 = row_lse2(m1, L1);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = h ? row1 : row0;
            if (row >= nvalid) continue;
            const float inv = h ? inv1 : inv0, lse2 = h ? lse1 : lse0;
            const int rr = mblk * MLA_BM + row;
            const int j = rr / hg, head = kvh * hg + rr % hg;
            if (slot < 0) {
                char *orow = (char *)p->out +
                             out_row(p, r, j, head) * 2;
#pragma unroll
                for (int nt = 0; nt < 32; nt++) {
                    const int col = 256 * kh + 8 * nt + 2 * tq;
                    *(uint32_t *)(orow + col * 2) = pack2(o[nt][2 * h] * inv, o[nt][2 * h + 1] * inv, F16);
                }
                if (kh == 0 && tq == 0)
                    p->lse[(long long)r * p->l_s0 + (long long)head * p->l_s1 + (long long)j * p->l_s2] =
                        lse2 == -INFINITY ? INFINITY : lse2 * LN2_F;
            } else {
                const long long prow = part_row(p, slot, j, head);
                float *orow = p->oacc + prow * MLA_DV;
#pragma unroll
                for (int nt = 0; nt < 32; nt++) {
                    const int col = 256 * kh + 8 * nt + 2 * tq;
                    *(float2 *)(orow + col) = make_float2(o[nt][2 * h] * inv, o[nt][2 * h + 1] * inv);
                }
                if (kh == 0 && tq == 0) p->lacc[prow] = lse2;
            }
        }
        __syncthreads(); /* sQ, row_lim, red_* reused by the next request */
    }
    pdl_trigger();
}

__global__ void __launch_bounds__(MLA_THREADS, 1) mla_decode_bf16_576(const __grid_constant__ mla_dec_params p) {
    decode_body(&p, 576, 0);
}
__global__ void __launch_bounds__(MLA_THREADS, 1) mla_decode_fp16_576(const __grid_constant__ mla_dec_params p) {
    decode_body(&p, 576, 1);
}
__global__ void __launch_bounds__(MLA_THREADS, 1) mla_decode_bf16_512(const __grid_constant__ mla_dec_params p) {
    decode_body(&p, 512, 0);
}
__global__ void __launch_bounds__(MLA_THREADS, 1) mla_decode_fp16_512(const __grid_constant__ mla_dec_params p) {
    decode_body(&p, 512, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Combine: grid (min(b, parts), ceil(rows/8), S), one warp per (split request, row, column slice): */
/* slice z of S covers columns [512 z / S, 512 (z + 1) / S), FL = 16 / S of them per lane           */
/* (S = 1..16: more CTAs, and so more loads in flight, when few requests are split).               */
/* ------------------------------------------------------------------------------------------ */

static __device__ __forceinline__ void combine_slice(const mla_dec_params *p, const mla_split_entry e, int row,
                                                     const int F16, const int FL) {
    const int lane = threadIdx.x & 31;
    const int j = row / p->h_q, head = row % p->h_q;
    const int c0 = blockIdx.z * 32 * FL + lane * FL; /* first column of this lane */
    const long long R = p->rows_per_slot, base = (long long)e.slot * R + row;
    float acc[16], gl, g2;
    combine_merge(p->lacc, p->oacc, base, R, e.npieces, c0, acc, &gl, &g2, FL);
    char *orow = (char *)p->out +
                 (out_row(p, e.req, j, head) + c0) * 2;
    if (FL == 1) {
        const uint32_t h = pack2(acc[0], 0.f, F16);
        *(uint16_t *)orow = (uint16_t)(h & 0xffffu);
    } else {
#pragma unroll
        for (int c = 0; c < FL / 2; c++) ((uint32_t *)orow)[c] = pack2(acc[2 * c], acc[2 * c + 1], F16);
    }
    if (lane == 0 && blockIdx.z == 0)
        p->lse[(long long)e.req * p->l_s0 + (long long)head * p->l_s1 + (long long)j * p->l_s2] = gl;
}

static __device__ __forceinline__ void combine_body(const mla_dec_params *p, const int F16, const int FL) {
    DIAG_CMB_MIN(0);
    pdl_wait(); /* the decode grid's partials are complete and visible after this */
    DIAG_CMB_MIN(1);
    DIAG_CMB_MAX(3);
    if (MLA_DIAG == 4 || MLA_DIAG == 5) return;
    const int k = blockIdx.x;
    if (k >= p->num_split[0]) return;
    const int row = blockIdx.y * 8 + (threadIdx.x >> 5);
    if (row >= p->rows_per_slot) return;
    const mla_split_entry e = p->split_list[k];
    if (row / p->h_q >= req_nq(p, e.req)) return;
    combine_slice(p, e, row, F16, FL);
    if (MLA_DIAG == 7 && FL < 16) { /* (S = 1 would spill with it) */
        __syncwarp();
        DIAG_CMB_MAX(2);
    }
}

/* one entry per (out dtype, slices S = 16 / FL): each gets the registers of its own FL */
#define MLA_COMBINE_KERNEL(S, FL)                                                                          \
    __global__ void __launch_bounds__(256, 3) mla_combine_bf16_s##S(const __grid_constant__ mla_dec_params p) { \
        combine_body(&p, 0, FL);                                                                           \
    }                                                                                                      \
    __global__ void __launch_bounds__(256, 3) mla_combine_fp16_s##S(const __grid_constant__ mla_dec_params p) { \
        combine_body(&p, 1, FL);                                                                           \
    }
MLA_COMBINE_KERNEL(1, 16)
MLA_COMBINE_KERNEL(2, 8)
MLA_COMBINE_KERNEL(4, 4)
MLA_COMBINE_KERNEL(8, 2)
MLA_COMBINE_KERNEL(16, 1)
#undef MLA_COMBINE_KERNEL

static const void *combine_fn(int slices, int f16) {
    switch (slices) {
    case 1: return f16 ? (const void *)mla_combine_fp16_s1 : (const void *)mla_combine_bf16_s1;
    case 2: return f16 ? (const void *)mla_combine_fp16_s2 : (const void *)mla_combine_bf16_s2;
    case 4: return f16 ? (const void *)mla_combine_fp16_s4 : (const void *)mla_combine_bf16_s4;
    case 8: return f16 ? (const void *)mla_combine_fp16_s8 : (const void *)mla_combine_bf16_s8;
    default: return f16 ? (const void *)mla_combine_fp16_s16 : (const void *)mla_combine_bf16_s16;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Host launchers                                                                              */
/* ------------------------------------------------------------------------------------------ */
/* query rows per CTA of the narrow FP8 kernels (16 or 32), 0 for the others */
static int narrow_rows(int kernel) {
    if (kernel == MLA_KERNEL_WGMMA_FP8N || kernel == MLA_KERNEL_WGMMA_FP8T) return 16;
    if (kernel == MLA_KERNEL_WGMMA_FP8N32 || kernel == MLA_KERNEL_WGMMA_FP8T32) return 32;
    return 0;
}
static int is_fp8t(int kernel) { return kernel == MLA_KERNEL_WGMMA_FP8T || kernel == MLA_KERNEL_WGMMA_FP8T32; }

static const void *decode_fn(int kernel, int dqk, int f16, int fused) {
    if (kernel == MLA_KERNEL_WGMMA && fused) return mla_k_sm90_fn(dqk, f16, 5);
    if (kernel == MLA_KERNEL_WGMMA_TMA && fused) return mla_k_sm90_fn(dqk, f16, 7);
    if (kernel == MLA_KERNEL_WGMMA_V3C && fused) return mla_k_sm90_fn(dqk, f16, 8);
    if (is_fp8t(kernel)) return mla_k_fp8t_fn(dqk, f16, narrow_rows(kernel));
    if (narrow_rows(kernel)) return mla_k_narrow_fn(dqk, f16, narrow_rows(kernel));
    if (kernel == MLA_KERNEL_WGMMA_SS2) return mla_k_ss2_fn(dqk, f16);
    if (kernel >= MLA_KERNEL_WGMMA)
        return mla_k_sm90_fn(dqk, f16,
                             kernel == MLA_KERNEL_WGMMA_TMA  ? 1
                             : kernel == MLA_KERNEL_WGMMA_FP8 ? 2
                             : kernel == MLA_KERNEL_WGMMA_WS  ? 3
                             : kernel == MLA_KERNEL_WGMMA_SEESAW ? 4
                             : kernel == MLA_KERNEL_WGMMA_V3C    ? 6
                                                              : 0);
    if (dqk == 576) return f16 ? (const void *)mla_decode_fp16_576 : (const void *)mla_decode_bf16_576;
    return f16 ? (const void *)mla_decode_fp16_512 : (const void *)mla_decode_bf16_512;
}

extern "C" int mla_k_decode_smem(int kernel, int dqk) {
    if (is_fp8t(kernel)) return mla_k_fp8t_smem(dqk, narrow_rows(kernel));
    if (narrow_rows(kernel)) return mla_k_narrow_smem(dqk, narrow_rows(kernel));
    if (kernel == MLA_KERNEL_WGMMA_SS2) return mla_k_ss2_smem(dqk);
    if (kernel >= MLA_KERNEL_WGMMA) return mla_k_sm90_smem(dqk);
    return dec_smem_bytes(dqk, kernel == MLA_KERNEL_MMA_2STAGE ? 2 : 1);
}

extern "C" cudaError_t mla_k_prepare(int kernel, int dqk, int f16) {
    cudaError_t e = cudaFuncSetAttribute(decode_fn(kernel, dqk, f16, 0), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         mla_k_decode_smem(kernel, dqk));
    if (e == cudaSuccess && kernel == MLA_KERNEL_WGMMA_FP8N) /* two CTAs per SM: the whole carveout as smem */
        e = cudaFuncSetAttribute(decode_fn(kernel, dqk, f16, 0), cudaFuncAttributePreferredSharedMemoryCarveout, 100);
    if (e == cudaSuccess && (kernel == MLA_KERNEL_WGMMA || kernel == MLA_KERNEL_WGMMA_TMA || kernel == MLA_KERNEL_WGMMA_V3C))
        /* its fused-schedule entry */
        e = cudaFuncSetAttribute(decode_fn(kernel, dqk, f16, 1), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 mla_k_decode_smem(kernel, dqk));
    return e;
}

extern "C" cudaError_t mla_k_schedule(const mla_dec_params *p, cudaStream_t stream) {
    mla_sched_kernel<<<1, MLA_SCHED_THREADS, 0, stream>>>(p->seqlens, p->qmix_rr ? p->cu_seqlens_q : NULL,
                                                         p->s_q, p->hg, p->b,
                                                         (long long)p->max_tokens, p->num_sm_parts, p->part_begin,
                                                         p->req_slot, p->split_list, p->num_split);
    return cudaGetLastError();
}

extern "C" cudaError_t mla_k_decode(const mla_dec_params *p, int kernel, int dqk, int f16, int use_pdl,
                                    const void *tmap, cudaStream_t stream) {
    dim3 grid(p->num_m_blocks, p->h_kv, p->num_sm_parts);
    const int smem = mla_k_decode_smem(kernel, dqk);
    const void *fn = decode_fn(kernel, dqk, f16, p->fused_sched);
    void *args[2] = {(void *)p, (void *)tmap};
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = use_pdl ? 1 : 0; /* decode behind the scheduler, combine behind the decode */
    cfg.gridDim = grid;
    cfg.blockDim = dim3(is_fp8t(kernel)       ? MLA_FP8T_THREADS
                        : narrow_rows(kernel) ? mla_k_narrow_threads(narrow_rows(kernel))
                                              : MLA_THREADS);
    cfg.dynamicSmemBytes = (size_t)smem;
    cfg.stream = stream;
    cudaError_t e = cudaLaunchKernelExC(&cfg, fn, args);
    if (e != cudaSuccess) return e;
    e = cudaGetLastError();
    if (e != cudaSuccess) return e;

    /* column slices: at most min(b, parts) requests are split; with few of them (small batches)
     * one warp per row would leave most SMs idle */
    const long long rb = (p->rows_per_slot + 7) / 8;
    const long long splits = p->b < p->num_sm_parts ? p->b : p->num_sm_parts;
    int slices = 1; /* the fewest slices (1, 2, .. 8) that give at least MLA_DENSE_COMBINE_CTAS CTAs; the
                     * 16-slice entry is reached through the testing hook only */
    while (slices < MLA_DENSE_COMBINE_MAX_SLICES && splits * rb * slices < MLA_DENSE_COMBINE_CTAS) slices *= 2;
    if (p->combine_slices) slices = p->combine_slices;
    cfg.gridDim = dim3((unsigned)splits, (unsigned)rb, slices); /* x: split-list entries (num_split <= splits) */
    cfg.blockDim = dim3(256);
    cfg.dynamicSmemBytes = 0;
    void *cargs[1] = {(void *)p};
    cfg.numAttrs = use_pdl ? 1 : 0;
    e = cudaLaunchKernelExC(&cfg, combine_fn(slices, f16), cargs);
    if (e != cudaSuccess) return e;
    return cudaGetLastError();
}
