/* bench.h — what the mla-bench sources share: cases, options, results, the machine, and the
 * small helpers each file offers. mla-bench is a program: it prints and exits; the library
 * it measures is only ever called through the public API in include/mla.h. */
#ifndef MLA_BENCH_H
#define MLA_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mla.h"

#ifndef MLA_GIT_COMMIT
#define MLA_GIT_COMMIT "unknown"
#endif

#define BENCH_D_QK 576
#define BENCH_D_V 512
#define BENCH_MAX_CASES 64
#define BENCH_ERR_LEN 512
#define BENCH_UNUSED_PAGE 2147480000 /* spec §6: unused block_table entries hold this */

/* ---- cases ------------------------------------------------------------------------------ */

typedef struct bench_case {
    int64_t b, s_q, h_q, h_kv, s_k, page;
    int causal; /* 0/1 */
    int varlen; /* 1: lengths ~ N(s_k, s_k/2), at least s_q; 0: every length is s_k */
    int kv_fp8; /* 1: dense FP8 (--kv-dtype fp8): q and cache float8_e4m3fn, descales 1 */
    int qmix;   /* 1: per-request query lengths (cu_seqlens_q), each drawn uniformly from the
                   powers of two up to s_q (and s_q itself): {1, 2, 4} for s_q = 4; 0: all s_q */
} bench_case;

/* A case's cache layout on the host: lengths and a shuffled block table. */
typedef struct bench_layout {
    int32_t *seqlens;     /* [b]                                                        */
    int32_t *block_table; /* [b, max_pages]; unused entries hold BENCH_UNUSED_PAGE     */
    int64_t max_pages;    /* columns of block_table                                   */
    int64_t num_pages;    /* pages in the cache (exactly the used ones, shuffled)      */
    int64_t max_sk, total_sk;
    double mean_sk;
    int32_t *cu_seqlens_q; /* [b + 1] prefix sums of the query lengths (qmix), else NULL */
    int64_t total_q;       /* query tokens of the batch: b * s_q unless qmix             */
    double qk_sum;         /* sum over requests of query tokens x keys (FLOP count)       */
} bench_layout;

/* FlashMLA's figures from spec §7 (HEAD 9241ae3, one H100 80GB HBM3 SXM, CUDA 13.0). The
 * range columns were measured without the L2 flush; `flushed_*` with it (0 = not published). */
typedef struct flashmla_ref {
    int64_t b, s_q, h_q, s_k;
    int causal, varlen;
    double us_lo, us_hi, gbs_lo, gbs_hi, tf_lo, tf_hi;
    const char *flushed_metric; /* "GB/s", "TFLOPS", "us" or NULL                       */
    double flushed_h100, flushed_h200;
} flashmla_ref;

extern const char *const flashmla_ref_source;
extern const char *const flashmla_ref_flushed_source;

/* ---- options ---------------------------------------------------------------------------- */

typedef enum bench_device_choice { BENCH_AUTO = 0, BENCH_CPU, BENCH_GPU } bench_device_choice;

typedef struct bench_options {
    bench_device_choice device;
    int gpu;            /* CUDA ordinal                                              */
    int grid, quick;
    int iters, warmup;  /* 0: the device's default                                   */
    int64_t page;       /* 0: 64 (a --case's own page wins)                          */
    mla_dtype dtype;
    const char *json_path, *csv_path;
    int flush, graph, ceilings;
    int threads;        /* CPU plans: worker threads, 0 = all cores                  */
    uint64_t seed;
    bench_case cases[BENCH_MAX_CASES];
    int num_cases;      /* from --case                                               */
    int kv_fp8;         /* --kv-dtype fp8: every case on an FP8 cache (q FP8 too)     */
    int reuse_schedule; /* --reuse-schedule: GPU, schedule once, time attention+combine */
    int mixed;          /* --mixed: each case twice, per-request query lengths and padded */
} bench_options;

/* ---- the machine ------------------------------------------------------------------------ */

typedef struct bench_env {
    int is_gpu;
    int device;               /* CUDA ordinal or MLA_DEVICE_CPU                         */
    char name[256];
    int num_sms, cc_major, cc_minor, cpu_cores;
    size_t l2_bytes, mem_bytes, flush_bytes;
    int runtime_version, driver_version;
    double copy_gbs;          /* measured copy ceiling (bytes read + written), <= 0: none */
    double gemm_tflops;       /* measured bf16 GEMM ceiling, <= 0: none                  */
    char copy_note[320], gemm_note[320];
    char fallback_note[256];  /* why the CPU path runs ("" when on the GPU)              */
} bench_env;

