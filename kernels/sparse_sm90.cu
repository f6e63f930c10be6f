/* sparse_sm90.cu — DeepSeek sparse attention on Hopper tensor cores (wgmma, sm_90a only):
 * sparse decode on an FP8 paged cache (V32 / MODEL1) with a device-side split-KV scheduler and a
 * combine kernel that applies attn_sink, and sparse prefill on a bf16 kv. Semantics: include/mla.h
 * and docs/sparse.md (the CPU reference ref/mla_ref_sparse.c is the oracle).
 *
 * One CTA = 256 threads (two warpgroups) over a 64-row M block: 64 query heads of one query token
 * (rows past h_q are zero Q rows whose results are never stored). Keys come in tiles of 64 index
 * entries: entry k of a tile is valid iff it is inside the (clamped) topk_length and
 * (uint32)index < limit; an invalid entry is never dereferenced, its K row is zero in shared
 * memory and its score is -inf. Tiles of the extra cache follow those of the main cache.
 *
 * Thread (row = tid / 4, sub = tid % 4) gathers K row `row` of each tile:
 *   FP8: the e4m3 codes [16 sub + 64 c, +16) of every 64-column chunk c go global -> registers at
 *        the top of the previous tile, then are dequantised exactly as the CPU does (e4m3 -> f16
 *        -> f32, fp32 multiply by the scale without flush-to-zero, round to bf16) into the free
 *        K stage while the PV wgmma of the current tile runs; the bf16 RoPE pieces go straight
 *        to shared memory by cp.async (zero-filled for invalid rows).
 *   bf16 (prefill): cp.async of the whole row (zero-fill when invalid), one tile ahead.
 * Compute (the structure of kernels/decode_sm90.cu; the shared Hopper helpers are in kernels/sm90.cuh):
 *   WG0: S = Q K^T (SS m64n64k16), mask, online softmax (log2 domain), P -> smem for WG1,
 *        O[:, 0:256] += P V (RS m64n256k16, V = the K tile read MN-major).
 *   WG1: O[:, 256:512] += P V.
 */
#include <cuda.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "params.h"
#include "ptx.cuh"
#include "common.cuh"
#include "wgmma_ops.cuh"
#include "sparse_params.h"
#include "sparse_launch.h"
#include "sm90.cuh"
#include "sm90_tile.cuh" /* sm90_qk, sm90_softmax, sm90_put_p / sm90_get_p, sm90_rescale, sm90_pv */

/* Timing decomposition builds (results wrong by design; `make BUILD=build-xspN MLA_DEFS=-DMLA_SP_DIAG=N`):
 * FP8 decode 1: no dequantisation (the stage keeps old data; PW: the loads stay), 2: no gather loads
 * after the first tile, 3: no wgmma, 4: neither loads nor dequantisation, 5: none of the three (2, 4
 * and 5: 256-thread kernel only). Seesaw prefill (both kernels): 6 no K gather (the stages keep
 * their bytes; the kvalid flags and barrier arrivals stay), 7 no QK^T wgmma (S = 0), 8 no stores of
 * the output rows (every epilogue; lse / max_logits stay); 9 (results right) SSF's cycle accounts (SPD below).
 * 0: the real kernel. */
#ifndef MLA_SP_DIAG
#define MLA_SP_DIAG 0
#endif
/* Sanitizer build (`MLA_DEFS=-DMLA_SP_STRICT_SYNC=1`, same results, slower): the PW kernel's two
 * one-sided hand-offs become ones compute-sanitizer racecheck models: WG1 releases the P buffer with
 * barrier.sync instead of barrier.arrive, and (crossover) every consumer thread arrives on the empty
 * barriers instead of one lane per warp after __syncwarp. */
#ifndef MLA_SP_STRICT_SYNC
#define MLA_SP_STRICT_SYNC 0
#endif

#define SP_BAR_P 1 /* named barrier: P fragments of WG0 ready for WG1 / row maxima exchanged (256 threads) */
#define SP_BAR_P2 2 /* named barrier (SPLIT): P fragments of both warpgroups exchanged (256 threads) */
#define SP_BAR_PFREE 3 /* named barrier (PW): WG1 has read the P fragments, WG0 may write the next (256) */
#define SP_BAR_CONS 4 /* named barrier (PW): the two consumer warpgroups (256 threads) */
#define SP_BAR_PROD 5 /* named barrier (PW crossover): the producer warpgroup (128 threads) */

/* sp_smem_bytes' layout after Q and the two K stages (tile: one K stage's bytes): P fragments / the
 * 64 x 64 P tile (8 KB), alpha per thread (2 rows; 1 KB), 1/denominator, lse2, max2 per row, kvalid
 * [2][64], then the mbarriers at SP_PW_BAR_OFF (PW: full, empty per stage; seesaw prefill: full A /
 * B, empty L / R per stage); SSF's second P tile when d_qk = 512 at the next 1 KB boundary (d_qk 576:
 * stage 0's RoPE chunk) */
#define SP_PW_BAR_OFF(tile) (3 * (tile) + 16 * 128 * 4 + 128 * 2 * 4 + 3 * 64 * 4 + 2 * 64)
#define SP_SSF_P0_OFF(tile) ((SP_PW_BAR_OFF(tile) + 8 * 8 + 1023) & ~1023)
static __host__ __device__ __forceinline__ int sp_smem_bytes(int dqk) {
    const int tile = MLA_BM * dqk * 2;
    return (dqk == 512 ? SP_SSF_P0_OFF(tile) + 8192 : SP_PW_BAR_OFF(tile) + 8 * 8) + 1024; /* + alignment slack */
}

/* ------------------------------------------------------------------------------------------ */
/* Split-KV scheduler (one CTA of 1024 threads): the dense scheduler's algorithm over query     */
/* tokens, with the tile count of a token taken from the clamped topk lengths of its request;  */
/* tokens that all cost the same stay whole where that costs at most MLA_SP_SCHED_SPLIT_COST   */
/* tiles more (kernels/params.h; mirrored by tests/test_gpu_sparse.c whole_rule_splits).       */
/* ------------------------------------------------------------------------------------------ */
static __device__ __forceinline__ int sp_clamp_len(const int32_t *len, int i, int topk) {
    if (!len) return topk;
    const int n = len[i];
    return n < 0 ? 0 : (n > topk ? topk : n);
}

/* ceil(n / 64) without overflow for n up to INT32_MAX */
static __device__ __forceinline__ int sp_ntiles(int n) { return n / MLA_BN + (n % MLA_BN != 0); }

/* tiles of source s of request i */
static __device__ __forceinline__ int sp_src_tiles(const mla_sp_params *p, int s, int i) {
    return sp_ntiles(sp_clamp_len(p->len[s], i, p->topk[s]));
}
static __device__ __forceinline__ int sp_tok_tiles(const mla_sp_params *p, int r) {
    const int i = r / p->s_q;
    int n = sp_src_tiles(p, 0, i);
    if (p->nsrc > 1) n += sp_src_tiles(p, 1, i);
    return n;
}

__global__ void __launch_bounds__(MLA_SCHED_THREADS, 1) mla_sp_sched_kernel(const __grid_constant__ mla_sp_params p) {
    __shared__ long long tmp[72];
    pdl_trigger(); /* the decode grid may launch now (p.pdl); it waits (griddepcontrol.wait) for this grid's end */
    const int F = MLA_SCHED_FIXED_COST, P = p.num_sm_parts, b = p.n_tok;
    const int tid = threadIdx.x;
    long long total = 0;
    const long long c0 = b > 0 ? (long long)sp_tok_tiles(&p, 0) + F : 0; /* token 0's cost */
    int same = 1;                                                           /* every token costs c0 */
    for (int base = 0; base < b; base += MLA_SCHED_THREADS) {
        const int r = base + tid;
        long long c = r < b ? (long long)sp_tok_tiles(&p, r) + F : 0;
        same &= r >= b || c == c0;
        long long t;
        block_scan64(c, tmp, &t);
        total += t;
    }
    same = __syncthreads_and(same);
    /* uniform tokens may take whole tokens a part: parts then begin at token boundaries, so no token is split
     * (parts past ceil(b / k) are empty) */
    const long long payload = mla_sp_payload(b, total, c0, same, P);
    long long run_cost = 0, run_slot = 0, run_split = 0;
    for (int base = 0; base < b; base += MLA_SCHED_THREADS) {
        const int r = base + tid;
        const int nt = r < b ? sp_tok_tiles(&p, r) : 0;
        const long long cost = r < b ? (long long)nt + F : 0;
        long long chunk_total;
        const long long C = run_cost + block_scan64(cost, tmp, &chunk_total);
        run_cost += chunk_total;
        const int nsplits = r < b ? sched_put_parts(p.part_begin, r, C, cost, 1, payload, P) : 0;
        const int split = nsplits > 0;
        const long long packed = split ? (((long long)(nsplits + 1)) << 32) | 1ll : 0;
        long long ptot;
        const long long pex = block_scan64(packed, tmp, &ptot);
        if (r < b)
            sched_put_req(p.req_slot, p.split_list, r, nsplits, (int)(run_slot + (pex >> 32)),
                          (int)(run_split + (pex & 0xffffffffll)));
        run_slot += ptot >> 32;
        run_split += ptot & 0xffffffffll;
    }
    sched_put_ends(p.part_begin, b, P, payload, total, tid, MLA_SCHED_THREADS);
    if (tid == 0) p.num_split[0] = (int)run_split;
}

/* MLA_SP_DIAG = 9 (timing builds): thread 0 of each SSF warpgroup adds the clock() cycles of each part of
 * its pair loop to per-CTA global counters (fire-and-forget atomic adds), printed per pair by mla-bench
 * --sparse-prefill with MLA_BENCH_TIMELINE=1 (bench/sparse.c). Slots 8 wg + : WG0 / WG1 (consumers): 0
 * mbarrier waits for K groups, 1 named-barrier syncs, 2 wgmma waits,
 * 3 softmax (WG1: with the take of WG0's max), 4 the whole pair, 5 P tile store, 6 O rescale + PV issue,
 * 7 pairs; WG2 (producer): 0-3 waits for the releases of A0, B1, B0, A1, 4 the whole pair, 5 cp.async
 * issue, 6 the next pair's index loads, 7 pairs. Outside MLA_HAVE_SM90A so that the host pass sees it;
 * SPD(slot, stmt) is just stmt in every other build. */
#if MLA_SP_DIAG == 9
__device__ unsigned long long mla_diag_ssf[MLA_DIAG_CTAS][24];
MLA_DIAG_IO_FN(mla_diag_ssf_io, mla_diag_ssf)
#define SPD_ADD(slot, v) MLA_WG_ADD(mla_diag_ssf, slot, v)
#define SPD(slot, stmt) MLA_WG_TIME(mla_diag_ssf, slot, stmt)
#define SPD_START const unsigned spd_it = (unsigned)clock()
#define SPD_END do { SPD_ADD(4, (unsigned)clock() - spd_it); SPD_ADD(7, 1u); } while (0)
/* a consumer's wait for a K group, timed apart from the QK^T issue behind it (sp_ss_qk_part waits again,
 * at once; timing the issue too made ptxas inject warpgroup.arrive, C7519) */
#define SPD_KWAIT(bar, ph) SPD(0, mbar_wait(bar, ph))
#else
#define SPD(slot, stmt) do { stmt; } while (0)
#define SPD_START
#define SPD_END
#define SPD_KWAIT(bar, ph)
#endif

/* MLA_SP_DIAG = 10 (timing builds, results right): a per-CTA timeline of the producer-warpgroup decode, printed by
 * mla-bench --sparse-decode with MLA_BENCH_TIMELINE=1 (bench/sparse.c, the [reused] graph of each row). Slots
 * (clock64 unless said): 0 entry, 1 after the PDL wait and the cluster / CTA sync; thread 0 (WG0), its first
 * unit: 2 Q in shared memory, 3 first tile's stage full, 4 last tile's PV done, 5 epilogue done; 6 tiles,
 * 7 units; 10 exit; 16 / 17 %globaltimer at entry / exit; 18 SM id. (Stamps in the producer warpgroup made
 * ptxas spill its 128 registers; slot 3 is when its first tile is in the stage as WG0 sees it.) */
#if MLA_SP_DIAG == 10
__device__ unsigned long long mla_diag_spd[MLA_DIAG_CTAS][MLA_DIAG_SLOTS];
MLA_DIAG_IO_FN(mla_diag_spd_io, mla_diag_spd)
static __device__ __forceinline__ void spt_put(int tid, int slot, unsigned long long v) {
    const unsigned cta = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    if ((int)threadIdx.x == tid && cta < MLA_DIAG_CTAS) mla_diag_spd[cta][slot] = v;
}
#define SPT(tid, slot) spt_put(tid, slot, (unsigned long long)clock64())
#define SPT_VAL(tid, slot, v) spt_put(tid, slot, (unsigned long long)(v))
#define SPT_GT(tid, slot) spt_put(tid, slot, diag_gtime())
#define SPT_SM(tid, slot) spt_put(tid, slot, smid())
#else /* nothing, so that the shipped kernels' code is the same as without these hooks */
#define SPT(tid, slot)
#define SPT_VAL(tid, slot, v)
#define SPT_GT(tid, slot)
#define SPT_SM(tid, slot)
#endif

/* ------------------------------------------------------------------------------------------ */
/* Attention kernel                                                                            */
/* ------------------------------------------------------------------------------------------ */
#if MLA_HAVE_SM90A
/* D (fp32, 16 regs) += A * B, m64n32k16 bf16, A and B shared-memory descriptors (K-major) */
static __device__ __forceinline__ void sp_wgmma_ss_m64n32(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "l"(da), "l"(db), "r"(1));
}
static __device__ __forceinline__ void sp_pin16(float *a) {
#pragma unroll
    for (int i = 0; i < 16; i++) asm volatile("" : "+f"(a[i])::"memory");
}

