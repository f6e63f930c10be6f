/* test_faults.c — fault behaviour of the CPU path (issue 8): each case of the fault table in
 * docs/guarantees.md, with the exact status, a message check, and "nothing written" on failure
 * (out/lse keep their poison) or the defined result on success.
 *
 * Case ids (F1..F18) match docs/guarantees.md. A case that cannot run in this build (the real
 * use-after-destroy under ASan / valgrind, GPU-only parts without a GPU) prints "skipped" and
 * is not counted. Last line: "<N> passed, <M> failed".
 */
#include "common.h"
#include "internal.h"
#include "cpu_kernels.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

static tc_case C;               /* the base problem                                   */
static mla_decode_plan_t P;     /* a CPU plan for it                                  */
static uint16_t *base_out;      /* the base problem's result                          */
static float *base_lse;

/* Runs decode with `a` on plan `p`; expects status `want` and, when failing, a message that
 * contains `needle` and untouched outputs. Returns the status. */
static mla_status run_expect(const char *id, mla_decode_plan_t p, const mla_decode_args *a,
                             void *ws, size_t wsb, struct CUstream_st *stream, mla_status want,
                             const char *needle)
{
    tc_case_poison(&C);
    mla_status st = mla_decode(p, a, ws, wsb, stream);
    tc_expect(st == want, "%s: status %s, expected %s (%s)", id, mla_status_string(st),
              mla_status_string(want), st ? mla_last_error() : "");
    if (st != MLA_OK) {
        tc_expect(mla_last_error()[0] != 0, "%s: empty error message", id);
        if (needle)
            tc_expect(strstr(mla_last_error(), needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
                      id, mla_last_error(), needle);
        int64_t written = 0;
        for (int64_t x = 0; x < C.out_elems; x++) written += C.out[x] != TC_POISON_HALF;
        for (int64_t x = 0; x < C.lse_elems; x++) written += mla_f32_bits(C.lse[x]) != 0x7fc00123u;
        tc_expect(written == 0, "%s: a failed call wrote %lld output elements", id,
                  (long long)written);
    }
    return st;
}

/* After a successful call: the result is byte-identical to the base run. */
static void expect_base_bytes(const char *id)
{
    tc_expect(memcmp(C.out, base_out, (size_t)C.out_elems * 2) == 0 &&
                  memcmp(C.lse, base_lse, (size_t)C.lse_elems * 4) == 0,
              "%s: result differs from the base run", id);
}

static int64_t out_off(int64_t i, int64_t j, int64_t h)
{
    return i * C.args.out_stride[0] + j * C.args.out_stride[1] + h * C.args.out_stride[2];
}
static int64_t lse_off(int64_t i, int64_t j, int64_t h)
{
    return i * C.args.lse_stride[0] + h * C.args.lse_stride[1] + j * C.args.lse_stride[2];
}

/* Checks which rows are NaN after a call: nan_row(i, j, h) says which must be; every other
 * row must be byte-identical to the base run. */
typedef int (*row_pred)(int64_t i, int64_t j, int64_t h, const void *ctx);
static void expect_nan_rows(const char *id, row_pred nan_row, const void *ctx)
{
    int64_t bad_nan = 0, bad_other = 0, nan_rows = 0;
    for (int64_t i = 0; i < C.cfg.b; i++)
        for (int64_t j = 0; j < C.q_lens[i]; j++)
            for (int64_t h = 0; h < C.cfg.h_q; h++) {
                const int64_t o = out_off(i, j, h), l = lse_off(i, j, h);
                if (nan_row(i, j, h, ctx)) {
                    nan_rows++;
                    for (int64_t d = 0; d < C.cfg.d_v; d++)
                        bad_nan += !isnan(mla_half_to_float(C.cfg.dtype, C.out[o + d]));
                    bad_nan += !isnan(C.lse[l]);
                } else {
                    bad_other += memcmp(C.out + o, base_out + o, (size_t)C.cfg.d_v * 2) != 0;
                    bad_other += mla_f32_bits(C.lse[l]) != mla_f32_bits(base_lse[l]);
                }
            }
    tc_expect(nan_rows > 0, "%s: the fault reaches at least one row", id);
    tc_expect(bad_nan == 0, "%s: %lld elements of the affected rows are not NaN", id, (long long)bad_nan);
    tc_expect(bad_other == 0, "%s: %lld unaffected rows changed", id, (long long)bad_other);
}

/* ---------------------------------------------------------------------------------------- */

static int64_t first_nonempty(void)
{
    for (int64_t i = 0; i < C.cfg.b; i++) if (C.seqlens[i] > C.cfg.page_size) return i;
    return 0;
}

static void f1_f2_block_table(void)
{
    printf("-- F1/F2 block_table values inside / outside the used range\n");
    const int64_t i = first_nonempty(), bts = C.args.block_table_stride;
    const int64_t used = (C.seqlens[i] + C.cfg.page_size - 1) / C.cfg.page_size;
    int32_t *bt = (int32_t *)malloc((size_t)C.bt_elems * 4);
    const int32_t bad[5] = {-1, (int32_t)C.num_pages, INT32_MAX, INT32_MIN, 2147480000};
    for (int v = 0; v < 5; v++) {
        memcpy(bt, C.block_table, (size_t)C.bt_elems * 4);
        bt[i * bts + used - 1] = bad[v]; /* the last used page of request i */
        mla_decode_args a = C.args;
        a.block_table = bt;
        char id[64], needle[64];
        snprintf(id, sizeof id, "F1 block_table = %d inside the used range", bad[v]);
        snprintf(needle, sizeof needle, "block_table[%lld][%lld] (%d)", (long long)i,
                 (long long)(used - 1), bad[v]);
        run_expect(id, P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT, needle);
    }
    /* past the used range: never read */
    memcpy(bt, C.block_table, (size_t)C.bt_elems * 4);
    for (int64_t r = 0; r < C.cfg.b; r++) {
        const int64_t u = (C.seqlens[r] + C.cfg.page_size - 1) / C.cfg.page_size;
        for (int64_t c = u; c < C.max_pages; c++) bt[r * bts + c] = (c & 1) ? -1 : INT32_MIN;
    }
    mla_decode_args a = C.args;
    a.block_table = bt;
    if (run_expect("F2 garbage block_table entries past the used range", P, &a, NULL, 0, NULL,
                   MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F2 garbage block_table entries past the used range");
    free(bt);
}

static void f3_f4_f5_seqlens(void)
{
    printf("-- F3/F4/F5 negative, too large and zero cache_seqlens\n");
    int32_t *seq = (int32_t *)malloc((size_t)C.cfg.b * 4);
    const int64_t cap = C.max_pages * C.cfg.page_size;
    const int32_t neg[3] = {-1, -1000, INT32_MIN};
    for (int v = 0; v < 3; v++) {
        memcpy(seq, C.seqlens, (size_t)C.cfg.b * 4);
        seq[1] = neg[v];
        mla_decode_args a = C.args;
        a.cache_seqlens = seq;
        char id[64];
        snprintf(id, sizeof id, "F3 cache_seqlens[1] = %d", neg[v]);
        run_expect(id, P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT, "is negative");
    }
    const int32_t big[2] = {(int32_t)cap + 1, INT32_MAX};
    for (int v = 0; v < 2; v++) {
        memcpy(seq, C.seqlens, (size_t)C.cfg.b * 4);
        seq[0] = big[v];
        mla_decode_args a = C.args;
        a.cache_seqlens = seq;
        char id[64];
        snprintf(id, sizeof id, "F4 cache_seqlens[0] = %d (cap %lld)", big[v], (long long)cap);
        run_expect(id, P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT, "exceeds max_pages");
    }
    /* zero: that request's rows are out = 0, lse = +inf; the others unchanged */
    memcpy(seq, C.seqlens, (size_t)C.cfg.b * 4);
    seq[2] = 0;
    mla_decode_args a = C.args;
    a.cache_seqlens = seq;
    if (run_expect("F5 cache_seqlens[2] = 0", P, &a, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK) {
        int64_t bad = 0, other = 0;
        for (int64_t i = 0; i < C.cfg.b; i++)
            for (int64_t j = 0; j < C.q_lens[i]; j++)
                for (int64_t h = 0; h < C.cfg.h_q; h++) {
                    const int64_t o = out_off(i, j, h), l = lse_off(i, j, h);
                    if (i == 2) {
                        for (int64_t d = 0; d < C.cfg.d_v; d++) bad += C.out[o + d] != 0;
                        bad += !(isinf(C.lse[l]) && C.lse[l] > 0);
                    } else {
                        other += memcmp(C.out + o, base_out + o, (size_t)C.cfg.d_v * 2) != 0;
                        other += mla_f32_bits(C.lse[l]) != mla_f32_bits(base_lse[l]);
                    }
                }
        tc_expect(bad == 0, "F5: %lld elements of the empty request are not out=+0 / lse=+inf",
                  (long long)bad);
        tc_expect(other == 0, "F5: %lld rows of other requests changed", (long long)other);
    }
    free(seq);
}

typedef struct qpos { int64_t i, j, h; } qpos;
static int is_q_row(int64_t i, int64_t j, int64_t h, const void *ctx)
{
    const qpos *p = (const qpos *)ctx;
    return i == p->i && j == p->j && h == p->h;
}

static void f6_f7_special_q(void)
{
    printf("-- F6/F7 NaN / +Inf / -Inf in q\n");
    const int64_t i = first_nonempty(), j = C.q_lens[i] - 1, h = 3;
    const qpos pos = {i, j, h};
    const float vals[3] = {NAN, INFINITY, -INFINITY};
    const char *names[3] = {"F6 NaN in q", "F7 +Inf in q", "F7 -Inf in q"};
    uint16_t *q = (uint16_t *)malloc((size_t)C.q_elems * 2);
    for (int v = 0; v < 3; v++) {
        memcpy(q, C.q, (size_t)C.q_elems * 2);
        q[i * C.args.q_stride[0] + j * C.args.q_stride[1] + h * C.args.q_stride[2] + 17] =
            mla_float_to_half(C.cfg.dtype, vals[v]);
        mla_decode_args a = C.args;
        a.q = q;
        if (run_expect(names[v], P, &a, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK)
            expect_nan_rows(names[v], is_q_row, &pos);
    }
    free(q);
}

typedef struct kpos { int64_t i, t; } kpos;
static int sees_key(int64_t i, int64_t j, int64_t h, const void *ctx)
{
    const kpos *p = (const kpos *)ctx;
    (void)h;
    if (i != p->i) return 0;
    const int64_t L = C.seqlens[i], n = C.q_lens[i];
    int64_t lim = C.cfg.causal ? L - n + j + 1 : L;
    if (lim > L) lim = L;
    return p->t < lim;
}

static void f8_f9_special_k(void)
{
    printf("-- F8/F9 NaN in a visible cache row; NaN/Inf in rows past the length\n");
    const int64_t i = first_nonempty(), L = C.seqlens[i];
    const kpos pos = {i, L - 1}; /* the last key: causal rows before the last do not see it */
    const int64_t ps = C.cfg.page_size, bts = C.args.block_table_stride;
    uint16_t *k = (uint16_t *)malloc((size_t)C.k_elems * 2);
    memcpy(k, C.k_cache, (size_t)C.k_elems * 2);
    const int64_t page = C.block_table[i * bts + pos.t / ps];
    k[page * C.args.k_stride[0] + (pos.t % ps) * C.args.k_stride[1] + 100] =
        mla_float_to_half(C.cfg.dtype, NAN);
    mla_decode_args a = C.args;
    a.k_cache = k;
    if (run_expect("F8 NaN in a visible K row", P, &a, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK)
        expect_nan_rows("F8 NaN in a visible K row", sees_key, &pos);
    /* rows past every length (the rest of the last used page) and unused pages: +Inf */
    memcpy(k, C.k_cache, (size_t)C.k_elems * 2);
    int64_t changed = 0;
    const uint16_t inf = mla_float_to_half(C.cfg.dtype, INFINITY);
    for (int64_t x = 0; x < C.k_elems; x++)
        if (isnan(mla_half_to_float(C.cfg.dtype, k[x]))) { k[x] = inf; changed++; }
    tc_expect(changed > 0, "F9: the base case has unused cache rows (%lld elements)", (long long)changed);
    if (run_expect("F9 +Inf in cache rows past the lengths", P, &a, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F9 +Inf in cache rows past the lengths");
    free(k);
}

static void f10_scale(void)
{
    printf("-- F10 softmax_scale <= 0, NaN or Inf: the default d_qk^-0.5\n");
    /* the base run used the default (0); an explicit d_qk^-0.5 gives the same bytes */
    mla_decode_args a = C.args;
    a.softmax_scale = (float)(1.0 / sqrt((double)C.cfg.d_qk));
    if (run_expect("F10 explicit d_qk^-0.5", P, &a, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F10 explicit d_qk^-0.5");
    const float vals[5] = {NAN, INFINITY, -INFINITY, -1.0f, -0.0f};
    for (int v = 0; v < 5; v++) {
        a.softmax_scale = vals[v];
        char id[64];
        snprintf(id, sizeof id, "F10 softmax_scale = %g", (double)vals[v]);
        if (run_expect(id, P, &a, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK) expect_base_bytes(id);
    }
}

static void f11_workspace_from_elsewhere(void)
{
    printf("-- F11 a workspace from another plan / garbage workspace on the CPU\n");
    /* The CPU workspace is optional (the key splits' partial rows, internal.h mla_cpu_split):
     * one smaller than the plan's size, or NULL, is never touched and the call runs unsplit
     * (the base run's bytes). Another plan's size: what the rule gives for its shape. */
    size_t need = 0;
    tc_expect(mla_decode_workspace_size(P, &need) == MLA_OK, "F11 workspace size");
    mla_decode_shape s2 = C.shape;
    s2.h_q = 64;
    s2.b = 9;
    mla_decode_plan_t other = NULL;
    tc_expect(mla_decode_plan_create(&other, &s2, MLA_DEVICE_CPU) == MLA_OK, "F11 other plan");
    size_t other_ws = 7;
    const size_t other_want = other && other->cpu_kernel != MLA_CPU_KERNEL_REF ? mla_cpu_split_workspace(&other->shape) : 0;
    tc_expect(mla_decode_workspace_size(other, &other_ws) == MLA_OK && other_ws == other_want,
              "F11 CPU workspace size of another plan: %zu (want %zu)", other_ws, other_want);
    uint8_t *ws = (uint8_t *)malloc(4096);
    memset(ws, 0x3c, 4096);
    if (run_expect("F11 workspace of another plan", P, &C.args, ws, 4096, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F11 workspace of another plan");
    int untouched = 1;
    for (int x = 0; x < 4096; x++) untouched &= ws[x] == 0x3c;
    tc_expect(untouched, "F11: the CPU path wrote into the workspace");
    if (need > 4096 &&
        run_expect("F11 garbage workspace pointer, one byte short of the plan's size", P, &C.args,
                   (void *)(uintptr_t)0x10, need - 1, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F11 garbage workspace pointer, one byte short of the plan's size");
    if (run_expect("F11 NULL workspace, huge size", P, &C.args, NULL, SIZE_MAX, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F11 NULL workspace, huge size");
    mla_decode_args a = C.args;
    a.flags = MLA_DECODE_REUSE_SCHEDULE;
    if (run_expect("F11 MLA_DECODE_REUSE_SCHEDULE on the CPU", P, &a, ws, 4096, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F11 MLA_DECODE_REUSE_SCHEDULE on the CPU");
    mla_decode_plan_destroy(other);
    free(ws);
}

static void f12_plan_after_destroy(void)
{
    printf("-- F12 a plan used after destroy\n");
    /* (a) the memory is still ours and holds the dead magic: always detected */
    struct mla_decode_plan fake = *P; /* a copy of a real plan (its normalised shape) */
    fake.magic = MLA_PLAN_MAGIC_DEAD;
    run_expect("F12 decode on a destroyed plan (dead magic)", &fake, &C.args, NULL, 0, NULL,
               MLA_ERR_INVALID_ARGUMENT, "destroyed");
    size_t wsb;
    tc_expect(mla_decode_workspace_size(&fake, &wsb) == MLA_ERR_INVALID_ARGUMENT &&
                  strstr(mla_last_error(), "destroyed"),
              "F12 workspace_size on a destroyed plan");
    tc_expect(mla_decode_plan_info(&fake, NULL, NULL) == MLA_ERR_INVALID_ARGUMENT,
              "F12 plan_info on a destroyed plan");
    tc_expect(mla_decode_plan_destroy(&fake) == MLA_ERR_INVALID_ARGUMENT &&
                  strstr(mla_last_error(), "destroyed"),
              "F12 double destroy");
    fake.magic = 0x0123456789abcdefull;
    run_expect("F12 decode on a garbage plan object", &fake, &C.args, NULL, 0, NULL,
               MLA_ERR_INVALID_ARGUMENT, "not a valid");
    /* (b) a real plan after mla_decode_plan_destroy: reading freed memory is undefined, so the
     * check is best-effort (the allocator may have reused the bytes). AddressSanitizer and
     * valgrind report the read as a use-after-free by design: skipped there. */
    if (UNDER_ASAN || UNDER_VALGRIND() || getenv("MLA_TEST_NO_UAF")) {
        printf("  skipped: real use-after-destroy (%s reports it as a use-after-free)\n",
               UNDER_ASAN ? "AddressSanitizer" : "valgrind");
        return;
    }
    mla_decode_plan_t p = NULL;
    tc_expect(mla_decode_plan_create(&p, &C.shape, MLA_DEVICE_CPU) == MLA_OK, "F12 create");
    tc_expect(mla_decode_plan_destroy(p) == MLA_OK, "F12 destroy");
    tc_case_poison(&C);
    mla_status st = mla_decode(p, &C.args, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT &&
                  (strstr(mla_last_error(), "destroyed") || strstr(mla_last_error(), "not a valid")),
              "F12 decode right after destroy (freed memory): %s \"%s\"", mla_status_string(st),
              mla_last_error());
}

static void f13_workspace_size(void)
{
    printf("-- F13 undersized workspace_bytes\n");
    /* CPU: the workspace is optional; 0 / NULL runs unsplit */
    if (run_expect("F13 CPU: NULL workspace, 0 bytes", P, &C.args, NULL, 0, NULL, MLA_OK, NULL) == MLA_OK)
        expect_base_bytes("F13 CPU: NULL workspace, 0 bytes");
    /* GPU rules, exercised without a GPU via a hand-made GPU plan object (validation runs
     * before any backend call; the buffers are host memory, never touched) */
    struct mla_decode_plan fake = *P; /* a real plan's facts, turned into a GPU plan */
    fake.magic = MLA_PLAN_MAGIC_LIVE;
    fake.device = 0;
    fake.gpu.workspace_bytes = 8192;
    fake.gpu.num_sm_parts = 4;
    static uint8_t wsmem[8192 + 256];
    void *ws = (void *)(((uintptr_t)wsmem + 255) & ~(uintptr_t)255);
    mla_decode_args a = C.args; /* not strided: strides are multiples of 8 */
    if (((uintptr_t)a.q & 15) || ((uintptr_t)a.k_cache & 15) || ((uintptr_t)a.out & 15)) {
        printf("  skipped: GPU workspace rules (host buffers not 16-byte aligned)\n");
        return;
    }
    run_expect("F13 GPU: workspace_bytes = 8191 of 8192", &fake, &a, ws, 8191, NULL,
               MLA_ERR_WORKSPACE_TOO_SMALL, "8191");
    run_expect("F13 GPU: workspace_bytes = 0", &fake, &a, NULL, 0, NULL,
               MLA_ERR_WORKSPACE_TOO_SMALL, "8192");
    run_expect("F13 GPU: NULL workspace with enough bytes", &fake, &a, NULL, 8192, NULL,
               MLA_ERR_INVALID_ARGUMENT, "NULL");
    run_expect("F13 GPU: workspace not 256-byte aligned", &fake, &a, (uint8_t *)ws + 64, 8192,
               NULL, MLA_ERR_INVALID_ARGUMENT, "256-byte");
}

static void f14_to_f18_arguments(void)
{
    printf("-- F14..F18 output layouts, cu_seqlens_q, pointers, stream, device\n");
    mla_decode_args a = C.args;
    a.out_stride[2] = C.cfg.d_v / 2; /* rows of out would overlap */
    run_expect("F14 out rows overlap (out_stride[2] < d_v)", P, &a, NULL, 0, NULL,
               MLA_ERR_INVALID_ARGUMENT, "overlap");
    a = C.args;
    a.lse_stride[1] = 0;
    run_expect("F14 lse_stride[1] = 0 (heads alias)", P, &a, NULL, 0, NULL,
               MLA_ERR_INVALID_ARGUMENT, "lse_stride[1]");
    a = C.args;
    a.out_stride[0] = INT64_MAX / 2;
    run_expect("F14 out_stride[0] overflows int64 offsets", P, &a, NULL, 0, NULL,
               MLA_ERR_INVALID_ARGUMENT, "overflow");

    int32_t cu[8];
    a = C.args;
    cu[0] = 0; cu[1] = 2; cu[2] = 1; cu[3] = 3;
    a.cu_seqlens_q = cu;
    run_expect("F15 cu_seqlens_q decreasing", P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT,
               "non-decreasing");
    cu[0] = 0; cu[1] = 1; cu[2] = 1 + (int32_t)C.cfg.s_q + 1; cu[3] = cu[2];
    run_expect("F15 cu_seqlens_q length > s_q", P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT,
               "more than s_q");

    a = C.args;
    a.lse = NULL;
    run_expect("F16 lse NULL", P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT, "lse is NULL");
    a = C.args;
    a.q = (const uint8_t *)C.q + 1;
    run_expect("F16 q not 2-byte aligned", P, &a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT,
               "aligned");
    a = C.args;
    a.cache_seqlens = (const int32_t *)((const uint8_t *)C.seqlens + 2);
    run_expect("F16 cache_seqlens not 4-byte aligned", P, &a, NULL, 0, NULL,
               MLA_ERR_INVALID_ARGUMENT, "aligned");

    run_expect("F17 non-NULL stream on a CPU plan", P, &C.args, NULL, 0,
               (struct CUstream_st *)(uintptr_t)0x40, MLA_ERR_INVALID_ARGUMENT, "stream");

    mla_decode_plan_t p = (mla_decode_plan_t)(uintptr_t)0x1;
    mla_status st = mla_decode_plan_create(&p, &C.shape, -2);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && p == NULL, "F18 device -2: %s", mla_status_string(st));
    if (!mla_has_cuda()) {
        /* A build without CUDA kernels says so; a CUDA build on a machine with no usable GPU
         * (driver or device missing) says that instead. Either way: UNSUPPORTED, no plan. */
#ifdef MLA_WITH_CUDA
        const char *want = "no CUDA device is usable";
#else
        const char *want = "without CUDA";
#endif
        st = mla_decode_plan_create(&p, &C.shape, 0);
        tc_expect(st == MLA_ERR_UNSUPPORTED && p == NULL && strstr(mla_last_error(), want),
                  "F18 CUDA ordinal without a usable GPU: %s \"%s\" (want \"%s\")",
                  mla_status_string(st), mla_last_error(), want);
    } else {
        printf("  skipped: F18 CUDA ordinal without a usable GPU (a GPU is visible here)\n");
    }
}

/* The plan, the base result and the fault groups with MLA_CPU_KERNEL as it is now; all = 0: only
 * the groups whose results depend on the kernel's numerics (F6-F10). */
static void run_groups(int all)
{
    if (!tc_expect(mla_decode_plan_create(&P, &C.shape, MLA_DEVICE_CPU) == MLA_OK, "plan: %s", mla_last_error()))
        return;
    tc_case_poison(&C);
    if (tc_expect(mla_decode(P, &C.args, NULL, 0, NULL) == MLA_OK, "base decode: %s", mla_last_error())) {
        base_out = (uint16_t *)malloc((size_t)C.out_elems * 2);
        base_lse = (float *)malloc((size_t)C.lse_elems * 4);
        memcpy(base_out, C.out, (size_t)C.out_elems * 2);
        memcpy(base_lse, C.lse, (size_t)C.lse_elems * 4);
        if (all) {
            f1_f2_block_table();
            f3_f4_f5_seqlens();
        }
        f6_f7_special_q();
        f8_f9_special_k();
        f10_scale();
        if (all) {
            f11_workspace_from_elsewhere();
            f12_plan_after_destroy();
            f13_workspace_size();
            f14_to_f18_arguments();
        }
        free(base_out);
        free(base_lse);
        base_out = NULL;
        base_lse = NULL;
    }
    mla_decode_plan_destroy(P);
    P = NULL;
}

int main(void)
{
    tc_config cfg = tc_config_default();
    cfg.b = 3;
    cfg.s_q = 2;
    cfg.s_k = 100;
    cfg.h_q = 8;
    cfg.h_kv = 1;
    cfg.page_size = 16;
    cfg.causal = 1;
    cfg.seed = 42;
    if (tc_case_build(&C, &cfg) != 0) {
        printf("cannot build the base case\n");
        return 1;
    }
    /* The CPU kernel MLA_CPU_KERNEL picks runs every group; with it unset, every other kernel this
     * machine has then runs the groups whose results depend on its numerics (tests/cpu_kernels.h). */
    tck_env env = tck_env_save();
    const int kernel = tck_decode_kernel();
    printf("CPU kernel of the bf16 plans: %s, %s\n", kernel < 0 ? "none" : tck_name(kernel),
           kernel < 0 ? mla_last_error() : tck_what(kernel));
    run_groups(1);
    int others[TCK_MAX_KERNELS];
    const int n_others = env.set || kernel < 0 ? 0 : tck_other_kernels(kernel, others);
    for (int i = 0; i < n_others; i++) {
        printf("-- again with %s, %s (MLA_CPU_KERNEL=%s): F6-F10\n", tck_name(others[i]), tck_what(others[i]),
               tck_env_value(others[i]));
        setenv("MLA_CPU_KERNEL", tck_env_value(others[i]), 1);
        if (tc_expect(tck_decode_kernel() == others[i], "MLA_CPU_KERNEL=%s: bf16 plans run %s",
                      tck_env_value(others[i]), tck_name(others[i])))
            run_groups(0);
    }
    tck_env_restore(&env);
    tc_case_free(&C);
    return tc_summary();
}