/* ---- results ---------------------------------------------------------------------------- */

typedef struct bench_result {
    bench_case c;
    int ok;
    char error[BENCH_ERR_LEN];
    double mean_sk;
    int64_t max_sk, num_pages;
    int64_t total_q;           /* query tokens computed (b * s_q unless c.qmix)          */
    double qk_sum;             /* sum of query tokens x keys over the requests            */
    int iters;
    double us, us_min, us_max; /* median, min, max over the timed runs               */
    double flops, bytes, gbs, tflops, pct_copy, pct_gemm;
    int num_sm_parts;
    size_t workspace_bytes;
    int64_t nonfinite;         /* bad values after the runs: non-finite out, NaN/-inf lse;
                                  -1: not checked */
    const char *timing;        /* how it was timed                                    */
    const flashmla_ref *ref;   /* NULL when FlashMLA published nothing for this case  */
} bench_result;

/* ---- cases.c ---------------------------------------------------------------------------- */

typedef struct bench_rng { uint64_t s[4]; } bench_rng;

void bench_rng_seed(bench_rng *rng, uint64_t seed);
uint64_t bench_rng_next(bench_rng *rng);
double bench_rng_uniform(bench_rng *rng); /* [0, 1)                                        */
double bench_rng_normal(bench_rng *rng);  /* N(0, 1)                                       */

uint16_t bench_f32_to_half(float x, mla_dtype dtype); /* bf16 or fp16 bits, round-to-even  */
/* n values randn/10 clamped to ±1 (spec §6), as bf16 or fp16. */
void bench_fill_random(uint16_t *dst, size_t n, mla_dtype dtype, bench_rng *rng);
/* The same values as float8_e4m3fn codes (dense FP8 cases; descale 1). */
void bench_fill_fp8(uint8_t *dst, size_t n, bench_rng *rng);
uint16_t bench_nan_bits(mla_dtype dtype);

int bench_layout_build(bench_layout *lay, const bench_case *c, bench_rng *rng);
void bench_layout_free(bench_layout *lay);
/* Rows past request i's length in its last page: returns how many (0 if none) and where. */
int64_t bench_tail_rows(const bench_case *c, const bench_layout *lay, int64_t i, int64_t *page_id,
                        int64_t *first_row);
/* Shape and contiguous-tensor args of a case (q, cache, out, lse dense in spec §2 order). */
mla_decode_shape bench_make_shape(const bench_case *c, mla_dtype dtype, int cpu_threads);
mla_decode_args bench_make_args(const bench_case *c, const bench_layout *lay, const void *q,
                                const void *k_cache, const int32_t *block_table,
                                const int32_t *seqlens, void *out, float *lse);

int bench_grid_cases(bench_case *out, int max, int quick, int64_t page);
/* --mixed without --case: speculative-decoding batches (s_q 4 or 2, causal), each case as a pair:
 * per-request query lengths (qmix 1), then every request padded to s_q (qmix 0). */
int bench_mixed_cases(bench_case *out, int max, int quick, int64_t page, int gpu);
int bench_cpu_cases(bench_case *out, int max, int quick, int64_t page);
int bench_parse_case(const char *text, int64_t default_page, bench_case *c, char *err, size_t n);
void bench_case_label(const bench_case *c, char *buf, size_t n);
uint64_t bench_case_seed(const bench_case *c, uint64_t seed);

double bench_flops(const bench_case *c, double mean_sk);
double bench_bytes(const bench_case *c, double mean_sk);
/* FLOPs and bytes of a run: FlashMLA's formulas above for fixed s_q; with per-request query
 * lengths (c.qmix) the same formulas over the query tokens that exist (r->total_q, r->qk_sum). */
void bench_work(const bench_result *r, double *flops, double *bytes);
void bench_finish_result(bench_result *r, const bench_env *env, double *samples_us, int n);
double bench_median(double *v, int n); /* sorts v */
int64_t bench_count_nonfinite_half(const uint16_t *v, size_t n, mla_dtype dtype);
int64_t bench_count_bad_lse(const float *v, size_t n);
/* qmix cases: out / lse elements of the query rows past each request's length (which the call
 * must neither read nor write; the bench zeroes them first) that are not zero. */
int64_t bench_count_pad_written(const bench_case *c, const bench_layout *lay, const uint16_t *out,
                                const float *lse);

const flashmla_ref *bench_find_ref(const bench_case *c, mla_dtype dtype);