static __device__ __forceinline__ uint2 sp_ldg8(const char *src) {
    uint2 v;
    asm volatile("ld.global.nc.v2.u32 {%0, %1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "l"(src));
    return v;
}
/* 4 e4m3 codes (byte k = element k) times scale s -> 2 bf16 pairs (element 2k in the low half):
 * bf16_rn(f32(e4m3) * s) with an IEEE fp32 multiply (no flush-to-zero), as the CPU computes. */
static __device__ __forceinline__ void sp_dq4(uint32_t w, float s, uint32_t *d0, uint32_t *d1) {
    asm("{\n.reg .b16 lo, hi, h0, h1, h2, h3;\n.reg .b32 p0, p1;\n.reg .f32 f0, f1, f2, f3;\n"
        "mov.b32 {lo, hi}, %2;\n"
        "cvt.rn.f16x2.e4m3x2 p0, lo;\ncvt.rn.f16x2.e4m3x2 p1, hi;\n"
        "mov.b32 {h0, h1}, p0;\nmov.b32 {h2, h3}, p1;\n"
        "cvt.f32.f16 f0, h0;\ncvt.f32.f16 f1, h1;\ncvt.f32.f16 f2, h2;\ncvt.f32.f16 f3, h3;\n"
        "mul.rn.f32 f0, f0, %3;\nmul.rn.f32 f1, f1, %3;\nmul.rn.f32 f2, f2, %3;\nmul.rn.f32 f3, f3, %3;\n"
        "cvt.rn.bf16x2.f32 %0, f1, f0;\ncvt.rn.bf16x2.f32 %1, f3, f2;\n}\n"
        : "=r"(*d0), "=r"(*d1)
        : "r"(w), "f"(s));
}

/* V32 scale: bf16(fp32 scale) as float; MODEL1: e8m0 2^(e-127), 0xff NaN */
static __device__ __forceinline__ float sp_bf16_round(float f) {
    return __bfloat162float(__float2bfloat16_rn(f));
}
static __device__ __forceinline__ float sp_e8m0(uint32_t e) {
    if (e == 0xffu) return __int_as_float(0x7fc00000);
    if (e == 0u) return __int_as_float(0x00400000);
    return __int_as_float((int)(e << 23));
}

/* The query token of a unit: r = i * s_q + j, kv head g; main-cache entries n0 (T0 tiles) at ix0,
 * extra-cache entries n1 at ix1. */
typedef struct sp_unit {
    int r, i, j, g, n0, n1, T0;
    const int32_t *ix0, *ix1;
} sp_unit;

/* The index of tile t's row `row` as stored (-1 when the entry is past the token's length or
 * `in_range` is 0), loaded by a predicated ld so that nothing waits on it until sp_checked uses it
 * (the select of sp_pos stalls the warp right after its load: 2582115's ncu run). */
static __device__ __forceinline__ int sp_idx_raw(const sp_unit *u, int t, int row, int in_range) {
    const int src = t < u->T0 ? 0 : 1;
    const long long k = (long long)(src ? t - u->T0 : t) * MLA_BN + row;
    const int ok = in_range && k < (src ? u->n1 : u->n0);
    const int32_t *a = (src ? u->ix1 : u->ix0) + (ok ? k : 0);
    int v = -1;
    asm volatile("{\n.reg .pred q;\nsetp.ne.s32 q, %1, 0;\n@q ld.global.nc.b32 %0, [%2];\n}\n" : "+r"(v) : "r"(ok), "l"(a));
    return v;
}
/* a raw index of tile t -> its position, -1 if invalid (as sp_pos) */
static __device__ __forceinline__ int sp_checked(const mla_sp_params *p, const sp_unit *u, int t, int v) {
    return (uint32_t)v < p->limit[t < u->T0 ? 0 : 1] ? v : -1;
}

/* the position of tile t's row `row`, -1 if invalid (loaded and checked at once) */
static __device__ __forceinline__ int sp_pos(const mla_sp_params *p, const sp_unit *u, int t, int row) {
    return sp_checked(p, u, t, sp_idx_raw(u, t, row, 1));
}

/* FP8 row of position pos (>= 0) of tile t: its page base, its token bytes and (MODEL1) its 8 scale bytes */
static __device__ __forceinline__ const char *sp_fp8_row(const mla_sp_params *p, int t, const sp_unit *u, int pos,
                                                        const char **scales, const int MODE) {
    const int src = t < u->T0 ? 0 : 1;
    const uint32_t ps = (uint32_t)p->page_size[src];
    const uint32_t page = (uint32_t)pos / ps, prow = (uint32_t)pos - page * ps;
    const char *pg = (const char *)p->kc[src] + (long long)page * p->k_stride[src];
    if (MODE == MLA_SP_V32) {
        *scales = pg + (long long)prow * 656 + 512;
        return pg + (long long)prow * 656;
    }
    *scales = pg + (long long)ps * 576 + (long long)prow * 8;
    return pg + (long long)prow * 576;
}
/* two 8-byte loads as one uint4 (MODEL1 rows are only 8-byte aligned) */
static __device__ __forceinline__ uint4 sp_ldg8x2(const char *a) {
    const uint2 lo = sp_ldg8(a), hi = sp_ldg8(a + 8);
    return make_uint4(lo.x, lo.y, hi.x, hi.y);
}
/* 16 bytes of an FP8 row: one 16-byte load (V32 rows are 16-byte aligned) or two 8-byte ones (MODEL1) */
static __device__ __forceinline__ uint4 sp_ld16(const char *a, const int MODE) {
    return MODE == MLA_SP_V32 ? f8_ldg16(a) : sp_ldg8x2(a);
}
/* the row's scales: V32 4 fp32 at byte 512 of the row, MODEL1 8 e8m0 bytes in the page's scale area */
static __device__ __forceinline__ uint4 sp_ld_scales(const char *scp, const int MODE) {
    if (MODE == MLA_SP_V32) return f8_ldg16(scp);
    const uint2 s8 = sp_ldg8(scp);
    return make_uint4(s8.x, s8.y, 0, 0);
}

/* FP8 gather of tile t's row `row` (position pos, -1 invalid): codes + scales into registers (zeros
 * when invalid), thread `sub` (0..3) of the row. V32 (pages 16-byte aligned): codes kr[0..7], RoPE
 * by cp.async into `tile` (zero-filled when invalid) or, RR = 1, into kr[8..9]. MODEL1 (pages only 8-byte aligned when page_size * 584 is not a
 * multiple of 16): 8-byte loads, codes kr[0..6], RoPE pieces in kr[7..8]. */
static __device__ __forceinline__ void sp_fp8_issue(const mla_sp_params *p, int t, const sp_unit *u, int pos,
                                                    uint32_t tile, uint4 *kr, uint4 *sc, int row, int sub,
                                                    const int RR, const int MODE) {
    const char *tok = (const char *)p->kc[0];
    *sc = make_uint4(0, 0, 0, 0);
    const int NK = (MODE == MLA_SP_V32 && RR) ? 10 : 9;
#pragma unroll
    for (int i = 0; i < NK; i++) kr[i] = make_uint4(0, 0, 0, 0);
    if (pos >= 0) {
        const char *scp;
        tok = sp_fp8_row(p, t, u, pos, &scp, MODE);
        const int NU = MODE == MLA_SP_V32 ? 8 : 7, ROPE = MODE == MLA_SP_V32 ? 528 : 448;
        *sc = sp_ld_scales(scp, MODE);
#pragma unroll
        for (int i = 0; i < NU; i++) kr[i] = sp_ld16(tok + 16 * sub + 64 * i, MODE);
        if (MODE == MLA_SP_MODEL1 || RR) /* RoPE bytes [ROPE + 32 sub, +32) */
#pragma unroll
            for (int k = 0; k < 2; k++) kr[NU + k] = sp_ld16(tok + ROPE + 32 * sub + 16 * k, MODE);
    }
    if (MODE == MLA_SP_V32 && !RR) { /* RoPE: chunk 8 of the tile */
        const int x = row & 7;
        const uint32_t rb = tile + 8 * 8192 + row * 128;
        const int nb = pos >= 0 ? 16 : 0;
        cp_async16(rb + (((2 * sub) ^ x) << 4), pos >= 0 ? tok + 528 + 32 * sub : tok, nb);
        cp_async16(rb + (((2 * sub + 1) ^ x) << 4), pos >= 0 ? tok + 528 + 32 * sub + 16 : tok, nb);
    }
}
/* the scale of each 64-column chunk: V32 4 fp32 scales (one per 128 columns) rounded to bf16,
 * MODEL1 e8m0 bytes (one per chunk) */
static __device__ __forceinline__ void sp_scales(uint4 sc, float *s, const int MODE) {
    if (MODE == MLA_SP_V32) {
        s[0] = s[1] = sp_bf16_round(__uint_as_float(sc.x));
        s[2] = s[3] = sp_bf16_round(__uint_as_float(sc.y));
        s[4] = s[5] = sp_bf16_round(__uint_as_float(sc.z));
        s[6] = s[7] = sp_bf16_round(__uint_as_float(sc.w));
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) s[i] = sp_e8m0((sc.x >> (8 * i)) & 0xffu);
#pragma unroll
        for (int i = 0; i < 4; i++) s[4 + i] = sp_e8m0((sc.y >> (8 * i)) & 0xffu);
    }
}
/* 16 e4m3 codes times scale s -> 16 bf16, stored as two 16-byte pieces at d0 and d1 */
static __device__ __forceinline__ void sp_dq16_put(uint4 k, float s, uint32_t d0, uint32_t d1) {
    uint4 a, b;
    sp_dq4(k.x, s, &a.x, &a.y);
    sp_dq4(k.y, s, &a.z, &a.w);
    sp_dq4(k.z, s, &b.x, &b.y);
    sp_dq4(k.w, s, &b.z, &b.w);
    sts128(d0, a);
    sts128(d1, b);
}

static __device__ __forceinline__ void sp_fp8_put(uint32_t tile, const uint4 *kr, uint4 sc, int row, int sub,
                                                  const int RR, const int MODE) {
    const int x = row & 7;
    const int NU = MODE == MLA_SP_V32 ? 8 : 7;
    const uint32_t base = tile + row * 128;
    const int c0 = ((2 * sub) ^ x) * 16, c1 = ((2 * sub + 1) ^ x) * 16;
    float s[8];
    sp_scales(sc, s, MODE);
#pragma unroll
    for (int i = 0; i < NU; i++) sp_dq16_put(kr[i], s[i], base + i * 8192 + c0, base + i * 8192 + c1);
    if (MODE == MLA_SP_MODEL1 || RR) { /* RoPE: chunk NU */
        sts128(base + NU * 8192 + c0, kr[NU]);
        sts128(base + NU * 8192 + c1, kr[NU + 1]);
    }
}

/* bf16 gather (prefill): the whole kv row by cp.async */
static __device__ __forceinline__ void sp_bf16_issue(const mla_sp_params *p, const sp_unit *u, int pos, uint32_t tile,
                                                     const int DQK) {
    const int row = threadIdx.x >> 2, sub = threadIdx.x & 3;
    const char *src = (const char *)p->kc[0];
    if (pos >= 0) src += ((long long)pos * p->k_stride[0] + (long long)u->g * p->kv_sg) * 2;
    sw128_copy_row(tile, row, sub, src, pos >= 0, DQK / 8);
}

/* bf16 gather (prefill), line-coalesced: NT threads (tid within them); eight consecutive threads
 * copy the eight 16-byte pieces of one 128-byte line, so a warp instruction covers four whole lines
 * (rows are 1152 / 1024 bytes, whole lines); thread (rg = tid / 8, j = tid % 8) copies the 64-column
 * chunks in CM (bit c = chunk c) of rows rg, rg + NT/8, ... whose raw indices (sp_idx_raw) are pos[]
 * (invalid: zero-filled; KV: their kvalid flags at kv, 0 for invalid). */
static __device__ __forceinline__ void sp_bf16_issue_lines(const mla_sp_params *p, const sp_unit *u, const int *pos,
                                                           uint32_t tile, unsigned char *kv, int tid, const int NT,
                                                           const unsigned CM, const int KV) {
    const int j = tid & 7, rg = tid >> 3;
#pragma unroll
    for (int i = 0; i < 64 / (NT / 8); i++) {
        const int row = rg + (NT / 8) * i;
        const int ok = (uint32_t)pos[i] < p->limit[0]; /* raw index (sp_idx_raw), checked here */
        if (KV && j == 0) kv[row] = ok;
        const char *src = (const char *)p->kc[0];
        if (ok) src += ((long long)pos[i] * p->k_stride[0] + (long long)u->g * p->kv_sg) * 2 + 16 * j;
        const int step = ok ? 128 : 0;
        const uint32_t d = tile + row * 128 + ((j ^ (row & 7)) << 4);
#pragma unroll
        for (int c = 0; c < 9; c++)
            if ((CM >> c) & 1) cp_async16(d + 8192 * c, src + c * step, ok ? 16 : 0);
    }
}
/* raw indices of the rows sp_bf16_issue_lines gives this thread for tile t (-1 past te) */
static __device__ __forceinline__ void sp_line_pos(const mla_sp_params *p, const sp_unit *u, int t, int te, int *pos,
                                                   int tid, const int NT) {
#pragma unroll
    for (int i = 0; i < 64 / (NT / 8); i++) pos[i] = sp_idx_raw(u, t, (tid >> 3) + (NT / 8) * i, t < te);
}

/* L2 prefetch of FP8 row `pos` of tile t: every 128-byte line it touches, points j = sub, sub + NS,
 * .. of the row's NS threads. V32 (656 bytes, 16-byte aligned): points 0, 128, .., 640. MODEL1 (576
 * bytes at 8-byte alignment): 0, 128, .., 512, 575 and the 8 scale bytes. */
static __device__ __forceinline__ void sp_fp8_prefetch(const mla_sp_params *p, int t, const sp_unit *u, int pos, int sub,
                                                       const int NS, const int MODE) {
    if (pos < 0) return;
    const char *scp;
    const char *tok = sp_fp8_row(p, t, u, pos, &scp, MODE);
    const int NP = MODE == MLA_SP_V32 ? 6 : 7;
#pragma unroll
    for (int j = sub; j < NP; j += NS) {
        const char *a = MODE == MLA_SP_V32 ? tok + 128 * j : (j < 5 ? tok + 128 * j : (j == 5 ? tok + 575 : scp));
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(a));
    }
}

/* Q rows of the unit's token (zero rows past the heads of this block) by cp.async from threads
 * 0..255 (row = tid / 4); not committed */
static __device__ __forceinline__ void sp_load_q(const mla_sp_params *p, const sp_unit *u, uint32_t uQ, int nvalid,
                                                 int head0, const int NCH) {
    const int row = threadIdx.x >> 2, sub = threadIdx.x & 3;
    const char *src = (const char *)p->q;
    if (row < nvalid) src += ((long long)u->i * p->q_si + (long long)u->j * p->q_sj + (long long)(head0 + row) * p->q_sh) * 2;
    sw128_copy_row(uQ, row, sub, src, row < nvalid, NCH);
}

/* barrier of the threads that compute (PW: the two consumer warpgroups; else the whole CTA) */
static __device__ __forceinline__ void sp_csync(const int PW) {
    if (PW) nbar_sync(SP_BAR_CONS, 256); /* WG0 and WG1 run different copies of the code */
    else __syncthreads();
}

/* lse (natural log; +inf for a row without a visible key) and max_logits of final row rw (head) */
static __device__ __forceinline__ void sp_put_row_stats(const mla_sp_params *p, const sp_unit *u, int head, int rw,
                                                        const float *sLse, const float *sMax) {
    const float l2 = sLse[rw];
    p->lse[(long long)u->i * p->l_si + (long long)u->j * p->l_sj + (long long)head * p->l_sh] =
        l2 == -INFINITY ? INFINITY : l2 * LN2_F;
    if (p->max_logits) p->max_logits[(long long)u->i * p->m_si + (long long)head * p->m_sh] = sMax[rw] * LN2_F;
}

/* End of a unit (256 computing threads, warpgroup wg of thread tid): WG0 owns the row statistics
 * (SPLIT: WG1's row sums are added first); out + lse (+ max_logits), the sink applied (slot < 0),
 * or the normalised fp32 partial and its log2 lse (slot >= 0). ust (slot < 0 only; 0: none): 64 KB
 * of free shared memory (SSF's Q, all its QK^T done) where the bf16 rows are staged ([64][512],
 * 16-byte pieces swizzled by row & 7) and then written as whole rows by 16-byte stores (a warp:
 * 512 contiguous bytes), instead of the fragments' 4-byte stores (8 rows x 16 B a warp). */
static __device__ __forceinline__ void sp_epilogue(const mla_sp_params *p, const sp_unit *u, int slot, int nvalid,
                                                   int head0, float *o, float m0, float m1, float l0, float l1,
                                                   float *sAl, float *sInv, float *sLse, float *sMax, const int SPLIT,
                                                   const int PW, const uint32_t ust, const int TM, float t0,
                                                   float t1) {
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    const int r0 = 16 * ((tid & 127) >> 5) + (lane >> 2), r1 = r0 + 8;
    l0 = quad_sum(l0);
    l1 = quad_sum(l1);
    if (SPLIT) {
        if (wg == 1 && (lane & 3) == 0) {
            sAl[r0] = l0;
            sAl[r1] = l1;
            if (TM) { /* WG1's true row maxima, for max_logits (WG0 writes sMax only after the sync) */
                sMax[r0] = t0;
                sMax[r1] = t1;
            }
        }
        sp_csync(PW);
        if (wg == 0) {
            l0 += sAl[r0];
            l1 += sAl[r1];
            if (TM) {
                t0 = fmaxf(t0, sMax[r0]);
                t1 = fmaxf(t1, sMax[r1]);
            }
        }
    }
    if (wg == 0) {
        if ((lane & 3) == 0) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int rw = h ? r1 : r0;
                const float l = h ? l1 : l0, m = h ? m1 : m0;
                float inv = row_inv(l, 1.f); /* 0: no visible key; NaN: a NaN / +inf score (F6-F8) */
                if (l > 0.f) {
                    float den = l;
                    if (slot < 0 && p->sink && rw < nvalid) /* out = acc / (l + exp(sink - m)) */
                        den += exp2f(__ldg(p->sink + head0 + rw) * LOG2E_F - m);
                    inv = 1.f / den;
                }
                sInv[rw] = inv;
                sLse[rw] = row_lse2(m, l);
                /* TM: the true maximum (m, lazy, may trail it); else m is the maximum */
                sMax[rw] = l > 0.f ? (TM ? (h ? t1 : t0) : m) : (l == l ? -INFINITY : l);
            }
        }
    }
    sp_csync(PW);
    if (slot < 0 && ust) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int rw = h ? r1 : r0;
            if (rw >= nvalid) continue;
            const float inv = sInv[rw];
