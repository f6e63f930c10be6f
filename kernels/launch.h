/* launch.h — host entry points of kernels/decode.cu, used by src/gpu.cu. */
#ifndef MLA_KERNELS_LAUNCH_H
#define MLA_KERNELS_LAUNCH_H

#include <cuda_runtime.h>
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Dynamic shared memory of the decode kernel for d_qk and K stages (1 or 2). */
int mla_k_decode_smem(int dqk, int stages);
/* Raises the decode kernel's dynamic smem limit on the current device. */
cudaError_t mla_k_prepare(int dqk, int f16, int stages);
/* Enqueues the split-KV scheduler (reads p->seqlens, writes the schedule into the workspace). */
cudaError_t mla_k_schedule(const mla_dec_params *p, cudaStream_t stream);
/* Enqueues decode + combine (combine with programmatic dependent launch when use_pdl). */
cudaError_t mla_k_decode(const mla_dec_params *p, int dqk, int f16, int use_pdl, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
