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
 * stores of split requests (small-batch breakdown), 7 records a per-CTA timeline (DIAG_TS below, read
 * by `mla-bench` with MLA_BENCH_TIMELINE=1; results stay correct). */
#ifndef MLA_DIAG
#define MLA_DIAG 0
#endif

/* MLA_DIAG 7: thread 0 of each CTA stores clock64 (slots 0..15) and %globaltimer (slot 16 at entry,
 * 17 at exit) into a per-translation-unit __device__ array [MLA_DIAG_CTAS][MLA_DIAG_SLOTS]. */
#define MLA_DIAG_CTAS 4096
#define MLA_DIAG_SLOTS 24
/* timing builds' clocks (MLA_DIAG = 7 here, MLA_SP_DIAG = 10 in sparse_sm90.cu); unused otherwise */
static __device__ __forceinline__ unsigned long long diag_gtime(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
static __device__ __forceinline__ unsigned smid(void) {
    unsigned r;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(r));
    return r;
}
#if MLA_DIAG == 7
#define DIAG_CTA ((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x)
#define DIAG_CLK(arr, slot)                                                                         \
    do {                                                                                            \
        if (threadIdx.x == 0 && DIAG_CTA < MLA_DIAG_CTAS) arr[DIAG_CTA][slot] = (unsigned long long)clock64(); \
    } while (0)
#define DIAG_VAL(arr, slot, v)                                                                      \
    do {                                                                                            \
        if (threadIdx.x == 0 && DIAG_CTA < MLA_DIAG_CTAS) arr[DIAG_CTA][slot] = (unsigned long long)(v); \
    } while (0)
#define DIAG_GT(arr, slot) DIAG_VAL(arr, slot, diag_gtime())
#else
#define DIAG_CLK(arr, slot) do {} while (0)
#define DIAG_VAL(arr, slot, v) do {} while (0)
#define DIAG_GT(arr, slot) do {} while (0)
#endif

/* (timing builds) the host reader of a per-CTA __device__ diag array: reset = 1 zeroes it, else it is
 * copied into host */
#define MLA_DIAG_IO_FN(name, arr)                                                                   \
    extern "C" __attribute__((visibility("default"))) int name(void *host, int reset) {             \
        if (reset) {                                                                                \
            void *d = 0;                                                                            \
            if (cudaGetSymbolAddress(&d, arr) != cudaSuccess) return 1;                             \
            return cudaMemset(d, 0, sizeof(arr)) != cudaSuccess;                                    \
        }                                                                                           \
        return cudaMemcpyFromSymbol(host, arr, sizeof(arr)) != cudaSuccess;                         \
    }

/* (timing builds) per-warpgroup cycle accounts: thread 0 of each warpgroup adds v to slot `slot` of its 8
 * (arr[cta][8 wg + slot], fire-and-forget atomics); MLA_WG_TIME(arr, slot, stmt) adds the clock() cycles
 * of stmt. Users: v3's MLA_DIAG = 9 (decode_sm90.cu), SSF's MLA_SP_DIAG = 9 (sparse_sm90.cu). */
#define MLA_WG_CTA ((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x)
#define MLA_WG_ADD(arr, slot, v)                                                                     \
    do {                                                                                             \
        if ((threadIdx.x & 127) == 0 && MLA_WG_CTA < MLA_DIAG_CTAS)                                  \
            atomicAdd(&arr[MLA_WG_CTA][8 * (threadIdx.x >> 7) + (slot)], (unsigned long long)(v));   \
    } while (0)
#define MLA_WG_TIME(arr, slot, stmt)                                                                 \
    do {                                                                                             \
        const unsigned wgt_t = (unsigned)clock();                                                    \
        stmt;                                                                                        \
        MLA_WG_ADD(arr, slot, (unsigned)clock() - wgt_t);                                            \
    } while (0)

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

