/* report.c — what mla-bench prints: the header (machine, protocol, ceilings), one table row per
 * case next to FlashMLA's figure, a footer comparing the L2-flushed figures, and the JSON / CSV
 * files. */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *bench_dtype_name(mla_dtype dtype) { return dtype == MLA_DTYPE_FP16 ? "fp16" : "bf16"; }

const char *bench_dtype_label(mla_dtype dtype, int kv_fp8)
{
    if (!kv_fp8)
        return bench_dtype_name(dtype);
    return dtype == MLA_DTYPE_FP16 ? "fp8_e4m3/fp16" : "fp8_e4m3/bf16";
}

const char *bench_git_commit(void)
{
    const char *env = getenv("MLA_GIT_COMMIT");
    if (env && *env)
        return env;
    return *MLA_GIT_COMMIT ? MLA_GIT_COMMIT : "unknown";
}

static void lib_version(char *buf, size_t n)
{
    int v = mla_version();
    snprintf(buf, n, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
}

static double ref_mid_us(const flashmla_ref *f) { return f ? 0.5 * (f->us_lo + f->us_hi) : NAN; }

static double ratio_vs_flashmla(const bench_result *r)
{
    return r->ok && r->ref ? ref_mid_us(r->ref) / r->us : NAN;
}

/* "834" or "863-983" */
static void range(char *buf, size_t n, double lo, double hi)
{
    if (lo <= 0)
        snprintf(buf, n, "-");
    else if (lo == hi)
        snprintf(buf, n, "%.0f", lo);
    else
        snprintf(buf, n, "%.0f-%.0f", lo, hi);
}

/* ---- text ----------------------------------------------------------------------------------- */

static void print_device(FILE *f, const bench_env *env, const bench_options *o)
{
    if (env->is_gpu) {
        char rt[32], drv[32];
        bench_env_versions(env, rt, drv, sizeof rt);
        fprintf(f, "device: GPU %d: %s, %d SMs, sm_%d%d, L2 %zu MiB, %.1f GiB; CUDA runtime %s, "
                   "driver %s\n",
                env->device, env->name, env->num_sms, env->cc_major, env->cc_minor,
                env->l2_bytes >> 20, (double)env->mem_bytes / (1 << 30), rt, drv);
        return;
    }
    char threads[32];
    snprintf(threads, sizeof threads, "%d", o->threads);
    fprintf(f, "device: CPU: %s, %d cores online, CPU path threads: %s, kernel: %s\n", env->name,
            env->cpu_cores, o->threads ? threads : "all cores",
            bench_cpu_kernel_name(o));
}

static int has_mixed_case(const bench_options *o)
{
    for (int i = 0; i < o->num_cases; i++)
        if (o->cases[i].qmix)
            return 1;
    return 0;
}

void bench_print_header(FILE *f, const bench_env *env, const bench_options *o, int num_cases)
{
    char ver[32];
    lib_version(ver, sizeof ver);
    if (!env->is_gpu)
        fprintf(f, "mla-bench: CPU path, because: %s%s\n", env->fallback_note,
                o->grid || o->num_cases ? "" : "\nmla-bench: CPU default: small case(s); --case or --grid for more");
    fprintf(f, "mla-bench: mla.c %s (git %s), dense MLA decode, d_qk %d, d_v %d, %s, %d case(s)\n", ver,
            bench_git_commit(), BENCH_D_QK, BENCH_D_V, bench_dtype_label(o->dtype, o->kv_fp8), num_cases);
    print_device(f, env, o);
    if (env->is_gpu)
        fprintf(f, "timing: %s, %s%s, CUDA "
                   "events around each replay, median of %d after %d warm-up(s)\n",
                o->reuse_schedule ? "mla_decode with MLA_DECODE_REUSE_SCHEDULE (decode + combine; the "
                                    "schedule computed once, outside the timed calls)"
                                  : "the whole mla_decode call (schedule + decode + combine)",
                o->graph ? "captured in a CUDA graph and replayed" : "plain stream launches",
                o->flush ? ", L2 flushed before each replay (memset outside the timed region)" : "",
                o->iters, o->warmup);
    else
        fprintf(f, "timing: CPU wall clock (clock_gettime) of the whole mla_decode call, median of %d "
                   "after %d warm-up(s)\n", o->iters, o->warmup);
    if (env->is_gpu && o->flush)
        fprintf(f, "        L2 flush: cudaMemsetAsync of %zu MiB (L2 is %zu MiB)\n", env->flush_bytes >> 20,
                env->l2_bytes >> 20);
    fprintf(f, "ceiling copy: ");
    if (env->copy_gbs > 0)
        fprintf(f, "%.0f GB/s (%s)\n", env->copy_gbs, env->copy_note);
    else
        fprintf(f, "- (%s)\n", env->copy_note);
    fprintf(f, "ceiling GEMM: ");
    if (env->gemm_tflops > 0)
        fprintf(f, "%.0f TFLOPS (%s)\n", env->gemm_tflops, env->gemm_note);
    else
        fprintf(f, "- (%s)\n", env->gemm_note);
    fprintf(f, "formulas (FlashMLA, spec §7): FLOPs = b*h_q*s_q*mean_sk*2*(d_qk+d_v); bytes = "
               "b*(s_q*h_q*d_qk*%d + mean_sk*h_kv*d_qk*%d + s_q*h_q*d_v*2)%s\n", o->kv_fp8 ? 1 : 2,
            o->kv_fp8 ? 1 : 2, o->kv_fp8 ? " (FP8 q and cache: 1 byte)" : "");
    if (o->mixed || has_mixed_case(o))
        fprintf(f, "  mixed cases (cu_seqlens_q): s_q of each request its own query length, b*s_q*mean_sk "
                   "= sum of query tokens x keys; padded twins count all b*s_q rows, as FlashMLA would\n");
    if (env->is_gpu)
        fprintf(f, "FM columns (FlashMLA): %s.\n  ratio = FlashMLA µs (midpoint) / mla.c µs, > 1: "
                   "mla.c faster. Another card and no L2 flush there: indicative only.\n",
                flashmla_ref_source);
    if (!env->is_gpu && o->grid)
        fprintf(f, "note: the spec §7 grid on the CPU path takes a long time (b=128, s_k up to 16K)\n");
    if (env->is_gpu && o->iters < 20)
        fprintf(f, "warning: --iters %d is below the 20 replays spec §7 asks for\n", o->iters);
    fprintf(f, "\n");
}

void bench_print_table_header(FILE *f, const bench_env *env)
{
    /* "µs" is 3 bytes wide in UTF-8 but 2 columns: one more byte of field width */
    fprintf(f, "%-46s %7s %10s %7s %7s %6s %6s", "case", "mean_sk", "µs", "GB/s", "TFLOPS", "%copy",
            "%gemm");
    if (env->is_gpu)
        fprintf(f, " | %10s %9s %9s %7s", "FM µs", "FM GB/s", "FM TFLOPS", "ratio");
    fprintf(f, "\n");
}

static void fmt_pct(char *buf, size_t n, double v)
{
    if (isfinite(v))
        snprintf(buf, n, "%.1f", v);
    else
        snprintf(buf, n, "-");
}

/* 3-4 significant digits, so CPU-sized rates do not print as 0. */
static void fmt_rate(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "-");
    else if (v >= 100)
        snprintf(buf, n, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, n, "%.1f", v);
    else if (v >= 1)
        snprintf(buf, n, "%.2f", v);
    else
        snprintf(buf, n, "%.3g", v);
}

