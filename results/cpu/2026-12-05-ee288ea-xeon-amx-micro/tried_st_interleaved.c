/* cpu_amx_steps.c — the steps of the AMX CPU path's chunk (src/cpu_tiles.h, MLA_TILES 1, included
 * here) timed alone on one warm 64-key chunk, one thread: V re-laid into tiles (ws_kv), S^T
 * (ws_st), the softmax with P's hi / lo tiles (ws_softmax for every row tile), P V (ws_pv) and the
 * whole chunk (ws_chunk), for items of 1, 2, 4 and 8 row tiles; TSC ticks per tile dp for the two
 * products (compare bench/micro/cpu_amx_rate.c). Build and run from the repository root, after
 * `make MLA_CUDA=0 BUILD=build-cpu`:
 *   gcc -O2 -std=gnu11 -Iinclude -Isrc -Iref -pthread bench/micro/cpu_amx_steps.c \
 *       build-cpu/libmla.a -lm -o /tmp/cpu_amx_steps && /tmp/cpu_amx_steps
 * Linux, x86-64 with AMX-BF16. Not part of `make micro`. */
#define MLA_TILES 1
#include "cpu_tiles.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if !MLA_AMX_BUILD || !defined(__x86_64__)
int main(void)
{
    puts("cpu_amx_steps: needs x86-64 Linux and gcc >= 11 or clang >= 12");
    return 0;
}
#else
#include <x86intrin.h>

__attribute__((noinline)) TGT static void st_step(amx_ws *w, int nk) { ws_st(w, nk); }
__attribute__((noinline)) TGT static void st_il(amx_ws *w, int nk)
{
    const chunk_src *src = &w->src;
    uint32_t (*qp)[DMAX / 32][16][16] = w->qp;
    float (*sbuf)[RBMAX] = w->sbuf;
    const int nrt = w->nrt, nkk = w->nkk;
    const int nkt = (nk + 15) / 16;
    for (int v = 0; v + 1 < nrt; v += 2)
        for (int kt = 0; kt < nkt; kt += 2) {
            const char *k0 = src->kt_base[kt], *k1 = src->kt_base[kt + 1];
            const int64_t s0 = src->kt_stride[kt], s1 = src->kt_stride[kt + 1];
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            _tile_loadd(4, k0, s0); _tile_loadd(5, k1, s1);
            _tile_loadd(6, qp[v][0], 64); _tile_loadd(7, qp[v + 1][0], 64);
            for (int kk = 0; kk < nkk; kk++) {
                const int nx = kk + 1 < nkk ? kk + 1 : kk;
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 5, 6);
                _tile_loadd(6, qp[v][nx], 64);
                _tile_dpbf16ps(2, 4, 7);
                _tile_loadd(4, k0 + 64 * nx, s0);
                _tile_dpbf16ps(3, 5, 7);
                _tile_loadd(5, k1 + 64 * nx, s1);
                _tile_loadd(7, qp[v + 1][nx], 64);
            }
            _tile_stored(0, &sbuf[16 * kt][16 * v], RBMAX * 4);
            _tile_stored(1, &sbuf[16 * kt + 16][16 * v], RBMAX * 4);
            _tile_stored(2, &sbuf[16 * kt][16 * v + 16], RBMAX * 4);
            _tile_stored(3, &sbuf[16 * kt + 16][16 * v + 16], RBMAX * 4);
        }
}
__attribute__((noinline)) TGT static void pv_step(amx_ws *w, int nk) { ws_pv(w, nk); }
__attribute__((noinline)) TGT static void kv_step(amx_ws *w, int nk) { ws_kv(w, nk, 0); }
__attribute__((noinline)) TGT static void sm_step(amx_ws *w, int nk)
{
    for (int v = 0; v < w->nrt; v++) ws_softmax(w, v, 0, nk, 0.1f);
}
__attribute__((noinline)) TGT static void chunk_step(amx_ws *w, int nk) { ws_chunk(w, 0, nk, 0, 0.1f); }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef void (*step_fn)(amx_ws *, int);
static void timeit(const char *name, step_fn f, amx_ws *w, int ndp)
{
    f(w, KC);
    double best = 1e30;
    unsigned long long best_t = 0;
    for (int round = 0; round < 7; round++) {
        const unsigned long long t0 = __rdtsc();
        const double w0 = now();
        for (int i = 0; i < 200; i++) f(w, KC);
        const double t = (now() - w0) / 200;
        const unsigned long long tt = (__rdtsc() - t0) / 200;
        if (t < best) { best = t; best_t = tt; }
    }
    printf("  %-9s %8.2f us %8llu TSC", name, best * 1e6, best_t);
    if (ndp) printf("  %5.1f per dp (%d dp)", (double)best_t / ndp, ndp);
    printf("\n");
}

/* the tile configuration is per thread: set it, time, release, in one target function */
TGT static int body(void)
{
    if (!TL_(available)()) {
        puts("cpu_amx_steps: this CPU or OS runs no AMX");
        return 0;
    }
    amx_ws *w = aligned_alloc(64, sizeof(amx_ws));
    static uint16_t rows[KC][DMAX] __attribute__((aligned(64)));
    if (!w) return 1;
    memset(w, 0, sizeof *w);
    for (int k = 0; k < KC; k++)
        for (int d = 0; d < DMAX; d++) rows[k][d] = (uint16_t)(0x3c00 + (k + d) % 7); /* small bf16 */
    const int nrts[] = {1, 2, 4, 8};
    printf("one 64-key chunk, d_qk 576, d_v 512, one thread (best of 7 x 200 calls)\n");
    for (int i = 0; i < 4; i++) {
        const int nrt = nrts[i];
        ws_begin(w, nrt, DMAX / 32);
        for (int r = 0; r < 16 * nrt; r++) {
            ws_q_row(w, r, rows[r % KC], DMAX);
            w->lim[r] = 1 << 20;
        }
        ws_src_kbuf(w);
        for (int k = 0; k < KC; k++) memcpy(w->kbuf[k], rows[k], sizeof rows[k]);
        /* dp per chunk: S^T pairs of row tiles x pairs of key tiles x 18 steps x 4 (a lone tile:
         * 4 key tiles x 18); P V pairs x 16 column pairs x 2 key halves x hi / lo x 4 (a lone
         * tile: 8 column quads x 2 x 8) */
        const int st_dp = (nrt / 2) * 2 * 18 * 4 + (nrt & 1) * 18 * 4;
        const int pv_dp = (nrt / 2) * 16 * 2 * 2 * 4 + (nrt & 1) * 8 * 2 * 8;
        printf("%d row tile(s):\n", nrt);
        timeit("V tiles", kv_step, w, 0);
        timeit("S^T", st_step, w, st_dp);
        if (nrt >= 2) timeit("S^T il", st_il, w, st_dp);
        if (nrt >= 2) timeit("S^T", st_step, w, st_dp);
        timeit("softmax", sm_step, w, 0);
        timeit("P V", pv_step, w, pv_dp);
        timeit("chunk", chunk_step, w, st_dp + pv_dp);
        ws_end();
    }
    free(w);
    return 0;
}

int main(void) { return body(); }
#endif