#pragma unroll
            for (int q = 0; q < 32; q++) {
                const int i = 4 * q + 2 * h, c = 32 * wg + q;
                sts_b32(ust + rw * 1024 + ((c ^ (rw & 7)) << 4) + 4 * (lane & 3), pack2(o[i] * inv, o[i + 1] * inv, 0));
            }
            if (wg == 0 && (lane & 3) == 0) sp_put_row_stats(p, u, head0 + rw, rw, sLse, sMax);
        }
        sp_csync(PW);
#pragma unroll 4
        for (int k = 0; k < 16; k++) {
            const int x = 256 * k + tid, row = x >> 6, c = x & 63;
            if (row >= nvalid) break; /* a thread's rows ascend with k */
            const uint4 v = lds_v4(ust + row * 1024 + ((c ^ (row & 7)) << 4));
            char *orow = (char *)p->out +
                         ((long long)u->i * p->o_si + (long long)u->j * p->o_sj + (long long)(head0 + row) * p->o_sh) * 2;
            if (MLA_SP_DIAG != 8 || p->h_q < 0) *(uint4 *)(orow + 16 * c) = v;
        }
        sp_csync(PW); /* the staging area is free again */
        return;
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int rw = h ? r1 : r0;
        if (rw >= nvalid) continue;
        const float inv = sInv[rw];
        const int head = head0 + rw;
        if (slot < 0) {
            char *orow = (char *)p->out +
                         ((long long)u->i * p->o_si + (long long)u->j * p->o_sj + (long long)head * p->o_sh) * 2;
#pragma unroll
            for (int q = 0; q < 32; q++) {
                const int i = 4 * q + 2 * h;
                const int col = 256 * wg + 8 * q + 2 * (lane & 3);
                if (MLA_SP_DIAG != 8 || p->h_q < 0) /* (8: a condition never true, so o stays live) */
                    *(uint32_t *)(orow + col * 2) = pack2(o[i] * inv, o[i + 1] * inv, 0);
            }
            if (wg == 0 && (lane & 3) == 0) sp_put_row_stats(p, u, head, rw, sLse, sMax);
        } else {
            const long long prow = (long long)slot * p->rows_per_slot + head;
            float *orow = p->oacc + prow * MLA_DV;
#pragma unroll
            for (int q = 0; q < 32; q++) {
                const int i = 4 * q + 2 * h;
                const int col = 256 * wg + 8 * q + 2 * (lane & 3);
                *(float2 *)(orow + col) = make_float2(o[i] * inv, o[i + 1] * inv);
            }
            if (wg == 0 && (lane & 3) == 0) p->lacc[prow] = sLse[rw];
        }
    }
    sp_csync(PW); /* sQ, kvalid, sInv reused by the next unit */
}

/* One unit of work: tiles [tb, te) of token u for M block mblk; slot < 0 writes the final
 * result (sink applied), else the normalised partial and its log2 lse. */
/* SPLIT = 0: WG0 computes S = Q K^T for all 64 keys and the softmax, WG1 waits for P.
 * SPLIT = 1: each warpgroup computes S for 32 keys (m64n32k16) and its half of the softmax; row
 * maxima go through shared memory (both keep the same running max), P fragments are exchanged,
 * the row sums are added at the end. */
static __device__ __forceinline__ void sp_run_unit(const mla_sp_params *p, const sp_unit *u, int mblk, int tb, int te,
                                                   int slot, unsigned char *smem, const int MODE, const int SPLIT) {
    const int DQK = (MODE == MLA_SP_V32 || MODE == MLA_SP_BF16_576) ? 576 : 512;
    const int FP8 = MODE == MLA_SP_V32 || MODE == MLA_SP_MODEL1;
    const int LINES = !FP8 && !SPLIT; /* bf16 rows by WG1, line-coalesced, after the top barrier */
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    unsigned char *sQ = smem, *sK0 = smem + TILE, *sK1 = smem + 2 * TILE;
    uint32_t *sPf = (uint32_t *)(smem + 3 * TILE);   /* [16][128] */
    float *sAl = (float *)(sPf + 16 * 128);           /* [128][2] */
    float *sInv = sAl + 256, *sLse = sInv + 64, *sMax = sLse + 64;
    unsigned char *kvalid = (unsigned char *)(sMax + 64); /* [2][64] */

    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, lane = tid & 31;
    const int r0 = 16 * (t128 >> 5) + (lane >> 2), r1 = r0 + 8;
    const int row = tid >> 2, sub = tid & 3;
    const float scale = p->scale_log2;
    const uint32_t uQ = smem_u32(sQ), uK0 = smem_u32(sK0), uK1 = smem_u32(sK1);
    int nvalid = p->hpk - mblk * MLA_BM;
    if (nvalid > MLA_BM) nvalid = MLA_BM;
    const int head0 = u->g * p->hpk + mblk * MLA_BM;

    float o[128];
#pragma unroll
    for (int i = 0; i < 128; i++) o[i] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    uint4 kr[9], sc;

    if (tb < te) {
        sp_load_q(p, u, uQ, nvalid, head0, NCH);
        /* positions of tiles t and t + 1; FP8: tile t + 2's index (checked in the prologue, raw in the loop) */
        int pos = -1, pos_next = -1, pos_far = -1;
        int lp[4]; /* LINES: positions of WG1's rows in the next tile */
        if (LINES) {
            if (wg == 1) {
                sp_line_pos(p, u, tb, te, lp, t128, 128);
                sp_bf16_issue_lines(p, u, lp, uK0, kvalid, t128, 128, DQK == 576 ? 0x1ffu : 0xffu, 1);
            }
            cp_async_commit(); /* Q (and WG1: tile tb) */
            if (wg == 1) sp_line_pos(p, u, tb + 1, te, lp, t128, 128);
        } else {
            pos = sp_pos(p, u, tb, row);
            pos_next = tb + 1 < te ? sp_pos(p, u, tb + 1, row) : -1;
            if (FP8) pos_far = tb + 2 < te ? sp_pos(p, u, tb + 2, row) : -1;
            if (sub == 0) kvalid[row] = pos >= 0;
            if (FP8) {
                sp_fp8_issue(p, tb, u, pos, uK0, kr, &sc, row, sub, 0, MODE);
                cp_async_commit();
                sp_fp8_put(uK0, kr, sc, row, sub, 0, MODE);
            } else {
                sp_bf16_issue(p, u, pos, uK0, DQK);
                cp_async_commit();
            }
        }

        for (int t = tb; t < te; t++) {
            const int buf = (t - tb) & 1;
            const uint32_t uK = buf ? uK1 : uK0, uKn = buf ? uK0 : uK1;
            if (LINES) {
                cp_async_wait0(); /* WG1: tile t (issued during tile t - 1); everyone: Q */
            } else if (t + 1 < te) {
                /* tile t + 1 into the free stage (its last reader finished before the barrier that
                 * ended tile t - 1) / registers; then tile t + 2's position (bf16: its index) */
                if (sub == 0) kvalid[64 * (buf ^ 1) + row] = pos_next >= 0;
                if (FP8) {
                    if (MLA_SP_DIAG != 2 && MLA_SP_DIAG < 4) sp_fp8_issue(p, t + 1, u, pos_next, uKn, kr, &sc, row, sub, 0, MODE);
                } else {
                    sp_bf16_issue(p, u, pos_next, uKn, DQK);
                }
                cp_async_commit();
                if (FP8) {
                    /* tile t + 2's rows into L2 (their index was loaded during tile t - 1: no wait
                     * here), the raw index of tile t + 3 into a register (checked a tile later) */
                    pos_next = sp_checked(p, u, t + 2, pos_far);
                    if (p->l2_prefetch) sp_fp8_prefetch(p, t + 2, u, pos_next, sub, 4, MODE);
                    pos_far = sp_idx_raw(u, t + 3, row, t + 3 < te);
                } else {
                    pos_next = t + 2 < te ? sp_pos(p, u, t + 2, row) : -1;
                }
                cp_async_wait1();
            } else {
                cp_async_wait0();
            }
            fence_proxy_async(); /* cp.async / st.shared of this thread -> visible to wgmma */
            __syncthreads();
            if (LINES && wg == 1 && t + 1 < te) {
                /* WG1 (idle until P is ready) gathers tile t + 1 into the free stage (its last
                 * readers, tile t - 1's PV wgmmas, finished before the barrier that ended tile t - 1) */
                sp_bf16_issue_lines(p, u, lp, uKn, kvalid + 64 * (buf ^ 1), t128, 128,
                                    DQK == 576 ? 0x1ffu : 0xffu, 1);
                cp_async_commit();
                sp_line_pos(p, u, t + 2, te, lp, t128, 128);
            }

            uint32_t a[4][4];
            if (SPLIT) {
                float s[16];
#pragma unroll
                for (int i = 0; i < 16; i++) s[i] = 0.f;
                sp_pin16(s);
                wg_fence();
#pragma unroll
                for (int c = 0; c < NC64; c++)
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) {
                        /* (AT 0 in either build: with the per-base form this opt-in kernel spills
                         * 4 bytes) */
                        const uint64_t da = SM90_DESC_(0, uQ, c * 8192 + kk * 32, 16, 1024);
                        const uint64_t db = SM90_DESC_(0, uK, c * 8192 + wg * 4096 + kk * 32, 16, 1024);
                        sp_wgmma_ss_m64n32(s, da, db);
                    }
                wg_commit();
                wg_wait0();
                sp_pin16(s);
                const unsigned char *kv = kvalid + 64 * buf + 32 * wg;
                float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
                for (int i = 0; i < 16; i++) {
                    const int key = 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
                    const float v = kv[key] ? s[i] * scale : -INFINITY;
                    s[i] = v;
                    if (i & 2) mx1 = fmaxf(mx1, v);
                    else mx0 = fmaxf(mx0, v);
                }
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                if ((lane & 3) == 0) {
                    sAl[64 * wg + r0] = mx0;
                    sAl[64 * wg + r1] = mx1;
                }
                bar_sync(SP_BAR_P, 256);
                mx0 = fmaxf(sAl[r0], sAl[64 + r0]); /* the same order in both warpgroups */
                mx1 = fmaxf(sAl[r1], sAl[64 + r1]);
                const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
                const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
                const float al0 = fast_exp2(m0 - mu0), al1 = fast_exp2(m1 - mu1);
                m0 = mn0;
                m1 = mn1;
                float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
                for (int i = 0; i < 16; i++) {
                    const float e = fast_exp2(s[i] - ((i & 2) ? mu1 : mu0));
                    s[i] = e;
                    if (i & 2) sum1 += e;
                    else sum0 += e;
                }
                l0 = l0 * al0 + sum0; /* this warpgroup's keys; added at the end */
                l1 = l1 * al1 + sum1;
                uint32_t mine[2][4];
#pragma unroll
                for (int kk = 0; kk < 2; kk++)
#pragma unroll
                    for (int jj = 0; jj < 4; jj++) {
                        mine[kk][jj] = pack2(s[8 * kk + 2 * jj], s[8 * kk + 2 * jj + 1], 0);
                        sPf[((2 * wg + kk) * 4 + jj) * 128 + t128] = mine[kk][jj];
                    }
#pragma unroll
                for (int i = 0; i < 128; i++) o[i] *= (i & 2) ? al1 : al0;
                bar_sync(SP_BAR_P2, 256);
#pragma unroll
                for (int kk = 0; kk < 2; kk++)
#pragma unroll
                    for (int jj = 0; jj < 4; jj++) {
                        const uint32_t th = sPf[((2 * (wg ^ 1) + kk) * 4 + jj) * 128 + t128];
                        a[kk][jj] = wg ? th : mine[kk][jj];
                        a[2 + kk][jj] = wg ? mine[kk][jj] : th;
                    }
            } else if (wg == 0) {
                float s[32], al0, al1;
                sm90_scores(s, uQ, uK, NC64, 0, MLA_SP_DIAG != 3 && MLA_SP_DIAG != 5, MLA_DESC_AT);
                sm90_softmax(s, kvalid + 64 * buf, 0, MLA_BN, MLA_BN, scale, &m0, &m1, &l0, &l1, a, &al0, &al1, 0);
                sm90_put_p(sPf, sAl, a, al0, al1);
                bar_arrive(SP_BAR_P, 256);
                sm90_rescale(o, al0, al1);
            } else {
                float al0, al1;
                bar_sync(SP_BAR_P, 256);
                sm90_get_p(sPf, sAl, a, &al0, &al1);
                sm90_rescale(o, al0, al1);
            }
            pin128(o);
            wg_fence();
            if (MLA_SP_DIAG != 3 && MLA_SP_DIAG != 5) sm90_pv(o, a, uK, wg, 0, MLA_DESC_AT);
            wg_commit();
            if (FP8 && t + 1 < te && MLA_SP_DIAG != 1 && MLA_SP_DIAG < 4)
                sp_fp8_put(uKn, kr, sc, row, sub, 0, MODE); /* dequantise during the PV wgmma */
            wg_wait0();
            pin128(o);
            __syncthreads(); /* K stage, P fragments and alpha free */
        }
    }

    sp_epilogue(p, u, slot, nvalid, head0, o, m0, m1, l0, l1, sAl, sInv, sLse, sMax, SPLIT, 0, 0, 0, m0, m1);
}

static __device__ __forceinline__ void sp_unit_init(const mla_sp_params *p, int r, int g, sp_unit *u) {
    u->r = r;
    u->i = r / p->s_q;
    u->j = r - u->i * p->s_q;
    u->g = g;
    u->n0 = sp_clamp_len(p->len[0], u->i, p->topk[0]);
    u->T0 = sp_ntiles(u->n0);
    u->ix0 = p->idx[0] + (long long)u->i * p->idx_si[0] + (long long)u->j * p->idx_sj[0] + (long long)g * p->idx_sg;
    if (p->nsrc > 1) {
        u->n1 = sp_clamp_len(p->len[1], u->i, p->topk[1]);
        u->ix1 = p->idx[1] + (long long)u->i * p->idx_si[1] + (long long)u->j * p->idx_sj[1];
    } else {
        u->n1 = 0;
        u->ix1 = u->ix0;
    }
}

/* The decode part of this CTA (blockIdx.z): its begin pb and the next part's begin pe; returns
 * the last token it touches (its units are tokens pb.req .. the return value) */
#if MLA_SP_CLOSED_PARTS
/* part z's begin as mla_sp_sched_kernel writes it for tokens of cost c0 each (payload pay): the token r its
 * cost offset z * pay falls in, at tile max(0, o - F) (o: the offset inside r); a part that begins past
 * r's tile 0 is piece z - i_f + 1 of r, i_f = floor((r c0 + F) / pay) + 1 its first such part (the closed
 * forms of sched_put_parts, kernels/common.cuh); parts at or past the total (and part P) end the list */