void bench_print_row(FILE *f, const bench_result *r)
{
    char label[128], pc[16], pg[16], gb[24], tf[24];
    bench_case_label(&r->c, label, sizeof label);
    if (!r->ok) {
        fprintf(f, "%-46s FAILED: %s\n", label, r->error);
        return;
    }
    fmt_pct(pc, sizeof pc, r->pct_copy);
    fmt_pct(pg, sizeof pg, r->pct_gemm);
    fmt_rate(gb, sizeof gb, r->gbs);
    fmt_rate(tf, sizeof tf, r->tflops);
    fprintf(f, "%-46s %7.0f %9.1f %7s %7s %6s %6s", label, r->mean_sk, r->us, gb, tf, pc, pg);
    if (!strcmp(r->timing, "wall clock")) {
        fprintf(f, "\n");
    } else if (r->ref) {
        char us[24], gb[24], tf[24];
        range(us, sizeof us, r->ref->us_lo, r->ref->us_hi);
        range(gb, sizeof gb, r->ref->gbs_lo, r->ref->gbs_hi);
        range(tf, sizeof tf, r->ref->tf_lo, r->ref->tf_hi);
        fprintf(f, " | %9s %9s %9s %6.2fx\n", us, gb, tf, ratio_vs_flashmla(r));
    } else {
        fprintf(f, " | %9s %9s %9s %7s\n", "-", "-", "-", "-");
    }
    if (r->nonfinite > 0)
        fprintf(f, "  !! %lld bad values in out/lse (NaN/inf, or written rows past a request's query "
                   "length): the result is wrong\n",
                (long long)r->nonfinite);
    if (r->error[0])
        fprintf(f, "  note: %s\n", r->error);
}

