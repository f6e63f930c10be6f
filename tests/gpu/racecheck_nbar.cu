/* racecheck_nbar.cu — does compute-sanitizer's racecheck honour a named barrier that only some warps
 * of the block use (bar.sync 1, 256 in a block of 384 threads, as kernels/decode_fp8t.cu's consumer
 * warpgroups do while its producer warpgroup runs on)? Warps 4..7 write a shared buffer, bar.sync 1,
 * 256, warps 0..3 read it: a correct program in every variant below.
 *   variant 0: 256 threads (every warp takes part)
 *   variant 1: 384 threads, warps 8..11 exit at once
 *   variant 2: 384 threads, warps 8..11 sleep, then exit
 *   variant 3: 384 threads, warps 8..11 wait at a block-wide __syncthreads at the end (as decode_fp8t.cu)
 *   variant 4: as 3, with the barrier id and count in registers (barrier.sync %r, %r)
 * Build and run (device): nvcc -arch=sm_90a -o /tmp/rcn tests/gpu/racecheck_nbar.cu &&
 *   for v in 0 1 2 3 4; do compute-sanitizer --tool racecheck /tmp/rcn $v; done */
#include <stdio.h>
#include <stdlib.h>

__global__ void k(int *out, int variant) {
    __shared__ int buf[128];
    const int t = threadIdx.x;
    if (t >= 256) {
        if (variant == 2) for (int i = 0; i < 1000; i++) __nanosleep(1000);
        if (variant >= 3) __syncthreads();
        return;
    }
    for (int rep = 0; rep < 4; rep++) {
        if (t >= 128) buf[t - 128] = t + rep;
        if (variant == 4) asm volatile("barrier.sync %0, %1;\n" ::"r"(variant - 3), "r"(256) : "memory");
        else asm volatile("bar.sync 1, 256;\n" ::: "memory");
        if (t < 128) out[t] += buf[t];
        if (variant == 4) asm volatile("barrier.sync %0, %1;\n" ::"r"(variant - 3), "r"(256) : "memory");
        else asm volatile("bar.sync 1, 256;\n" ::: "memory");
    }
    if (variant >= 3) __syncthreads();
}

int main(int argc, char **argv) {
    const int variant = argc > 1 ? atoi(argv[1]) : 0;
    int *d, h[128];
    cudaMalloc(&d, sizeof h);
    cudaMemset(d, 0, sizeof h);
    k<<<1, variant == 0 ? 256 : 384>>>(d, variant);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int i = 0; i < 128; i++) ok &= h[i] == 4 * (i + 128) + 6;
    printf("variant %d: %s (%s)\n", variant, ok ? "values correct" : "WRONG VALUES", cudaGetErrorString(cudaGetLastError()));
    return ok ? 0 : 1;
}