/* ---- run_cpu.c -------------------------------------------------------------------------- */

void bench_cpu_env(bench_env *env, const bench_options *o);
void bench_cpu_run(const bench_env *env, const bench_options *o, const bench_case *c,
                   bench_result *r);

/* ---- run_gpu.c (stubs when built without CUDA) ------------------------------------------ */

/* 1 if a CUDA GPU `device` is usable by this build; else 0 and `why` says why. */
int bench_gpu_available(int device, char *why, size_t n);
/* Fills the card's facts and measures the ceilings (when o->ceilings). 0 on success. */
int bench_gpu_env(bench_env *env, const bench_options *o, char *err, size_t n);
void bench_gpu_run(const bench_env *env, const bench_options *o, const bench_case *c,
                   bench_result *r);
/* 0 while the CUDA context is usable (no sticky error); else 1 and the message. */
int bench_gpu_broken(char *err, size_t n);
void bench_gpu_shutdown(void);
/* "13.0"-style CUDA runtime and driver versions ("-" without CUDA). */
void bench_env_versions(const bench_env *env, char *rt, char *drv, size_t n);

/* ---- report.c --------------------------------------------------------------------------- */

void bench_print_header(FILE *f, const bench_env *env, const bench_options *o, int num_cases);
void bench_print_table_header(FILE *f, const bench_env *env);
void bench_print_row(FILE *f, const bench_result *r);
/* MLA_DIAG=9 / MLA_SP_DIAG=9 builds: per-warpgroup cycle accounts read back from a kernel's counters d
 * (ctas rows of `row` counters, 8 per warpgroup: 7 parts, slot 4 the whole unit (the percentages' base),
 * slot 7 the number of units), summed over the CTAs and printed per unit, one line per warpgroup;
 * -1 (and a line saying so) if warpgroup 0 recorded no unit */
int bench_print_wg_accounts(const unsigned long long *d, int ctas, int row, int nwg, const char *const (*names)[7],
                            const char *what, const char *label, const char *unit);
void bench_print_footer(FILE *f, const bench_env *env, const bench_options *o,
                        const bench_result *res, int n);
int bench_write_json(const char *path, const bench_env *env, const bench_options *o,
                     const bench_result *res, int n);
int bench_write_csv(const char *path, const bench_env *env, const bench_options *o,
                    const bench_result *res, int n);
const char *bench_dtype_name(mla_dtype dtype);
/* Which CPU kernel the library's CPU plans of these options run (src/cpu_amx.c or the reference). */
const char *bench_cpu_kernel_name(const bench_options *o);
/* dtype of a run as printed: "bf16", or "fp8_e4m3/bf16" (q and cache FP8, out bf16). */
const char *bench_dtype_label(mla_dtype dtype, int kv_fp8);
/* The commit mla-bench was built from: $MLA_GIT_COMMIT if set (for trees without .git), else
 * the -DMLA_GIT_COMMIT the Makefile passed, else "unknown". */
const char *bench_git_commit(void);

/* ---- watchdog.c: a per-case time limit (MLA_BENCH_WATCHDOG_S) ----------------------------- */
/* Starts the checking thread: limit from MLA_BENCH_WATCHDOG_S (unset: 120 s on the GPU, off on the
 * CPU); 1 started, 0 off, -1 (message printed) a bad value. */
int bench_watchdog_start(int is_gpu);
/* The case `what` starts now (the limit counts from here; the name is printed if it passes it). */
void bench_watchdog_arm(const char *what);
void bench_watchdog_disarm(void);

/* ---- kspan.c: kernel spans from CUPTI's activity records (opened at run time) -------------- */

/* Median over `iters` replays (after `warmup`) of graph exec `graph_exec` (of graph `graph`) on
 * `stream`, L2 flushed by a memset of `flush` before each: µs from the first kernel's start to the
 * last kernel's end of the replay. -1 when CUPTI is missing or anything did not add up. With
 * `parts`: the median start and end (µs from the replay's first start) of each kernel in start
 * order, start0, end0, start1, ..., at most max_parts values; *nparts = how many were written. */
double kspan_time_graph(void *stream, void *flush, size_t flush_bytes, void *graph, void *graph_exec, int warmup,
                        int iters, double *parts, int max_parts, int *nparts);

/* ---- sparse attention (bench/sparse.c) ---------------------------------------------------- */
int bench_sparse_wanted(int argc, char **argv); /* any --sparse* option                      */
int bench_sparse_main(int argc, char **argv);   /* runs the sparse benchmarks; exit status    */

#endif
