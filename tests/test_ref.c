/* test_ref.c — the CPU reference (through the public API) against an independent fp64 oracle. */
#include "common.h"

static int run_case(const char *label, const tc_config *cfg)
{
    tc_case c;
    if (tc_case_build(&c, cfg)) { tc_expect(0, "%s: allocation failed", label); return 0; }
    mla_status st = tc_case_run_cpu(&c);
    int ok = tc_expect(st == MLA_OK, "%s: mla_decode returned %s: %s", label, mla_status_string(st), mla_last_error());
    if (ok) {
        const int64_t no = cfg->b * cfg->s_q * cfg->h_q * cfg->d_v, nl = cfg->b * cfg->h_q * cfg->s_q;
        double *ro = malloc((size_t)no * 8), *rl = malloc((size_t)nl * 8);
        tc_naive_decode(&c, ro, rl);
        tc_report orep, lrep;
        int good = tc_compare_case(&c, ro, rl, &orep, &lrep);
        ok = tc_expect(good, "%s: mismatch against the fp64 oracle", label);
        if (!good) { tc_print_report("out", &orep); tc_print_report("lse", &lrep); }
        ok &= tc_expect(tc_count_clobbered(&c) == 0, "%s: wrote outside the existing rows", label);
        free(ro); free(rl);
    }
    tc_case_free(&c);
    return ok;
}

int main(void)
{
    tc_config cfg = tc_config_default();
    run_case("default", &cfg);
    cfg.s_q = 2; cfg.causal = 1; cfg.varlen = 1; cfg.h_q = 9; cfg.h_kv = 3; cfg.strided = 1;
    run_case("s_q=2 causal varlen h_kv=3 strided", &cfg);
    cfg.dtype = MLA_DTYPE_FP16; cfg.cu_seqlens_q = 1; cfg.s_q = 4; cfg.zero_half = 1; cfg.b = 6;
    run_case("fp16 cu_seqlens_q zero_half", &cfg);
    return tc_summary();
}
