/* sm90.cuh — the Hopper (sm_90a) building blocks shared by the wgmma kernels (kernels/decode_sm90.cu,
 * kernels/sparse_sm90.cu): wgmma descriptors and fences, proxy fences, named-barrier arrive,
 * register pins, the SW128 cp.async row copy, 16-byte non-coherent loads and st.shared.v4.
 * Everything is defined only in the sm_90a compilation pass (MLA_HAVE_SM90A); the kernels' other
 * passes (compute_80) have empty bodies and are never launched (src/gpu.cu checks ptxVersion). */
#ifndef MLA_KERNELS_SM90_CUH
#define MLA_KERNELS_SM90_CUH

#include <stdint.h>
#include "ptx.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MLA_HAVE_SM90A 1
#else
#define MLA_HAVE_SM90A 0
#endif

#if MLA_HAVE_SM90A
static __device__ __forceinline__ uint64_t desc_sw128(uint32_t a, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}
/* the same descriptor for shared address a + off, built from a's: off a multiple of 16 and (a & 0x3FFFF)
 * + off below 256 KB (a CTA's shared memory is), so the 14-bit address field takes off >> 4 without a
 * carry and only the low word moves: with a loop-invariant a, one add per wgmma operand, where
 * desc_sw128(a + off) repeats its mask, shift and merge (four dependent uniform instructions). The
 * mask of a stays: cd1809d dropped it and the 2-CTA (cluster) sparse decode failed 86 cases on the
 * H100, every other kernel of the sparse suite passing; desc_sw128 has always masked. */
static __device__ __forceinline__ uint64_t desc_sw128_at(uint32_t a, uint32_t off, uint32_t lbo, uint32_t sbo) {
    const uint32_t lo = (((a & 0x3FFFF) >> 4) | (((lbo & 0x3FFFF) >> 4) << 16)) + (off >> 4);
    const uint32_t hi = ((sbo & 0x3FFFF) >> 4) | (1u << 30);
    return ((uint64_t)hi << 32) | lo;
}
static __device__ __forceinline__ void wg_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_commit(void) { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_wait0(void) { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_wait1(void) { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
static __device__ __forceinline__ void fence_proxy_async(void) {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
static __device__ __forceinline__ void bar_arrive(int id, int n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* Named barriers reached from different instructions by different warps (e.g. one inlined copy of a
 * function per warpgroup): the non-.aligned forms. bar.sync / bar.arrive are barrier.*.aligned,
 * which requires every participating thread to execute the same barrier instruction. */
static __device__ __forceinline__ void nbar_sync(int id, int n) {
    asm volatile("barrier.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
static __device__ __forceinline__ void nbar_arrive(int id, int n) {
    asm volatile("barrier.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* register reallocation between warpgroups (setmaxnreg; n an integer literal or a macro for one) */
#define MLA_STR_(x) #x
#define MLA_STR(x) MLA_STR_(x)
#define SETMAXNREG_INC(n) asm volatile("setmaxnreg.inc.sync.aligned.u32 " MLA_STR(n) ";\n" ::: "memory")
#define SETMAXNREG_DEC(n) asm volatile("setmaxnreg.dec.sync.aligned.u32 " MLA_STR(n) ";\n" ::: "memory")
/* named barrier of n threads that also returns whether any of them passed pred != 0 */
static __device__ __forceinline__ int nbar_red_or(int id, int n, int pred) {
    int r;
    asm volatile("{\n.reg .pred p, q;\nsetp.ne.b32 p, %1, 0;\nbarrier.red.or.pred q, %2, %3, p;\nselp.b32 %0, 1, 0, q;\n}\n"
                 : "=r"(r)
                 : "r"(pred), "r"(id), "r"(n)
                 : "memory");
    return r;
}
/* keeps the compiler from moving accumulator accesses across wgmma fence/wait */
static __device__ __forceinline__ void pin32(float *a) {
#pragma unroll
    for (int i = 0; i < 32; i++) asm volatile("" : "+f"(a[i])::"memory");
}
static __device__ __forceinline__ void pin128(float *a) {
#pragma unroll
    for (int i = 0; i < 128; i++) asm volatile("" : "+f"(a[i])::"memory");
}

/* cp.async of one 64 x d row (chunks c = sub + 4i, 16 B each) into a SW128 tile; valid == 0
 * zero-fills the row (src must still be a global address; nothing is read). */
static __device__ __forceinline__ void sw128_copy_row(uint32_t tile, int row, int sub, const char *src, int valid,
                                                      const int NCH) {
    const int x = sub ^ (row & 7);
    const uint32_t d0 = tile + row * 128 + 16 * x, d1 = tile + row * 128 + 16 * (x ^ 4);
    const int nb = valid ? 16 : 0;
    const char *s = src + (valid ? 16 * sub : 0);
    const int step = valid ? 64 : 0;
#pragma unroll
    for (int i = 0; i < NCH / 4; i++) cp_async16((i & 1 ? d1 : d0) + 8192 * (i >> 1), s + i * step, nb);
}

/* Thread-block clusters: this CTA's rank, the peer's address of a local shared address (mapa),
 * the whole-cluster barrier, an mbarrier arrival on a peer's barrier, and a bulk copy from local
 * shared memory into a peer's, completing `bytes` on the peer's mbarrier (all cluster addresses
 * from cl_mapa). */
static __device__ __forceinline__ uint32_t cl_rank(void) {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
static __device__ __forceinline__ uint32_t cl_mapa(uint32_t a, uint32_t rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(rank));
    return r;
}
static __device__ __forceinline__ void cl_sync(void) {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
/* (the default .release.cta semantics, as CUTLASS's cluster barrier arrive: .release.cluster compiles
 * to a MEMBAR.GPU per arrival, 0cfd0ac's ncu run) */
static __device__ __forceinline__ void cl_mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* one of `bar`'s expected arrivals, made when every cp.async this thread issued so far has landed */
static __device__ __forceinline__ void cp_async_mbar_arrive_noinc(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
static __device__ __forceinline__ void cl_bulk_copy(uint32_t dst, uint32_t src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "r"(src), "r"(bytes), "r"(bar)
                 : "memory");
}

static __device__ __forceinline__ uint4 f8_ldg16(const char *src) {
    uint4 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(src));
    return v;
}
static __device__ __forceinline__ void sts128(uint32_t a, uint4 v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(a), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}
#endif /* MLA_HAVE_SM90A */
#endif
