#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>
typedef struct { uint8_t palette, start; uint8_t r[14]; uint16_t colsb[16]; uint8_t rows[16]; } cfg_t;
#define NCT 32
#define ACC_LD 528
static uint32_t vp[8][NCT][16][16] __attribute__((aligned(64)));      /* up to 256 keys */
static uint32_t pa[8][2][8][16][16] __attribute__((aligned(64)));     /* 8 row tiles, hi/lo, kq */
static float acc[128][ACC_LD] __attribute__((aligned(64)));
__attribute__((noinline)) void pv(int nrt, int nkq)
{
    for (int v = 0; v < nrt; v += 2) {
        float *o0 = acc[16 * v], *o1 = acc[16 * v + 16];
        for (int ct = 0; ct < NCT; ct += 2) {
            _tile_loadd(0, o0 + 16 * ct, ACC_LD * 4); _tile_loadd(1, o0 + 16 * ct + 16, ACC_LD * 4);
            _tile_loadd(2, o1 + 16 * ct, ACC_LD * 4); _tile_loadd(3, o1 + 16 * ct + 16, ACC_LD * 4);
            for (int kq = 0; kq < nkq; kq++) {
                _tile_loadd(6, vp[kq][ct], 64); _tile_loadd(7, vp[kq][ct + 1], 64);
                for (int part = 0; part < 2; part++) {
                    _tile_loadd(4, pa[v][part][kq], 64); _tile_loadd(5, pa[v + 1][part][kq], 64);
                    _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
                }
            }
            _tile_stored(0, o0 + 16 * ct, ACC_LD * 4); _tile_stored(1, o0 + 16 * ct + 16, ACC_LD * 4);
            _tile_stored(2, o1 + 16 * ct, ACC_LD * 4); _tile_stored(3, o1 + 16 * ct + 16, ACC_LD * 4);
        }
    }
}
int main(){
 if (syscall(SYS_arch_prctl, 0x1023, 18)) return 0;
memset(vp,0x11,sizeof vp); memset(pa,0x22,sizeof pa); for(int r=0;r<128;r++) for(int x=0;x<ACC_LD;x++) acc[r][x]=0.0f;
 cfg_t c; memset(&c,0,sizeof c); c.palette=1; for(int t=0;t<8;t++){c.colsb[t]=64;c.rows[t]=16;} _tile_loadconfig(&c);
 int nrts[]={2,4,8};
 for (int i=0;i<3;i++) for (int nkq=2; nkq<=8; nkq*=2) {
   int nrt=nrts[i]; pv(nrt,nkq);
   unsigned long long best=~0ull;
   for(int r=0;r<7;r++){ unsigned long long t0=__rdtsc(); for(int k=0;k<200;k++) pv(nrt,nkq); unsigned long long t=(__rdtsc()-t0)/200; if(t<best)best=t; }
   int ndp = (nrt/2)*16*nkq*2*4;
   printf("nrt=%d keys=%3d: %6llu TSC per call, %.1f per dp, %.1f per key\n", nrt, nkq*32, best, (double)best/ndp, (double)best/(nkq*32));
 }
 _tile_release(); }
