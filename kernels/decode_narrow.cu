/* decode_narrow.cu — dense MLA decode on an FP8 (e4m3) cache for narrow query groups (sm_90a only):
 * at most 32 packed (s_q, head-in-group) rows per KV head, e.g. h_q = 16 or 32 with s_q = 1.
 *
 * Why a second kernel: the 64-row kernel (decode_sm90.cu) pads 16 rows to a 64-row M block, so
 * per 64-key tile it does 4x the tensor work the rows need, and it keeps one FP8 tile in flight in
 * registers: on an FP8 cache it ran no faster than on a bf16 one (docs/performance.md §4). Here the
 * product is transposed so that the 64 keys of a tile are the M dimension and the query rows N = 16:
 *   S^T[64 keys x 16] = K[64 x d_qk] Q^T               (RS m64n16k16 x d_qk / 16)
 *   O^T[512 x 16]    += V^T[512 x 64 keys] P^T[64 x 16] (RS m64n16k16, 8 M blocks x 4 k-steps)
 * Both A operands (K, V^T) come from registers, converted from the raw e4m3 codes in shared memory,
 * so no 16-bit copy of the tile is ever stored: a CTA is one warpgroup with ~98 KB of smem (Q^T, two
 * raw 36 KB stages), two CTAs per SM. Threads 0..63 load a tile's token rows by cp.async.bulk, one
 * copy per run of consecutive rows (any page size; rows past the length or on invalid pages are never
 * read), one tile ahead. (17..32 rows: kernels/decode_narrow32.cu, two consumer warpgroups on alternate
 * tiles with the same tile body.)
 * Index permutations (free, because a sum does not care about the order of its terms):
 * - QK^T: thread (warp w, g = lane / 4, c = lane % 4) holds keys k0 = 16 w + g and k1 = k0 + 8. For
 *   k-step j = 4 u + v its A columns {2c, 2c+1, 2c+8, 2c+9} are the codes at d = 64 u + 16 c + 4 v +
 *   {0, 1, 2, 3}: word v of the 16-byte chunk 4 u + c of the key's row (one ld.shared.v4 per key and
 *   u). Q is stored permuted the same way: logical column 16 j + 2 c + 8 hi + e holds q[d] with
 *   d = 64 u + 16 c + 4 v + 2 hi + e.
 * - PV: M row 16 w + g + 8 h of M block i is output dimension d = 128 w + 16 g + 2 i + h, so the 16
 *   values a thread needs per key are one 16-byte chunk of the key's row (and the 16 outputs a thread
 *   stores per query row are contiguous); logical key 2 c + e + 8 hi of k-step kk is the tile's key
 *   16 kk + c + 4 e + 8 hi (fewer bank conflicts than the natural order), and P^T is stored in that
 *   logical order.
 * The softmax runs per query column: each thread's running max of its 4 columns is the same in every
 * thread (a cross-warp max through shared memory per tile); row sums are per-thread partials reduced
 * in the epilogue. Same scheduler, partials and combine as the other kernels.
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
#include "sm90_tile.cuh"
#include "narrow.cuh"

#define NR_BAR_C 1 /* named barrier 1: the CTA's 128 threads */
#define NR_NS 2    /* raw stages */
/* shared memory (from a 1024-aligned base): Q^T, P^T [2], stages, valid-row masks, the max exchange
 * [2][4][NR], the row sums [4][NR], row_lim, the iterator's scratch, q row scales, full and empty
 * mbarriers (NR = 16: the query rows, the wgmma N) */
static __host__ __device__ __forceinline__ int nr_q_bytes(int dqk, int nr) { return dqk / 64 * nr * 128; }
static __host__ __device__ __forceinline__ int nr_smem_bytes(int dqk, int nr) {
    const int S = NR_NS;
    return nr_q_bytes(dqk, nr) + 2 * nr * 128 + S * 64 * dqk + S * 8 + 2 * 4 * nr * 4 + 4 * nr * 4 + 2 * 64 * 4 + nr * 4 +
           2 * S * 8 + 1024;
}

