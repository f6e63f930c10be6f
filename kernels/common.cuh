/* common.cuh — device helpers shared by the decode kernels (kernels/decode.cu: scheduler, mma.sync
 * decode, combine; kernels/decode_sm90.cu: the wgmma decode). */
#ifndef MLA_KERNELS_COMMON_CUH
#define MLA_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "params.h"
#include "ptx.cuh"

/* Timing experiments only (never in a shipped build; results are wrong by design), built with
 * `make BUILD=build-diagN MLA_DEFS=-DMLA_DIAG=N` (tests/gpu/diag_run.sh): 1 drops the K loads after a
 * request's first tile (compute + sync path alone), 2 drops the wgmmas (loads + sync path alone),
 * 3 drops both (kernels/decode_sm90.cu); 4 makes the wgmma decode and the combine return right after
 * their PDL wait (the launch chain alone), 5 makes only the combine return, 6 drops the fp32 partial
 * stores of split requests (small-batch breakdown). */
#ifndef MLA_DIAG
#define MLA_DIAG 0
#endif

#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f

/* byte offset of 16-byte chunk `c` of row `r` in a swizzled tile with `rb` bytes per row */
static __device__ __forceinline__ uint32_t swz(int r, int c, int rb) {
    return (uint32_t)(r * rb + ((c & ~7) | ((c ^ r) & 7)) * 16);
}

/* sum over the 4 lanes of a quad (the lanes that hold one accumulator row) */
static __device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}
static __device__ __forceinline__ uint32_t pack2(float lo, float hi, const int f16) {
    if (f16) {
        __half2 h = __floats2half2_rn(lo, hi);
        return *(uint32_t *)&h;
    } else {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *(uint32_t *)&h;
    }
}

static __device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                                                const int f16) {
    if (f16) mma_f16(d, a, b0, b1);
    else mma_bf16(d, a, b0, b1);
}

/* Tokens of request r that exist (negative -> 0, clamp to the block table's reach). */
static __device__ __forceinline__ int req_len(const mla_dec_params *p, int r) {
    long long L = p->seqlens[r];
    if (L < 0) L = 0;
    if (L > p->max_tokens) L = p->max_tokens;
    return (int)L;
}
static __device__ __forceinline__ int req_nq(const mla_dec_params *p, int r) {
    if (!p->cu_seqlens_q) return p->s_q;
    int n = p->cu_seqlens_q[r + 1] - p->cu_seqlens_q[r];
    return n < 0 ? 0 : (n > p->s_q ? p->s_q : n);
}

/* The work of request r for m-block mblk inside a part [pb, pe): tile range (clamped to the
 * length, the block table and the causal limit of the m-block's last row), query rows, split slot.
 * Threads 0..63 write the visible-key count of each of the 64 rows to row_lim. Returns 0 when the
 * m-block has no existing query row for r (block-uniform). */
typedef struct req_work { int L, tb, te, n_q, nvalid, slot; } req_work;

static __device__ __forceinline__ int req_prepare(const mla_dec_params *p, int r, mla_part_begin pb,
                                                  mla_part_begin pe, int mblk, int *row_lim, req_work *w) {
    const int L = req_len(p, r), hg = p->hg;
    const int nblk = (L + MLA_BN - 1) / MLA_BN;
    int te = (r == pe.req) ? pe.tile : nblk;
    int tb = (r == pb.req) ? pb.tile : 0;
    const int piece = (r == pb.req) ? pb.piece : 0;
    const int n_q = req_nq(p, r);
    int nvalid = n_q * hg - mblk * MLA_BM;
    if (nvalid <= 0) return 0;
    if (nvalid > MLA_BM) nvalid = MLA_BM;
    int slot = p->req_slot[r];
    if (slot >= 0) slot += piece;
    const int tid = threadIdx.x;
    if (tid < MLA_BM) {
        int lim = 0;
        if (tid < nvalid) {
            int j = (mblk * MLA_BM + tid) / hg;
            lim = L;
            if (p->causal) {
                lim = L - n_q + j + 1;
                lim = lim < 0 ? 0 : (lim > L ? L : lim);
            }
        }
        row_lim[tid] = lim;
    }
    int lim_max = L;
    if (p->causal) {
        int jmax = (mblk * MLA_BM + nvalid - 1) / hg;
        lim_max = L - n_q + jmax + 1;
        lim_max = lim_max < 0 ? 0 : (lim_max > L ? L : lim_max);
    }
    const int tlim = (lim_max + MLA_BN - 1) / MLA_BN;
    if (te > nblk) te = nblk;
    if (te > tlim) te = tlim;
    if (tb > te) tb = te;
    w->L = L; w->tb = tb; w->te = te; w->n_q = n_q; w->nvalid = nvalid; w->slot = slot;
    return 1;
}

