/* wgmma_rate.cu — how many SM cycles one wgmma of each shape the decode kernels use takes when a
 * warpgroup issues a chain of them (the same accumulator, 36 per commit group, as a QK^T over
 * d_qk = 576), with one or two warpgroups per SM issuing at once, every SM busy.
 * The question it answers (docs/performance.md §7): is a small-N SS wgmma (m64n16 / m64n32, both
 * operands from shared memory) bound by shared-memory reads, and does it read B once per warpgroup or
 * once per warp (4x)? Compare SS with RS (A from registers) at the same N, and with N = 64 / 256.
 * Data are small fp16 values in SW128 K-major tiles; only the timing matters.
 * Build: nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -Ikernels -Iinclude -Isrc \
 *          bench/micro/wgmma_rate.cu -o build/wgmma_rate
 * Run (Hopper): build/wgmma_rate   (one line per mode and warpgroup count) */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ptx.cuh"
#include "sm90.cuh"
#include "wgmma_ops.cuh"

#define CHAIN 36
#define SMEM (3 * 32768 + 1024 + 24576) /* A[2 wg] + B + alignment; padded so one CTA per SM */

enum { M_SS16, M_SS32, M_SS64, M_SS256, M_SS16T, M_SS32T, M_RS16, M_RS32, M_RS256, M_N };
static const char *mode_name[M_N] = {"SS m64n16k16 (K-major A)",  "SS m64n32k16 (K-major A)",
                                     "SS m64n64k16",              "SS m64n256k16 (B MN-major)",
                                     "SS m64n16k16 (A MN-major)", "SS m64n32k16 (A MN-major)",
                                     "RS m64n16k16",              "RS m64n32k16",
                                     "RS m64n256k16 (B MN-major)"};
static const int mode_n[M_N] = {16, 32, 64, 256, 16, 32, 16, 32, 256};

/* one kernel per shape (a branch between wgmmas makes ptxas wait for each one) */
#if MLA_HAVE_SM90A
#define RATE_PROLOGUE                                                                                      \
    extern __shared__ __align__(1024) unsigned char raw[];                                                 \
    unsigned char *sm = smem_align1024(raw);                                                               \
    const int tid = threadIdx.x, wg = tid >> 7;                                                            \
    for (int i = tid; i < 3 * 32768 / 4; i += blockDim.x) /* fp16 pairs of small values */                 \
        ((uint32_t *)sm)[i] = 0x20002000u + (uint32_t)(i & 0x00ff00ff);                                    \
    fence_proxy_async();                                                                                   \
    __syncthreads();                                                                                       \
    if (wg >= nwg) return;                                                                                 \
    const uint32_t uA = smem_u32(sm) + wg * 32768, uB = smem_u32(sm) + 2 * 32768;                          \
    uint32_t ra[4] = {0x20002000u + tid, 0x20002001u, 0x20002002u, 0x20002003u};                           \
    asm volatile("" : "+r"(ra[0]), "+r"(ra[1]), "+r"(ra[2]), "+r"(ra[3]));                                 \
    float d[128];                                                                                          \
    _Pragma("unroll") for (int i = 0; i < 128; i++) d[i] = 0.f;                                            \
    wg_fence();                                                                                            \
    long long t0 = clock64();
#define RATE_EPILOGUE                                                                                      \
    long long t1 = clock64();                                                                              \
    if ((tid & 127) == 0) cyc[blockIdx.x * 2 + wg] = t1 - t0;                                              \
    float acc = 0.f;                                                                                       \
    _Pragma("unroll") for (int i = 0; i < 128; i++) acc += d[i];                                           \
    if (acc == 1234.5f) sink[tid] = acc; /* keeps the chain alive */
/* CALL: one wgmma using daK / daM (A K- / MN-major), dbK / dbM (B K- / MN-major), ra (A registers) */
#define RATE_KERNEL(name, CALL)                                                                            \
    __global__ void __launch_bounds__(256, 1) name(int nwg, int reps, long long *cyc, float *sink) {        \
        RATE_PROLOGUE                                                                                      \
        for (int r = 0; r < reps; r++) {                                                                   \
            uint32_t a = uA, b = uB; /* loop-variant copies: no hoisting of 36 descriptors */              \
            asm volatile("" : "+r"(a), "+r"(b));                                                           \
            _Pragma("unroll") for (int k = 0; k < CHAIN; k++) {                                            \
                const int u = (k >> 2) & 3, v = k & 3;                                                     \
                const uint64_t daK = desc_sw128(a + u * 8192 + v * 32, 16, 1024);                          \
                const uint64_t daM = desc_sw128(a + u * 8192 + v * 2048, 8192, 1024);                      \
                const uint64_t dbK = desc_sw128(b + v * 32, 16, 1024);                                     \
                const uint64_t dbM = desc_sw128(b + v * 4096, 8192, 1024);                                 \
                (void)daK; (void)daM; (void)dbK; (void)dbM;                                                \
                CALL;                                                                                      \
            }                                                                                              \
            wg_commit();                                                                                   \
            wg_wait0();                                                                                    \
        }                                                                                                  \
        RATE_EPILOGUE                                                                                      \
    }
