/* cvt_rate.cu — throughput of the e4m3 -> fp16 conversions the FP8 kernels can use, per SM and clock,
 * with every SM full of warps (16 warps per SM, independent chains):
 *   0: cvt.rn.f16x2.e4m3x2 (SASS F2FP), two codes per instruction, as kernels/ptx.cuh's f8x4_cvt
 *   1: integer placement: prmt (byte -> lane << 8 with the sign replicated), shl 7, and: two codes per
 *      three instructions, giving fp16(x * 2^-8) exactly (the 2^8 folded into the kernel's scales)
 * Build: nvcc -O3 -gencode arch=compute_90a,code=sm_90a bench/micro/cvt_rate.cu -o build/cvt_rate */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#define ITERS 4096
#define CH 8

static __device__ __forceinline__ uint32_t cvt_f2fp(uint32_t w) {
    uint32_t r;
    asm volatile("{\n.reg .b16 lo, hi;\nmov.b32 {lo, hi}, %1;\ncvt.rn.f16x2.e4m3x2 %0, lo;\n}\n" : "=r"(r) : "r"(w));
    return r;
}
/* codes b0 (bits 7..0) and b1 (bits 15..8) of w -> fp16x2 of (b0, b1) * 2^-8: each lane = sign-replicated
 * byte << 8 | byte (prmt sign mode), << 7, keep bit 15 and bits 13..7 */
static __device__ __forceinline__ uint32_t cvt_int(uint32_t w) {
    uint32_t x;
    asm volatile("prmt.b32 %0, %1, 0, 0x9180;\n" : "=r"(x) : "r"(w));
    return (x << 7) & 0xBF80BF80u;
}

__global__ void crate(int mode, uint32_t seed, unsigned *cyc, uint32_t *sink) {
    uint32_t v[CH];
#pragma unroll
    for (int k = 0; k < CH; k++) v[k] = seed * (threadIdx.x + 1) + k * 0x01010101u;
    const unsigned t0 = (unsigned)clock();
    if (mode == 0) {
        for (int i = 0; i < ITERS; i++)
#pragma unroll
            for (int k = 0; k < CH; k++) v[k] = cvt_f2fp(v[k]) ^ 0x5a5au;
    } else {
        for (int i = 0; i < ITERS; i++)
#pragma unroll
            for (int k = 0; k < CH; k++) v[k] = cvt_int(v[k]) ^ 0x5a5au;
    }
    const unsigned t1 = (unsigned)clock();
    uint32_t a = 0;
#pragma unroll
    for (int k = 0; k < CH; k++) a ^= v[k];
    sink[blockIdx.x * blockDim.x + threadIdx.x] = a;
    if (threadIdx.x == 0) cyc[blockIdx.x] = t1 - t0;
}

/* exactness of mode 1 against cvt.rn.f16x2.e4m3x2 scaled by 2^-8, every code but the NaNs */
__global__ void ccheck(unsigned *bad) {
    const uint32_t b0 = threadIdx.x, b1 = 255 - threadIdx.x, w = b0 | (b1 << 8);
    if ((b0 & 0x7f) == 0x7f || (b1 & 0x7f) == 0x7f) return;
    const uint32_t r = cvt_f2fp(w), q = cvt_int(w);
    const float want0 = __half2float(__ushort_as_half((unsigned short)(r & 0xffff))) / 256.f;
    const float want1 = __half2float(__ushort_as_half((unsigned short)(r >> 16))) / 256.f;
    const float got0 = __half2float(__ushort_as_half((unsigned short)(q & 0xffff)));
    const float got1 = __half2float(__ushort_as_half((unsigned short)(q >> 16)));
    if (want0 != got0 || want1 != got1 || ((r ^ q) & 0x80008000u)) atomicAdd(bad, 1u);
}

int main(void) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return 1;
    const int nsm = prop.multiProcessorCount, blocks = 2 * nsm, threads = 256;
    unsigned *cyc, h[4096], *bad, hb = 0;
    uint32_t *sink;
    cudaMalloc(&cyc, blocks * sizeof(unsigned));
    cudaMalloc(&sink, blocks * threads * 4);
    cudaMalloc(&bad, 4);
    cudaMemset(bad, 0, 4);
    ccheck<<<1, 256>>>(bad);
    cudaMemcpy(&hb, bad, 4, cudaMemcpyDeviceToHost);
    printf("integer conversion vs cvt.rn.f16x2.e4m3x2 / 256 over all non-NaN code pairs: %u mismatches\n", hb);
    const char *names[2] = {"cvt.rn.f16x2.e4m3x2 (F2FP)", "prmt + shl + and"};
    for (int m = 0; m < 2; m++) {
        crate<<<blocks, threads>>>(m, 12345u, cyc, sink);
        crate<<<blocks, threads>>>(m, 777u, cyc, sink);
        cudaMemcpy(h, cyc, blocks * sizeof(unsigned), cudaMemcpyDeviceToHost);
        double c = 0;
        for (int b = 0; b < blocks; b++) c += h[b];
        c /= blocks;
        /* 2 blocks of 256 threads per SM: 512 threads x ITERS x CH conversions (2 codes each) */
        printf("%-28s %.1f cycles per block loop, %.1f code pairs per SM clock\n", names[m], c, 512.0 * ITERS * CH / c);
    }
    return cudaDeviceSynchronize() != cudaSuccess;
}