#if MLA_HAVE_SM90A
static __device__ __forceinline__ void nr_body(const mla_dec_params *p, const int DQK, const int F16, const int NR) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    pdl_wait(); /* launched with PDL behind the scheduler (kernels/decode.cu) */
    unsigned char *smem = smem_align1024(smem_raw);
    const int NS = NR_NS;
    const int NU = DQK / 64;   /* 16-byte chunks per thread and key row (QK^T) */
    const int NQ = NR / 4;     /* S^T columns (query rows) per thread */
    const int NW = 4;          /* 32-bit words of V per key and thread (PV) */
    unsigned char *sQ = smem;
    unsigned char *sP = sQ + nr_q_bytes(DQK, NR);                   /* [2][NR rows x 128 B] */
    unsigned char *sStage = sP + 2 * NR * 128;                      /* [NS][64][DQK] */
    uint32_t *kvalid = (uint32_t *)(sStage + NS * 64 * DQK);        /* [NS][2] valid-row masks */
    float *sRed = (float *)(kvalid + NS * 2);                       /* [2][4][NR] column maxima */
    float *sSum = sRed + 2 * 4 * NR;                                /* [4][NR] column sums */
    int *row_lim = (int *)(sSum + 4 * NR);                          /* [64] */
    int *scr = row_lim + 64;                                        /* [64] */
    float *sQs = (float *)(scr + 64);                               /* [NR] q row scales 2^-e */
    uint64_t *bars = (uint64_t *)(sQs + NR);                        /* full[NS], empty[NS] */
    const uint32_t uQ = smem_u32(sQ), uSt = smem_u32(sStage);
    const uint32_t barF = smem_u32(bars), barE = barF + 8 * NS;

    const int tid = threadIdx.x, w4 = (tid >> 5) & 3, lane = tid & 31;
    const int kvh = blockIdx.y, part = blockIdx.z;
    const uint32_t uP = smem_u32(sP);
    mla_part_begin pb, pe;
    part_bounds(p, part, 0, &pb, &pe, 0);
    const int r_last = pe.tile > 0 ? pe.req : pe.req - 1;
    if (tid == 0) {
        for (int s = 0; s < NS; s++) {
            mbar_init(barF + 8 * s, 64);        /* threads 0..63, one row each */
            mbar_init(barE + 8 * s, 128); /* every thread, after its last read of the stage */
        }
        mbar_fence_init();
    }
    __syncthreads();
    /* the first NS - 1 tiles (the CTA's tiles in order: the iterator runs NS - 1 tiles ahead) */
    tile_iter it;
    it.r = pb.req - 1;
    it.t = it.te = it.L = 0;
    tile_seek(p, pb, pe, r_last, scr, &it);
    for (int m = 0; m < NS - 1 && it.r <= r_last; m++) {
        if (tid < 64)
            nr_issue(uSt + m * 64 * DQK, barF + 8 * m, kvalid + 2 * m,
                     k_row_ptr_es(p, it.r, kvh, (long long)it.t * MLA_BN + tid, it.L, 1), tid, DQK);
        it.t++;
        tile_seek(p, pb, pe, r_last, scr, &it);
    }

    const int g = lane >> 2, c = lane & 3;
    const int k0 = 16 * w4 + g, k1 = k0 + 8; /* this thread's S^T rows (keys of the tile) */
    const int hg = p->hg;
    float scale = p->scale_log2, dk = 1.f;
    if (p->descale_k) { /* per-tensor descales, read on the device */
        dk = __ldg(p->descale_k);
        scale *= dk * (p->descale_q ? __ldg(p->descale_q) : 1.f);
    }
    int n = 0;
    for (int r = pb.req; r <= r_last; r++) {
        req_work w;
        if (!req_prepare(p, r, pb, pe, 0, row_lim, &w)) continue;
        __syncthreads(); /* row_lim written; every wgmma of the previous request retired */
        nr_build_qt(p, r, kvh, w.nvalid, uQ, sQs, DQK, F16, NR); /* Q^T (narrow.cuh) */
        fence_proxy_async();
        __syncthreads();
        /* this thread's S^T columns: q -> column 8 (q >> 1) + 2 c + (q & 1) */
        int lim[8];    /* visible keys */
        float sc[8];   /* score scale (log2 domain) */
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int col = 8 * (q >> 1) + 2 * c + (q & 1);
            lim[q] = row_lim[col];
            sc[q] = scale * sQs[col];
        }

        float o[64]; /* O^T: 8 M blocks of NR / 2 */
