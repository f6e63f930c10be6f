/* cpu_dp_rate.c — issue rate of VDPBF16PS zmm (AVX512-BF16) against VFMADD zmm (fp32) on this CPU:
 * 12 independent accumulators each, TSC ticks per instruction. The AVX512 CPU path
 * (src/cpu_avx512.c) does its two products with VDPBF16PS; this says how its speed on a given CPU
 * compares with an fp32 FMA design. Build and run: gcc -O2 -o cpu_dp_rate bench/micro/cpu_dp_rate.c
 * && ./cpu_dp_rate (x86-64 with AVX512-BF16). Not part of `make micro` (which builds the CUDA ones).
 * 2-core Sapphire Rapids VM (2026-12-05): dp 1.39-1.50, fma 0.35-0.37 ticks per instruction, i.e.
 * VDPBF16PS issues at 1/4 of the FMA's rate there; each does 32 multiply-adds (16 lanes x 2) against
 * the FMA's 16, so bf16 pairs run at half the fp32 FMA's multiply-add rate on that CPU. It also
 * times ymm FMAs (the AVX2 path, src/cpu_avx2.c) and prints both FMA rates as one core's GFLOPS. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>
__attribute__((target("avx512f,avx512bf16"),noinline)) float dp(int n){
  __m512 c[12]; for(int i=0;i<12;i++) c[i]=_mm512_set1_ps(i);
  __m512bh a=(__m512bh)_mm512_set1_epi32(0x3f803f80), b=(__m512bh)_mm512_set1_epi32(0x3c003c00);
  for(int k=0;k<n;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) c[i]=_mm512_dpbf16_ps(c[i],a,b);
    __asm__ volatile("" : "+v"(a));
  }
  float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(c[i]); return s;}
__attribute__((target("avx512f,fma"),noinline)) float fm(int n){
  __m512 c[12]; for(int i=0;i<12;i++) c[i]=_mm512_set1_ps(i);
  __m512 a=_mm512_set1_ps(1.0001f), b=_mm512_set1_ps(0.999f);
  for(int k=0;k<n;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) c[i]=_mm512_fmadd_ps(c[i],a,b);
    __asm__ volatile("" : "+v"(a));
  }
  float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(c[i]); return s;}
__attribute__((target("avx2,fma"),noinline)) float fm256(int n){
  __m256 c[12]; for(int i=0;i<12;i++) c[i]=_mm256_set1_ps(i);
  __m256 a=_mm256_set1_ps(1.0001f), b=_mm256_set1_ps(0.999f);
  for(int k=0;k<n;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) c[i]=_mm256_fmadd_ps(c[i],a,b);
    __asm__ volatile("" : "+x"(a));
  }
  float s=0; for(int i=0;i<12;i++){ float t[8]; _mm256_storeu_ps(t,c[i]); for(int j=0;j<8;j++) s+=t[j]; } return s;}
static double now(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+1e-9*t.tv_nsec; }
int main(){ int n=20000000; unsigned long long t0=__rdtsc(); float x=dp(n); unsigned long long t1=__rdtsc(); double w1=now(); float y=fm(n); double w2=now(); unsigned long long t2=__rdtsc();
 float z=fm256(n); double w3=now(); unsigned long long t3=__rdtsc();
 printf("dp: %.3f tsc/op  fma: %.3f tsc/op  fma ymm: %.3f tsc/op (%g %g %g)\n",(double)(t1-t0)/(12.0*n),(double)(t2-t1)/(12.0*n),(double)(t3-t2)/(12.0*n),x,y,z);
 printf("one core, fp32: zmm FMA %.1f GFLOPS, ymm FMA %.1f GFLOPS\n",12.0*n*32/(w2-w1)*1e-9,12.0*n*16/(w3-w2)*1e-9);}