#else
#define RATE_KERNEL(name, CALL) \
    __global__ void name(int nwg, int reps, long long *cyc, float *sink) {}
#endif
RATE_KERNEL(r_ss16, wgmma_ss_m64n16_tb0_f16(d, daK, dbK, 1))
RATE_KERNEL(r_ss32, wgmma_ss_m64n32_tb0_f16(d, daK, dbK, 1))
RATE_KERNEL(r_ss64, wgmma_ss_m64n64_tb0_f16(d, daK, dbK, 1))
RATE_KERNEL(r_ss256, wgmma_ss_m64n256_tb1_f16(d, daK, dbM, 1))
RATE_KERNEL(r_ss16t, wgmma_ss_m64n16_ta1_f16(d, daM, dbK, 1))
RATE_KERNEL(r_ss32t, wgmma_ss_m64n32_ta1_f16(d, daM, dbK, 1))
RATE_KERNEL(r_rs16, wgmma_rs_m64n16_tb0_f16(d, ra, dbK, 1))
RATE_KERNEL(r_rs32, wgmma_rs_m64n32_tb0_f16(d, ra, dbK, 1))
RATE_KERNEL(r_rs256, wgmma_rs_m64n256_tb1_f16(d, ra, dbM, 1))
typedef void (*rate_fn)(int, int, long long *, float *);
static const rate_fn mode_fn[M_N] = {r_ss16, r_ss32, r_ss64, r_ss256, r_ss16t, r_ss32t, r_rs16, r_rs32, r_rs256};

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    int dev = 0, nsm = 0;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
        fprintf(stderr, "no CUDA device\n");
        return 1;
    }
    nsm = prop.multiProcessorCount;
    printf("device %s, %d SMs, cc %d.%d\n", prop.name, nsm, prop.major, prop.minor);
    if (prop.major != 9) {
        fprintf(stderr, "needs sm_90a\n");
        return 1;
    }
    long long *cyc;
    float *sink;
    cudaMalloc(&cyc, 2 * nsm * sizeof(long long));
    cudaMalloc(&sink, 256 * sizeof(float));
    for (int m = 0; m < M_N; m++) cudaFuncSetAttribute(mode_fn[m], cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    long long *h = (long long *)malloc(2 * nsm * sizeof(long long));
    const int reps = 2000;
    printf("%-28s %3s %5s %12s %12s %14s\n", "mode", "WGs", "N", "cyc/wgmma", "FLOP/clk/SM", "smem B/clk(*)");
    for (int m = 0; m < M_N; m++)
        for (int nwg = 1; nwg <= 2; nwg++) {
            mode_fn[m]<<<nsm, 256, SMEM>>>(nwg, reps / 10, cyc, sink); /* warm-up */
            cudaMemset(cyc, 0, 2 * nsm * sizeof(long long));
            mode_fn[m]<<<nsm, 256, SMEM>>>(nwg, reps, cyc, sink);
            cudaError_t e = cudaDeviceSynchronize();
            if (e != cudaSuccess) {
                printf("mode %d: %s\n", m, cudaGetErrorString(e));
                return 1;
            }
            cudaMemcpy(h, cyc, 2 * nsm * sizeof(long long), cudaMemcpyDeviceToHost);
            long long v[2 * 1024];
            int nv = 0;
            for (int i = 0; i < nsm; i++)
                for (int w = 0; w < nwg; w++) v[nv++] = h[2 * i + w];
            qsort(v, nv, sizeof(long long), cmp_ll);
            const double per = (double)v[nv / 2] / ((double)reps * CHAIN); /* median warpgroup */
            const int n = mode_n[m];
            const double flop = nwg * 64.0 * n * 16 * 2 / per;
            /* operand bytes read from smem per wgmma if B is read once per warpgroup: A (SS only) + B */
            const double bytes = (m >= M_RS16 ? 0 : 64 * 16 * 2) + n * 16 * 2;
            printf("%-28s %3d %5d %12.2f %12.0f %14.0f\n", mode_name[m], nwg, n, per, flop, nwg * bytes / per);
        }
    printf("(*) smem operand bytes per SM cycle, counting A (SS) + B once per warpgroup and wgmma\n");
    return 0;
}