#pragma unroll
        for (int i = 0; i < 64; i++) o[i] = 0.f;
        float m[8], l[8];
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            m[q] = -INFINITY;
            l[q] = 0.f;
        }

        for (int t = w.tb; t < w.te; t++, n++) {
            const int st = n & (NS - 1);
            /* the row pointers of the tile NS - 1 ahead (issued after the max exchange below) */
            const int have_next = it.r <= r_last;
            const char *nsrc = 0;
            if (have_next && tid < 64) nsrc = k_row_ptr_es(p, it.r, kvh, (long long)it.t * MLA_BN + tid, it.L, 1);
            mbar_wait(barF + 8 * st, (n / NS) & 1);
            const uint32_t stage = uSt + st * 64 * DQK;
            const unsigned long long km = lds_u64(smem_u32(kvalid) + st * 8); /* bit k: key k is real */

            /* S^T = K Q^T: per u, two 16-byte chunks -> four k-steps of A fragments; the chunks of
             * u + 1 are loaded before u's batch is issued; even and odd u accumulate into two
             * independent chains (added at the end) */
            float sa[16], sb[16], s[16];
#pragma unroll
            for (int i = 0; i < NR / 2; i++) {
                sa[i] = 0.f;
                sb[i] = 0.f;
            }
            uint32_t ak[2][16];
            uint4 y0 = lds128(stage + k0 * DQK + 16 * c), y1 = lds128(stage + k1 * DQK + 16 * c);
#pragma unroll
            for (int u = 0; u < NU; u++) {
                const uint4 x0 = y0, x1 = y1;
                if (u + 1 < NU) {
                    y0 = lds128(stage + k0 * DQK + 64 * (u + 1) + 16 * c);
                    y1 = lds128(stage + k1 * DQK + 64 * (u + 1) + 16 * c);
                }
                uint32_t *a = ak[u & 1];
                if (u >= 2) {
                    wg_wait1(); /* the batch that read ak[u & 1] has retired */
                    nr_keep(a, 16);
                    pin_n(sa, NR / 2);
                    pin_n(sb, NR / 2);
                }
                const uint32_t w0[4] = {x0.x, x0.y, x0.z, x0.w}, w1[4] = {x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                for (int v = 0; v < 4; v++) {
                    nr_cvt4(w0[v], &a[4 * v + 0], &a[4 * v + 2]);
                    nr_cvt4(w1[v], &a[4 * v + 1], &a[4 * v + 3]);
                }
                pin_n(sa, NR / 2);
                pin_n(sb, NR / 2);
                wg_fence();
#pragma unroll
                for (int v = 0; v < 4; v++)
                    nr_mma((u & 1) ? sb : sa, a + 4 * v, desc_sw128(uQ + u * (NR * 128) + v * 32, 16, 1024), NR);
                wg_commit();
            }
            wg_wait0();
            nr_keep(ak[0], 16);
            nr_keep(ak[1], 16);
            pin_n(sa, NR / 2);
            pin_n(sb, NR / 2);
#pragma unroll
            for (int i = 0; i < NR / 2; i++) s[i] = sa[i] + sb[i];

            /* mask and scale (log2 domain): s[4 jn + 2 h + e] is key (h ? k1 : k0), column 8 jn + 2 c + e.
             * Lazy maxima (as decode_fp8t.cu): the scores are exponentiated against the running column
             * maximum m[q] (the same in every thread) as long as none exceeds it by more than 8 (p <= 2^8:
             * exact in fp16 and fp32); one barrier.red.or per tile decides whether the max exchange and
             * the O^T rescale are needed. */
            const int key0 = t * MLA_BN;
            const int ok0 = (int)(km >> k0) & 1, ok1 = (int)(km >> k1) & 1;
            int need = 0;
#pragma unroll
            for (int q = 0; q < NQ; q++) {
                const int jn = q >> 1, e = q & 1;
                const float v0 = (ok0 && key0 + k0 < lim[q]) ? s[4 * jn + e] * sc[q] : -INFINITY;
                const float v1 = (ok1 && key0 + k1 < lim[q]) ? s[4 * jn + 2 + e] * sc[q] : -INFINITY;
                s[4 * jn + e] = v0;
                s[4 * jn + 2 + e] = v1;
                need |= fmaxf(v0, v1) > m[q] + 8.f;
            }
            need = nbar_red_or(NR_BAR_C, 128, need); /* (the same in every thread) */
            /* every thread is past tile n - 1 (the empty barrier): that tile's stage takes tile n + NS - 1 */
            if (have_next) {
                if (tid < 64) {
                    const int mt = n + NS - 1, sm = mt & (NS - 1);
                    if (mt >= NS) mbar_wait(barE + 8 * sm, ((mt / NS) - 1) & 1);
                    nr_issue(uSt + sm * 64 * DQK, barF + 8 * sm, kvalid + 2 * sm, nsrc, tid, DQK);
                }
                it.t++;
                tile_seek(p, pb, pe, r_last, scr, &it);
            }
            if (need) {
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
                float *red = sRed + (t & 1) * 4 * NR;
                if (g == 0) {
#pragma unroll
                    for (int q = 0; q < NQ; q++) red[w4 * NR + 8 * (q >> 1) + 2 * c + (q & 1)] = mx[q];
                }
                nbar_sync(NR_BAR_C, 128);
#pragma unroll
                for (int q = 0; q < NQ; q++) {
                    const int col = 8 * (q >> 1) + 2 * c + (q & 1);
                    const float tm = fmaxf(fmaxf(red[col], red[NR + col]), fmaxf(red[2 * NR + col], red[3 * NR + col]));
                    const float mn = fmaxf(m[q], tm);
                    const float mu = mn == -INFINITY ? 0.f : mn;
                    const float al = fast_exp2(m[q] - mu);
                    m[q] = mn;
                    const int jn = q >> 1, e = q & 1;
                    const float p0 = fast_exp2(s[4 * jn + e] - mu), p1 = fast_exp2(s[4 * jn + 2 + e] - mu);
                    s[4 * jn + e] = p0;
                    s[4 * jn + 2 + e] = p1;
                    l[q] = l[q] * al + p0 + p1;
                    if (__any_sync(0xffffffffu, al != 1.f)) {
                        /* o[(NR / 2) i + 4 jn + 2 h + e]: column 8 jn + 2 c + e, i.e. q = 2 jn + e */
#pragma unroll
                        for (int i = 0; i < 8; i++) {
                            o[(NR / 2) * i + 4 * jn + e] *= al;
                            o[(NR / 2) * i + 4 * jn + 2 + e] *= al;
                        }
                    }
                }
            } else {
#pragma unroll
                for (int q = 0; q < NQ; q++) {
                    const float mu = m[q] == -INFINITY ? 0.f : m[q];
                    const int jn = q >> 1, e = q & 1;
                    const float p0 = fast_exp2(s[4 * jn + e] - mu), p1 = fast_exp2(s[4 * jn + 2 + e] - mu);
                    s[4 * jn + e] = p0;
                    s[4 * jn + 2 + e] = p1;
                    l[q] += p0 + p1;
                }
            }
            /* P^T (NR rows x 64 logical keys, SW128 K-major, fp16) into buffer t & 1:
             * key kappa = 16 kk + c' + 4 e' + 8 hi' is logical column 16 kk + 2 c' + e' + 8 hi' */
            const uint32_t pt = uP + (t & 1) * (NR * 128);
            {
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int kap = h ? k1 : k0, kin = kap & 15;
                    const int L = (kap & ~15) + 2 * (kin & 3) + ((kin >> 2) & 1) + 8 * (kin >> 3);
#pragma unroll
                    for (int q = 0; q < NQ; q++) {
                        const int col = 8 * (q >> 1) + 2 * c + (q & 1);
                        const float pv = s[4 * (q >> 1) + 2 * h + (q & 1)];
                        const uint32_t bits = pack2(pv, 0.f, 1) & 0xffffu;
                        const uint32_t a = pt + col * 128 + ((((L >> 3)) ^ (col & 7)) << 4) + (L & 7) * 2;
                        asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(a), "h"((unsigned short)bits) : "memory");
                    }
                }
            }
            fence_proxy_async();
            nbar_sync(NR_BAR_C, 128); /* P^T complete */

            /* O^T += V^T P^T: per k-step kk, keys 16 kk + c + 4 e + 8 hi, the NW words at byte 128 w4 +
             * 16 g of each; word q holds local M blocks 2 q (bytes 0, 1) and 2 q + 1
             * (bytes 2, 3); batches of two words (4 M blocks); the words of kk + 1 are loaded while
             * kk's batches are converted */
            uint32_t av[2][16];
            uint32_t X[2][2][4], Y[2][2][4]; /* [e][hi][word] */
            const uint32_t vofs = 128 * w4 + 16 * g;
