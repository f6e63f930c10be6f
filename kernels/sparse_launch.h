/* sparse_launch.h — host entry points of kernels/sparse_sm90.cu, used by src/gpu_sparse.cu. */
#ifndef MLA_KERNELS_SPARSE_LAUNCH_H
#define MLA_KERNELS_SPARSE_LAUNCH_H

#include <cuda_runtime.h>
#include "sparse_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Dynamic shared memory of the sparse kernels for d_qk (576 / 512). */
int mla_k_sp_smem(int dqk);
/* Raises the sparse kernels' dynamic smem limit on the current device. */
cudaError_t mla_k_sp_prepare(void);
/* How many 2-CTA clusters of the crossover decode kernel (model1: 0 V32, 1 MODEL1) fit at once on
 * the current device (0: none; call after mla_k_sp_prepare). */
int mla_k_sp_pwx_max_clusters(int model1);
/* Enqueues the split-KV scheduler of sparse decode (reads the topk lengths on the device). */
cudaError_t mla_k_sp_schedule(const mla_sp_params *p, cudaStream_t stream);
/* Enqueues sparse decode + combine (programmatic dependent launch). model1: 0 V32, 1 MODEL1. */
cudaError_t mla_k_sp_decode(const mla_sp_params *p, int model1, cudaStream_t stream);
/* Enqueues sparse prefill: grid (s_q, num_m_blocks, h_kv). */
cudaError_t mla_k_sp_prefill(const mla_sp_params *p, int dqk, int h_kv, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
