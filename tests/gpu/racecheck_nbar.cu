/* racecheck_nbar.cu — does compute-sanitizer's racecheck honour a named barrier that only some warps
 * of the block use (bar.sync 1, 256 in a block of 384 threads, as kernels/decode_fp8t.cu's consumer
 * warpgroups do while its producer warpgroup runs on)? Warps 4..7 write a shared buffer, bar.sync 1,
 * 256, warps 0..3 read it: a correct program in every variant below.
 *   variant 0: 256 threads (every warp takes part)
 *   variant 1: 384 threads, warps 8..11 exit at once
 *   variant 2: 384 threads, warps 8..11 sleep, then exit
 *   variant 3: 384 threads, warps 8..11 wait at a block-wide __syncthreads at the end (as decode_fp8t.cu)
 *   variant 4: as 3, with the barrier id and count in registers (barrier.sync %r, %r)
 * and three that add what kernels/decode_narrow32.cu and decode_fp8t.cu do besides (their end-of-request
 * merge is where racecheck reports RAW hazards across `bar.sync 1, 256`; eleventh session):
 *   variant 5: as 3, with setmaxnreg (warps 0..7 inc 232, warps 8..11 dec 40; sm_90a)
 *   variant 6: as 3, with per-warpgroup named barriers (barrier.sync 2 + wg, 128 and
 *              barrier.red.or.pred 2 + wg, 128) between the exchanges
 *   variant 7: 5 and 6 together
 * Build and run (device): nvcc -arch=sm_90a -o /tmp/rcn tests/gpu/racecheck_nbar.cu &&
 *   for v in 0 1 2 3 4 5 6 7; do compute-sanitizer --tool racecheck /tmp/rcn $v; done */
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

/* variants 5..7 (384 threads): the same exchange with the narrow kernels' other ingredients */
__global__ void __launch_bounds__(384, 1) k2(int *out, int variant) {
    __shared__ int buf[128];
    const int t = threadIdx.x, wg = t >> 7;
    const int regs = variant == 5 || variant == 7, wgbar = variant == 6 || variant == 7;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    if (regs) {
        if (t >= 256) asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        else asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
    }
#endif
    if (t < 256) {
        for (int rep = 0; rep < 4; rep++) {
            if (wgbar) { /* each warpgroup's own barriers, as in the tile loop */
                int pred = (t & 7) == rep, any;
                asm volatile("barrier.sync %0, %1;\n" ::"r"(2 + wg), "r"(128) : "memory");
                asm volatile("{\n.reg .pred p, q;\nsetp.ne.b32 p, %1, 0;\nbarrier.red.or.pred q, %2, %3, p;\nselp.b32 %0, 1, 0, q;\n}\n"
                             : "=r"(any) : "r"(pred), "r"(2 + wg), "r"(128) : "memory");
                if (!any) out[t & 127] += 1000; /* never: some thread of each warpgroup has pred */
            }
            if (t >= 128) buf[t - 128] = t + rep;
            asm volatile("bar.sync 1, 256;\n" ::: "memory");
            if (t < 128) out[t] += buf[t];
            asm volatile("bar.sync 1, 256;\n" ::: "memory");
        }
    }
    __syncthreads();
}

int main(int argc, char **argv) {
    const int variant = argc > 1 ? atoi(argv[1]) : 0;
    int *d, h[128];
    cudaMalloc(&d, sizeof h);
    cudaMemset(d, 0, sizeof h);
    if (variant >= 5) k2<<<1, 384>>>(d, variant);
    else k<<<1, variant == 0 ? 256 : 384>>>(d, variant);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int i = 0; i < 128; i++) ok &= h[i] == 4 * (i + 128) + 6;
    printf("variant %d: %s (%s)\n", variant, ok ? "values correct" : "WRONG VALUES", cudaGetErrorString(cudaGetLastError()));
    return ok ? 0 : 1;
}