static __device__ __forceinline__ mla_part_begin sp_cf_begin(const mla_sp_params *p, int z) {
    const long long pay = p->cf_payload, c0 = p->cf_c0, F = MLA_SCHED_FIXED_COST;
    const long long x = (long long)z * pay;
    mla_part_begin b;
    b.pad = 0;
    b.piece = 0;
    if (z >= p->num_sm_parts || x >= (long long)p->n_tok * c0) {
        b.req = p->n_tok;
        b.tile = 0;
        return b;
    }
    const long long r = x / c0, o = x - r * c0;
    b.req = (int)r;
    b.tile = o <= F ? 0 : (int)(o - F);
    if (b.tile > 0) b.piece = (int)(z - ((r * c0 + F) / pay + 1) + 1);
    return b;
}
#endif

/* CF: the producer-warpgroup kernels may take the closed form (MLA_SP_CLOSED_PARTS; the 256-thread decode
 * spilled 4 bytes with it) */
static __device__ __forceinline__ int sp_part(const mla_sp_params *p, mla_part_begin *pb, mla_part_begin *pe,
                                              const int CF) {
#if MLA_SP_CLOSED_PARTS
    if (CF && p->cf_payload > 0) { /* no read of the schedule on the way to the first tile */
        *pb = sp_cf_begin(p, blockIdx.z);
        *pe = sp_cf_begin(p, blockIdx.z + 1);
        return pe->tile > 0 ? pe->req : pe->req - 1;
    }
#endif
    *pb = p->part_begin[blockIdx.z];
    *pe = p->part_begin[blockIdx.z + 1];
    return pe->tile > 0 ? pe->req : pe->req - 1;
}

/* Token r of a decode part that begins at pb (pe: the next part's begin): tiles [tb, te), slot < 0
 * for the final result, else the slot of its partial */
static __device__ __forceinline__ void sp_unit_bounds(const mla_sp_params *p, int r, mla_part_begin pb,
                                                      mla_part_begin pe, sp_unit *u, int *tb, int *te, int *slot) {
    sp_unit_init(p, r, 0, u);
    const int nt = u->T0 + (p->nsrc > 1 ? sp_ntiles(u->n1) : 0);
    int e = (r == pe.req) ? pe.tile : nt, b = (r == pb.req) ? pb.tile : 0;
    const int piece = (r == pb.req) ? pb.piece : 0;
    if (e > nt) e = nt;
    if (b > e) b = e;
    int sl = p->req_slot[r];
    if (sl >= 0) sl += piece;
    *tb = b;
    *te = e;
    *slot = sl;
}

/* decode: grid (num_m_blocks, 1, num_sm_parts), persistent over the part's tokens */
static __device__ __forceinline__ void sp_decode_body(const mla_sp_params *p, const int MODE, const int SPLIT) {
    extern __shared__ __align__(1024) unsigned char sp_smem_raw[];
    unsigned char *smem = (unsigned char *)(((uintptr_t)sp_smem_raw + 1023) & ~(uintptr_t)1023);
    const int mblk = blockIdx.x;
    pdl_wait(); /* p->pdl: launched behind the scheduler; its schedule is complete and visible after this */
    mla_part_begin pb, pe;
    const int r_last = sp_part(p, &pb, &pe, 0);
    for (int r = pb.req; r <= r_last; r++) {
        sp_unit u;
        int tb, te, slot;
        sp_unit_bounds(p, r, pb, pe, &u, &tb, &te, &slot);
        sp_run_unit(p, &u, mblk, tb, te, slot, smem, MODE, SPLIT);
    }
    pdl_trigger();
}

/* prefill grid: (s_q * num_m_blocks, 1, h_kv) with a token's M blocks adjacent (p->mb_fast: they
 * read the same K rows, so the second finds them in L2), else
 * (s_q, num_m_blocks, h_kv); one CTA per (token, 64-head block, kv head) */
static __device__ __forceinline__ void sp_pf_coords(const mla_sp_params *p, int *tok, int *mblk) {
    if (p->mb_fast) {
        *tok = blockIdx.x / p->num_m_blocks;
        *mblk = blockIdx.x - *tok * p->num_m_blocks;
    } else {
        *tok = blockIdx.x;
        *mblk = blockIdx.y;
    }
}

static __device__ __forceinline__ void sp_prefill_body(const mla_sp_params *p, const int MODE, const int SPLIT) {
    extern __shared__ __align__(1024) unsigned char sp_smem_raw[];
    unsigned char *smem = smem_align1024(sp_smem_raw);
    sp_unit u;
    int tok, mblk;
    sp_pf_coords(p, &tok, &mblk);
    sp_unit_init(p, tok, blockIdx.z, &u);
    sp_run_unit(p, &u, mblk, 0, u.T0, -1, smem, MODE, SPLIT);
}

/* ------------------------------------------------------------------------------------------ */
/* FP8 decode with a producer warpgroup ("PW", 384 threads). WG2 gathers each tile's rows into   */
/* registers and dequantises them into a free K stage; WG0 (S = Q K^T, softmax, O[:, 0:256]) and */
/* WG1 (O[:, 256:512]) only compute. Stage k is handed over by two mbarriers: full[k] (128        */
/* producer arrivals, each after its stores and a proxy fence) and empty[k] (256 consumer         */
/* arrivals after the tile's PV wgmma). P goes WG0 -> WG1 through smem as in the kernel above      */
/* (named barriers SP_BAR_P / SP_BAR_PFREE); there is no CTA-wide barrier per tile.               */
/* Producer thread pt = tid - 256 owns half h = pt & 1 of row pt / 2: the code bytes              */
/* [64 i + 32 h, +32) of every 64-column chunk i, its RoPE bytes [64 h, +64), the row's scales.   */
/* ------------------------------------------------------------------------------------------ */
/* setmaxnreg budgets: the kernel starts at 168 registers per thread (384 threads); the three      */
/* warpgroups' budgets sum to 3 * 168 so the increases are served by the producer's decrease.    */
/* 200 / 176 / 128: no spills, no serialised wgmma (of the splits compiled: 216 / 168 / 120       */
/* serialised the wgmma, 208 / 176 / 120 and 200 / 184 / 120 spilled, 208 / 184 / 112 was also     */
/* clean; the larger producer budget was kept for its loads in flight).                           */
#ifndef SP_PW_REG_WG0
#define SP_PW_REG_WG0 200
#define SP_PW_REG_WG1 176
#define SP_PW_REG_PROD 128
#endif
static_assert(SP_PW_REG_WG0 + SP_PW_REG_WG1 + SP_PW_REG_PROD <= 3 * 168, "PW setmaxnreg budgets exceed the CTA's register pool");
/* build option MLA_SP_NO_SETMAXNREG=1: no register reallocation (every warpgroup keeps the kernel's 168) */
#ifndef MLA_SP_NO_SETMAXNREG
#define MLA_SP_NO_SETMAXNREG 0
#endif
#if MLA_SP_NO_SETMAXNREG
#define SP_SETMAXNREG_INC_(n)
#define SP_SETMAXNREG_DEC_(n)
#else
#define SP_SETMAXNREG_INC_(n) SETMAXNREG_INC(n)
#define SP_SETMAXNREG_DEC_(n) SETMAXNREG_DEC(n)
#endif

/* Chunks [C0, C1) of half h of FP8 row `pos` of tile t into registers ka/kb[i - C0] (zeros when
 * pos < 0); with C0 == 0 also the row's scales (sc), with C1 == NU (8 V32, 7 MODEL1) its RoPE (ke). */
static __device__ __forceinline__ void sp_pw_load(const mla_sp_params *p, int t, const sp_unit *u, int pos, int h,
                                                  uint4 *ka, uint4 *kb, uint4 *ke, uint4 *sc, const int C0,
                                                  const int C1, const int MODE) {
    const int NU = MODE == MLA_SP_V32 ? 8 : 7;
    if (C0 == 0) *sc = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int i = C0; i < C1; i++) ka[i - C0] = kb[i - C0] = make_uint4(0, 0, 0, 0);
    if (C1 == NU)
#pragma unroll
        for (int k = 0; k < 4; k++) ke[k] = make_uint4(0, 0, 0, 0);
    if (pos < 0) return;
    const char *scp;
    const char *tok = sp_fp8_row(p, t, u, pos, &scp, MODE);
    /* V32: codes [0, 512), scales [512, 528), RoPE [528, 656); MODEL1: codes [0, 448), RoPE [448, 576) */
    const int ROPE = MODE == MLA_SP_V32 ? 528 : 448;
    if (C0 == 0) *sc = sp_ld_scales(scp, MODE);
#pragma unroll
    for (int i = C0; i < C1; i++) {
        ka[i - C0] = sp_ld16(tok + 64 * i + 32 * h, MODE);
        kb[i - C0] = sp_ld16(tok + 64 * i + 32 * h + 16, MODE);
    }
    if (C1 == NU)
#pragma unroll
        for (int k = 0; k < 4; k++) ke[k] = sp_ld16(tok + ROPE + 64 * h + 16 * k, MODE);
}
/* registers -> chunks [C0, C1) of half h of the dequantised bf16 row `row` of the SW128 tile (pieces
 * 4h .. 4h + 3 of each chunk), and with C1 == NU the RoPE pieces of chunk NU */
static __device__ __forceinline__ void sp_pw_put(uint32_t tile, int row, int h, const uint4 *ka, const uint4 *kb,
                                                 const uint4 *ke, uint4 sc, const int C0, const int C1,
                                                 const int MODE) {
    const int NU = MODE == MLA_SP_V32 ? 8 : 7, x = row & 7;
    const uint32_t base = tile + row * 128;
    float s[8];
    sp_scales(sc, s, MODE);
#pragma unroll
    for (int i = C0; i < C1; i++) {
        const uint32_t c = base + i * 8192;
        sp_dq16_put(ka[i - C0], s[i], c + (((4 * h) ^ x) << 4), c + (((4 * h + 1) ^ x) << 4));
        sp_dq16_put(kb[i - C0], s[i], c + (((4 * h + 2) ^ x) << 4), c + (((4 * h + 3) ^ x) << 4));
    }
    if (C1 == NU)
#pragma unroll
        for (int k = 0; k < 4; k++) sts128(base + NU * 8192 + (((4 * h + k) ^ x) << 4), ke[k]);
}


/* The K stages, mbarriers and kvalid flags of the PW kernels (tile = one K stage's bytes): stage k
 * at uK[k], full[k] = full + 8 k, empty[k] = empty + 8 k, kvalid [2][64] right before the barriers */
typedef struct sp_pw_stages {
    uint32_t uK0, uK1, full, empty;
    unsigned char *kvalid;
} sp_pw_stages;
static __device__ __forceinline__ sp_pw_stages sp_pw_layout(unsigned char *smem, int tile) {
    sp_pw_stages s;
    s.uK0 = smem_u32(smem + tile);
    s.uK1 = smem_u32(smem + 2 * tile);
    s.full = smem_u32(smem + SP_PW_BAR_OFF(tile));
    s.empty = s.full + 16;
    s.kvalid = smem + SP_PW_BAR_OFF(tile) - 2 * 64;
    return s;
}

/* WG2: every tile of the part's tokens, in the consumers' order (tile counter n: stage n & 1). Each
 * tile is gathered in two register sets, A = chunks [0, 4) + scales and B = chunks [4, NU) + RoPE,
 * software-pipelined: A of tile t + 1 is loaded while B of tile t is dequantised, B of tile t + 1
 * while A of tile t + 1 is (only a unit's first tile waits for its loads). */
static __device__ __forceinline__ void sp_pw_producer(const mla_sp_params *p, unsigned char *smem, const int MODE) {
    const int NU = MODE == MLA_SP_V32 ? 8 : 7, TILE = MLA_BM * (MODE == MLA_SP_V32 ? 576 : 512) * 2;
    const sp_pw_stages L = sp_pw_layout(smem, TILE);
    const uint32_t uK0 = L.uK0, uK1 = L.uK1, full = L.full, empty = L.empty;
    unsigned char *kvalid = L.kvalid;
    const int pt = threadIdx.x - 256, row = pt >> 1, h = pt & 1;
    mla_part_begin pb, pe;
    const int r_last = sp_part(p, &pb, &pe, 1);
    uint32_t n = 0;
    for (int r = pb.req; r <= r_last; r++) {
        sp_unit u;
        int tb, te, slot;
        sp_unit_bounds(p, r, pb, pe, &u, &tb, &te, &slot);
        if (tb >= te) continue;
        /* raw indices of tiles t + 1, t + 2 (loaded a tile or more before they are checked) */
        int pos = sp_pos(p, &u, tb, row);
        int raw1 = sp_idx_raw(&u, tb + 1, row, tb + 1 < te), raw2 = sp_idx_raw(&u, tb + 2, row, tb + 2 < te);
        if (p->l2_prefetch) sp_fp8_prefetch(p, tb + 1, &u, sp_checked(p, &u, tb + 1, raw1), h, 2, MODE);
        uint4 ka[4], kb[4], sc, qa[4], qb[4], ke[4];
        sp_pw_load(p, tb, &u, pos, h, ka, kb, ke, &sc, 0, 4, MODE);
        sp_pw_load(p, tb, &u, pos, h, qa, qb, ke, &sc, 4, NU, MODE);
        for (int t = tb; t < te; t++, n++) {
            const int st = n & 1;
            const uint32_t tile = st ? uK1 : uK0;
            if (p->l2_prefetch) sp_fp8_prefetch(p, t + 2, &u, sp_checked(p, &u, t + 2, raw2), h, 2, MODE);
            const int pos_next = sp_checked(p, &u, t + 1, raw1);
            raw1 = raw2;
            raw2 = sp_idx_raw(&u, t + 3, row, t + 3 < te);
            mbar_wait(empty + 8 * st, ((n >> 1) & 1) ^ 1); /* the stage's previous tile is done (n >= 2) */
            if (h == 0) kvalid[64 * st + row] = pos >= 0;
            if (MLA_SP_DIAG != 1) sp_pw_put(tile, row, h, ka, kb, ke, sc, 0, 4, MODE);
            const uint4 sct = sc; /* tile t's scales for its B half */
            if (t + 1 < te) sp_pw_load(p, t + 1, &u, pos_next, h, ka, kb, ke, &sc, 0, 4, MODE);
            if (MLA_SP_DIAG != 1) sp_pw_put(tile, row, h, qa, qb, ke, sct, 4, NU, MODE);
            fence_proxy_async(); /* st.shared -> visible to the consumers' wgmma */
            mbar_arrive(full + 8 * st);
            if (t + 1 < te) sp_pw_load(p, t + 1, &u, pos_next, h, qa, qb, ke, &sc, 4, NU, MODE);
            pos = pos_next;
        }
    }
}

/* WG2 of the crossover variant (X: V32 / MODEL1 with two M blocks, launched as 2-CTA clusters of
 * the M blocks of one part, which walk the same tiles): this CTA (cluster rank R) gathers and
 * dequantises rows [32 R, +32) of every tile (four threads per row, tile t + 1's registers loaded
 * while tile t is dequantised), then one thread copies those rows' 4 KB block of each chunk into the
 * peer's stage (cp.async.bulk, completing on the peer's full barrier, which expects the bytes). The
 * empty barriers count both CTAs' consumer warps, so a stage is refilled only when both are done. */