/* The m-block of request r that a CTA of m-block slot cta_mb (blockIdx.x) computes. By default it
 * is cta_mb: the part's M = num_m_blocks CTAs take one m-block each of every request. With per-request
 * query lengths (p->qmix_rr: cu_seqlens_q and many requests per part, src/gpu.cu), request r has
 * v = ceil(n_q * hg / 64) <= M m-blocks of existing rows; its units (r, 0 .. v - 1), numbered in
 * request order from the part's first request, go round robin to the part's M CTAs (unit number u to
 * the CTA with cta_mb = u mod M), so a batch of 1-, 2- and 4-token requests spreads over all M CTAs
 * instead of loading the CTAs of the first m-blocks with every request (the rest idle) and costing
 * what padding to s_q costs. Every CTA of the part walks the same requests, so each unit goes to
 * exactly one CTA; when every request has s_q tokens (v = M) the mapping is the identity. *u: units
 * so far mod M (0 before the part's first request). A result >= v makes req_prepare return 0
 * (nvalid <= 0): nothing of r for this CTA. */
static __device__ __forceinline__ int req_mblk(const mla_dec_params *p, int r, int cta_mb, int *u) {
    if (!p->qmix_rr) return cta_mb;
    const int M = p->num_m_blocks;
    const int v = (req_nq(p, r) * p->hg + MLA_BM - 1) / MLA_BM;
    int k = cta_mb - *u;
    if (k < 0) k += M;
    *u = (*u + v) % M;
    return k;
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
/* element offset of query row (r, j, head) in out; row of (slot, j, head) in the split partials */
static __device__ __forceinline__ long long out_row(const mla_dec_params *p, int r, int j, int head) {
    return (long long)r * p->o_s0 + (long long)j * p->o_s1 + (long long)head * p->o_s2;
}
static __device__ __forceinline__ long long part_row(const mla_dec_params *p, int slot, int j, int head) {
    return (long long)slot * p->rows_per_slot + (long long)j * p->h_q + head;
}
static __device__ __forceinline__ void store_out2(const mla_dec_params *p, int slot, int r, int j, int head,
                                                  int col, float v0, float v1, const int F16) {
    if (slot < 0) {
        char *o = (char *)p->out + (out_row(p, r, j, head) + col) * 2;
        *(uint32_t *)o = pack2(v0, v1, F16);
    } else if (MLA_DIAG != 6) {
        *(float2 *)(p->oacc + part_row(p, slot, j, head) * MLA_DV + col) = make_float2(v0, v1);
    }
}
/* lse of query row (r, j, head) from the log2-domain value (-inf: no visible key). */
static __device__ __forceinline__ void store_lse(const mla_dec_params *p, int slot, int r, int j, int head, float lse2) {
    if (slot < 0)
        p->lse[(long long)r * p->l_s0 + (long long)head * p->l_s1 + (long long)j * p->l_s2] =
            lse2 == -INFINITY ? INFINITY : lse2 * LN2_F;
    else
        p->lacc[part_row(p, slot, j, head)] = lse2;
}

/* Row normalisation at the end of a (piece of a) row: the factor num / l and the log2 lse. l == 0
 * (no visible key) gives 0 and -inf; a NaN l (a NaN or +inf score: NaN or +-inf in q, NaN in a visible
 * key) gives NaN for both, so the row is NaN as on the CPU (docs/guarantees.md F6-F8). */
static __device__ __forceinline__ float row_inv(float l, float num) { return l > 0.f ? num / l : (l == l ? 0.f : l); }
static __device__ __forceinline__ float row_lse2(float m, float l) {
    return l > 0.f ? m + log2f(l) : (l == l ? -INFINITY : l);
}

/* Schedulers (dense and sparse, one CTA of up to 1024 threads): */
/* MLA_SCAN_FNS(T, W, B): W, the inclusive prefix sum of a T over the 32 lanes of a full warp, and B,
 * the exclusive block scan of a T (tmp: >= 65 T; returns the exclusive prefix, *total gets the
 * sum). Instantiated for long long (the scheduler kernels) and unsigned (the fused schedule). */
#define MLA_SCAN_FNS(T, W, B)                                                                             \
    static __device__ __forceinline__ T W(T x) {                                                          \
        const int lane = threadIdx.x & 31;                                                                \
        _Pragma("unroll") for (int o = 1; o < 32; o <<= 1) {                                              \
            const T y = __shfl_up_sync(0xffffffffu, x, o);                                                \
            if (lane >= o) x += y;                                                                        \
        }                                                                                                 \
        return x;                                                                                         \
    }                                                                                                     \
    static __device__ __forceinline__ T B(T v, T *tmp, T *total) {                                        \
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;                 \
        const T x = W(v);                                                                                 \
        if (lane == 31) tmp[warp] = x;                                                                    \
        __syncthreads();                                                                                  \
        if (warp == 0) {                                                                                  \
            const T w = lane < nw ? tmp[lane] : (T)0;                                                     \
            const T s = W(w);                                                                             \
            tmp[32 + lane] = s - w; /* exclusive over warps */                                            \
            if (lane == 31) tmp[64] = s;                                                                  \
        }                                                                                                 \
        __syncthreads();                                                                                  \
        const T r = tmp[32 + warp] + x - v;                                                               \
        *total = tmp[64];                                                                                 \
        __syncthreads(); /* tmp reusable */                                                               \
        return r;                                                                                         \
    }
MLA_SCAN_FNS(long long, warp_scan64, block_scan64)
MLA_SCAN_FNS(unsigned, warp_scan32, block_scan32)
#undef MLA_SCAN_FNS

/* FL consecutive floats (FL = 1, 2, 4, 8, 16; 4 * FL-byte aligned) */
static __device__ __forceinline__ void ld_floats(float *v, const float *src, const int FL) {
    if (FL >= 4) {
#pragma unroll
        for (int c = 0; c < FL / 4; c++) {
            const float4 x = ((const float4 *)src)[c];
            v[4 * c] = x.x, v[4 * c + 1] = x.y, v[4 * c + 2] = x.z, v[4 * c + 3] = x.w;
        }
    } else if (FL == 2) {
        const float2 x = *(const float2 *)src;
        v[0] = x.x, v[1] = x.y;
    } else {
        v[0] = *src;
    }
}

/* (m, s) <- the merge of two log2-domain partial sums: s = sum 2^(l - m) over both sets */
static __device__ __forceinline__ void lse2_merge(float *m, float *s, float m2, float s2) {
    const float mn = fmaxf(*m, m2);
    *s = mn == -INFINITY ? 0.f : *s * fast_exp2(*m - mn) + s2 * fast_exp2(m2 - mn);
    *m = mn;
}

/* Split-KV combine of one row: np pieces, piece i's log2-domain lse at lacc[base + i R] and its
 * normalised partial out at oacc + (base + i R) * MLA_DV. acc[0 .. FL) gets this lane's FL columns
 * c0 .. c0 + FL of the merged out (FL = 1, 2, 4, 8, 16; acc has 16 elements), *gl_out the row's
 * natural-log lse and *g2_out its log2 value: a NaN piece (NaN / inf input, docs/guarantees.md F6-F8)
 * makes all NaN; no visible key in any piece gives acc 0, lse +inf (log2 -inf). One pass over the
 * lse (running max and sum per lane, merged over the warp), then rounds of CB pieces whose loads are
 * all issued before any is used, the weights held one per lane and broadcast by shuffle. */
/* build option: pieces per round of the FL = 16 (one-slice) combine, 1 or 2. The sparse b >= 64 combine
 * (FL = 16) read its partials at ~1.7 TB/s with 31% of warps active (ncu, H200, docs/performance.md §42):
 * one piece's four 16-byte loads in flight per lane; 2 doubles that for 16 more registers */
#ifndef MLA_COMBINE_CB16
#define MLA_COMBINE_CB16 1
#endif
static __device__ __forceinline__ void combine_merge(const float *lacc, const float *oacc, long long base,
                                                     long long R, int np, int c0, float *acc, float *gl_out,
                                                     float *g2_out, const int FL) {
    /* pieces per round: CB * FL floats of loads in flight per lane (FL = 16: MLA_COMBINE_CB16, 16 floats a
     * piece; the other widths keep 32 floats in flight) */
    const int CB = FL >= 16 ? MLA_COMBINE_CB16 : 32 / FL;
    const int lane = threadIdx.x & 31;
    /* one pass over the pieces' lse: running max and sum per lane, then merged over the warp */
    float mx = -INFINITY, sum = 0.f;
    int nan_piece = 0; /* a NaN piece (NaN / inf input, docs/guarantees.md F6-F8) makes the row NaN */
    for (int i = lane; i < np; i += 32) {
        const float l = lacc[base + i * R];
        nan_piece |= l != l;
        lse2_merge(&mx, &sum, l, 1.f);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, mx, o), s2 = __shfl_xor_sync(0xffffffffu, sum, o);
        lse2_merge(&mx, &sum, m2, s2);
    }
    nan_piece = __any_sync(0xffffffffu, nan_piece);
#pragma unroll
    for (int c = 0; c < 16; c++) acc[c] = 0.f;
    float gl = INFINITY, g2 = -INFINITY;
    if (nan_piece) {
#pragma unroll
        for (int c = 0; c < 16; c++) acc[c] = NAN;
        gl = NAN;
    } else if (mx != -INFINITY) {
        g2 = mx + log2f(sum);
        for (int g0 = 0; g0 < np; g0 += 32) {
            /* the weights of pieces g0 .. g0 + 31, one per lane (the lse is in L1 from the pass above) */
            const float wl = g0 + lane < np ? fast_exp2(lacc[base + (long long)(g0 + lane) * R] - g2) : 0.f;
            const int n = np - g0 < 32 ? np - g0 : 32;
            for (int u0 = 0; u0 < n; u0 += CB) {
                /* CB pieces' loads all issued before any is used: one memory latency per round */
                float v[32][16]; /* [CB][FL] */
#pragma unroll
                for (int u = 0; u < 32; u++) {
                    if (u >= CB) break;
                    if (u0 + u < n) {
                        ld_floats(v[u], oacc + (base + (long long)(g0 + u0 + u) * R) * MLA_DV + c0, FL);
                    } else {
#pragma unroll
                        for (int c = 0; c < 16; c++) v[u][c] = 0.f;
                    }
                }
#pragma unroll
                for (int u = 0; u < 32; u++) {
                    if (u >= CB) break;
                    const float wu = __shfl_sync(0xffffffffu, wl, u0 + u); /* 0 past the last piece */
#pragma unroll
                    for (int c = 0; c < 16; c++)
                        if (c < FL) acc[c] += wu * v[u][c];
                }
            }
        }
        gl = g2 * LN2_F;
    }
    *gl_out = gl;
    *g2_out = g2;
}

