/* gpu_common.h — host helpers shared by the two CUDA launch layers (src/gpu.cu, src/gpu_sparse.cu):
 * a CUDA error as a library status, and the current-device switch around a launch. Included only
 * by .cu files (needs cuda_runtime.h, stdlib.h and internal.h first). */
#ifndef MLA_SRC_GPU_COMMON_H
#define MLA_SRC_GPU_COMMON_H

static inline mla_status cuda_fail(cudaError_t e, const char *what) {
    return mla_set_error(MLA_ERR_CUDA, "CUDA error in %s: %s (%s)", what, cudaGetErrorString(e),
                         cudaGetErrorName(e));
}

/* Switches to `device` if needed; *old gets the current device (restore with device_restore). */
static inline mla_status device_enter(int device, int *old) {
    cudaError_t e = cudaGetDevice(old);
    if (e != cudaSuccess) return cuda_fail(e, "cudaGetDevice");
    if (*old != device) {
        e = cudaSetDevice(device);
        if (e != cudaSuccess) return cuda_fail(e, "cudaSetDevice");
    }
    return MLA_OK;
}
static inline void device_restore(int device, int old) {
    if (old != device) cudaSetDevice(old);
}

/* Testing hooks (environment variables, read at plan creation): NAME=0 / NAME=1 exactly. */
static inline int env_is(const char *name, char v) {
    const char *x = getenv(name);
    return x && x[0] == v && x[1] == 0;
}
/* MLA_GPU_COMBINE_SLICES=1|2|4|8|16: the combine's column slices instead of the launcher's choice
 * (so tests reach every combine entry, dense and sparse); 0 when unset or anything else */
static inline int env_combine_slices(void) {
    const char *cs = getenv("MLA_GPU_COMBINE_SLICES");
    const int n = cs ? atoi(cs) : 0;
    return (n == 1 || n == 2 || n == 4 || n == 8 || n == 16) ? n : 0;
}

#endif