static __device__ __forceinline__ void sp_pwx_producer(const mla_sp_params *p, unsigned char *smem, const int MODE) {
    const int NU = MODE == MLA_SP_V32 ? 8 : 7, DQK = MODE == MLA_SP_V32 ? 576 : 512, TILE = MLA_BM * DQK * 2;
    const sp_pw_stages L = sp_pw_layout(smem, TILE);
    const uint32_t uK0 = L.uK0, uK1 = L.uK1, full = L.full, empty = L.empty;
    unsigned char *kvalid = L.kvalid;
    const uint32_t rank = cl_rank(), peer = rank ^ 1;
    const uint32_t full_peer = cl_mapa(full, peer), uK0_peer = cl_mapa(uK0, peer), uK1_peer = cl_mapa(uK1, peer);
    const int pt = threadIdx.x - 256, sub = pt & 3, rd = 32 * (int)rank + (pt >> 2), rk = pt >> 1;
    mla_part_begin pb, pe;
    const int r_last = sp_part(p, &pb, &pe, 1);
    uint32_t n = 0;
    for (int r = pb.req; r <= r_last; r++) {
        sp_unit u;
        int tb, te, slot;
        sp_unit_bounds(p, r, pb, pe, &u, &tb, &te, &slot);
        if (tb >= te) continue;
        /* rd: the row this thread dequantises; rk: the row whose kvalid flag it writes (with pt ^ 1) */
        int pd = sp_pos(p, &u, tb, rd), pk = sp_pos(p, &u, tb, rk);
        int rd1 = sp_idx_raw(&u, tb + 1, rd, tb + 1 < te), rd2 = sp_idx_raw(&u, tb + 2, rd, tb + 2 < te);
        int rk1 = sp_idx_raw(&u, tb + 1, rk, tb + 1 < te);
        uint4 kr[10], sc;
        sp_fp8_issue(p, tb, &u, pd, 0, kr, &sc, rd, sub, 1, MODE);
        for (int t = tb; t < te; t++, n++) {
            const int st = n & 1;
            const uint32_t tile = st ? uK1 : uK0, tile_peer = st ? uK1_peer : uK0_peer;
            const int pd_next = sp_checked(p, &u, t + 1, rd1), pk_next = sp_checked(p, &u, t + 1, rk1);
            uint4 kn[10], scn;
            if (t + 1 < te) sp_fp8_issue(p, t + 1, &u, pd_next, 0, kn, &scn, rd, sub, 1, MODE);
            if (p->l2_prefetch) sp_fp8_prefetch(p, t + 2, &u, sp_checked(p, &u, t + 2, rd2), sub, 4, MODE);
            rd1 = rd2;
            rd2 = sp_idx_raw(&u, t + 3, rd, t + 3 < te);
            rk1 = sp_idx_raw(&u, t + 2, rk, t + 2 < te);
            mbar_wait(empty + 8 * st, ((n >> 1) & 1) ^ 1); /* both CTAs' consumers are done with the stage */
            if ((pt & 1) == 0) kvalid[64 * st + rk] = pk >= 0;
            if (MLA_SP_DIAG != 1) sp_fp8_put(tile, kr, sc, rd, sub, 1, MODE);
            fence_proxy_async();         /* st.shared -> visible to the bulk copy and the wgmma */
            nbar_sync(SP_BAR_PROD, 128); /* every row of this CTA's half is in the stage */
            if (pt == 0) {
                mbar_expect_tx(full + 8 * st, 32 * DQK * 2); /* this thread's arrival + the peer's half */
#pragma unroll
                for (int c = 0; c <= NU; c++) {
                    const uint32_t o = c * 8192 + rank * 4096;
                    cl_bulk_copy(tile_peer + o, tile + o, 4096, full_peer + 8 * st);
                }
            } else {
                mbar_arrive(full + 8 * st);
            }
#pragma unroll
            for (int i = 0; i < 10; i++) kr[i] = kn[i];
            sc = scn;
            pk = pk_next;
        }
    }
}

/* WG0 (W = 0) / WG1 (W = 1): one token's tiles [tb, te) from the stages the producer fills */
/* the wgmma descriptor form (sm90_tile.cuh) of the producer-warpgroup decode: the crossover (X) keeps
 * desc_sw128 of each address, with which it measured 1.3-2.3% faster on the H100's h_q = 128 rows than
 * with the per-base form (results/gpu/2026-12-06-9461d11-H100-desc-at2) */
#define SP_PW_AT(X) ((X) ? 0 : MLA_DESC_AT)
static __device__ __forceinline__ void sp_pw_unit(const mla_sp_params *p, const sp_unit *u, int mblk, int tb, int te,
                                                  int slot, unsigned char *smem, uint32_t *n, const int W, const int X,
                                                  const int MODE) {
    const int DQK = MODE == MLA_SP_V32 ? 576 : 512;
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    uint32_t *sPf = (uint32_t *)(smem + 3 * TILE);
    float *sAl = (float *)(sPf + 16 * 128);
    float *sInv = sAl + 256, *sLse = sInv + 64, *sMax = sLse + 64;
    const unsigned char *kvalid = (const unsigned char *)(sMax + 64);
    const sp_pw_stages L = sp_pw_layout(smem, TILE);
    const uint32_t uQ = smem_u32(smem), uK0 = L.uK0, uK1 = L.uK1, full = L.full, empty = L.empty;
    const uint32_t empty_peer = X ? cl_mapa(empty, cl_rank() ^ 1) : 0; /* the peer CTA's empty barriers */
    int nvalid = p->hpk - mblk * MLA_BM;
    if (nvalid > MLA_BM) nvalid = MLA_BM;
    const int head0 = u->g * p->hpk + mblk * MLA_BM;

    float o[128];
#pragma unroll
    for (int i = 0; i < 128; i++) o[i] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
#if MLA_SP_DIAG == 10
    const int spt_first = *n == 0; /* this CTA's first unit */
#endif
    if (tb < te) {
        sp_load_q(p, u, uQ, nvalid, head0, NCH);
        cp_async_commit();
        cp_async_wait0();
        fence_proxy_async();
        nbar_sync(SP_BAR_CONS, 256);
#if MLA_SP_DIAG == 10
        if (spt_first) SPT(0, 2);
#endif
        for (int t = tb; t < te; t++, (*n)++) {
            const int st = *n & 1;
            const uint32_t uK = st ? uK1 : uK0;
            mbar_wait(full + 8 * st, (*n >> 1) & 1);
#if MLA_SP_DIAG == 10
            if (spt_first && t == tb) SPT(0, 3);
#endif
            uint32_t a[4][4];
            float al0, al1;
            if (W == 0) {
                float s[32];
                sm90_scores(s, uQ, uK, NC64, 0, MLA_SP_DIAG != 3, SP_PW_AT(X));
                sm90_softmax(s, kvalid + 64 * st, 0, MLA_BN, MLA_BN, p->scale_log2, &m0, &m1, &l0, &l1, a, &al0, &al1,
                             0);
                if (t > tb) nbar_sync(SP_BAR_PFREE, 256); /* WG1 has read the previous tile's P */
                sm90_put_p(sPf, sAl, a, al0, al1);
                nbar_arrive(SP_BAR_P, 256);
            } else {
                nbar_sync(SP_BAR_P, 256);
                sm90_get_p(sPf, sAl, a, &al0, &al1);
                if (t + 1 < te) {
                    if (MLA_SP_STRICT_SYNC) nbar_sync(SP_BAR_PFREE, 256);
                    else nbar_arrive(SP_BAR_PFREE, 256);
                }
            }
            sm90_rescale(o, al0, al1);
            pin128(o);
            wg_fence();
            if (MLA_SP_DIAG != 3) sm90_pv(o, a, uK, W, 0, SP_PW_AT(X));
            wg_commit();
            wg_wait0();
            pin128(o);
            if (!X) {
                mbar_arrive(empty + 8 * st); /* this thread's reads of the stage are done */
            } else { /* one arrival per warp on this CTA's and the peer's empty barrier */
                __syncwarp();
                if ((threadIdx.x & 31) == 0 || MLA_SP_STRICT_SYNC) {
                    mbar_arrive(empty + 8 * st);
                    cl_mbar_arrive(empty_peer + 8 * st);
                }
            }
        }
    }
#if MLA_SP_DIAG == 10
    if (spt_first) SPT(0, 4);
#endif
    sp_epilogue(p, u, slot, nvalid, head0, o, m0, m1, l0, l1, sAl, sInv, sLse, sMax, 0, 1, 0, 0, m0, m1);
#if MLA_SP_DIAG == 10
    if (spt_first) SPT(0, 5);
#endif
}

static __device__ __forceinline__ void sp_pw_consumer(const mla_sp_params *p, unsigned char *smem, const int W,
                                                      const int X, const int MODE) {
    mla_part_begin pb, pe;
    const int r_last = sp_part(p, &pb, &pe, 1);
    uint32_t n = 0;
    for (int r = pb.req; r <= r_last; r++) {
        sp_unit u;
        int tb, te, slot;
        sp_unit_bounds(p, r, pb, pe, &u, &tb, &te, &slot);
        sp_pw_unit(p, &u, blockIdx.x, tb, te, slot, smem, &n, W, X, MODE);
    }
    SPT_VAL(0, 6, n);
    SPT_VAL(0, 7, r_last - pb.req + 1);
}

/* decode with a producer warpgroup: grid (num_m_blocks, 1, num_sm_parts), 384 threads; X: the
 * crossover variant (num_m_blocks = 2, clusters of the two CTAs of a part) */
static __device__ __forceinline__ void sp_decode_pw_body(const mla_sp_params *p, const int MODE, const int X) {
    extern __shared__ __align__(1024) unsigned char sp_smem_raw[];
    unsigned char *smem = (unsigned char *)(((uintptr_t)sp_smem_raw + 1023) & ~(uintptr_t)1023);
    const int TILE = MLA_BM * (MODE == MLA_SP_V32 ? 576 : 512) * 2;
    SPT_GT(0, 16);
    SPT(0, 0);
    SPT_SM(0, 18);
    if (threadIdx.x == 0) {
        const uint32_t full = sp_pw_layout(smem, TILE).full;
        mbar_init(full, 128);
        mbar_init(full + 8, 128);
        const int ne = !X ? 256 : MLA_SP_STRICT_SYNC ? 512 : 16; /* X: 8 consumer warps of each CTA */
        mbar_init(full + 16, ne);
        mbar_init(full + 24, ne);
        mbar_fence_init();
    }
    pdl_wait(); /* p->pdl: launched behind the scheduler; its schedule is complete and visible after this */
    if (X) cl_sync(); /* the peer's barriers are initialised before anyone signals them */
    else __syncthreads();
    SPT(0, 1);
    const int wg = threadIdx.x >> 7;
    if (wg == 2) {
        SP_SETMAXNREG_DEC_(SP_PW_REG_PROD);
        if (X) sp_pwx_producer(p, smem, MODE);
        else sp_pw_producer(p, smem, MODE);
    } else if (wg == 0) {
        SP_SETMAXNREG_INC_(SP_PW_REG_WG0);
        sp_pw_consumer(p, smem, 0, X, MODE);
    } else {
        if (SP_PW_REG_WG1 > 168) SP_SETMAXNREG_INC_(SP_PW_REG_WG1);
        sp_pw_consumer(p, smem, 1, X, MODE);
    }
    pdl_trigger();
    if (X) cl_sync(); /* no CTA leaves while its peer may still copy into it or signal it */
    SPT(0, 10);
    SPT_GT(0, 17);
}

/* ------------------------------------------------------------------------------------------ */
/* Sparse prefill, seesaw schedule (hopper-c.md §3.3; the pair loop of kernels/decode_seesaw.cu). */
/* 256 threads, one CTA per (token, 64-head block, kv head) as the kernel above. Tiles alternate   */
/* between the warpgroups (tile j in stage j & 1, S = Q K^T of it by WG j & 1) and the two share   */
/* one running row max, so one warpgroup's softmax runs while the other's wgmmas keep the tensor   */
/* cores busy. Each stage is refilled in two chunk groups by the warpgroup that reads the group   */
/* last: A = chunks 0-3 (V_L) by WG0 after its PV_L, with the tile's kvalid flags; B = chunks 4-7 */
/* (V_R) by WG1 after its PV_R; the RoPE chunk 8 (d_qk 576) goes with A in stage 0 and with B in   */
/* stage 1 (the group the stage's QK^T warpgroup waits for first). A refill is a line-coalesced    */
/* cp.async gather whose completion is counted on the group's mbarrier                              */
/* (cp.async.mbarrier.arrive.noinc: the issuing threads never wait for their own copies); A's      */
/* barrier also takes one ordinary arrival per thread after the kvalid stores (release), so it     */
/* expects 256, B 128. The waiting warpgroup fences generic -> async proxy before its wgmma.       */
/* ------------------------------------------------------------------------------------------ */
#define SP_SS_S0 1  /* WG0 -> WG1: row max after tile j0, P(j0) in sP (256) */
#define SP_SS_S1 2  /* WG1 -> WG0: row max after tile j1, P(j1) in sP (256) */
#define SP_SS_WG0 4 /* warpgroup 0 only (128) */
#define SP_SS_WG1 5 /* warpgroup 1 only (128) */

/* This warpgroup's share (thread t128) of chunk group A (GA = 1: chunks 0-3 and the rows' kvalid
 * flags at kv) or B (GA = 0: chunks 4-7) of the tile whose rows t128 / 8 + 16 i have the raw
 * indices pos[i], plus the RoPE chunk 8 when R8 (DQK = 576; stage 0 carries it in A, stage 1 in B:
 * the group its QK^T warpgroup reads first), by sp_bf16_issue_lines; arrives on `bar` as described
 * above. */
static __device__ __forceinline__ void sp_ss_issue(const mla_sp_params *p, const sp_unit *u, const int *pos,
                                                   uint32_t tile, unsigned char *kv, uint32_t bar, int t128,
                                                   const int GA, const int R8, const int DQK) {
    const unsigned cm = MLA_SP_DIAG == 6 ? 0u : (GA ? 0x0fu : 0xf0u) | (R8 && DQK == 576 ? 0x100u : 0u);
    sp_bf16_issue_lines(p, u, pos, tile, kv, t128, 128, cm, GA);
    cp_async_mbar_arrive_noinc(bar);
    if (GA) mbar_arrive(bar); /* after this thread's kvalid stores (release) */
}

/* SP_SSF_PREADDR (build option, default 0; prepared in the thirty-ninth session, not yet run): SSF's producer
 * turns the next pair's raw indices into row pointers at the end of each pair, so each group's issue after
 * an empty-barrier wait is only its cp.async (immediate offsets from the row pointers) and kvalid stores;
 * the default computes each row's 64-bit address and chunk step after the wait (31-41 instructions before
 * a group's first copy, on the way to the exposed B0 refill: docs/performance.md §47) */
#ifndef SP_SSF_PREADDR
#define SP_SSF_PREADDR 0
#endif
/* this thread's four rows (t128 / 8 + 16 i, raw indices pos[i]) of a tile as SSF's producer copies them:
 * src[i] = the row's 16 t128 % 8 byte, bit i of *okm set when the row is valid; an invalid row points
 * into the cache's row 0 (s_kv >= 1; its copies read nothing: src-size 0, zero-filled) */
static __device__ __forceinline__ void sp_line_src(const mla_sp_params *p, const sp_unit *u, const int *pos, int t128,
                                                   const char **src, unsigned *okm) {
    const long long gofs = (long long)u->g * p->kv_sg;
    unsigned m = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int ok = (uint32_t)pos[i] < p->limit[0];
        const char *a = (const char *)p->kc[0] + 16 * (t128 & 7);
        if (ok) a += ((long long)pos[i] * p->k_stride[0] + gofs) * 2;
        src[i] = a;
        m |= (unsigned)ok << i;
    }
    *okm = m;
}
/* sp_ss_issue from sp_line_src's row pointers: chunk c of row i from src[i] + 128 c (d_qk 576: the RoPE
 * chunk's last byte 1151 of a 1152-byte row; 512: chunk 7's 1023 of 1024) */
static_assert(16 * 7 + 128 * 8 + 16 <= 576 * 2 && 16 * 7 + 128 * 7 + 16 <= 512 * 2,
              "sp_ssf_issue: an invalid row's copies must stay inside the cache's row 0");
