/* tma_latency.cu — how long does one SM wait for a 64-token K tile (64 x 576 bf16 = 72 KB, the dense
 * decode kernels' unit) loaded by TMA from a paged cache, when every SM streams tiles at once?
 * docs/performance.md (v4 in §2, §8, §9): every pipelined dense kernel so far lost to the refill latency of
 * its two 72 KB stages; this measures that latency directly, outside any kernel's other work.
 *
 * One CTA per SM (128 threads; thread 0 issues, all wait), a 4D tensor map {576, 64, 1, pages} over
 * a 1.2 GB cache (pages in a shuffled order, as the benchmark's block tables), SW128 boxes of 64
 * columns x R rows (R = 64: 9 boxes per tile, as v3; R = 32: 18 boxes, as the reverted 32-token
 * kernel). Each CTA walks T tiles keeping D of them in flight in D stages; after each completion it
 * spins W ns (the consumer's work per tile) before refilling the stage. Pair mode: CTAs 2k and 2k+1
 * read the same pages (the two M-block CTAs of h_q = 128), else every CTA its own.
 * Printed per configuration: the mean clock64 cycles from a tile's issue to its completion seen by
 * the waiting thread (latency), and the kernel's time per tile (us). A third column repeats the
 * latency with the tensor map's L2 promotion off (256B is what src/gpu.cu encodes).
 * Build: make micro (build/tma_latency); run on an H100/H200. */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ptx.cuh"

#define TILE_BYTES (64 * 576 * 2)

__global__ void __launch_bounds__(128, 1) stream_tiles(const __grid_constant__ CUtensorMap tm, const int *order,
                                                        int npages, int T, int D, int R, int pair, long long spin_ns,
                                                        unsigned long long *lat) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *smem = smem_align1024(smem_raw);
    __shared__ __align__(8) uint64_t bars[4];
    const uint32_t st0 = smem_u32(smem), bar0 = smem_u32(bars);
    const int group = pair ? blockIdx.x / 2 : blockIdx.x;
    if (threadIdx.x == 0) {
        for (int i = 0; i < D; i++) mbar_init(bar0 + 8 * i, 1);
        mbar_fence_init();
    }
    __syncthreads();
    unsigned long long t_issue[4] = {0, 0, 0, 0}, sum = 0;
    const int nbox = 64 / R;
    for (int i = 0; i < T + D; i++) {
        if (i >= D) { /* tile i - D: wait, account, consume */
            const int j = i - D, s = j % D;
            mbar_wait(bar0 + 8 * s, (j / D) & 1);
            if (threadIdx.x == 0) sum += clock64() - t_issue[s];
            if (spin_ns > 0 && threadIdx.x == 0) {
                unsigned long long t0, t1;
                asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
                do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t1));
                while ((long long)(t1 - t0) < spin_ns);
            }
            __syncthreads(); /* the stage is free */
        }
        if (i < T && threadIdx.x == 0) {
            const int s = i % D;
            const int page = order[((long long)group * T + i) % npages];
            t_issue[s] = clock64();
            mbar_expect_tx(bar0 + 8 * s, TILE_BYTES);
            for (int k = 0; k < nbox; k++)
                for (int c = 0; c < 9; c++)
                    tma_load_4d(st0 + s * TILE_BYTES + c * 8192 + k * R * 128, &tm, bar0 + 8 * s, 64 * c, k * R, 0, page);
        }
    }
    if (threadIdx.x == 0) lat[blockIdx.x] = sum / T;
}

static PFN_cuTensorMapEncodeTiled_v12000 encode_fn(void) {
    void *f = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
        return NULL;
    return (PFN_cuTensorMapEncodeTiled_v12000)f;
}

int main(void) {
    const int npages = 16384, T = 400; /* 16384 pages x 72 KB = 1.2 GB (L2: 50-60 MB) */
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    void *cache;
    if (cudaMalloc(&cache, (size_t)npages * TILE_BYTES) != cudaSuccess) return 1;
    cudaMemset(cache, 0, (size_t)npages * TILE_BYTES);
    int *h_order = (int *)malloc(npages * sizeof(int)), *order;
    for (int i = 0; i < npages; i++) h_order[i] = i;
    srand(1);
    for (int i = npages - 1; i > 0; i--) {
        const int j = rand() % (i + 1), t = h_order[i];
        h_order[i] = h_order[j];
        h_order[j] = t;
    }
    cudaMalloc(&order, npages * sizeof(int));
    cudaMemcpy(order, h_order, npages * sizeof(int), cudaMemcpyHostToDevice);
    unsigned long long *lat, h_lat[1024];
    cudaMalloc(&lat, sms * sizeof(unsigned long long));
    PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
    if (!enc) return 2;
    const int smem = 3 * TILE_BYTES + 1024;
    cudaFuncSetAttribute(stream_tiles, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    printf("%d SMs, %d tiles of %d B per CTA; latency = mean clock64 cycles issue -> completion seen\n", sms, T, TILE_BYTES);
    printf("%-5s %-3s %-3s %-8s | %12s %12s | %12s %12s\n", "rows", "D", "pair", "spin_ns", "lat L2_256B", "us/tile", "lat no-promo",
           "us/tile");
    const int rows[2] = {64, 32}, depths[3] = {1, 2, 3};
    const long long spins[3] = {0, 1000, 1500};
    for (int ri = 0; ri < 2; ri++)
        for (int di = 0; di < 3; di++)
            for (int pair = 0; pair < 2; pair++)
                for (int si = 0; si < 3; si++) {
                    if (si > 0 && depths[di] == 1) continue;
                    double lat_r[2], us_r[2];
                    for (int promo = 0; promo < 2; promo++) {
                        CUtensorMap tm;
                        const cuuint64_t gdim[4] = {576, 64, 1, (cuuint64_t)npages};
                        const cuuint64_t gstr[3] = {1152, 1152 * 64, 1152 * 64};
                        const cuuint32_t box[4] = {64, (cuuint32_t)rows[ri], 1, 1}, es[4] = {1, 1, 1, 1};
                        if (enc(&tm, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, cache, gdim, gstr, box, es,
                                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                promo ? CU_TENSOR_MAP_L2_PROMOTION_NONE : CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
                            return 3;
                        stream_tiles<<<sms, 128, smem>>>(tm, order, npages, 20, depths[di], rows[ri], pair, spins[si], lat);
                        cudaEventRecord(e0);
                        stream_tiles<<<sms, 128, smem>>>(tm, order, npages, T, depths[di], rows[ri], pair, spins[si], lat);
                        cudaEventRecord(e1);
                        if (cudaEventSynchronize(e1) != cudaSuccess) {
                            printf("error: %s\n", cudaGetErrorString(cudaGetLastError()));
                            return 4;
                        }
                        float ms = 0.f;
                        cudaEventElapsedTime(&ms, e0, e1);
                        cudaMemcpy(h_lat, lat, sms * sizeof(unsigned long long), cudaMemcpyDeviceToHost);
                        double m = 0;
                        for (int i = 0; i < sms; i++) m += (double)h_lat[i];
                        lat_r[promo] = m / sms;
                        us_r[promo] = 1000.0 * ms / T;
                    }
                    printf("%-5d %-3d %-3d %-8lld | %12.0f %12.3f | %12.0f %12.3f\n", rows[ri], depths[di], pair, spins[si],
                           lat_r[0], us_r[0], lat_r[1], us_r[1]);
                }
    return 0;
}