/* Global address of the K row of token `tok` of request r, head kvh, or NULL when the token does
 * not exist or its page id is outside [0, num_pages). Reads block_table only for tok < L. */
/* es: bytes per cache element (2; 1 for an FP8 cache). */
static __device__ __forceinline__ const char *k_row_ptr_es(const mla_dec_params *p, int r, int kvh, long long tok, int L,
                                                           const int es) {
    if (tok >= L) return 0;
    /* 0 <= tok < L <= INT32_MAX: 32-bit unsigned division (a 64-bit one is a ~70-instruction call) */
    const unsigned it = (unsigned)tok, ps = (unsigned)p->page_size;
    const unsigned pidx = it / ps, prow = it - pidx * ps;
    int pid = p->block_table[(long long)r * p->bt_stride + pidx];
    if (pid < 0 || (long long)pid >= p->num_pages) return 0;
    return (const char *)p->k + ((long long)pid * p->k_s0 + (long long)prow * p->k_s1 + (long long)kvh * p->k_s2) * es;
}
static __device__ __forceinline__ const char *k_row_ptr(const mla_dec_params *p, int r, int kvh, long long tok, int L) {
    return k_row_ptr_es(p, r, kvh, tok, L, 2);
}

/* Writes two adjacent output columns of query row (r, j, head): to out (unsplit, slot < 0) or to
 * the fp32 partial accumulator of `slot`. */
static __device__ __forceinline__ void store_out2(const mla_dec_params *p, int slot, int r, int j, int head,
                                                  int col, float v0, float v1, const int F16) {
    if (slot < 0) {
        char *o = (char *)p->out + ((long long)r * p->o_s0 + (long long)j * p->o_s1 + (long long)head * p->o_s2 + col) * 2;
        *(uint32_t *)o = pack2(v0, v1, F16);
    } else if (MLA_DIAG != 6) {
        const long long prow = (long long)slot * p->rows_per_slot + (long long)j * p->h_q + head;
        *(float2 *)(p->oacc + prow * MLA_DV + col) = make_float2(v0, v1);
    }
}
/* lse of query row (r, j, head) from the log2-domain value (-inf: no visible key). */
static __device__ __forceinline__ void store_lse(const mla_dec_params *p, int slot, int r, int j, int head, float lse2) {
    if (slot < 0)
        p->lse[(long long)r * p->l_s0 + (long long)head * p->l_s1 + (long long)j * p->l_s2] =
            lse2 == -INFINITY ? INFINITY : lse2 * LN2_F;
    else
        p->lacc[(long long)slot * p->rows_per_slot + (long long)j * p->h_q + head] = lse2;
}

/* Row normalisation at the end of a (piece of a) row: the factor num / l and the log2 lse. l == 0
 * (no visible key) gives 0 and -inf; a NaN l (a NaN or +inf score: NaN or +-inf in q, NaN in a visible
 * key) gives NaN for both, so the row is NaN as on the CPU (docs/guarantees.md F6-F8). */
static __device__ __forceinline__ float row_inv(float l, float num) { return l > 0.f ? num / l : (l == l ? 0.f : l); }
static __device__ __forceinline__ float row_lse2(float m, float l) {
    return l > 0.f ? m + log2f(l) : (l == l ? -INFINITY : l);
}

/* Schedulers (dense and sparse, one CTA of up to 1024 threads): */
/* exclusive block scan of a 64-bit value; returns the exclusive prefix, *total gets the sum */
static __device__ __forceinline__ long long block_scan64(long long v, long long *tmp, long long *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    long long x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        long long y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) tmp[warp] = x;
    __syncthreads();
    if (warp == 0) {
        long long w = lane < nw ? tmp[lane] : 0;
        long long s = w;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            long long y = __shfl_up_sync(0xffffffffu, s, o);
            if (lane >= o) s += y;
        }
        tmp[32 + lane] = s - w; /* exclusive over warps */
        if (lane == 31) tmp[64] = s;
    }
    __syncthreads();
    long long r = tmp[32 + warp] + x - v;
    *total = tmp[64];
    __syncthreads(); /* tmp reusable */
    return r;
}

#endif
