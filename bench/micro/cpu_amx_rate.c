/* cpu_amx_rate.c — what an AMX TDPBF16PS (16x16x32 bf16 -> fp32, 16384 flops) costs on this CPU
 * in the shapes the AMX CPU path (src/cpu_amx.c, steps in src/cpu_tiles.h) uses: four C tiles
 * (2 x 2 blocks), operands in tile registers; four 1 KB operand loads per four dp from an L1, L2
 * or DRAM sized working set; the A operand at the cache's 1152-byte row stride; and the C tiles
 * stored and reloaded every N steps (P V's 64-key chunks do so every 4 steps). TSC ticks per dp.
 * Build and run: gcc -O2 -mamx-tile -mamx-bf16 -mavx512f -o /tmp/cpu_amx_rate
 * bench/micro/cpu_amx_rate.c && /tmp/cpu_amx_rate (Linux, x86-64 with AMX-BF16). Not part of
 * `make micro` (which builds the CUDA ones). */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

typedef struct {
    uint8_t palette, start;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;

static char *buf;
static float cbuf[4][256] __attribute__((aligned(64)));

__attribute__((noinline)) static void chains(long n, int k)
{
    if (k == 4)
        for (long i = 0; i < n; i++) {
            _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 5, 6); _tile_dpbf16ps(2, 4, 7); _tile_dpbf16ps(3, 5, 7);
        }
    else
        for (long i = 0; i < n; i++) _tile_dpbf16ps(0, 4, 6);
}

/* 2 x 2: four operand loads (1 KB each, 64-byte rows) then four dp; the loads walk `ws` bytes;
 * every `every` steps (0: never) the C tiles go to memory and back. */
__attribute__((noinline)) static void block(long n, long ws, long every)
{
    long off = 0;
    for (long i = 0; i < n; i++) {
        const char *p = buf + off;
        _tile_loadd(4, p, 64); _tile_loadd(5, p + 1024, 64); _tile_loadd(6, p + 2048, 64); _tile_loadd(7, p + 3072, 64);
        _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 5, 6); _tile_dpbf16ps(2, 4, 7); _tile_dpbf16ps(3, 5, 7);
        off += 4096;
        if (off >= ws) off = 0;
        if (every && (i + 1) % every == 0) {
            _tile_stored(0, cbuf[0], 64); _tile_stored(1, cbuf[1], 64); _tile_stored(2, cbuf[2], 64); _tile_stored(3, cbuf[3], 64);
            _tile_loadd(0, cbuf[0], 64); _tile_loadd(1, cbuf[1], 64); _tile_loadd(2, cbuf[2], 64); _tile_loadd(3, cbuf[3], 64);
        }
    }
}

/* 2 x 2 with the two A tiles read at a 1152-byte row stride (K rows straight from a page) */
__attribute__((noinline)) static void block_k(long n)
{
    long off = 0;
    for (long i = 0; i < n; i++) {
        const char *p = buf + off;
        _tile_loadd(4, p, 1152); _tile_loadd(5, p + 16 * 1152, 1152);
        _tile_loadd(6, p + 32 * 1152, 64); _tile_loadd(7, p + 32 * 1152 + 1024, 64);
        _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 5, 6); _tile_dpbf16ps(2, 4, 7); _tile_dpbf16ps(3, 5, 7);
        off += 64;
        if (off >= 1152) off = 0;
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define RUN(label, call, ndp)                                                                    \
    do {                                                                                         \
        const unsigned long long t0 = __rdtsc();                                                 \
        const double w0 = now();                                                                 \
        call;                                                                                    \
        const double w1 = now();                                                                 \
        const unsigned long long t1 = __rdtsc();                                                 \
        printf("%-40s %6.1f TSC ticks per dp  %5.2f TFLOPS\n", label,                            \
               (double)(t1 - t0) / ((double)n * (ndp)), (double)n * (ndp) * 16384 / (w1 - w0) * 1e-12); \
    } while (0)

int main(void)
{
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) {
        puts("cpu_amx_rate: the OS grants no AMX tile state here");
        return 0;
    }
    tile_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
    const size_t big = (size_t)64 << 20;
    if (!(buf = aligned_alloc(4096, big))) return 1;
    memset(buf, 0, big); /* bf16 zeros: the dp's speed does not depend on the values */
    _tile_loadd(4, buf, 64); _tile_loadd(5, buf, 64); _tile_loadd(6, buf, 64); _tile_loadd(7, buf, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    const long n = 2000000;
    RUN("4 C tiles, operands in registers", chains(n, 4), 4);
    RUN("1 C tile (one dependent chain)", chains(n, 1), 1);
    const long wss[] = {16 << 10, 256 << 10, 1 << 20, 32 << 20};
    const char *wsn[] = {"16 KB (L1)", "256 KB (L2)", "1 MB (L2)", "32 MB (DRAM)"};
    for (int i = 0; i < 4; i++) {
        char label[64];
        snprintf(label, sizeof label, "2x2 + 4 loads per step, %s", wsn[i]);
        RUN(label, block(n, wss[i], 0), 4);
    }
    RUN("2x2, A tiles at a 1152-byte stride (L1)", block_k(n), 4);
    const long every[] = {2, 4, 18, 64};
    for (int i = 0; i < 4; i++) {
        char label[64];
        snprintf(label, sizeof label, "2x2 (L1), C stored + reloaded every %ld", every[i]);
        RUN(label, block(n, 16 << 10, every[i]), 4);
    }
    _tile_release();
    free(buf);
    return 0;
}
