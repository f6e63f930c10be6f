/* cpu_fma_blocks.c — the two products of the AVX-512 FMA CPU build (src/cpu_avx512.c) timed
 * alone, on one warm chunk of 64 keys, one thread: the library's S^T and P V steps (ws_st,
 * ws_pv of src/cpu_tiles.h, included here) against the blocking they replaced (S^T 4 keys x 4 row
 * tiles, P V 4 rows x 4 column tiles with rows outside), for items of 1, 2, 4 and 8 row tiles.
 * Build and run from the repository root, after `make MLA_CUDA=0 BUILD=build-cpu`:
 *   gcc -O2 -std=gnu11 -Iinclude -Isrc -Iref -pthread bench/micro/cpu_fma_blocks.c \
 *       build-cpu/libmla.a -lm -o /tmp/cpu_fma_blocks && /tmp/cpu_fma_blocks
 * x86-64 with AVX-512 F. Prints the best of 7 rounds of 200 calls, and GFLOPS (compare with
 * bench/micro/cpu_dp_rate.c's one-core zmm FMA peak). Not part of `make micro`. */
#define MLA_TILES 3
#include "cpu_tiles.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if !MLA_AMX_BUILD || !defined(__x86_64__)
int main(void)
{
    puts("cpu_fma_blocks: needs x86-64 Linux and gcc >= 11 or clang >= 12");
    return 0;
}
#else
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

__attribute__((noinline)) TGT static void st_lib(amx_ws *w, int nk) { ws_st(w, nk); }
__attribute__((noinline)) TGT static void pv_lib(amx_ws *w, int nk) { ws_pv(w, nk); }
/* the blocking before 2026-12-05 (a lone row tile ran 16 keys x 1 then; 8 x 1 here) */
__attribute__((noinline)) TGT static void st_4x4(amx_ws *w, int nk)
{
    int v = 0;
    for (; v + 4 <= w->nrt; v += 4)
        for (int k = 0; k < nk; k += 4) st_block(w, k, v, 4, 4);
    for (; v + 2 <= w->nrt; v += 2)
        for (int k = 0; k < nk; k += 8) st_block(w, k, v, 8, 2);
    for (; v < w->nrt; v++)
        for (int k = 0; k < nk; k += 8) st_block(w, k, v, 8, 1);
}
__attribute__((noinline)) TGT static void pv_4x4(amx_ws *w, int nk)
{
    for (int r = 0; r < 16 * w->nrt; r += 4)
        for (int ct = 0; ct < NCT; ct += 4) pv_block(w, r, ct, nk, 4, 4);
}

typedef void (*step_fn)(amx_ws *, int);
static double best_us(step_fn f, amx_ws *w)
{
    f(w, KC);
    double best = 1e30;
    for (int round = 0; round < 7; round++) {
        const double t0 = now();
        for (int i = 0; i < 200; i++) f(w, KC);
        const double t = (now() - t0) / 200;
        if (t < best) best = t;
    }
    return best * 1e6;
}

int main(void)
{
    if (!__builtin_cpu_supports("avx512f")) {
        puts("cpu_fma_blocks: this CPU has no AVX-512 F");
        return 0;
    }
    amx_ws *w = aligned_alloc(64, sizeof(amx_ws));
    if (!w) return 1;
    memset(w, 0, sizeof *w);
    for (int r = 0; r < RTMAX; r++)
        for (int d = 0; d < DMAX; d++)
            for (int l = 0; l < 16; l++) w->q32[r][d][l] = 0.001f * (float)((r + d + l) % 7);
    for (int k = 0; k < KC; k++)
        for (int d = 0; d < DMAX; d++) w->k32[k][d] = 0.002f * (float)((3 * k + d) % 5);
    for (int k = 0; k < KC; k++)
        for (int r = 0; r < RBMAX; r++) w->sbuf[k][r] = 0.01f;
    w->nkk = DMAX / 32;
    printf("one 64-key chunk, d_qk 576, d_v 512, one thread; us per call (GFLOPS)\n");
    printf("%-5s %22s %22s %22s %22s\n", "tiles", "S^T 4x4 (before)", "S^T ws_st", "P V 4x4 rows out",
           "P V ws_pv");
    const int nrts[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        w->nrt = nrts[i];
        const double rows = 16.0 * w->nrt, fst = rows * KC * DMAX * 2, fpv = rows * KC * DV * 2;
        const double a = best_us(st_4x4, w), b = best_us(st_lib, w), c = best_us(pv_4x4, w),
                     d = best_us(pv_lib, w);
        printf("%-5d %12.2f (%6.1f) %12.2f (%6.1f) %12.2f (%6.1f) %12.2f (%6.1f)\n", w->nrt, a,
               fst / a * 1e-3, b, fst / b * 1e-3, c, fpv / c * 1e-3, d, fpv / d * 1e-3);
    }
    free(w);
    return 0;
}
#endif