static __device__ __forceinline__ void sp_ssf_issue(const char *const *src, unsigned okm, uint32_t tile,
                                                    unsigned char *kv, uint32_t bar, int t128, const int GA,
                                                    const int R8, const int DQK) {
    const unsigned cm = MLA_SP_DIAG == 6 ? 0u : (GA ? 0x0fu : 0xf0u) | (R8 && DQK == 576 ? 0x100u : 0u);
    const int j = t128 & 7, rg = t128 >> 3;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = rg + 16 * i, ok = (okm >> i) & 1;
        if (GA && j == 0) kv[row] = ok;
        const uint32_t d = tile + row * 128 + ((j ^ (row & 7)) << 4);
#pragma unroll
        for (int c = 0; c < 9; c++)
            if ((cm >> c) & 1) cp_async16(d + 8192 * c, src[i] + 128 * c, ok ? 16 : 0);
    }
    cp_async_mbar_arrive_noinc(bar);
    if (GA) mbar_arrive(bar); /* after this thread's kvalid stores (release) */
}

/* one chunk group of SSF's producer: from the row pointers (SP_SSF_PREADDR) or the raw indices */
static __device__ __forceinline__ void sp_ssf_group(const mla_sp_params *p, const sp_unit *u, const int *pos,
                                                    const char *const *src, unsigned okm, uint32_t tile,
                                                    unsigned char *kv, uint32_t bar, int t128, const int GA,
                                                    const int R8, const int DQK) {
    if (SP_SSF_PREADDR) sp_ssf_issue(src, okm, tile, kv, bar, t128, GA, R8, DQK);
    else sp_ss_issue(p, u, pos, tile, kv, bar, t128, GA, R8, DQK);
}

/* S = 0 (the accumulator of a fresh S = Q K^T) */
static __device__ __forceinline__ void sp_ss_zero(float *s) {
#pragma unroll
    for (int i = 0; i < 32; i++) s[i] = 0.f;
    pin32(s);
}
/* S += Q K^T over one chunk group of the tile at uK, once it has landed (bar, phase ph): chunks [c0,
 * c0 + 4), with the RoPE chunk 8 (d_qk 576) before them (R8 = 1) or after them (R8 = 2); issued, not
 * committed */
static __device__ __forceinline__ void sp_ss_qk_part(float *s, uint32_t uQ, uint32_t uK, uint32_t bar, int ph, int c0,
                                                     const int R8, const int NC64) {
    mbar_wait(bar, ph);
    fence_proxy_async(); /* the cp.async (generic proxy) writes -> this warpgroup's wgmma */
    wg_fence();
    if (MLA_SP_DIAG == 7) return;
    if (R8 == 1 && NC64 == 9) sm90_qk(s, uQ, uK, 8, 9, 0, MLA_DESC_AT);
    sm90_qk(s, uQ, uK, c0, c0 + 4, 0, MLA_DESC_AT);
    if (R8 == 2 && NC64 == 9) sm90_qk(s, uQ, uK, 8, 9, 0, MLA_DESC_AT);
}
/* S = Q K^T of the tile in stage uK for the owning warpgroup of the 256-thread seesaw, issued, not
 * committed: WG0 (B1 = 0, stage 0) takes group A's chunks (RoPE first) as soon as A has landed, then
 * B's; WG1 (B1 = 1, stage 1) B's with the RoPE first, then A's (A is refilled last, by WG0 after its
 * PV_L). */