#pragma unroll
            for (int e = 0; e < 2; e++)
#pragma unroll
                for (int hi = 0; hi < 2; hi++) nr_ld_v(Y[e][hi], stage + (c + 4 * e + 8 * hi) * DQK + vofs, NW);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
#pragma unroll
                for (int e = 0; e < 2; e++)
#pragma unroll
                    for (int hi = 0; hi < 2; hi++) {
                        const int kap = 16 * kk + c + 4 * e + 8 * hi;
#pragma unroll
                        for (int q = 0; q < NW; q++) X[e][hi][q] = Y[e][hi][q]; /* (rows without a key are zeros) */
                        if (kk + 1 < 4) nr_ld_v(Y[e][hi], stage + (kap + 16) * DQK + vofs, NW);
                    }
#pragma unroll
                for (int hf = 0; hf < NW / 2; hf++) {
                    const int bt = (NW / 2) * kk + hf;
                    uint32_t *a = av[bt & 1];
                    if (bt >= 2) {
                        wg_wait1();
                        nr_keep(a, 16);
                        pin_n(o, 64);
                    }
#pragma unroll
                    for (int hi = 0; hi < 2; hi++)
#pragma unroll
                        for (int qq = 0; qq < 2; qq++) {
                            const int q = 2 * hf + qq;
                            const uint32_t lo = nr_prmt(X[0][hi][q], X[1][hi][q], 0x5140u);
                            const uint32_t up = nr_prmt(X[0][hi][q], X[1][hi][q], 0x7362u);
                            nr_cvt4(lo, &a[4 * (2 * qq) + 2 * hi + 0], &a[4 * (2 * qq) + 2 * hi + 1]);
                            nr_cvt4(up, &a[4 * (2 * qq + 1) + 2 * hi + 0], &a[4 * (2 * qq + 1) + 2 * hi + 1]);
                        }
                    pin_n(o, 64);
                    wg_fence();
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        nr_mma(o + (NR / 2) * (4 * hf + i), a + 4 * i, desc_sw128(pt + kk * 32, 16, 1024), NR);
                    wg_commit();
                }
            }
            mbar_arrive(barE + 8 * st); /* this thread's reads of the stage are done */
            wg_wait0();
            nr_keep(av[0], 16);
            nr_keep(av[1], 16);
            pin_n(o, 64);
        }

        /* epilogue: column sums over the keys (lanes of a column, then the four warps) */
        float *sum = sSum;
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            float v = l[q];
            v += __shfl_xor_sync(0xffffffffu, v, 4);
            v += __shfl_xor_sync(0xffffffffu, v, 8);
            v += __shfl_xor_sync(0xffffffffu, v, 16);
            l[q] = v;
        }
        if (g == 0) {
#pragma unroll
            for (int q = 0; q < NQ; q++) sum[w4 * NR + 8 * (q >> 1) + 2 * c + (q & 1)] = l[q];
        }
        nbar_sync(NR_BAR_C, 128);
        const int NB = 8; /* M blocks: output dims d0 + 2 i + h, i < NB */
        const int d0 = 128 * w4 + 16 * g;
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            const int col = 8 * (q >> 1) + 2 * c + (q & 1);
            if (col >= w.nvalid) continue;
            const float lt = sum[col] + sum[NR + col] + sum[2 * NR + col] + sum[3 * NR + col];
            const float inv = row_inv(lt, dk); /* out = P V * descale_k */
            const int j = col / hg, head = kvh * hg + col % hg;
            float vals[16];