static double flushed_ours(const bench_result *r)
{
    const char *m = r->ref->flushed_metric;
    return !strcmp(m, "GB/s") ? r->gbs : !strcmp(m, "TFLOPS") ? r->tflops : r->us;
}

/* The padded twin of a qmix result: the same case with qmix 0 (same lengths, pages and data). */
static const bench_result *padded_twin(const bench_result *m, const bench_result *res, int n)
{
    for (int i = 0; i < n; i++) {
        bench_case c = res[i].c;
        c.qmix = 1;
        if (!res[i].c.qmix && res[i].ok && !memcmp(&c, &m->c, sizeof c))
            return &res[i];
    }
    return NULL;
}

/* Per-request query lengths against padding: the same requests, the same keys; tokens/s counts the
 * query tokens the requests have (the padded call computes b * s_q rows for them). */
static void print_mixed_pairs(FILE *f, const bench_result *res, int n)
{
    int shown = 0;
    for (int i = 0; i < n; i++) {
        const bench_result *m = &res[i], *p = m->ok && m->c.qmix ? padded_twin(m, res, n) : NULL;
        if (!p)
            continue;
        if (!shown++)
            fprintf(f, "\nPer-request query lengths (cu_seqlens_q) vs every request padded to s_q "
                       "(same requests, keys, pages and data):\n%-46s %9s %10s %10s %8s %12s %12s\n",
                    "case", "q tokens", "µs mixed", "µs padded", "speedup", "Mtok/s mixed",
                    "Mtok/s pad");
        char label[128], tok[32];
        bench_case_label(&m->c, label, sizeof label);
        snprintf(tok, sizeof tok, "%lld/%lld", (long long)m->total_q, (long long)p->total_q);
        const double tps_m = (double)m->total_q / m->us, tps_p = (double)m->total_q / p->us;
        fprintf(f, "%-46s %9s %9.1f %10.1f %7.2fx %12.3g %12.3g\n", label, tok, m->us, p->us,
                p->us / m->us, tps_m, tps_p);
    }
    if (shown)
        fprintf(f, "(q tokens: the batch's query tokens / rows computed when padded; Mtok/s: the batch's "
                   "query tokens per µs of the call)\n");
}

