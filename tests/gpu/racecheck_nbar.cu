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
 * (twelfth session: 0-7 all report 0 hazards on the H200) and two that add the narrow kernels' async
 * ingredients:
 *   variant 8: as 3, with warp 8 feeding a shared stage by cp.async.bulk (global -> shared, mbarrier
 *              complete_tx) that warps 0..7 wait for (full) and release (empty) every round
 *   variant 9: as 3, with a wgmma (SS m64n16k16, warps 0..3 and 4..7 each) reading the exchange buffer
 *              as its A and B operands before each exchange (as the merge reuses the Q^T tile)
 * and (thirteenth session) the two-way hand-off of kernels/decode_sm90.cu's tma_body, where racecheck
 * reports write-after-read hazards on the P buffer (256 threads; warps 0..3 write, warps 4..7 read):
 *   variant 10: writer: [bar.sync 2 (P read), from the second round on] write; bar.arrive 1 (P ready);
 *               reader: bar.sync 1; read; bar.arrive 2 (all but the last round) -- the tma_body pattern
 *   variant 11: the same with bar.sync on every side (both warpgroups wait at both barriers)
 * (variants 12-14, sm90_epilogue's staged store: see k5 below)
 * Build and run (device): nvcc -arch=sm_90a -Ikernels -o /tmp/rcn tests/gpu/racecheck_nbar.cu &&
 *   for v in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do compute-sanitizer --tool racecheck /tmp/rcn $v; done */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ptx.cuh"
#include "sm90.cuh"
#include "wgmma_ops.cuh"

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

/* variants 8 and 9 (384 threads) */
__global__ void __launch_bounds__(384, 1) k3(int *out, const int *gsrc, int variant) {
    __shared__ __align__(1024) int buf[2048]; /* the exchange buffer (8 KB: also a 64-row SW128 wgmma tile) */
    __shared__ __align__(128) int stage[256];
    __shared__ __align__(8) uint64_t bars[2]; /* full, empty */
    const int t = threadIdx.x;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    const uint32_t full = smem_u32(&bars[0]), empty = smem_u32(&bars[1]);
    if (t == 0) {
        mbar_init(full, 1);
        mbar_init(empty, 256);
        mbar_fence_init();
    }
    for (int i = t; i < 2048; i += 384) buf[i] = 0;
    __syncthreads();
    if (t >= 256) {
        if (variant == 8 && t == 256)
            for (int rep = 0; rep < 4; rep++) {
                if (rep > 0) mbar_wait(empty, (rep - 1) & 1);
                mbar_expect_tx(full, 1024);
                asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], 1024, [%2];\n" ::"r"(
                                 smem_u32(stage)),
                             "l"(gsrc + 256 * rep), "r"(full)
                             : "memory");
            }
        __syncthreads();
        return;
    }
    for (int rep = 0; rep < 4; rep++) {
        int extra = 0;
        if (variant == 8) {
            mbar_wait(full, rep & 1);
            extra = stage[t] - stage[t]; /* read the stage (0) */
            mbar_arrive(empty);
        }
        if (variant == 9) { /* each warpgroup reads buf through the async proxy */
            float d[8];
            for (int i = 0; i < 8; i++) d[i] = 0.f;
            fence_proxy_async();
            asm volatile("bar.sync 1, 256;\n" ::: "memory");
            wg_fence();
            wgmma_ss_m64n16_tb0_f16(d, desc_sw128(smem_u32(buf), 16, 1024), desc_sw128(smem_u32(buf), 16, 1024), 0);
            wg_commit();
            wg_wait0();
            extra = d[0] != d[0]; /* 0 (finite inputs) */
            asm volatile("bar.sync 1, 256;\n" ::: "memory");
        }
        if (t >= 128) buf[t - 128] = t + rep + extra;
        asm volatile("bar.sync 1, 256;\n" ::: "memory");
        if (t < 128) out[t] += buf[t];
        asm volatile("bar.sync 1, 256;\n" ::: "memory");
    }
    __syncthreads();
#endif
}

/* variants 10 and 11 (256 threads): P ready (barrier 1, writer -> reader) and P read (barrier 2,
 * reader -> writer), four rounds through one buffer */