#pragma unroll
            for (int i = 0; i < NB; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) vals[2 * i + h] = o[(NR / 2) * i + 4 * (q >> 1) + 2 * h + (q & 1)] * inv;
            if (w.slot < 0) {
                uint4 *dst = (uint4 *)((char *)p->out +
                                       (out_row(p, r, j, head) + d0) * 2);
#pragma unroll
                for (int k = 0; k < NB / 4; k++)
                    dst[k] = make_uint4(pack2(vals[8 * k], vals[8 * k + 1], F16), pack2(vals[8 * k + 2], vals[8 * k + 3], F16),
                                        pack2(vals[8 * k + 4], vals[8 * k + 5], F16), pack2(vals[8 * k + 6], vals[8 * k + 7], F16));
            } else if (MLA_DIAG != 6) {
                const long long prow = part_row(p, w.slot, j, head);
                float4 *dst = (float4 *)(p->oacc + prow * MLA_DV + d0);
#pragma unroll
                for (int k = 0; k < NB / 2; k++)
                    dst[k] = make_float4(vals[4 * k], vals[4 * k + 1], vals[4 * k + 2], vals[4 * k + 3]);
            }
            if (w4 == 0 && g == 0) store_lse(p, w.slot, r, j, head, row_lse2(m[q], lt));
        }
    }
    pdl_trigger();
}
#define MLA_NR_BODY(DQK, F16, NR) nr_body(&p, DQK, F16, NR);
#else
#define MLA_NR_BODY(DQK, F16, NR)
#endif