static __device__ __forceinline__ void sp_ss_qk_issue(float *s, uint32_t uQ, uint32_t uK, uint32_t barA,
                                                      uint32_t barB, int ph, const int NC64, const int B1) {
    sp_ss_zero(s);
    sp_ss_qk_part(s, uQ, uK, B1 ? barB : barA, ph, B1 ? 4 : 0, 1, NC64);
    sp_ss_qk_part(s, uQ, uK, B1 ? barA : barB, ph, B1 ? 0 : 4, 0, NC64);
}
/* the same, committed and waited */
static __device__ __forceinline__ void sp_ss_qk(float *s, uint32_t uQ, uint32_t uK, uint32_t barA, uint32_t barB,
                                                int ph, const int NC64, const int B1) {
    sp_ss_qk_issue(s, uQ, uK, barA, barB, ph, NC64, B1);
    wg_commit();
    wg_wait0();
    pin32(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Sparse prefill, seesaw with a producer warpgroup ("SSF", 384 threads; FlashMLA's sm90 sparse */
/* prefill shape and order, dossier §4.4). WG0 / WG1 run the pair schedule of sp_ssf_compute and */
/* only compute; WG2 gathers every K tile (line-coalesced cp.async, zero-fill for invalid rows)  */
/* as two chunk groups per stage, A = chunks 0-3 (V_L) with the kvalid flags, B = chunks 4-7     */
/* (V_R) and the RoPE chunk. Group completion: full A[s] (128 cp.async noinc + 128 ordinary      */
/* arrivals after the kvalid stores), full B[s] (128 noinc). Release: empty L[s] by WG0's four   */
/* warps, empty R[s] by WG1's, once their last reader of the group is done.                      */
/* ------------------------------------------------------------------------------------------ */
#define SP_SSF_CONS 4 /* named barrier: the two consumer warpgroups (256; = SP_BAR_CONS for sp_epilogue) */
/* setmaxnreg budgets: consumers (both) / producer. 384 threads start at 168 registers each, and the
 * CTA's pool holds only those (3 * 168 per warp slot): a budget sum above 504 makes the consumers'
 * setmaxnreg.inc wait forever (3c0f4dd had 208 / 96 and hung on the device). 208 / 88: no spills;
 * in SSP, the kernel SSF replaced, 216 / 72 spilled (d_qk 576) and 200 / 104 serialised the wgmma. */
#ifndef SP_SSF_REG_WG
#define SP_SSF_REG_WG 208
#define SP_SSF_REG_PROD 88
#endif
static_assert(2 * SP_SSF_REG_WG + SP_SSF_REG_PROD <= 3 * 168, "SSF setmaxnreg budgets exceed the CTA's register pool");
/* build option SP_SSF_EARLY_B1=0: WG1 in FlashMLA's order (see sp_ssf_compute) */
#ifndef SP_SSF_EARLY_B1
#define SP_SSF_EARLY_B1 1
#endif
/* SP_SSF_SMX (1, the default since the thirty-sixth session; 0 is a timing switch): the consumers'
 * softmax on raw-score row maxima with the scale folded into the exponent's FFMA (sm90_softmax_pos_core,
 * as dense v3's MLA_V3_SMX=1; exact because the scale is > 0: sparse_api.c requires it). H100, four
 * alternating rounds: -1.1..-1.2% on the d_qk 512 h_q 128 rows, the V3.2 rows inside their spread; whole
 * sparse suite 2283/0 (docs/performance.md §40). */
#ifndef SP_SSF_SMX
#define SP_SSF_SMX 1
#endif
/* SP_SSF_LAZY=1 (default since the thirty-seventh session; with SP_SSF_SMX): the running max of both warpgroups
 * moves only on jumps of more than MLA_LAZY_TH (as dense v3's MLA_V3_LAZY), so the O rescales and P0's pair
 * factor are 1 on most tiles; max_logits comes from each warpgroup's true row maxima (t0 / t1), merged in the
 * epilogue (the lazy m trails them: the first build reported m and failed 190 max_logits cases). With
 * SP_SSF_STSM, four alternating rounds: d_qk 512 h_q 128 rows -1.8..-3.5%, geomean of the 13 prefill rows
 * -3.0% (H200) / -3.2% (H100, before the max_logits fix); whole sparse suite 2283/0 (docs/performance.md §43) */
#ifndef SP_SSF_LAZY
#define SP_SSF_LAZY 1
#endif
/* SP_SSF_STSM=1 (default since the thirty-seventh session): the consumers' P tiles (P0 at the pair's max, P1)
 * stored by stmatrix (ss_store_pf_sm: four instructions a thread instead of sixteen 32-bit stores, as
 * FlashMLA's kernel); alone -1.1..-1.2% geomean (H100, H200), with LAZY the better pair on the steady rows */
#ifndef SP_SSF_STSM
#define SP_SSF_STSM 1
#endif

/* the seesaw prefill kernels' mbarriers, after the PW layout's slot: full A[s] = fa + 8 s, full B =
 * fa + 16 + 8 s, empty L = fa + 32 + 8 s, empty R = fa + 48 + 8 s (the last two: SSF only) */
typedef struct sp_ss_bars {
    uint32_t fa, fb, el, er;
} sp_ss_bars;
static __device__ __forceinline__ sp_ss_bars sp_ss_layout(unsigned char *smem, int tile) {
    sp_ss_bars b;
    b.fa = sp_pw_layout(smem, tile).full;
    b.fb = b.fa + 16;
    b.el = b.fa + 32;
    b.er = b.fa + 48;
    return b;
}

/* WG2 of SSF: the tiles in pairs (t0 in stage 0, t1 in stage 1), the groups in the order SSF's
 * consumers release them: A(t0), B(t1), B(t0), A(t1); the RoPE chunk always with B (stage 0's RoPE
 * chunk holds P0 until WG1's PV_R(t0 - 2), which releases B) */
static __device__ __forceinline__ void sp_ssf_producer(const mla_sp_params *p, const sp_unit *u, int N, uint32_t uK0,
                                                       uint32_t uK1, unsigned char *kvalid, sp_ss_bars B,
                                                       const int DQK) {
    const int pt = threadIdx.x - 256;
    int l0[4], l1[4];
    sp_line_pos(p, u, 0, N, l0, pt, 128);
    sp_line_pos(p, u, 1, N, l1, pt, 128);
    const char *a0[4], *a1[4]; /* SP_SSF_PREADDR: the pair's row pointers */
    unsigned k0 = 0, k1 = 0;
    if (SP_SSF_PREADDR) {
        sp_line_src(p, u, l0, pt, a0, &k0);
        sp_line_src(p, u, l1, pt, a1, &k1);
    }
    for (int t0 = 0; t0 < N; t0 += 2) {
        SPD_START;
        const int t1 = t0 + 1;
        const uint32_t ph = ((t0 >> 1) & 1) ^ 1;
        int n0[4], n1[4]; /* the next pair's indices: loads in flight while this pair is issued */
        SPD(6, sp_line_pos(p, u, t0 + 2, N, n0, pt, 128); sp_line_pos(p, u, t1 + 2, N, n1, pt, 128));
        SPD(0, mbar_wait(B.el, ph));
        SPD(5, sp_ssf_group(p, u, l0, a0, k0, uK0, kvalid, B.fa, pt, 1, 0, DQK));
        if (t1 < N) {
            SPD(1, mbar_wait(B.er + 8, ph));
            SPD(5, sp_ssf_group(p, u, l1, a1, k1, uK1, kvalid + 64, B.fb + 8, pt, 0, 1, DQK));
        }
        SPD(2, mbar_wait(B.er, ph));
        SPD(5, sp_ssf_group(p, u, l0, a0, k0, uK0, kvalid, B.fb, pt, 0, 1, DQK));
        if (t1 < N) {
            SPD(3, mbar_wait(B.el + 8, ph));
            SPD(5, sp_ssf_group(p, u, l1, a1, k1, uK1, kvalid + 64, B.fa + 8, pt, 1, 0, DQK));
        }
        if (SP_SSF_PREADDR) {
            /* the next pair's pointers (its indices have landed), loop-carried: made at the pair's top, ptxas
             * sank this math past the pair's first wait */
            sp_line_src(p, u, n0, pt, a0, &k0);
            sp_line_src(p, u, n1, pt, a1, &k1);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            l0[i] = n0[i];
            l1[i] = n1[i];
        }
        SPD_END;
    }
    cp_async_wait0(); /* no thread leaves with copies in flight */
}

/* one arrival per warp of this warpgroup on `bar` (count 4), after the warp's wgmma waits */
static __device__ __forceinline__ void sp_ssf_release(uint32_t bar) {
    __syncwarp();
    if ((threadIdx.x & 31) == 0) mbar_arrive(bar);
}

/* The consumers' view of sp_smem_bytes' layout and their per-thread state, shared by the seesaw
 * prefill kernels: Q, 2 K stages, 8 KB (the 64 x 64 P tile sP1, SW128), 1 KB (WG1's row sums for the
 * epilogue, then the row maxima sM0 / sM1 of WG0 / WG1), 1/l, lse, max, kvalid [2][64], mbarriers;
 * O (this warpgroup's half), the running max (log2 domain; equal in both warpgroups after each
 * pair) and this warpgroup's row sums. A macro: the locals are the kernels' registers. */
#define SP_SS_SETUP(smem, TILE)                                                                       \
    unsigned char *sP1 = (smem) + 3 * (TILE);                                                         \
    float *sAl = (float *)(sP1 + 16 * 128 * 4);                                                       \
    float *sM0 = sAl + 128, *sM1 = sAl + 192;                                                         \
    float *sInv = sAl + 256, *sLse = sInv + 64, *sMax = sLse + 64;                                    \
    unsigned char *kv = (unsigned char *)(sMax + 64);                                                 \
    const uint32_t uQ = smem_u32(smem), uK0 = uQ + (TILE), uK1 = uQ + 2 * (TILE), uP1 = uQ + 3 * (TILE); \
    const int tid = threadIdx.x, wg = tid >> 7, t128 = tid & 127, lane = tid & 31;                   \
    const int r0 = 16 * (t128 >> 5) + (lane >> 2), r1 = r0 + 8;                                       \
    const float scale = p->scale_log2;                                                                \
    float o[128];                                                                                     \
    _Pragma("unroll") for (int i = 0; i < 128; i++) o[i] = 0.f;                                      \
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f

/* A chunk group (GA = 1: A, 0: B) of the stage at `tile` is free again: this warpgroup refills it
 * with tile jn's rows, whose raw indices are lp, then lp = those of tile jn + 1 (the next tile this
 * warpgroup gathers) */
static __device__ __forceinline__ void sp_ss_refill(const mla_sp_params *p, const sp_unit *u, int *lp, int jn, int N,
                                                    uint32_t tile, unsigned char *kv, uint32_t full, int t128,
                                                    const int GA, const int R8, const int DQK) {
    bar_sync(GA ? SP_SS_WG0 : SP_SS_WG1, 128); /* every warp of this warpgroup is done with the group */
    sp_ss_issue(p, u, lp, tile, kv, full, t128, GA, R8, DQK);
    sp_line_pos(p, u, jn + 1, N, lp, t128, 128);
}

/* WG0 / WG1 of the 256-thread seesaw prefill kernel: one unit of N tiles (the warpgroups gather
 * them themselves), then the epilogue */
static __device__ __forceinline__ void sp_ss_compute(const mla_sp_params *p, const sp_unit *u, int N, int nvalid,
                                                     int head0, unsigned char *smem, sp_ss_bars B, const int DQK) {
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    SP_SS_SETUP(smem, TILE);
    unsigned char *sP = sP1, *kvalid = kv;
    const uint32_t uP = uP1;
    const uint32_t barA = B.fa, barB = B.fb;
    if (N > 0) {
        int lp[4]; /* raw indices of this thread's rows of the next tile this warpgroup gathers */
        sp_load_q(p, u, uQ, nvalid, head0, NCH);
        cp_async_commit(); /* Q alone: the K gathers complete on the mbarriers */
        const uint32_t bar = wg == 0 ? barA : barB; /* WG0 gathers group A, WG1 group B */
        sp_line_pos(p, u, 0, N, lp, t128, 128);
        if (wg == 0) sp_ss_issue(p, u, lp, uK0, kvalid, bar, t128, 1, 1, DQK);
        else sp_ss_issue(p, u, lp, uK0, kvalid, bar, t128, 0, 0, DQK);
        if (N > 1) {
            sp_line_pos(p, u, 1, N, lp, t128, 128);
            if (wg == 0) sp_ss_issue(p, u, lp, uK1, kvalid + 64, bar + 8, t128, 1, 0, DQK);
            else sp_ss_issue(p, u, lp, uK1, kvalid + 64, bar + 8, t128, 0, 1, DQK);
        }
        sp_line_pos(p, u, 2, N, lp, t128, 128);
        cp_async_wait0();
        fence_proxy_async();
        __syncthreads();
        float s[32];
        uint32_t a[4][4];
        if (wg == 0) sp_ss_qk(s, uQ, uK0, barA, barB, 0, NC64, 0); /* WG1's S(j1): in the pair loop */

        for (int j0 = 0; j0 < N; j0 += 2) {
            const int j1 = j0 + 1, has1 = j1 < N;
            const int ph2 = ((j0 + 2) >> 1) & 1; /* phase of tiles j0 + 2 / j1 + 2 in their stages */
            if (wg == 0) {
                /* softmax of tile j0 against the running max; its max and P0 (at that max) to WG1 */
                float f0, f1;
                ss_softmax(s, kvalid, 0, 0, MLA_BN, MLA_BN, scale, &m0, &m1, &l0, &l1, &f0, &f1);
                if ((lane & 3) == 0) {
                    sM0[r0] = m0;
                    sM0[r1] = m1;
                }
                ss_store_p(sP, s, 0); /* sP's last reader, PV_L(j1 - 2), was waited for */
                nbar_arrive(SP_SS_S0, 256);
                /* O_L = O_L a(m, m0) + P0 V_L(j0) */
                ss_pack(s, a, 1.f, 1.f, 0);
                ss_rescale_pv(o, f0, f1, a, uP, uK0, 0, 0, 0);
                wg_wait0(); /* PV_L(j0) (WG1 is in its softmax meanwhile) */
                pin128(o);
                if (j0 + 2 < N) /* group A of stage 0 is free (its readers: QK(j0), PV_L(j0)) */
                    sp_ss_refill(p, u, lp, j0 + 2, N, uK0, kvalid, barA, t128, 1, 1, DQK);
                /* WG1's max after tile j1, and P1 in sP */
                nbar_sync(SP_SS_S1, 256);
                if (has1) { /* O_L = O_L a(m0, m1) + P1 V_L(j1) */
                    float g0, g1;
                    ss_take_max(sM1, r0, r1, &m0, &m1, &l0, &l1, &g0, &g1);
                    ss_rescale_pv(o, g0, g1, a, uP, uK1, 0, 1, 0);
                    wg_wait0();
                    pin128(o);
                    if (j1 + 2 < N) /* group A of stage 1 is free (QK(j1) by WG1, PV_L(j1)) */
                        sp_ss_refill(p, u, lp, j1 + 2, N, uK1, kvalid + 64, barA + 8, t128, 1, 0, DQK);
                }
                if (j0 + 2 < N) sp_ss_qk(s, uQ, uK0, barA, barB, ph2, NC64, 0);
            } else {
                /* WG0's max after tile j0 and P0: O_R = O_R a(m, m0) + P0 V_R(j0) */
                nbar_sync(SP_SS_S0, 256);
                float f0, f1;
                ss_take_max(sM0, r0, r1, &m0, &m1, &l0, &l1, &f0, &f1);
                if (__any_sync(0xffffffffu, f0 != 1.f || f1 != 1.f)) sm90_rescale(o, f0, f1);
                pin128(o);
                if (!has1) { /* the unit's last tile was j0: PV_R(j0) only */
                    ss_rescale_pv(o, 1.f, 1.f, a, uP, uK0, 1, 1, 0);
                    wg_wait0();
                    pin128(o);
                    nbar_arrive(SP_SS_S1, 256);
                    continue;
                }
                /* S(j1) = Q K(j1)^T only now: stage 1 was refilled at the end of the last pair, so
                 * WG0's S(j0) and softmax were its time to land (issued right after that refill, it
                 * would wait for it); then PV_R(j0), and the softmax of j1 while PV_R(j0) runs (one
                 * straight path from the first wgmma to the waits: no accumulator moves between) */
                sp_ss_qk_issue(s, uQ, uK1, barA + 8, barB + 8, (j1 >> 1) & 1, NC64, 1);
                wg_commit();
                ss_rescale_pv(o, 1.f, 1.f, a, uP, uK0, 1, 1, 0);
                wg_wait1(); /* S(j1) */
                pin32(s);
                float g0, g1;
                ss_softmax(s, kvalid + 64, 0, 0, MLA_BN, MLA_BN, scale, &m0, &m1, &l0, &l1, &g0, &g1);
                wg_wait0(); /* PV_R(j0): sP (P0) and stage 0's group B are free */
                pin128(o);
                if ((lane & 3) == 0) { /* max and P1 to WG0 */
                    sM1[r0] = m0;
                    sM1[r1] = m1;
                }
                ss_store_p(sP, s, 0);
                nbar_arrive(SP_SS_S1, 256);
                if (j0 + 2 < N) /* group B of stage 0 is free (QK(j0) by WG0, PV_R(j0)) */
                    sp_ss_refill(p, u, lp, j0 + 2, N, uK0, kvalid, barB, t128, 0, 0, DQK);
                /* O_R = O_R a(m0, m1) + P1 V_R(j1) */
                ss_pack(s, a, 1.f, 1.f, 0);
                ss_rescale_pv(o, g0, g1, a, uP, uK1, 1, 0, 0);
                wg_wait0();
                pin128(o);
                if (j1 + 2 < N) /* group B of stage 1 is free (QK(j1), PV_R(j1)) */
                    sp_ss_refill(p, u, lp, j1 + 2, N, uK1, kvalid + 64, barB + 8, t128, 0, 1, DQK);
            }
        }
    }
    /* both warpgroups end at the same max; WG1's row sums are added in the epilogue */
    sp_epilogue(p, u, -1, nvalid, head0, o, m0, m1, l0, l1, sAl, sInv, sLse, sMax, 1, 0, 0, 0, m0, m1);
}

/* WG0 / WG1 of SSF (seesaw in FlashMLA's order, dossier §4.4; 384 threads with sp_ssf_producer).
 * Per pair (j0 in stage 0, j1 in stage 1), with a shared running max:
 *   WG0: softmax(S0) -> max m0 to WG1 (B0); O_L = O_L f + P0 V0L (P0 from registers); release A0;
 *        [B1] m1 from WG1, g = a(m0, m1); P0 g -> sP0 (S0R); [S1R] O_L = O_L g + sP1 V1L; S(j0 + 2)
 *        on A0 (release A1 once PV_L(j1) is done), then on B0.
 *   WG1: S(j1) on B1 (RoPE first) then A1; [B0] m0, softmax(S1) against it -> m1 (B1);
 *        O_R = O_R a(m, m1) + P1 V1R (registers); P1 -> sP1 (S1R); release B1 after PV_R(j1);
 *        [S0R] O_R += sP0 V0R; release B0 after it (SP_SSF_EARLY_B1 = 0: FlashMLA's order, S1R
 *        after PV_R(j0) is issued and B1 released after that).
 * Each warpgroup runs its own P's PV from registers first, so V1R is free early for the next j1's
 * refill (which WG1's S reads first), and two P tiles (sP0: stage 0's RoPE chunk at d_qk 576, after
 * the barriers at 512; sP1: the P tile) remove the wait for PV_R(j0) before P1 is stored. */
/* one online-softmax step of SSF (ss_softmax's contract; SP_SSF_SMX: on raw-score maxima) */
static __device__ __forceinline__ void sp_ssf_softmax(float *s, const unsigned char *kv, float scale, float *m0,
                                                      float *m1, float *l0, float *l1, float *f0, float *f1, float *t0,
                                                      float *t1) {
    if (SP_SSF_SMX)
        sm90_softmax_pos_core(s, kv, 0, 0, MLA_BN, MLA_BN, scale, m0, m1, l0, l1, f0, f1, SP_SSF_LAZY,
                              SP_SSF_LAZY ? t0 : (float *)0, SP_SSF_LAZY ? t1 : (float *)0);
    else ss_softmax(s, kv, 0, 0, MLA_BN, MLA_BN, scale, m0, m1, l0, l1, f0, f1);
}
#define SP_SSF_B0 1  /* WG0 -> WG1: max after tile j0 in sM0 (256) */
#define SP_SSF_B1 2  /* WG1 -> WG0: max after tile j1 in sM1 (256) */
#define SP_SSF_S0R 3 /* WG0 -> WG1: P0 (at the pair's max) in sP0 (256) */
#define SP_SSF_S1R 5 /* WG1 -> WG0: P1 in sP1 (256) */
static __device__ __forceinline__ void sp_ssf_compute(const mla_sp_params *p, const sp_unit *u, int N, int nvalid,
                                                      int head0, unsigned char *smem, sp_ss_bars B, const int DQK) {
    const int NCH = DQK / 8, NC64 = DQK / 64, TILE = MLA_BM * DQK * 2;
    SP_SS_SETUP(smem, TILE);
    float t0 = -INFINITY, t1 = -INFINITY; /* SP_SSF_LAZY: this warpgroup's true row maxima (max_logits) */
    unsigned char *sP0 = DQK == 576 ? smem + TILE + 8 * 8192 : smem + SP_SSF_P0_OFF(TILE);
    const uint32_t uP0 = smem_u32(sP0);
    const unsigned char *kvalid = kv;
    if (N > 0) {
        sp_load_q(p, u, uQ, nvalid, head0, NCH);
        cp_async_commit();
        cp_async_wait0();
        fence_proxy_async();
        nbar_sync(SP_SSF_CONS, 256);
        float s[32];
        uint32_t a[4][4];
        if (wg == 0) {
            sp_ss_zero(s);
            sp_ss_qk_part(s, uQ, uK0, B.fa, 0, 0, 0, NC64);
            sp_ss_qk_part(s, uQ, uK0, B.fb, 0, 4, 2, NC64);
            wg_commit();
            wg_wait0();
            pin32(s);
        }
        for (int j0 = 0; j0 < N; j0 += 2) {
            const int j1 = j0 + 1, has1 = j1 < N, more = j0 + 2 < N;
            SPD_START;
            if (wg == 0) {
                float f0, f1;
                SPD(3, sp_ssf_softmax(s, kvalid, scale, &m0, &m1, &l0, &l1, &f0, &f1, &t0, &t1));
                if ((lane & 3) == 0) {
                    sM0[r0] = m0;
                    sM0[r1] = m1;
                }
                nbar_arrive(SP_SSF_B0, 256);
                ss_pack(s, a, 1.f, 1.f, 0);
                SPD(6, ss_rescale_pv(o, f0, f1, a, 0, uK0, 0, 0, 0)); /* O_L = O_L f + P0 V0L */
                SPD(2, wg_wait0(); pin128(o));
                if (more) sp_ssf_release(B.el); /* A0: QK(j0), PV_L(j0) done */
                float g0 = 1.f, g1 = 1.f;
                if (has1) {
                    SPD(1, nbar_sync(SP_SSF_B1, 256));
                    ss_take_max(sM1, r0, r1, &m0, &m1, &l0, &l1, &g0, &g1);
                }
                /* P0 at the pair's max (stage 0's RoPE chunk: QK(j0) is done) */
                SPD(5, if (SP_SSF_STSM) ss_store_pf_sm(uP0, s, g0, g1, 0); else ss_store_pf(sP0, s, g0, g1, 0));
                nbar_arrive(SP_SSF_S0R, 256);
                if (!has1) {
                    SPD_END;
                    continue;
                }
                SPD(1, nbar_sync(SP_SSF_S1R, 256));
                SPD(6, ss_rescale_pv(o, g0, g1, a, uP1, uK1, 0, 1, 0)); /* O_L = O_L g + P1 V1L */
                if (more) {
                    const int ph2 = ((j0 + 2) >> 1) & 1;
                    sp_ss_zero(s);
                    SPD_KWAIT(B.fa, ph2);
                    sp_ss_qk_part(s, uQ, uK0, B.fa, ph2, 0, 0, NC64);
                    wg_commit();
                    SPD(2, wg_wait1(); pin128(o)); /* PV_L(j1) */
                    if (j1 + 2 < N) sp_ssf_release(B.el + 8); /* A1: QK(j1) by WG1, PV_L(j1) done */
                    SPD_KWAIT(B.fb, ph2);
                    sp_ss_qk_part(s, uQ, uK0, B.fb, ph2, 4, 2, NC64);
                    wg_commit();
                    SPD(2, wg_wait0(); pin32(s));
                } else {
                    SPD(2, wg_wait0(); pin128(o));
                }
            } else {
                if (!has1) { /* the unit's last tile was j0: O_R = O_R a(m, m0) + P0 V0R */
                    float f0, f1;
                    nbar_sync(SP_SSF_B0, 256);
                    ss_take_max(sM0, r0, r1, &m0, &m1, &l0, &l1, &f0, &f1);
                    nbar_sync(SP_SSF_S0R, 256);
                    ss_rescale_pv(o, f0, f1, a, uP0, uK0, 1, 1, 0);
                    wg_wait0();
                    pin128(o);
                    SPD_END;
                    continue;
                }
                const int ph1 = (j1 >> 1) & 1;
                sp_ss_zero(s);
                SPD_KWAIT(B.fb + 8, ph1);
                sp_ss_qk_part(s, uQ, uK1, B.fb + 8, ph1, 4, 2, NC64);
                SPD_KWAIT(B.fa + 8, ph1);
                sp_ss_qk_part(s, uQ, uK1, B.fa + 8, ph1, 0, 0, NC64);
                wg_commit();
                SPD(2, wg_wait0(); pin32(s));
                SPD(1, nbar_sync(SP_SSF_B0, 256));
                float f0, f1, g0, g1;
                SPD(3, ss_take_max(sM0, r0, r1, &m0, &m1, &l0, &l1, &f0, &f1); /* m0 */
                    sp_ssf_softmax(s, kvalid + 64, scale, &m0, &m1, &l0, &l1, &g0, &g1, &t0, &t1)); /* m1 */
                if ((lane & 3) == 0) {
                    sM1[r0] = m0;
                    sM1[r1] = m1;
                }
                nbar_arrive(SP_SSF_B1, 256);
                ss_pack(s, a, 1.f, 1.f, 0);
                SPD(6, ss_rescale_pv(o, f0 * g0, f1 * g1, a, 0, uK1, 1, 0, 0)); /* O_R = O_R a(m, m1) + P1 V1R */
                SPD(5, if (SP_SSF_STSM) ss_store_pf_sm(uP1, s, 1.f, 1.f, 0); else ss_store_p(sP1, s, 0));
                if (SP_SSF_EARLY_B1) {
                    /* P1 to WG0 and B1 back to the producer before P0 is awaited: the next S(j1 + 2)
                     * reads B1 first, and it has only this pair's tail to land */
                    nbar_arrive(SP_SSF_S1R, 256);
                    SPD(2, wg_wait0(); pin128(o)); /* PV_R(j1) */
                    if (j1 + 2 < N) sp_ssf_release(B.er + 8); /* B1: QK(j1), PV_R(j1) done */
                    SPD(1, nbar_sync(SP_SSF_S0R, 256));
                    SPD(6, ss_rescale_pv(o, 1.f, 1.f, a, uP0, uK0, 1, 1, 0)); /* O_R += (P0 g) V0R */
                } else {
                    nbar_sync(SP_SSF_S0R, 256);
                    ss_rescale_pv(o, 1.f, 1.f, a, uP0, uK0, 1, 1, 0); /* O_R += (P0 g) V0R */
                    nbar_arrive(SP_SSF_S1R, 256);
                    wg_wait1(); /* PV_R(j1) */
                    if (j1 + 2 < N) sp_ssf_release(B.er + 8); /* B1: QK(j1), PV_R(j1) done */
                }
                SPD(2, wg_wait0(); pin128(o)); /* PV_R(j0) */
                if (more) sp_ssf_release(B.er); /* B0 (P0 in its RoPE chunk): QK(j0), PV_R(j0) done */
            }
            SPD_END;
        }
    }
    sp_epilogue(p, u, -1, nvalid, head0, o, m0, m1, l0, l1, sAl, sInv, sLse, sMax, 1, 1, uQ, SP_SSF_LAZY, t0, t1); /* sQ: free */
}

/* prefill, seesaw: grid (s_q * num_m_blocks or s_q, num_m_blocks or 1, h_kv: sp_pf_coords); V = 0:
 * 256 threads (the computing warpgroups gather); V = 1 (SSF): 384 threads, WG2 the producer */
static __device__ __forceinline__ void sp_ss_body(const mla_sp_params *p, const int MODE, const int V) {
    extern __shared__ __align__(1024) unsigned char sp_smem_raw[];
    unsigned char *smem = smem_align1024(sp_smem_raw);
    const int DQK = MODE == MLA_SP_BF16_576 ? 576 : 512, TILE = MLA_BM * DQK * 2;
    const sp_ss_bars B = sp_ss_layout(smem, TILE);
    sp_unit u;
    int tok, mblk;
    sp_pf_coords(p, &tok, &mblk);
    sp_unit_init(p, tok, blockIdx.z, &u);
    const int N = u.T0;
    int nvalid = p->hpk - mblk * MLA_BM;
    if (nvalid > MLA_BM) nvalid = MLA_BM;
    const int head0 = u.g * p->hpk + mblk * MLA_BM;
    if (threadIdx.x == 0) {
        for (int st = 0; st < 2; st++) {
            mbar_init(B.fa + 8 * st, 256);
            mbar_init(B.fb + 8 * st, 128);
            if (V) {
                mbar_init(B.el + 8 * st, 4);
                mbar_init(B.er + 8 * st, 4);
            }
        }
        mbar_fence_init();
    }
    __syncthreads();
    if (!V) {
        sp_ss_compute(p, &u, N, nvalid, head0, smem, B, DQK);
    } else if (threadIdx.x >= 256) {
        SETMAXNREG_DEC(SP_SSF_REG_PROD);
        sp_ssf_producer(p, &u, N, smem_u32(smem + TILE), smem_u32(smem + 2 * TILE), sp_pw_layout(smem, TILE).kvalid, B,
                        DQK);
    } else {
        SETMAXNREG_INC(SP_SSF_REG_WG);
        sp_ssf_compute(p, &u, N, nvalid, head0, smem, B, DQK);
    }
}
#endif /* MLA_HAVE_SM90A */

#if MLA_HAVE_SM90A
#define SP_BODY(f, MODE, SPLIT) f(&p, MODE, SPLIT);
#else
#define SP_BODY(f, MODE, SPLIT)
#endif
#define SP_KERNEL(name, f, MODE, SPLIT)                                                                 \
    __global__ void __launch_bounds__(MLA_THREADS, 1) name(const __grid_constant__ mla_sp_params p) { \
        SP_BODY(f, MODE, SPLIT)                                                                        \
    }
SP_KERNEL(mla_sp_decode_v32, sp_decode_body, MLA_SP_V32, 0)
SP_KERNEL(mla_sp_decode_model1, sp_decode_body, MLA_SP_MODEL1, 0)
SP_KERNEL(mla_sp_prefill_576, sp_prefill_body, MLA_SP_BF16_576, 0)
SP_KERNEL(mla_sp_prefill_512, sp_prefill_body, MLA_SP_BF16_512, 0)
SP_KERNEL(mla_sp_decode_v32_split, sp_decode_body, MLA_SP_V32, 1)
SP_KERNEL(mla_sp_decode_model1_split, sp_decode_body, MLA_SP_MODEL1, 1)
SP_KERNEL(mla_sp_prefill_576_split, sp_prefill_body, MLA_SP_BF16_576, 1)
SP_KERNEL(mla_sp_prefill_512_split, sp_prefill_body, MLA_SP_BF16_512, 1)
#define SP_PW_KERNEL(name, MODE, X)                                                                        \
    __global__ void __launch_bounds__(384, 1) name(const __grid_constant__ mla_sp_params p) {             \
        SP_BODY(sp_decode_pw_body, MODE, X)                                                                \
    }
SP_PW_KERNEL(mla_sp_decode_v32_pw, MLA_SP_V32, 0)
SP_PW_KERNEL(mla_sp_decode_model1_pw, MLA_SP_MODEL1, 0)
SP_PW_KERNEL(mla_sp_decode_v32_pwx, MLA_SP_V32, 1)
SP_PW_KERNEL(mla_sp_decode_model1_pwx, MLA_SP_MODEL1, 1)
#if MLA_HAVE_SM90A
#define SP_SS_BODY(MODE) sp_ss_body(&p, MODE, 0);
#else
#define SP_SS_BODY(MODE)
#endif
#define SP_SS_KERNEL(name, MODE)                                                                        \
    __global__ void __launch_bounds__(MLA_THREADS, 1) name(const __grid_constant__ mla_sp_params p) { \
        SP_SS_BODY(MODE)                                                                               \
    }
SP_SS_KERNEL(mla_sp_prefill_576_ss, MLA_SP_BF16_576)
SP_SS_KERNEL(mla_sp_prefill_512_ss, MLA_SP_BF16_512)
#if MLA_HAVE_SM90A
#define SP_SSF_BODY(MODE) sp_ss_body(&p, MODE, 1);
#else
#define SP_SSF_BODY(MODE)
#endif
#define SP_SSF_KERNEL(name, MODE)                                                            \
    __global__ void __launch_bounds__(384, 1) name(const __grid_constant__ mla_sp_params p) { \
        SP_SSF_BODY(MODE)                                                                   \
    }
SP_SSF_KERNEL(mla_sp_prefill_576_ssf, MLA_SP_BF16_576)
SP_SSF_KERNEL(mla_sp_prefill_512_ssf, MLA_SP_BF16_512)

/* kind: 0 decode V32, 1 decode MODEL1, 2 prefill 576, 3 prefill 512 (= MLA_SP_*) */
static const void *sp_fn(int kind, int split) {
    switch (kind) {
    case MLA_SP_V32: return split ? (const void *)mla_sp_decode_v32_split : (const void *)mla_sp_decode_v32;
    case MLA_SP_MODEL1: return split ? (const void *)mla_sp_decode_model1_split : (const void *)mla_sp_decode_model1;
    case MLA_SP_BF16_576: return split ? (const void *)mla_sp_prefill_576_split : (const void *)mla_sp_prefill_576;
    default: return split ? (const void *)mla_sp_prefill_512_split : (const void *)mla_sp_prefill_512;
    }
}

/* the producer-warpgroup decode entry of kind MLA_SP_V32 / MLA_SP_MODEL1 (384 threads; x: crossover) */
static const void *sp_fn_pw(int kind, int x) {
    if (x) return kind == MLA_SP_V32 ? (const void *)mla_sp_decode_v32_pwx : (const void *)mla_sp_decode_model1_pwx;
    return kind == MLA_SP_V32 ? (const void *)mla_sp_decode_v32_pw : (const void *)mla_sp_decode_model1_pw;
}

/* the seesaw prefill entry of kind MLA_SP_BF16_576 / MLA_SP_BF16_512: v = 1 the 256-thread one, 2 SSF
 * (the values of p->seesaw) */
static const void *sp_fn_ss(int kind, int v) {
    const int k576 = kind == MLA_SP_BF16_576;
    if (v == 2) return k576 ? (const void *)mla_sp_prefill_576_ssf : (const void *)mla_sp_prefill_512_ssf;
    return k576 ? (const void *)mla_sp_prefill_576_ss : (const void *)mla_sp_prefill_512_ss;
}

/* ------------------------------------------------------------------------------------------ */
/* Combine: grid (min(tokens, parts), ceil(h_q / 8), S), one warp per (split token, head, slice):  */
/* slice z of S covers columns [512 z / S, 512 (z + 1) / S), FL = 16 / S per lane (the dense      */
/* combine's merge, kernels/common.cuh); applies the sink to the merged row:                       */
/* out *= 1 / (1 + exp(sink - lse)).                                                               */
/* ------------------------------------------------------------------------------------------ */
static __device__ __forceinline__ void sp_combine_body(const mla_sp_params *p, const int FL) {
    pdl_wait();
    const int k = blockIdx.x;
    if (k >= p->num_split[0]) return;
    const int lane = threadIdx.x & 31;
    const int head = blockIdx.y * 8 + (threadIdx.x >> 5);
    if (head >= p->h_q) return;
    const mla_split_entry e = p->split_list[k];
    const int i = e.req / p->s_q, j = e.req - (e.req / p->s_q) * p->s_q;
    const int c0 = blockIdx.z * 32 * FL + lane * FL; /* first column of this lane */
    const long long R = p->rows_per_slot;
    float acc[16], gl, g2;
    combine_merge(p->lacc, p->oacc, (long long)e.slot * R + head, R, e.npieces, c0, acc, &gl, &g2, FL);
    if (p->sink && g2 == g2 && g2 != -INFINITY) {
        const float f = 1.f / (1.f + exp2f(__ldg(p->sink + head) * LOG2E_F - g2));
#pragma unroll
        for (int c = 0; c < 16; c++) acc[c] *= f;
    }
    char *orow = (char *)p->out + ((long long)i * p->o_si + (long long)j * p->o_sj + (long long)head * p->o_sh + c0) * 2;
    if (FL == 1) {
        *(uint16_t *)orow = (uint16_t)(pack2(acc[0], 0.f, 0) & 0xffffu);
    } else {
#pragma unroll
        for (int c = 0; c < FL / 2; c++) ((uint32_t *)orow)[c] = pack2(acc[2 * c], acc[2 * c + 1], 0);
    }
    if (lane == 0 && blockIdx.z == 0) p->lse[(long long)i * p->l_si + (long long)j * p->l_sj + (long long)head * p->l_sh] = gl;
}

#define MLA_SP_COMBINE_KERNEL(S, FL)                                                                      \
    __global__ void __launch_bounds__(256, 3) mla_sp_combine_s##S(const __grid_constant__ mla_sp_params p) { \
        sp_combine_body(&p, FL);                                                                          \
    }
MLA_SP_COMBINE_KERNEL(1, 16)
MLA_SP_COMBINE_KERNEL(2, 8)
MLA_SP_COMBINE_KERNEL(4, 4)
MLA_SP_COMBINE_KERNEL(8, 2)
MLA_SP_COMBINE_KERNEL(16, 1)
#undef MLA_SP_COMBINE_KERNEL

static const void *sp_combine_fn(int slices) {
    switch (slices) {
    case 1: return (const void *)mla_sp_combine_s1;
    case 2: return (const void *)mla_sp_combine_s2;
    case 4: return (const void *)mla_sp_combine_s4;
    case 8: return (const void *)mla_sp_combine_s8;
    default: return (const void *)mla_sp_combine_s16;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Host launchers                                                                              */
/* ------------------------------------------------------------------------------------------ */
extern "C" int mla_k_sp_smem(int dqk) { return sp_smem_bytes(dqk); }

extern "C" cudaError_t mla_k_sp_prepare(void) {
    for (int kind = 0; kind < 4; kind++)
        for (int v = 0; v < 4; v++) { /* 0, 1: SPLIT off / on; 2, 3: decode PW, PW crossover / prefill SS, SSF */
            const int dqk = (kind == MLA_SP_V32 || kind == MLA_SP_BF16_576) ? 576 : 512;
            const void *fn = v < 2 ? sp_fn(kind, v) : kind > MLA_SP_MODEL1 ? sp_fn_ss(kind, v - 1) : sp_fn_pw(kind, v == 3);
            const cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, sp_smem_bytes(dqk));
            if (e != cudaSuccess) return e;
        }
    return cudaSuccess;
}

/* how many 2-CTA clusters of the crossover decode kernel fit on the current device at once (0: none) */
extern "C" int mla_k_sp_pwx_max_clusters(int model1) {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[1];
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDim = dim3(2, 1, 1);
    cfg.blockDim = dim3(384);
    cfg.dynamicSmemBytes = (size_t)sp_smem_bytes(model1 ? 512 : 576);
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 2;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, sp_fn_pw(model1 ? MLA_SP_MODEL1 : MLA_SP_V32, 1), &cfg) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" cudaError_t mla_k_sp_schedule(const mla_sp_params *p, cudaStream_t stream) {
    void *args[1] = {(void *)p};
    cudaError_t e = cudaLaunchKernel((const void *)mla_sp_sched_kernel, dim3(1), dim3(MLA_SCHED_THREADS), args, 0, stream);
    if (e != cudaSuccess) return e;
    return cudaGetLastError();
}

extern "C" cudaError_t mla_k_sp_decode(const mla_sp_params *p, int model1, cudaStream_t stream) {
    const int dqk = model1 ? 512 : 576;
    void *args[1] = {(void *)p};
    const int kind = model1 ? MLA_SP_MODEL1 : MLA_SP_V32, pw = p->producer && !p->split_qk;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[2];
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDim = dim3(p->num_m_blocks, 1, p->num_sm_parts);
    cfg.blockDim = dim3(pw ? 384 : MLA_THREADS);
    cfg.dynamicSmemBytes = (size_t)sp_smem_bytes(dqk);
    cfg.stream = stream;
    cfg.attrs = attr;
    if (pw && p->crossover) { /* the two M-block CTAs of a part as one cluster */
        attr[cfg.numAttrs].id = cudaLaunchAttributeClusterDimension;
        attr[cfg.numAttrs].val.clusterDim.x = 2;
        attr[cfg.numAttrs].val.clusterDim.y = 1;
        attr[cfg.numAttrs].val.clusterDim.z = 1;
        cfg.numAttrs++;
    }
    if (p->pdl) { /* behind the scheduler (or whatever precedes it in the stream): the CTAs wait in pdl_wait */
        attr[cfg.numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[cfg.numAttrs].val.programmaticStreamSerializationAllowed = 1;
        cfg.numAttrs++;
    }
    cudaError_t e = cudaLaunchKernelExC(&cfg, pw ? sp_fn_pw(kind, p->crossover) : sp_fn(kind, p->split_qk), args);
    if (e != cudaSuccess) return e;
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    memset(&cfg, 0, sizeof cfg);
    /* column slices: the fewest (1, 2, .. MLA_SP_COMBINE_MAX_SLICES) that give MLA_SP_COMBINE_CTAS CTAs for
     * the at most min(tokens, parts) split tokens (few split tokens: one warp per row would leave SMs idle;
     * too many slices leave each lane one or two columns, loads too narrow to keep the memory busy). The
     * 16-slice entry is reached through the testing hook only */
    const long long rb = (p->h_q + 7) / 8, splits = p->n_tok < p->num_sm_parts ? p->n_tok : p->num_sm_parts;
    int slices = 1;
    while (slices < MLA_SP_COMBINE_MAX_SLICES && splits * rb * slices < MLA_SP_COMBINE_CTAS) slices *= 2;
    if (p->combine_slices) slices = p->combine_slices;
    cfg.gridDim = dim3((unsigned)splits, (unsigned)rb, slices); /* x: split-list entries (num_split <= splits) */
    cfg.blockDim = dim3(256);
    cfg.dynamicSmemBytes = 0;
    cfg.stream = stream;
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    e = cudaLaunchKernelExC(&cfg, sp_combine_fn(slices), args);
    if (e != cudaSuccess) return e;
    return cudaGetLastError();
}

extern "C" cudaError_t mla_k_sp_prefill(const mla_sp_params *p, int dqk, int h_kv, cudaStream_t stream) {
    void *args[1] = {(void *)p};
    const int kind = dqk == 576 ? MLA_SP_BF16_576 : MLA_SP_BF16_512;
    const int v = p->seesaw && !p->split_qk ? p->seesaw : 0;
    const dim3 grid = p->mb_fast ? dim3((unsigned)(p->n_tok * p->num_m_blocks), 1, h_kv)
                                 : dim3(p->n_tok, p->num_m_blocks, h_kv);
    cudaError_t e = cudaLaunchKernel(v ? sp_fn_ss(kind, v) : sp_fn(kind, p->split_qk), grid,
                                     dim3(v == 2 ? 384 : MLA_THREADS), args, (size_t)sp_smem_bytes(dqk), stream);
    if (e != cudaSuccess) return e;
    return cudaGetLastError();
}