/* Scheduler unit: 64-token tiles of request r (its length clamped to [0, max_tokens]). */
static __device__ __forceinline__ int sched_ntiles(const int32_t *seqlens, int r, long long max_tokens) {
    long long L = seqlens[r];
    if (L < 0) L = 0;
    if (L > max_tokens) L = max_tokens;
    return (int)((L + MLA_BN - 1) / MLA_BN);
}

/* The scheduler kernels' shared stores: request r's split entry (nsplits > 0 parts begin inside
 * it: nsplits + 1 pieces from slot `slot`, list entry `idx`) or -1, and the end markers (req = b)
 * of the parts from `i0` in steps of `step` that begin at or past the total cost (and of part P). */
static __device__ __forceinline__ void sched_put_req(int32_t *req_slot, mla_split_entry *split_list, int r,
                                                     int nsplits, int slot, int idx) {
    req_slot[r] = nsplits > 0 ? slot : -1;
    if (nsplits > 0) {
        mla_split_entry e;
        e.req = r;
        e.slot = slot;
        e.npieces = nsplits + 1;
        e.pad = 0;
        split_list[idx] = e;
    }
}
/* The parts that begin inside request r (cost range [C, C + cost), weight w): part i begins at cost
 * i * payload, at tile floor((offset - w F) / w) (0 inside the fixed part); returns how many begin
 * past its tile 0 (the request's split pieces besides the first). */
