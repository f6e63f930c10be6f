/* gpu_stub.c — the GPU backend of a build without CUDA kernels (MLA_CUDA=0 or no nvcc).
 * The Makefile leaves this file out when it compiles src/gpu.cu. */
#include "internal.h"

#define MLA_NO_CUDA_MSG "mla.c was built without CUDA kernels (rebuild with nvcc available)"

int mla_gpu_available(void) { return 0; }

mla_status mla_gpu_plan_init(struct mla_decode_plan *plan)
{
    (void)plan;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "%s", MLA_NO_CUDA_MSG);
}

mla_status mla_gpu_schedule(const struct mla_decode_plan *plan, const int32_t *cache_seqlens,
                            void *workspace, size_t workspace_bytes, struct CUstream_st *stream)
{
    (void)plan; (void)cache_seqlens; (void)workspace; (void)workspace_bytes; (void)stream;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "%s", MLA_NO_CUDA_MSG);
}

mla_status mla_gpu_decode(const struct mla_decode_plan *plan, const mla_decode_args *args,
                          void *workspace, size_t workspace_bytes, struct CUstream_st *stream)
{
    (void)plan; (void)args; (void)workspace; (void)workspace_bytes; (void)stream;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "%s", MLA_NO_CUDA_MSG);
}

mla_status mla_gpu_sparse_plan_init(struct mla_sparse_decode_plan *plan)
{
    (void)plan;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "sparse decode on a CUDA device: %s", MLA_NO_CUDA_MSG);
}

mla_status mla_gpu_sparse_decode(const struct mla_sparse_decode_plan *plan,
                                 const mla_sparse_decode_args *args, float softmax_scale,
                                 void *workspace, size_t workspace_bytes,
                                 struct CUstream_st *stream)
{
    (void)plan; (void)args; (void)softmax_scale; (void)workspace; (void)workspace_bytes; (void)stream;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "sparse decode on a CUDA device: %s", MLA_NO_CUDA_MSG);
}

mla_status mla_gpu_sparse_prefill_check(const mla_sparse_prefill_args *args, int device)
{
    (void)args; (void)device;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "sparse prefill on a CUDA device: %s", MLA_NO_CUDA_MSG);
}

mla_status mla_gpu_sparse_prefill(const mla_sparse_prefill_args *args, int device,
                                  struct CUstream_st *stream)
{
    (void)args; (void)device; (void)stream;
    return mla_set_error(MLA_ERR_UNSUPPORTED, "sparse prefill on a CUDA device: %s", MLA_NO_CUDA_MSG);
}