__global__ void k4(int *out, int variant) {
    __shared__ int buf[128];
    const int t = threadIdx.x;
    for (int rep = 0; rep < 4; rep++) {
        if (t < 128) { /* writer */
            if (rep > 0) asm volatile("bar.sync 2, 256;\n" ::: "memory");
            buf[t] = t + 128 + rep;
            if (variant == 11) asm volatile("bar.sync 1, 256;\n" ::: "memory");
            else asm volatile("bar.arrive 1, 256;\n" ::: "memory");
        } else { /* reader */
            asm volatile("bar.sync 1, 256;\n" ::: "memory");
            out[t - 128] += buf[t - 128];
            if (rep + 1 < 4) {
                if (variant == 11) asm volatile("bar.sync 2, 256;\n" ::: "memory");
                else asm volatile("bar.arrive 2, 256;\n" ::: "memory");
            }
        }
    }
    __syncthreads();
}

/* variants 12..14 (256 threads; fourteenth session): sm90_epilogue's staged store (each thread writes
 * 8-byte fragments of two rows, CTA barrier, every thread reads 16-byte pieces of whole rows, CTA
 * barrier), run for three requests in a row, where racecheck reported read-after-write... hazards
 * between the piece reads and the fragment writes in the decode kernels:
 *   variant 12: each request first runs three tiles of v2's P hand-off (a CTA barrier at the top of
 *               the tile, warpgroup 0 writes P and bar.arrive 1, warpgroup 1 bar.sync 1 and reads P)
 *   variant 13: the same with bar.sync 1 on both sides
 *   variant 14: the staged store alone */
#define K5_ROWS 16
#define K5_PITCH 2080
__global__ void k5(int *out, int variant) {
    __shared__ __align__(16) unsigned char stage[K5_ROWS * K5_PITCH];
    __shared__ int pbuf[128];
    const int t = threadIdx.x, wg = t >> 7, warp = t >> 5, lane = t & 31;
    const uint32_t us = smem_u32(stage);
    int acc = 0;
    for (int req = 0; req < 3; req++) {
        if (variant != 14)
            for (int tile = 0; tile < 3; tile++) {
                __syncthreads();
                if (wg == 0) {
                    pbuf[t] = req + tile;
                    if (variant == 13) asm volatile("bar.sync 1, 256;\n" ::: "memory");
                    else asm volatile("bar.arrive 1, 256;\n" ::: "memory");
                } else {
                    asm volatile("bar.sync 1, 256;\n" ::: "memory");
                    acc += pbuf[t - 128] - (req + tile); /* 0 */
                }
            }
        __syncthreads();
        for (int h = 0; h < 2; h++) {
            const int row = (lane >> 2) + 8 * h;
            for (int q = 0; q < 8; q++) {
                const int col = 64 * warp + 8 * q + 2 * (lane & 3);
                asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(us + row * K5_PITCH + col * 4), "f"((float)req),
                             "f"((float)req)
                             : "memory");
            }
        }
        __syncthreads();
        for (int idx = t; idx < K5_ROWS * 128; idx += 256) {
            const int row = idx >> 7, c = idx & 127;
            float4 v;
            asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
                         : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                         : "r"(us + row * K5_PITCH + c * 16)
                         : "memory");
            acc += (int)(v.x + v.y + v.z + v.w) - 4 * req; /* 0 */
        }
        __syncthreads();
    }
    if (t >= 128) out[t - 128] = 4 * t + 6 + acc; /* the value main() expects when acc == 0 */
}

int main(int argc, char **argv) {
    const int variant = argc > 1 ? atoi(argv[1]) : 0;
    int *d, h[128];
    cudaMalloc(&d, sizeof h);
    cudaMemset(d, 0, sizeof h);
    int *g;
    cudaMalloc(&g, 4096);
    cudaMemset(g, 0, 4096);
    if (variant >= 12) k5<<<1, 256>>>(d, variant);
    else if (variant >= 10) k4<<<1, 256>>>(d, variant);
    else if (variant >= 8) k3<<<1, 384>>>(d, g, variant);
    else if (variant >= 5) k2<<<1, 384>>>(d, variant);
    else k<<<1, variant == 0 ? 256 : 384>>>(d, variant);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int i = 0; i < 128; i++) ok &= h[i] == 4 * (i + 128) + 6;
    printf("variant %d: %s (%s)\n", variant, ok ? "values correct" : "WRONG VALUES", cudaGetErrorString(cudaGetLastError()));
    return ok ? 0 : 1;
}