void bench_print_footer(FILE *f, const bench_env *env, const bench_options *o,
                        const bench_result *res, int n)
{
    int ok = 0, bad = 0, shown = 0;
    for (int i = 0; i < n; i++) {
        ok += res[i].ok;
        bad += res[i].ok && res[i].nonfinite > 0;
    }
    for (int i = 0; env->is_gpu && o->flush && i < n; i++) {
        const bench_result *r = &res[i];
        if (!r->ok || !r->ref || !r->ref->flushed_metric)
            continue;
        if (!shown++)
            fprintf(f, "\nSame protocol (L2 flushed), FlashMLA figures published in spec §7:\n"
                       "%-46s %7s %10s %14s %14s\n", "case", "metric", "mla.c", "FlashMLA H100",
                    "FlashMLA H200");
        char label[128];
        bench_case_label(&r->c, label, sizeof label);
        fprintf(f, "%-46s %7s %10.1f %14.1f %14.1f\n", label, r->ref->flushed_metric, flushed_ours(r),
                r->ref->flushed_h100, r->ref->flushed_h200);
    }
    if (shown)
        fprintf(f, "(%s; compare only against the figure of the same card model)\n",
                flashmla_ref_flushed_source);
    print_mixed_pairs(f, res, n);
    fprintf(f, "\n%d of %d case(s) ran%s", ok, n, bad ? "" : "\n");
    if (bad)
        fprintf(f, "; %d of them produced bad values (NaN/inf or written padding)\n", bad);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fprintf(f, "null");
}

static void json_kv_str(FILE *f, const char *k, const char *v, const char *sep)
{
    fprintf(f, "\"%s\": ", k);
    json_str(f, v);
    fputs(sep, f);
}

static void json_kv_num(FILE *f, const char *k, double v, const char *sep)
{
    fprintf(f, "\"%s\": ", k);
    json_num(f, v);
    fputs(sep, f);
}

static void json_ref(FILE *f, const flashmla_ref *r)
{
    if (!r) {
        fprintf(f, "null");
        return;
    }
    fprintf(f, "{\"us\": [%g, %g], \"gbs\": [%g, %g], \"tflops\": [%g, %g], \"flushed_metric\": ",
            r->us_lo, r->us_hi, r->gbs_lo, r->gbs_hi, r->tf_lo, r->tf_hi);
    if (r->flushed_metric) {
        json_str(f, r->flushed_metric);
        fprintf(f, ", \"flushed_h100\": %g, \"flushed_h200\": %g}", r->flushed_h100, r->flushed_h200);
    } else {
        fprintf(f, "null, \"flushed_h100\": null, \"flushed_h200\": null}");
    }
}

static void json_case(FILE *f, const bench_result *r, mla_dtype dtype)
{
    char label[128];
    const bench_case *c = &r->c;
    bench_case_label(c, label, sizeof label);
    fprintf(f, "    {");
    json_kv_str(f, "label", label, ", ");
    fprintf(f, "\"b\": %lld, \"s_q\": %lld, \"h_q\": %lld, \"h_kv\": %lld, \"s_k\": %lld, "
               "\"page\": %lld, \"causal\": %s, \"varlen\": %s, ",
            (long long)c->b, (long long)c->s_q, (long long)c->h_q, (long long)c->h_kv,
            (long long)c->s_k, (long long)c->page, c->causal && c->s_q > 1 ? "true" : "false",
            c->varlen ? "true" : "false");
    fprintf(f, "\"query_lengths\": \"%s\", \"query_tokens\": %lld, ", c->qmix ? "mixed" : "fixed",
            (long long)r->total_q);
    json_kv_str(f, "dtype", bench_dtype_label(dtype, c->kv_fp8), ", ");
    fprintf(f, "\"ok\": %s, ", r->ok ? "true" : "false");
    json_kv_str(f, r->ok ? "note" : "error", r->error, ", ");
    json_kv_str(f, "timing", r->timing ? r->timing : "", ", ");
    json_kv_num(f, "mean_sk", r->mean_sk, ", ");
    fprintf(f, "\"max_sk\": %lld, \"num_pages\": %lld, \"iters\": %d, ", (long long)r->max_sk,
            (long long)r->num_pages, r->iters);
    json_kv_num(f, "us", r->ok ? r->us : NAN, ", ");
    json_kv_num(f, "us_min", r->ok ? r->us_min : NAN, ", ");
    json_kv_num(f, "us_max", r->ok ? r->us_max : NAN, ", ");
    json_kv_num(f, "gbs", r->ok ? r->gbs : NAN, ", ");
    json_kv_num(f, "tflops", r->ok ? r->tflops : NAN, ", ");
    json_kv_num(f, "pct_copy", r->ok ? r->pct_copy : NAN, ", ");
    json_kv_num(f, "pct_gemm", r->ok ? r->pct_gemm : NAN, ", ");
    double flops, bytes;
    bench_work(r, &flops, &bytes);
    json_kv_num(f, "flops", flops, ", ");
    json_kv_num(f, "bytes", bytes, ", ");
    fprintf(f, "\"num_sm_parts\": %d, \"workspace_bytes\": %zu, \"bad_values\": %lld, ",
            r->num_sm_parts, r->workspace_bytes, (long long)r->nonfinite);
    fprintf(f, "\"flashmla\": ");
    json_ref(f, r->ref);
    fprintf(f, ", ");
    json_kv_num(f, "ratio_vs_flashmla", ratio_vs_flashmla(r), "}");
}