static __device__ __forceinline__ int sched_put_parts(mla_part_begin *part_begin, int r, long long C, long long cost,
                                                      long long w, long long payload, int P) {
    const long long F = MLA_SCHED_FIXED_COST;
    const long long i0 = (C + payload - 1) / payload, i1 = (C + cost + payload - 1) / payload; /* i1 exclusive */
    int nsplits = 0;
    for (long long i = i0; i < i1 && i < P; i++) {
        const long long o = i * payload - C;
        const int tile = o <= F * w ? 0 : (int)((o - F * w) / w);
        mla_part_begin pb;
        pb.req = r;
        pb.tile = tile;
        pb.piece = tile > 0 ? ++nsplits : 0;
        pb.pad = 0;
        part_begin[i] = pb;
    }
    return nsplits;
}
static __device__ __forceinline__ void sched_put_ends(mla_part_begin *part_begin, int b, int P, long long payload,
                                                      long long total, int i0, int step) {
    for (int i = i0; i <= P; i += step) {
        if (i == P || (long long)i * payload >= total) {
            mla_part_begin pb;
            pb.req = b;
            pb.tile = 0;
            pb.piece = 0;
            pb.pad = 0;
            part_begin[i] = pb;
        }
    }
}

/* Fused schedule (p->fused_sched: b <= MLA_FUSED_SCHED_MAX_B, no scheduler launch). Every decode CTA
 * does the arithmetic of mla_sched_kernel (kernels/decode.cu) itself: request r costs
 * ntiles(r) + F, payload = ceil(total / P), part i begins at cost i * payload. Closed forms of the
 * scheduler's loop for request r with cost prefix C: parts i0 = ceil(C / payload) .. i1 - 1 begin
 * inside it (i1 = ceil((C + cost) / payload), i < P); part i begins at tile max(0, i * payload - C - F),
 * and the parts with tile > 0 are i >= i_f = floor((C + F) / payload) + 1 (i_f >= i0), so part i's
 * piece is i - i_f + 1 and r has nsplits = max(0, min(i1, P) - i_f) of them.
 * Writes the same schedule as the scheduler kernel into the workspace, so a later call with
 * MLA_DECODE_REUSE_SCHEDULE finds it: req_slot of the CTA's own requests (all of them from CTA
 * (0, 0, 0), which also writes split_list and num_split), part_begin[part] (and part_begin[P]) from
 * the CTAs with blockIdx.x == blockIdx.y == 0. The writes of different CTAs to one entry hold the
 * same value. scratch: >= 608 bytes of 8-byte-aligned shared memory; the part's begin and end are
 * left at scratch + 576 (mla_part_begin[2]). All MLA_THREADS threads call it; it ends with a
 * __syncthreads (this CTA's req_slot writes are then visible to req_prepare). */
