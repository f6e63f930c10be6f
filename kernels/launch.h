/* launch.h — host entry points of kernels/decode.cu, used by src/gpu.cu. */
#ifndef MLA_KERNELS_LAUNCH_H
#define MLA_KERNELS_LAUNCH_H

#include <cuda_runtime.h>
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Dynamic shared memory of decode kernel variant `kernel` (MLA_KERNEL_*) for d_qk. */
int mla_k_decode_smem(int kernel, int dqk);
/* Raises that kernel's dynamic smem limit on the current device. */
cudaError_t mla_k_prepare(int kernel, int dqk, int f16);
/* Enqueues the split-KV scheduler (reads p->seqlens, writes the schedule into the workspace). */
cudaError_t mla_k_schedule(const mla_dec_params *p, cudaStream_t stream);
/* Enqueues decode + combine (combine with programmatic dependent launch when use_pdl). */
/* tmap: the K-cache CUtensorMap (64-byte aligned host memory) for MLA_KERNEL_WGMMA_TMA, else NULL. */
cudaError_t mla_k_decode(const mla_dec_params *p, int kernel, int dqk, int f16, int use_pdl, const void *tmap,
                         cudaStream_t stream);
/* The wgmma kernels (kernels/decode_sm90.cu); tma: 0 cp.async, 1 TMA, 2 FP8 e4m3 cache, 3 v4, 4 v5,
 * 5 cp.async with the fused schedule, 6 v3 with cp.async tiles. */
const void *mla_k_sm90_fn(int dqk, int f16, int tma);
/* v5, the seesaw kernel (kernels/decode_seesaw.cu) */
const void *mla_k_seesaw_fn(int dqk, int f16);
/* v6, the seesaw in FlashMLA's order (kernels/decode_seesaw2.cu), and its dynamic shared memory */
const void *mla_k_ss2_fn(int dqk, int f16);
int mla_k_ss2_smem(int dqk);
int mla_k_sm90_smem(int dqk);
/* the narrow FP8 kernel (kernels/decode_narrow.cu) */
const void *mla_k_narrow_fn(int dqk, int f16, int nr); /* nr: 16 or 32 query rows per CTA */
int mla_k_narrow_smem(int dqk, int nr);
int mla_k_narrow_threads(int nr);
/* its 32-row kernel: two consumer warpgroups on alternate tiles and a producer warp (kernels/decode_narrow32.cu) */
const void *mla_k_n32_fn(int dqk, int f16);
int mla_k_n32_smem(int dqk);
/* the transposed FP8 kernel with a producer warpgroup (kernels/decode_fp8t.cu; 384 threads) */
const void *mla_k_fp8t_fn(int dqk, int f16, int nr); /* nr: 16 or 32 query rows per CTA */
int mla_k_fp8t_smem(int dqk, int nr);
/* 1 when the current device runs the wgmma kernels from their sm_90a SASS (0 under a JIT of the
 * compute_80 PTX, where their bodies are empty, or on error). */
int mla_k_sm90_native(void);

#ifdef __cplusplus
}
#endif
#endif