static void json_env(FILE *f, const bench_env *env, const bench_options *o)
{
    char rt[32], drv[32], cc[16];
    bench_env_versions(env, rt, drv, sizeof rt);
    snprintf(cc, sizeof cc, "%d.%d", env->cc_major, env->cc_minor);
    fprintf(f, "  \"device\": {\"kind\": \"%s\", \"ordinal\": %d, ", env->is_gpu ? "gpu" : "cpu",
            env->device);
    json_kv_str(f, "name", env->name, ", ");
    if (env->is_gpu) {
        fprintf(f, "\"sms\": %d, ", env->num_sms);
        json_kv_str(f, "compute_capability", cc, ", ");
        fprintf(f, "\"l2_bytes\": %zu, \"memory_bytes\": %zu, ", env->l2_bytes, env->mem_bytes);
        json_kv_str(f, "cuda_runtime", rt, ", ");
        json_kv_str(f, "cuda_driver", drv, "},\n");
    } else {
        fprintf(f, "\"cpu_cores\": %d, \"cpu_threads\": %d, ", env->cpu_cores, o->threads);
        json_kv_str(f, "why_cpu", env->fallback_note, "},\n");
    }
    fprintf(f, "  \"protocol\": {");
    json_kv_str(f, "timing", env->is_gpu ? (o->graph ? "cuda_graph_replay" : "stream_launch")
                                         : "cpu_wall_clock", ", ");
    fprintf(f, "\"l2_flush_bytes\": %zu, \"iters\": %d, \"warmup\": %d, \"seed\": %llu, ",
            env->flush_bytes, o->iters, o->warmup, (unsigned long long)o->seed);
    fprintf(f, "\"d_qk\": %d, \"d_v\": %d, ", BENCH_D_QK, BENCH_D_V);
    json_kv_str(f, "dtype", bench_dtype_label(o->dtype, o->kv_fp8), "},\n");
    fprintf(f, "  \"ceilings\": {");
    json_kv_num(f, "copy_gbs", env->copy_gbs > 0 ? env->copy_gbs : NAN, ", ");
    json_kv_str(f, "copy_note", env->copy_note, ", ");
    json_kv_num(f, "gemm_tflops", env->gemm_tflops > 0 ? env->gemm_tflops : NAN, ", ");
    json_kv_str(f, "gemm_note", env->gemm_note, "},\n");
}

int bench_write_json(const char *path, const bench_env *env, const bench_options *o,
                     const bench_result *res, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    char ver[32], date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    lib_version(ver, sizeof ver);
    fprintf(f, "{\n  \"tool\": \"mla-bench\",\n  ");
    json_kv_str(f, "library_version", ver, ",\n  ");
    json_kv_str(f, "git_commit", bench_git_commit(), ",\n  ");
    json_kv_str(f, "date_utc", date, ",\n");
    json_env(f, env, o);
    fprintf(f, "  ");
    json_kv_str(f, "flashmla_source", flashmla_ref_source, ",\n  ");
    json_kv_str(f, "flashmla_flushed_source", flashmla_ref_flushed_source, ",\n");
    fprintf(f, "  \"cases\": [\n");
    for (int i = 0; i < n; i++) {
        json_case(f, &res[i], o->dtype);
        fprintf(f, i + 1 < n ? ",\n" : "\n");
    }
    fprintf(f, "  ]\n}\n");
    return fclose(f) ? -1 : 0;
}