#define MLA_NR_KERNEL(name, DQK, F16, NR)                                                                   \
    __global__ void __launch_bounds__(128, 2)                                                              \
        name(const __grid_constant__ mla_dec_params p) {                                                   \
        MLA_NR_BODY(DQK, F16, NR)                                                                          \
    }
MLA_NR_KERNEL(mla_decode_sm90nr_bf16_576, 576, 0, 16)
MLA_NR_KERNEL(mla_decode_sm90nr_bf16_512, 512, 0, 16)
MLA_NR_KERNEL(mla_decode_sm90nr_fp16_576, 576, 1, 16)
MLA_NR_KERNEL(mla_decode_sm90nr_fp16_512, 512, 1, 16)

/* nr: 16 or 32 query rows per CTA */
extern "C" const void *mla_k_narrow_fn(int dqk, int f16, int nr) {
    if (nr == 32) return mla_k_n32_fn(dqk, f16); /* kernels/decode_narrow32.cu */
    if (dqk == 576) return f16 ? (const void *)mla_decode_sm90nr_fp16_576 : (const void *)mla_decode_sm90nr_bf16_576;
    return f16 ? (const void *)mla_decode_sm90nr_fp16_512 : (const void *)mla_decode_sm90nr_bf16_512;
}
extern "C" int mla_k_narrow_smem(int dqk, int nr) { return nr == 32 ? mla_k_n32_smem(dqk) : nr_smem_bytes(dqk, nr); }
extern "C" int mla_k_narrow_threads(int nr) { return nr == 32 ? MLA_N32_THREADS : 128; }