#ifndef MLA_FUSED_SCHED_INLINE /* timing builds: -DMLA_FUSED_SCHED_INLINE=1 inlines it */
#define MLA_FUSED_SCHED_ATTR __noinline__
#else
#define MLA_FUSED_SCHED_ATTR __forceinline__
#endif
static __device__ MLA_FUSED_SCHED_ATTR void sched_fused(const mla_dec_params *p, int part, void *scratch) {
    long long *tmp = (long long *)scratch;
    mla_part_begin *sb = (mla_part_begin *)(tmp + 72); /* [2]: this part's begin and end */
    /* 32-bit arithmetic: the host takes this path only where b * (ceil(max_tokens / MLA_BN) + F) < 2^31
     * (src/gpu.cu), so every sum below (at most total + payload) fits an unsigned int, and each
     * division is a few instructions instead of a call to the 64-bit division routine */
    const unsigned F = MLA_SCHED_FIXED_COST;
    const int tid = threadIdx.x, b = p->b;
    const unsigned P = (unsigned)p->num_sm_parts;
    const int first = blockIdx.x == 0 && blockIdx.y == 0, all = first && blockIdx.z == 0;
    if (tid < 2) {
        mla_part_begin e;
        e.req = b; /* no request begins a part past the total cost, nor part P */
        e.tile = 0;
        e.piece = 0;
        e.pad = 0;
        sb[tid] = e;
    }
    /* thread tid: requests 2 tid and 2 tid + 1 (b <= 2 * MLA_THREADS) */
    unsigned cost[2];
#pragma unroll
    for (int c = 0; c < 2; c++) {
        const int r = 2 * tid + c;
        cost[c] = r < b ? (unsigned)sched_ntiles(p->seqlens, r, (long long)p->max_tokens) + F : 0u;
    }
    unsigned total;
    const unsigned C0 = block_scan32(cost[0] + cost[1], (unsigned *)scratch, &total); /* ends with __syncthreads */
    const unsigned payload = total > 0 ? (total + P - 1) / P : 1u;
    int nsp[2];
    long long packed = 0;
#pragma unroll
    for (int c = 0; c < 2; c++) {
        const int r = 2 * tid + c;
        const unsigned C = C0 + (c ? cost[0] : 0u);
        nsp[c] = 0;
        if (r >= b) continue;
        const unsigned i0 = (C + payload - 1) / payload, i1 = (C + cost[c] + payload - 1) / payload;
        const unsigned i_f = (C + F) / payload + 1;
        const unsigned ie = i1 < P ? i1 : P;
        nsp[c] = ie > i_f ? (int)(ie - i_f) : 0;
#pragma unroll
        for (int k = 0; k < 2; k++) {
            const unsigned i = (unsigned)part + k;
            if (i < i0 || i >= ie) continue;
            const unsigned o = i * payload - C; /* i >= i0: i * payload >= C */
            mla_part_begin e;
            e.req = r;
            e.tile = o <= F ? 0 : (int)(o - F);
            e.piece = e.tile > 0 ? (int)(i - i_f + 1) : 0;
            e.pad = 0;
            sb[k] = e;
        }
        if (nsp[c] > 0) packed += (((long long)(nsp[c] + 1)) << 32) | 1ll;
    }
    long long ptot;
    const long long pex = block_scan64(packed, tmp, &ptot); /* sb is visible after this */
    const mla_part_begin pb = sb[0], pe = sb[1];
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    long long run = pex;
#pragma unroll
    for (int c = 0; c < 2; c++) {
        const int r = 2 * tid + c;
        if (r >= b) continue;
        const int split = nsp[c] > 0;
        const int slot = (int)(run >> 32), idx = (int)(run & 0xffffffffll);
        if (all || (r >= pb.req && r <= r_last)) p->req_slot[r] = split ? slot : -1;
        if (all && split) {
            mla_split_entry e;
            e.req = r;
            e.slot = slot;
            e.npieces = nsp[c] + 1;
            e.pad = 0;
            p->split_list[idx] = e;
        }
        if (split) run += (((long long)(nsp[c] + 1)) << 32) | 1ll;
    }
    if (tid == 0 && first) {
        p->part_begin[part] = pb;
        if (part == (int)P - 1) p->part_begin[P] = pe;
    }
    if (tid == 0 && all) p->num_split[0] = (int)(ptot & 0xffffffffll);
    __syncthreads();
}

/* This CTA's part [pb, pe) of the schedule: from the workspace (scheduler kernel or an earlier call),
 * or, in the kernel entries built with FUSED = 1 (launched only with p->fused_sched), computed here. */
static __device__ __forceinline__ void part_bounds(const mla_dec_params *p, int part, void *scratch,
                                                   mla_part_begin *pb, mla_part_begin *pe, const int FUSED) {
    if (FUSED) {
        sched_fused(p, part, scratch);
        const mla_part_begin *sb = (const mla_part_begin *)((const long long *)scratch + 72);
        *pb = sb[0];
        *pe = sb[1];
        __syncthreads(); /* scratch is the kernel's again */
    } else {
        *pb = p->part_begin[part];
        *pe = p->part_begin[part + 1];
    }
}

#endif