/* ---- CSV ------------------------------------------------------------------------------------- */

static void csv_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.6g", v);
    else
        fprintf(f, ",");
}

static void csv_str(FILE *f, const char *s)
{
    fputs(",\"", f);
    for (; s && *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int bench_write_csv(const char *path, const bench_env *env, const bench_options *o,
                    const bench_result *res, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "label,b,s_q,h_q,h_kv,s_k,page,causal,varlen,query_lengths,query_tokens,dtype,ok,mean_sk,us,us_min,us_max,gbs,"
               "tflops,pct_copy,pct_gemm,copy_ceiling_gbs,gemm_ceiling_tflops,flashmla_us_lo,"
               "flashmla_us_hi,flashmla_gbs_lo,flashmla_gbs_hi,flashmla_tflops_lo,flashmla_tflops_hi,"
               "ratio_vs_flashmla,bad_values,timing,device,git_commit,error\n");
    for (int i = 0; i < n; i++) {
        const bench_result *r = &res[i];
        const bench_case *c = &r->c;
        const flashmla_ref *x = r->ref;
        char label[128];
        bench_case_label(c, label, sizeof label);
        fprintf(f, "\"%s\",%lld,%lld,%lld,%lld,%lld,%lld,%d,%d,%s,%lld,%s,%d", label, (long long)c->b,
                (long long)c->s_q, (long long)c->h_q, (long long)c->h_kv, (long long)c->s_k,
                (long long)c->page, c->causal && c->s_q > 1, c->varlen, c->qmix ? "mixed" : "fixed",
                (long long)r->total_q, bench_dtype_label(o->dtype, c->kv_fp8), r->ok);
        double v[] = {r->mean_sk, r->ok ? r->us : NAN, r->ok ? r->us_min : NAN, r->ok ? r->us_max : NAN,
                      r->ok ? r->gbs : NAN, r->ok ? r->tflops : NAN, r->ok ? r->pct_copy : NAN,
                      r->ok ? r->pct_gemm : NAN, env->copy_gbs > 0 ? env->copy_gbs : NAN,
                      env->gemm_tflops > 0 ? env->gemm_tflops : NAN, x ? x->us_lo : NAN,
                      x ? x->us_hi : NAN, x ? x->gbs_lo : NAN, x ? x->gbs_hi : NAN,
                      x ? x->tf_lo : NAN, x ? x->tf_hi : NAN, ratio_vs_flashmla(r)};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
            csv_num(f, v[k]);
        fprintf(f, ",%lld", (long long)r->nonfinite);
        csv_str(f, r->timing ? r->timing : "");
        csv_str(f, env->name);
        csv_str(f, bench_git_commit());
        csv_str(f, r->error);
        fputc('\n', f);
    }
    return fclose(f) ? -1 : 0;
}

int bench_print_wg_accounts(const unsigned long long *d, int ctas, int row, int nwg, const char *const (*names)[7],
                            const char *what, const char *label, const char *unit)
{
    for (int wg = 0; wg < nwg; wg++) {
        double sum[8] = {0};
        int n = 0;
        for (int i = 0; i < ctas; i++) {
            const unsigned long long *c = d + (size_t)i * (size_t)row + 8 * wg;
            if (!c[7])
                continue;
            n++;
            for (int k = 0; k < 8; k++)
                sum[k] += (double)c[k];
        }
        if (!n || !sum[7]) {
            printf("%s %s: no %ss recorded (does the call take the kernel?)\n", what, label, unit);
            return -1;
        }
        printf("%s %s, WG%d (thread %d), %d CTAs, %.0f %ss; cycles per %s:", what, label, wg, 128 * wg, n, sum[7],
               unit, unit);
        for (int k = 0; k < 7; k++)
            printf(" %s %.0f (%.0f%%);", names[wg][k], sum[k] / sum[7], 100.0 * sum[k] / (sum[4] > 0 ? sum[4] : 1));
        printf("\n");
    }
    fflush(stdout);
    return 0;
}
