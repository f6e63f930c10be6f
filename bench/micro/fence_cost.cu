/* fence_cost.cu — does `fence.proxy.async.shared::cta` (SASS: MEMBAR.ALL.CTA + FENCE.VIEW.ASYNC.S) wait
 * for a thread's global loads still in flight? kernels/decode_fp8t.cu's producer issues the next
 * tile's ld.global.nc before the fence that publishes the current tile; if the fence waits for them,
 * the producer holds no load in flight across a tile boundary.
 * Each thread issues 8 x 16-byte ld.global.nc of a cold 1 GiB buffer (HBM latency), stores to shared
 * memory, then times (clock()) the fence in four variants:
 *   0: no fence              1: fence with the 8 loads in flight
 *   2: fence after the loads have been consumed (none in flight)
 *   3: fence.proxy.async.global-free variant: `fence.acq_rel.cta` (MEMBAR only) with the loads in flight
 * Build: nvcc -O3 -gencode arch=compute_90a,code=sm_90a bench/micro/fence_cost.cu -o build/fence_cost */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

__global__ void fcost(const uint4 *src, long long n16, int variant, unsigned *cyc, uint4 *sink) {
    __shared__ uint4 s[256];
    const long long i0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8 % (n16 - 8);
    uint4 x[8];
#pragma unroll
    for (int k = 0; k < 8; k++) asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(x[k].x), "=r"(x[k].y), "=r"(x[k].z), "=r"(x[k].w) : "l"(src + i0 + k));
    s[threadIdx.x] = make_uint4(threadIdx.x, 1, 2, 3);
    if (variant == 2) { /* consume the loads first */
        uint4 a = x[0];
#pragma unroll
        for (int k = 1; k < 8; k++) a.x ^= x[k].x, a.y ^= x[k].y;
        s[(threadIdx.x + 1) & 255] = a;
    }
    const unsigned t0 = (unsigned)clock();
    if (variant == 1 || variant == 2) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    if (variant == 3) asm volatile("fence.acq_rel.cta;" ::: "memory");
    const unsigned t1 = (unsigned)clock();
    uint4 a = x[0];
#pragma unroll
    for (int k = 1; k < 8; k++) a.x ^= x[k].x, a.y ^= x[k].y;
    const unsigned t2 = (unsigned)clock();
    a.z ^= s[threadIdx.x ^ 1].x;
    sink[(long long)blockIdx.x * blockDim.x + threadIdx.x] = a;
    if (threadIdx.x == 0) {
        cyc[2 * blockIdx.x] = t1 - t0;
        cyc[2 * blockIdx.x + 1] = t2 - t0;
    }
}

int main(void) {
    const long long bytes = 1ll << 30, n16 = bytes / 16;
    uint4 *src, *sink;
    unsigned *cyc, h[2 * 1024];
    const int blocks = 1024, threads = 256;
    if (cudaMalloc(&src, bytes) != cudaSuccess) return 1;
    cudaMemset(src, 1, bytes);
    cudaMalloc(&sink, (size_t)blocks * threads * 16);
    cudaMalloc(&cyc, 2 * blocks * sizeof(unsigned));
    const char *names[4] = {"no fence", "fence.proxy.async, 8 loads in flight", "fence.proxy.async, no load in flight",
                            "fence.acq_rel.cta, 8 loads in flight"};
    for (int v = 0; v < 4; v++) {
        double f = 0, c = 0;
        for (int rep = 0; rep < 5; rep++) {
            cudaMemset(src, rep, bytes); /* evicts the buffer from L2 (50 MB) */
            fcost<<<blocks, threads>>>(src, n16, v, cyc, sink);
            cudaMemcpy(h, cyc, sizeof h, cudaMemcpyDeviceToHost);
            for (int b = 0; b < blocks; b++) f += h[2 * b], c += h[2 * b + 1];
        }
        printf("%-40s fence %8.1f cycles, fence + first use of the loads %8.1f cycles\n", names[v], f / (5.0 * blocks),
               c / (5.0 * blocks));
    }
    return cudaDeviceSynchronize() != cudaSuccess;
}
