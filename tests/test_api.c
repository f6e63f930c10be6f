/* test_api.c — the C ABI contract: every invalid argument returns the documented status and a
 * message with the key words, and writes nothing (outputs and workspace are poisoned before the
 * call and compared byte for byte after). Also version, status strings, defaults, struct_size
 * compatibility, plan info, the thread-local error, and a GPU device on a build without CUDA.
 *
 * GPU-only validation (16-byte alignment, strides multiple of 8, workspace size/alignment) is
 * exercised with a hand-made GPU plan object (src/internal.h): api.c validates before it
 * dispatches, so these checks run identically on CPU-only builds. */
#include <pthread.h>
#include <stddef.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "common.h"
#include "internal.h"
#include "cpu_kernels.h"

/* The Makefile compiles tests with -DMLA_WITH_CUDA=1 when the library has CUDA kernels. Then
 * mla_has_cuda() says whether a GPU is usable, and nothing here may reach the real backend
 * with host pointers. */
#ifdef MLA_WITH_CUDA
#define BUILT_WITH_CUDA 1
#else
#define BUILT_WITH_CUDA 0
#endif

static int has_all(const char *msg, const char *k1, const char *k2, const char *k3)
{
    return (!k1 || strstr(msg, k1)) && (!k2 || strstr(msg, k2)) && (!k3 || strstr(msg, k3));
}

/* ---- plan creation -------------------------------------------------------------------------- */

static void check_create(const char *label, const mla_decode_shape *s, int device, mla_status want,
                         const char *k1, const char *k2, const char *k3)
{
    mla_decode_plan_t plan = (mla_decode_plan_t)(uintptr_t)0x1234; /* must be reset to NULL */
    mla_status st = mla_decode_plan_create(&plan, s, device);
    const char *msg = mla_last_error();
    tc_expect(st == want, "%s: status %s, want %s (%s)", label, mla_status_string(st),
              mla_status_string(want), msg);
    if (want != MLA_OK) {
        tc_expect(plan == NULL, "%s: *plan not NULL after a failed create", label);
        tc_expect(has_all(msg, k1, k2, k3), "%s: message \"%s\" lacks \"%s\"/\"%s\"/\"%s\"", label, msg,
                  k1 ? k1 : "", k2 ? k2 : "", k3 ? k3 : "");
    } else if (plan) {
        mla_decode_plan_destroy(plan);
    }
}

static void test_create(void)
{
    printf("-- plan creation\n");
    const mla_decode_shape good = mla_decode_shape_default();
    mla_decode_shape s;
    mla_status st = mla_decode_plan_create(NULL, &good, MLA_DEVICE_CPU);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "plan"),
              "NULL plan pointer: %s %s", mla_status_string(st), mla_last_error());
    check_create("shape NULL", NULL, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "shape", "NULL", NULL);
    check_create("good shape", &good, MLA_DEVICE_CPU, MLA_OK, NULL, NULL, NULL);

#define BAD(field, value, k1, k2)                                                              \
    do {                                                                                       \
        s = good;                                                                              \
        s.field = value;                                                                       \
        check_create(#field " = " #value, &s, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, k1, k2, \
                     NULL);                                                                    \
    } while (0)
    BAD(b, 0, "b (0)", ">= 1");
    BAD(b, -5, "b (-5)", ">= 1");
    BAD(b, 4294967296LL, "b (4294967296)", "exceeds");
    BAD(s_q, 0, "s_q (0)", ">= 1");
    BAD(h_q, 0, "h_q (0)", ">= 1");
    BAD(h_kv, 0, "h_kv (0)", ">= 1");
    BAD(h_kv, -1, "h_kv (-1)", NULL);
    BAD(page_size, 0, "page_size (0)", ">= 1");
    BAD(page_size, -64, "page_size (-64)", NULL);
    BAD(d_qk, 128, "d_qk (128)", "576");
    BAD(d_qk, 0, "d_qk (0)", NULL);
    BAD(d_v, 256, "d_v (256)", "512");
    BAD(d_v, 576, "d_v (576)", NULL);
    BAD(dtype, MLA_DTYPE_FP32, "dtype", "MLA_DTYPE_FP32");
    BAD(dtype, MLA_DTYPE_FP8_E4M3, "dtype", "BF16");
    BAD(dtype, MLA_DTYPE_INVALID, "dtype (0", NULL);
    BAD(dtype, (mla_dtype)77, "dtype (77", NULL);
    BAD(causal, 2, "causal (2)", "0 or 1");
    BAD(causal, -1, "causal (-1)", NULL);
    BAD(cpu_threads, -1, "cpu_threads (-1)", NULL);
    BAD(cpu_threads, 100000, "cpu_threads (100000)", NULL);
#undef BAD
    s = good; s.h_q = 63; s.h_kv = 2;
    check_create("h_q % h_kv", &s, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT,
                 "h_q (63) is not divisible by h_kv (2)", NULL, NULL);
    s = good; s.h_q = 128; s.h_kv = 3;
    check_create("h_q 128 % h_kv 3", &s, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT,
                 "h_q (128) is not divisible by h_kv (3)", NULL, NULL);
    s = good; s.h_q = 126; s.h_kv = 3; s.page_size = 7; s.d_qk = 512; s.dtype = MLA_DTYPE_FP16;
    s.causal = 1; s.s_q = 4; s.cpu_threads = 1;
    check_create("odd but valid shape", &s, MLA_DEVICE_CPU, MLA_OK, NULL, NULL, NULL);

    /* struct_size */
    s = good; s.struct_size = sizeof s + 8;
    check_create("struct_size from the future", &s, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT,
                 "struct_size", "newer", NULL);
    s = good; s.struct_size = 0;
    check_create("struct_size 0", &s, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT, "struct_size (0)",
                 "too small", NULL);
    s = good; s.struct_size = offsetof(mla_decode_shape, h_q); /* lacks h_q */
    check_create("struct_size without h_q", &s, MLA_DEVICE_CPU, MLA_ERR_INVALID_ARGUMENT,
                 "struct_size", "too small", NULL);
    /* an older caller: fields past its struct_size are garbage and must take their defaults */
    s = good; s.struct_size = offsetof(mla_decode_shape, causal);
    s.causal = 7; s.cpu_threads = -3;
    check_create("older struct_size (garbage past it ignored)", &s, MLA_DEVICE_CPU, MLA_OK, NULL,
                 NULL, NULL);

    /* devices */
    check_create("device -2", &good, -2, MLA_ERR_INVALID_ARGUMENT, "device (-2)", NULL, NULL);
    s = good; s.page_size = 20;
    check_create("GPU page_size 20", &s, 0, MLA_ERR_INVALID_ARGUMENT, "page_size (20)",
                 "multiple of 16", NULL);
    check_create("CPU page_size 20", &s, MLA_DEVICE_CPU, MLA_OK, NULL, NULL, NULL);
    if (!BUILT_WITH_CUDA) {
        check_create("GPU device without CUDA", &good, 0, MLA_ERR_UNSUPPORTED, "without CUDA",
                     NULL, NULL);
        check_create("GPU device 3 without CUDA", &good, 3, MLA_ERR_UNSUPPORTED, "without CUDA",
                     NULL, NULL);
    } else if (!mla_has_cuda()) {
        check_create("GPU device on a CUDA build without a GPU", &good, 0, MLA_ERR_UNSUPPORTED,
                     "CUDA", NULL, NULL);
    } else {
        printf("  (GPU-device creation checks left to test_gpu: a GPU is visible)\n");
    }
}

/* ---- decode --------------------------------------------------------------------------------- */

static tc_case C0;                 /* a small valid problem: b=3, s_q=2, h_q=4, h_kv=2, page 16 */
static uint16_t *snap_out;
static float *snap_lse;
static unsigned char ws_buf[4096 + 256];
static unsigned char ws_snap[sizeof ws_buf];

static void poison_and_snapshot(void)
{
    tc_case_poison(&C0);
    memcpy(snap_out, C0.out, (size_t)C0.out_elems * 2);
    memcpy(snap_lse, C0.lse, (size_t)C0.lse_elems * 4);
    for (size_t x = 0; x < sizeof ws_buf; x++) ws_buf[x] = (unsigned char)(0xa5 ^ x);
    memcpy(ws_snap, ws_buf, sizeof ws_buf);
}

static int untouched(void)
{
    return memcmp(snap_out, C0.out, (size_t)C0.out_elems * 2) == 0 &&
           memcmp(snap_lse, C0.lse, (size_t)C0.lse_elems * 4) == 0 &&
           memcmp(ws_snap, ws_buf, sizeof ws_buf) == 0;
}

static void check_decode_ws(const char *label, mla_decode_plan_t plan, const mla_decode_args *a,
                            void *ws, size_t wsb, struct CUstream_st *stream, mla_status want,
                            const char *k1, const char *k2, const char *k3)
{
    poison_and_snapshot();
    mla_status st = mla_decode(plan, a, ws, wsb, stream);
    const char *msg = mla_last_error();
    tc_expect(st == want, "%s: status %s, want %s (%s)", label, mla_status_string(st),
              mla_status_string(want), msg);
    tc_expect(has_all(msg, k1, k2, k3), "%s: message \"%s\" lacks \"%s\"/\"%s\"/\"%s\"", label, msg,
              k1 ? k1 : "", k2 ? k2 : "", k3 ? k3 : "");
    tc_expect(untouched(), "%s: a failed call wrote to out, lse or the workspace", label);
}

static void check_decode(const char *label, mla_decode_plan_t plan, const mla_decode_args *a,
                         const char *k1, const char *k2, const char *k3)
{
    check_decode_ws(label, plan, a, NULL, 0, NULL, MLA_ERR_INVALID_ARGUMENT, k1, k2, k3);
}

/* A decode that must succeed and write every existing row. */
static void check_decode_ok(const char *label, mla_decode_plan_t plan, const mla_decode_args *a)
{
    poison_and_snapshot();
    mla_status st = mla_decode(plan, a, NULL, 0, NULL);
    tc_expect(st == MLA_OK, "%s: status %s (%s)", label, mla_status_string(st), mla_last_error());
    int64_t nan_out = 0;
    for (int64_t i = 0; i < C0.cfg.b; i++)
        for (int64_t j = 0; j < C0.q_lens[i]; j++)
            for (int64_t h = 0; h < C0.cfg.h_q; h++) {
                const uint16_t *o = C0.out + i * a->out_stride[0] + j * a->out_stride[1] + h * a->out_stride[2];
                for (int d = 0; d < 512; d++) nan_out += o[d] == TC_POISON_HALF;
            }
    tc_expect(nan_out == 0, "%s: %lld output elements left unwritten", label, (long long)nan_out);
}

static void test_decode_args(void)
{
    printf("-- decode arguments (CPU plan)\n");
    tc_config cfg = tc_config_default();
    cfg.b = 3; cfg.s_q = 2; cfg.h_q = 4; cfg.h_kv = 2; cfg.s_k = 40; cfg.page_size = 16;
    cfg.causal = 1; cfg.strided = 1; cfg.cu_seqlens_q = 1; cfg.cpu_threads = 2;
    static const int32_t qlens[3] = {2, 0, 1};
    cfg.q_lens = qlens;
    if (tc_case_build(&C0, &cfg)) { tc_expect(0, "allocation"); return; }
    snap_out = (uint16_t *)malloc((size_t)C0.out_elems * 2);
    snap_lse = (float *)malloc((size_t)C0.lse_elems * 4);
    mla_decode_plan_t plan = NULL;
    mla_status st = mla_decode_plan_create(&plan, &C0.shape, MLA_DEVICE_CPU);
    if (!tc_expect(st == MLA_OK, "create: %s", mla_last_error())) return;
    const mla_decode_args good = C0.args;
    mla_decode_args a;
    check_decode_ok("valid call", plan, &good);

    check_decode("plan NULL", NULL, &good, "plan is NULL", NULL, NULL);
    check_decode("args NULL", plan, NULL, "args is NULL", NULL, NULL);

    /* struct_size */
    a = good; a.struct_size = sizeof a + 16;
    check_decode("args struct_size from the future", plan, &a, "struct_size", "newer", NULL);
    a = good; a.struct_size = 0;
    check_decode("args struct_size 0", plan, &a, "struct_size (0)", "too small", NULL);
    a = good; a.struct_size = offsetof(mla_decode_args, lse);
    check_decode("args struct_size without lse", plan, &a, "struct_size", "too small", NULL);

    /* pointers */
#define BADP(field, value, k1, k2)                        \
    do {                                                  \
        a = good;                                         \
        a.field = value;                                  \
        check_decode(#field " = " #value, plan, &a, k1, k2, NULL); \
    } while (0)
    BADP(q, NULL, "q is NULL", NULL);
    BADP(k_cache, NULL, "k_cache is NULL", NULL);
    BADP(block_table, NULL, "block_table is NULL", NULL);
    BADP(cache_seqlens, NULL, "cache_seqlens is NULL", NULL);
    BADP(out, NULL, "out is NULL", NULL);
    BADP(lse, NULL, "lse is NULL", NULL);
    BADP(q, (const char *)good.q + 1, "q (", "2-byte aligned");
    BADP(k_cache, (const char *)good.k_cache + 1, "k_cache (", "aligned");
    BADP(out, (char *)good.out + 1, "out (", "aligned");
    BADP(lse, (float *)((char *)good.lse + 2), "lse (", "4-byte aligned");
    BADP(block_table, (const int32_t *)((const char *)good.block_table + 1), "block_table (", "aligned");
    BADP(cache_seqlens, (const int32_t *)((const char *)good.cache_seqlens + 2), "cache_seqlens (", "aligned");
    BADP(cu_seqlens_q, (const int32_t *)((const char *)good.cu_seqlens_q + 1), "cu_seqlens_q (", "aligned");

    /* sizes, strides, flags */
    BADP(num_pages, 0, "num_pages (0)", ">= 1");
    BADP(num_pages, -1, "num_pages (-1)", NULL);
    BADP(max_pages, 0, "max_pages (0)", ">= 1");
    BADP(q_stride[2], 500, "q_stride[2] (500)", "overlap");
    BADP(q_stride[2], 0, "q_stride[2] (0)", "positive");
    BADP(q_stride[1], -1, "q_stride[1] (-1)", "negative");
    BADP(q_stride[0], good.q_stride[1], "q_stride", "overlap");
    BADP(k_stride[2], 575, "k_stride[2] (575)", "overlap");
    BADP(k_stride[1], good.k_stride[2], "k_stride", "overlap");
    BADP(k_stride[0], 0, "k_stride[0] (0)", "positive");
    BADP(k_stride[0], 4611686018427387904LL, "k_cache", "int64");
    BADP(out_stride[2], 511, "out_stride[2] (511)", "overlap");
    BADP(out_stride[1], 0, "out_stride[1] (0)", NULL);
    BADP(out_stride[0], -4, "out_stride[0] (-4)", "negative");
    BADP(lse_stride[2], 0, "lse_stride[2] (0)", NULL);
    BADP(lse_stride[1], good.lse_stride[2], "lse_stride", "overlap");
    BADP(block_table_stride, good.max_pages - 1, "block_table_stride", "overlap");
    BADP(block_table_stride, 0, "block_table_stride (0)", NULL);
    BADP(q_stride[0], 4611686018427387904LL, "q", "2^63");
    BADP(flags, 0x80u, "flags (0x80)", "unknown");
#undef BADP

    /* stream and workspace on the CPU */
    check_decode_ws("stream on a CPU plan", plan, &good, NULL, 0, (struct CUstream_st *)(uintptr_t)0x40,
                    MLA_ERR_INVALID_ARGUMENT, "stream", "NULL", "CPU");
    poison_and_snapshot();
    st = mla_decode(plan, &good, ws_buf, 17, NULL);
    tc_expect(st == MLA_OK, "CPU plan ignores workspace: %s", mla_last_error());

    /* host values (CPU plans read them) */
    int32_t seq_bak[3], bt_bak[64], cu_bak[4];
    memcpy(seq_bak, C0.seqlens, sizeof seq_bak);
    memcpy(bt_bak, C0.block_table, (size_t)C0.bt_elems * 4);
    memcpy(cu_bak, C0.cu_seqlens_q, sizeof cu_bak);
#define RESTORE()                                                           \
    do {                                                                    \
        memcpy(C0.seqlens, seq_bak, sizeof seq_bak);                        \
        memcpy(C0.block_table, bt_bak, (size_t)C0.bt_elems * 4);           \
        memcpy(C0.cu_seqlens_q, cu_bak, sizeof cu_bak);                     \
    } while (0)
    char want[160];
    C0.seqlens[1] = -1;
    check_decode("negative cache_seqlens", plan, &good, "cache_seqlens[1] (-1)", "negative", NULL);
    RESTORE();
    C0.seqlens[2] = (int32_t)(C0.max_pages * 16 + 1);
    snprintf(want, sizeof want, "cache_seqlens[2] (%d) exceeds max_pages * page_size", C0.seqlens[2]);
    check_decode("cache_seqlens too large", plan, &good, want, NULL, NULL);
    RESTORE();
    C0.block_table[0 * C0.max_pages + 1] = -1;
    check_decode("block_table entry -1", plan, &good, "block_table[0][1] (-1)", "num_pages", NULL);
    RESTORE();
    C0.block_table[2 * C0.max_pages + 0] = (int32_t)C0.num_pages;
    snprintf(want, sizeof want, "block_table[2][0] (%lld) is outside", (long long)C0.num_pages);
    check_decode("block_table entry num_pages", plan, &good, want, NULL, NULL);
    RESTORE();
    C0.block_table[1 * C0.max_pages + C0.max_pages - 1] = -7; /* past the used pages: never read */
    check_decode_ok("garbage block_table past the used pages", plan, &good);
    RESTORE();
    C0.cu_seqlens_q[2] = 1; /* {0,2,1,3}: decreasing */
    check_decode("cu_seqlens_q decreasing", plan, &good, "non-decreasing", "cu_seqlens_q[1] (2)", NULL);
    RESTORE();
    C0.cu_seqlens_q[3] = 6; /* request 2 gets 3 > s_q = 2 */
    check_decode("cu_seqlens_q length > s_q", plan, &good, "request 2", "more than s_q (2)", NULL);
    RESTORE();
    check_decode_ok("valid call after the failures", plan, &good);

    /* an older args struct: fields past struct_size (softmax_scale, flags) take defaults */
    a = good; a.struct_size = offsetof(mla_decode_args, softmax_scale);
    a.softmax_scale = 1e6f; a.flags = 0xffu;
    check_decode_ok("older args struct_size (garbage past it ignored)", plan, &a);
    uint16_t *out_old = (uint16_t *)malloc((size_t)C0.out_elems * 2);
    memcpy(out_old, C0.out, (size_t)C0.out_elems * 2);
    check_decode_ok("default softmax_scale", plan, &good);
    tc_expect(memcmp(out_old, C0.out, (size_t)C0.out_elems * 2) == 0,
              "older args struct_size: softmax_scale past struct_size was used");
    free(out_old);

    /* schedule / workspace size / info on a CPU plan */
    size_t wsb = 99;
    st = mla_decode_workspace_size(plan, &wsb);
    /* the CPU fast kernels' key splits (internal.h mla_cpu_split): optional, sized by the rule */
    const size_t want_ws = plan->cpu_kernel == MLA_CPU_KERNEL_REF ? 0 : mla_cpu_split_workspace(&plan->shape);
    tc_expect(st == MLA_OK && wsb == want_ws, "CPU workspace size: %s %zu (want %zu)", mla_status_string(st), wsb,
              want_ws);
    {
        /* the rule: calls with fewer than 16 row tiles (b x h_kv x 16-row tiles) split, into at
         * most 64 ranges and 4096 partial rows of 514 floats; others never */
        mla_decode_shape t = mla_decode_shape_default();
        t.b = 1; t.s_q = 1; t.h_q = 16; t.h_kv = 1;
        tc_expect(mla_cpu_split_workspace(&t) == (size_t)64 * 16 * 514 * 4 + 64, "split workspace b=1 h_q=16: %zu",
                  mla_cpu_split_workspace(&t));
        t.h_q = 128;
        tc_expect(mla_cpu_split_workspace(&t) == (size_t)32 * 128 * 514 * 4 + 64,
                  "split workspace b=1 h_q=128 (4096 rows / 128 = 32 ranges): %zu", mla_cpu_split_workspace(&t));
        t.b = 2;
        tc_expect(mla_cpu_split_workspace(&t) == 0, "b=2 h_q=128: 16 tiles, never split (%zu)",
                  mla_cpu_split_workspace(&t));
        t.b = 16; t.h_q = 16;
        tc_expect(mla_cpu_split_workspace(&t) == 0, "b=16 h_q=16: never split (%zu)", mla_cpu_split_workspace(&t));
        /* the largest dims: b x h_kv x 16-row tiles overflows int64 (the count saturates: never split) */
        t.b = INT32_MAX; t.s_q = INT32_MAX; t.h_q = INT32_MAX; t.h_kv = 1;
        tc_expect(mla_cpu_split_workspace(&t) == 0, "the largest dims: never split (%zu)", mla_cpu_split_workspace(&t));
    }
    st = mla_decode_workspace_size(plan, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "bytes"), "workspace_size(NULL)");
    st = mla_decode_workspace_size(NULL, &wsb);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "plan"), "workspace_size(plan NULL)");
    int dev = 5, parts = 0;
    st = mla_decode_plan_info(plan, &dev, &parts);
    tc_expect(st == MLA_OK && dev == MLA_DEVICE_CPU && parts == 1, "plan_info: %d %d", dev, parts);
    tc_expect(mla_decode_plan_info(plan, NULL, NULL) == MLA_OK, "plan_info(NULL, NULL)");
    tc_expect(mla_decode_plan_info(NULL, &dev, &parts) == MLA_ERR_INVALID_ARGUMENT, "plan_info(NULL plan)");
    tc_expect(mla_decode_schedule(plan, C0.seqlens, NULL, 0, NULL) == MLA_OK, "CPU schedule: %s", mla_last_error());
    tc_expect(mla_decode_schedule(plan, NULL, NULL, 0, NULL) == MLA_OK, "CPU schedule is a no-op");
    st = mla_decode_schedule(plan, C0.seqlens, NULL, 0, (struct CUstream_st *)(uintptr_t)8);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "stream"), "CPU schedule with a stream");
    st = mla_decode_schedule(NULL, C0.seqlens, NULL, 0, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "plan is NULL"), "schedule(NULL plan)");

    tc_expect(mla_decode_plan_destroy(plan) == MLA_OK, "destroy");
    tc_expect(mla_decode_plan_destroy(NULL) == MLA_OK, "destroy(NULL)");
}

/* ---- plan objects that are not live, and GPU-only validation via a hand-made plan ------------ */

static void test_fake_plans(void)
{
    printf("-- dead plans and GPU-only validation (hand-made plan objects)\n");
    /* start from a copy of a real CPU plan, so every field the library fills is filled */
    struct mla_decode_plan fake;
    mla_decode_plan_t real = NULL;
    if (!tc_expect(mla_decode_plan_create(&real, &C0.shape, MLA_DEVICE_CPU) == MLA_OK, "plan: %s",
                   mla_last_error()))
        return;
    fake = *real;
    mla_decode_plan_destroy(real);
    fake.magic = MLA_PLAN_MAGIC_DEAD;
    const mla_decode_args good = C0.args;
    check_decode("destroyed plan", &fake, &good, "destroyed", NULL, NULL);
    size_t wsb;
    mla_status st = mla_decode_workspace_size(&fake, &wsb);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "destroyed"), "workspace_size on a destroyed plan");
    st = mla_decode_plan_destroy(&fake);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "destroyed"), "double destroy");
    fake.magic = 0x1122334455667788ull;
    check_decode("garbage plan", &fake, &good, "not a valid", NULL, NULL);

    /* GPU plan facts without a GPU: device 0, 4 KiB workspace */
    fake.magic = MLA_PLAN_MAGIC_LIVE;
    fake.device = 0;
    fake.gpu.workspace_bytes = 4096;
    fake.gpu.num_sm_parts = 7;
    void *ws = (void *)(((uintptr_t)ws_buf + 255) & ~(uintptr_t)255);
    st = mla_decode_workspace_size(&fake, &wsb);
    tc_expect(st == MLA_OK && wsb == 4096, "GPU workspace size %zu", wsb);
    int dev, parts;
    st = mla_decode_plan_info(&fake, &dev, &parts);
    tc_expect(st == MLA_OK && dev == 0 && parts == 7, "GPU plan info %d %d", dev, parts);

    mla_decode_args a = good; /* strided case: strides are multiples of 8, buffers from malloc */
    check_decode_ws("GPU: workspace too small", &fake, &a, ws, 100, NULL, MLA_ERR_WORKSPACE_TOO_SMALL,
                    "workspace_bytes (100)", "4096", NULL);
    check_decode_ws("GPU: workspace 0 bytes", &fake, &a, NULL, 0, NULL, MLA_ERR_WORKSPACE_TOO_SMALL,
                    "workspace_bytes (0)", "4096", NULL);
    check_decode_ws("GPU: workspace NULL", &fake, &a, NULL, 4096, NULL, MLA_ERR_INVALID_ARGUMENT,
                    "workspace is NULL", "4096", NULL);
    check_decode_ws("GPU: workspace unaligned", &fake, &a, (char *)ws + 16, 4096, NULL,
                    MLA_ERR_INVALID_ARGUMENT, "workspace", "256-byte", NULL);
    st = mla_decode_schedule(&fake, C0.seqlens, ws, 10, NULL);
    tc_expect(st == MLA_ERR_WORKSPACE_TOO_SMALL && strstr(mla_last_error(), "4096"), "GPU schedule: small workspace");
    st = mla_decode_schedule(&fake, NULL, ws, 4096, NULL);
    tc_expect(st == MLA_ERR_INVALID_ARGUMENT && strstr(mla_last_error(), "cache_seqlens is NULL"), "GPU schedule: NULL seqlens");

    /* 16-byte alignment and strides multiple of 8 (q/k_cache/out) */
    uint16_t *q16 = (uint16_t *)(((uintptr_t)C0.q + 15) & ~(uintptr_t)15);
    a = good; a.q = q16 + 4; /* 8-byte aligned only */
    check_decode_ws("GPU: q 8-byte aligned", &fake, &a, ws, 4096, NULL, MLA_ERR_INVALID_ARGUMENT,
                    "q (", "16-byte aligned", NULL);
    a = good; a.k_cache = (const uint16_t *)C0.k_cache + 2;
    check_decode_ws("GPU: k_cache 4-byte aligned", &fake, &a, ws, 4096, NULL, MLA_ERR_INVALID_ARGUMENT,
                    "k_cache (", "16-byte aligned", NULL);
    a = good; a.out = C0.out + 1;
    check_decode_ws("GPU: out 2-byte aligned", &fake, &a, ws, 4096, NULL, MLA_ERR_INVALID_ARGUMENT,
                    "out (", "16-byte aligned", NULL);
    a = good; a.q_stride[2] = good.q_stride[2] + 4;
    check_decode_ws("GPU: q_stride[2] not a multiple of 8", &fake, &a, ws, 4096, NULL,
                    MLA_ERR_INVALID_ARGUMENT, "q_stride[2]", "multiple of 8", NULL);
    a = good; a.k_stride[1] = good.k_stride[1] + 2;
    check_decode_ws("GPU: k_stride[1] not a multiple of 8", &fake, &a, ws, 4096, NULL,
                    MLA_ERR_INVALID_ARGUMENT, "k_stride[1]", "multiple of 8", NULL);
    a = good; a.out_stride[0] = good.out_stride[0] + 1;
    check_decode_ws("GPU: out_stride[0] not a multiple of 8", &fake, &a, ws, 4096, NULL,
                    MLA_ERR_INVALID_ARGUMENT, "out_stride[0]", "multiple of 8", NULL);
    if (!BUILT_WITH_CUDA && ((uintptr_t)C0.q & 15) == 0 && ((uintptr_t)C0.k_cache & 15) == 0 &&
        ((uintptr_t)C0.out & 15) == 0) {
        /* everything valid: reaches the backend, which is the stub here */
        check_decode_ws("GPU plan on a build without CUDA", &fake, &good, ws, 4096, NULL,
                        MLA_ERR_UNSUPPORTED, "without CUDA", NULL, NULL);
        st = mla_decode_schedule(&fake, C0.seqlens, ws, 4096, NULL);
        tc_expect(st == MLA_ERR_UNSUPPORTED && strstr(mla_last_error(), "without CUDA"), "GPU schedule without CUDA");
    } else {
        printf("  (dispatch to the GPU stub not checked: %s)\n",
               BUILT_WITH_CUDA ? "this build has CUDA kernels" : "buffers not 16-byte aligned");
    }
}

/* ---- misc ------------------------------------------------------------------------------------ */

static void *thread_error(void *arg)
{
    (void)arg;
    mla_decode_plan_t p;
    mla_decode_shape s = mla_decode_shape_default();
    s.b = 0;
    mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU);
    return (void *)(uintptr_t)(strstr(mla_last_error(), "b (0)") != NULL);
}

static void test_misc(void)
{
    printf("-- version, status strings, dtype sizes, defaults, thread-local errors\n");
    tc_expect(mla_version() == MLA_VERSION_CODE, "mla_version %d", mla_version());
    tc_expect(MLA_VERSION_CODE == MLA_VERSION_MAJOR * 10000 + MLA_VERSION_MINOR * 100 + MLA_VERSION_PATCH, "version code");
    static const struct { mla_status s; const char *n; } names[] = {
        {MLA_OK, "MLA_OK"}, {MLA_ERR_INVALID_ARGUMENT, "MLA_ERR_INVALID_ARGUMENT"},
        {MLA_ERR_UNSUPPORTED, "MLA_ERR_UNSUPPORTED"}, {MLA_ERR_WORKSPACE_TOO_SMALL, "MLA_ERR_WORKSPACE_TOO_SMALL"},
        {MLA_ERR_CUDA, "MLA_ERR_CUDA"}, {MLA_ERR_INTERNAL, "MLA_ERR_INTERNAL"},
        {MLA_ERR_OUT_OF_MEMORY, "MLA_ERR_OUT_OF_MEMORY"}};
    for (size_t x = 0; x < sizeof names / sizeof names[0]; x++)
        tc_expect(strcmp(mla_status_string(names[x].s), names[x].n) == 0, "status string %d", (int)names[x].s);
    tc_expect(mla_status_string((mla_status)1234) != NULL && strlen(mla_status_string((mla_status)1234)) > 0,
              "unknown status string");
    tc_expect(mla_dtype_size(MLA_DTYPE_BF16) == 2 && mla_dtype_size(MLA_DTYPE_FP16) == 2 &&
                  mla_dtype_size(MLA_DTYPE_FP32) == 4 && mla_dtype_size(MLA_DTYPE_INT32) == 4 &&
                  mla_dtype_size(MLA_DTYPE_FP8_E4M3) == 1 && mla_dtype_size(MLA_DTYPE_UINT8) == 1 &&
                  mla_dtype_size(MLA_DTYPE_INVALID) == 0 && mla_dtype_size((mla_dtype)99) == 0,
              "dtype sizes");
    if (!BUILT_WITH_CUDA) tc_expect(mla_has_cuda() == 0, "mla_has_cuda() on a build without CUDA");
    mla_decode_shape s = mla_decode_shape_default();
    tc_expect(s.struct_size == sizeof s && s.d_qk == 576 && s.d_v == 512 && s.h_kv == 1 &&
                  s.dtype == MLA_DTYPE_BF16 && s.causal == 0 && s.cpu_threads == 0 && s.b >= 1 &&
                  s.s_q >= 1 && s.h_q >= 1 && s.page_size >= 1,
              "mla_decode_shape_default");
    mla_decode_args a = mla_decode_args_default();
    tc_expect(a.struct_size == sizeof a && !a.q && !a.k_cache && !a.out && !a.lse && !a.block_table &&
                  !a.cache_seqlens && !a.cu_seqlens_q && a.softmax_scale == 0.0f && a.flags == 0,
              "mla_decode_args_default");
    mla_decode_shape sh = mla_decode_shape_default();
    tc_expect(fabsf(mla_effective_scale(&sh, 0.0f) - 1.0f / 24.0f) < 1e-9f, "default scale 576^-0.5");
    tc_expect(mla_effective_scale(&sh, 0.25f) == 0.25f, "explicit scale");
    tc_expect(fabsf(mla_effective_scale(&sh, -1.0f) - 1.0f / 24.0f) < 1e-9f, "negative scale -> default");
    tc_expect(fabsf(mla_effective_scale(&sh, NAN) - 1.0f / 24.0f) < 1e-9f, "NaN scale -> default");
    tc_expect(fabsf(mla_effective_scale(&sh, INFINITY) - 1.0f / 24.0f) < 1e-9f, "inf scale -> default");

    /* thread-local last error */
    s.h_q = 63; s.h_kv = 2;
    mla_decode_plan_t p;
    mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", mla_last_error());
    pthread_t th;
    void *res = NULL;
    pthread_create(&th, NULL, thread_error, NULL);
    pthread_join(th, &res);
    tc_expect(res == (void *)1, "the other thread saw its own error");
    tc_expect(strcmp(mine, mla_last_error()) == 0 && strstr(mine, "h_q (63)"),
              "this thread's error survived another thread's failure: \"%s\"", mla_last_error());
    /* success does not clear, an error replaces */
    tc_expect(mla_decode_plan_destroy(NULL) == MLA_OK && strstr(mla_last_error(), "h_q (63)"), "success keeps the message");

    /* bf16/fp16 helpers of ref/mla_ref.h */
    tc_expect(mla_float_to_bf16(1.0f) == 0x3f80 && mla_bf16_to_float(0x3f80) == 1.0f, "bf16 1.0");
    tc_expect(mla_float_to_bf16(mla_bits_f32(0x3f808000u)) == 0x3f80, "bf16 tie to even (down)");
    tc_expect(mla_float_to_bf16(mla_bits_f32(0x3f818000u)) == 0x3f82, "bf16 tie to even (up)");
    tc_expect(mla_float_to_bf16(mla_bits_f32(0x3f808001u)) == 0x3f81, "bf16 above tie rounds up");
    tc_expect(isnan(mla_bf16_to_float(mla_float_to_bf16(NAN))), "bf16 NaN");
    tc_expect(isnan(mla_bf16_to_float(mla_float_to_bf16(mla_bits_f32(0x7f800001u)))), "bf16 sNaN stays NaN");
    tc_expect(mla_float_to_bf16(INFINITY) == 0x7f80 && mla_float_to_bf16(-INFINITY) == 0xff80, "bf16 inf");
    tc_expect(mla_float_to_bf16(3.4e38f) == 0x7f80, "bf16 overflow rounds to inf");
    tc_expect(mla_float_to_fp16(1.0f) == 0x3c00 && mla_fp16_to_float(0x3c00) == 1.0f, "fp16 1.0");
    tc_expect(mla_float_to_fp16(65504.0f) == 0x7bff && mla_float_to_fp16(65520.0f) == 0x7c00 &&
                  mla_float_to_fp16(65519.0f) == 0x7bff, "fp16 max / overflow");
    tc_expect(mla_fp16_to_float(0x0001) == 5.9604644775390625e-8f && mla_float_to_fp16(5.9604644775390625e-8f) == 0x0001,
              "fp16 smallest subnormal");
    tc_expect(mla_float_to_fp16(2.98023223876953125e-8f) == 0x0000 &&
                  mla_float_to_fp16(2.99e-8f) == 0x0001, "fp16 tie at 2^-25 to even, above rounds up");
    tc_expect(mla_float_to_fp16(-0.0f) == 0x8000 && isnan(mla_fp16_to_float(mla_float_to_fp16(NAN))) &&
                  mla_float_to_fp16(-INFINITY) == 0xfc00, "fp16 -0, NaN, -inf");
    tc_expect(mla_float_to_fp16(1.0f + 1.0f / 2048) == 0x3c00 && mla_float_to_fp16(1.0f + 3.0f / 2048) == 0x3c02,
              "fp16 ties to even");
    /* exhaustive round trip: every finite half value converts to float and back unchanged */
    int64_t bad_bf = 0, bad_fp = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float fb = mla_bf16_to_float((uint16_t)h), ff = mla_fp16_to_float((uint16_t)h);
        if (!isnan(fb) && mla_float_to_bf16(fb) != h) bad_bf++;
        if (!isnan(ff) && mla_float_to_fp16(ff) != h) bad_fp++;
        if (isnan(fb) != isnan(mla_bf16_to_float(mla_float_to_bf16(fb)))) bad_bf++;
        if (isnan(ff) != isnan(mla_fp16_to_float(mla_float_to_fp16(ff)))) bad_fp++;
    }
    tc_expect(bad_bf == 0 && bad_fp == 0, "half round trips: %lld bf16, %lld fp16 wrong", (long long)bad_bf, (long long)bad_fp);
    /* fp16 rounding against a double-precision model on a sweep of floats */
    int64_t bad_rnd = 0;
    for (uint32_t u = 0x33000000u; u < 0x47800000u; u += 0x1357u) {
        const float f = mla_bits_f32(u);
        const uint16_t h = mla_float_to_fp16(f);
        const double v = mla_fp16_to_float(h), lo = mla_fp16_to_float((uint16_t)(h - 1)),
                     hi = mla_fp16_to_float((uint16_t)(h + 1));
        /* nearest: no neighbour strictly closer (>= 65520 correctly rounds to inf) */
        if (h == 0x7c00) { if (f < 65520.0f) bad_rnd++; continue; }
        if (fabs(lo - f) < fabs(v - f) || (h < 0x7bff && fabs(hi - f) < fabs(v - f))) bad_rnd++;
    }
    tc_expect(bad_rnd == 0, "fp16 rounding not nearest for %lld values", (long long)bad_rnd);
}

/* The CPU kernel choice (src/api.c cpu_kernel_choice) and its testing hook MLA_CPU_KERNEL; the
 * caller's MLA_CPU_KERNEL is given back at the end. */
static void test_cpu_kernel_choice(void)
{
    printf("-- CPU kernel choice: AMX where it runs (bf16 / FP8), else AVX512-BF16 (AMD CPUs), else AVX-512 (FMA), "
           "else AVX2 (FMA), else NEON (FMA, AArch64), else the reference; fp16: the reference; "
           "MLA_CPU_KERNEL=ref|amx|avx512bf16|avx512|avx2|neon\n");
    tck_env env = tck_env_save();
    mla_decode_shape s = mla_decode_shape_default();
    s.b = 2; s.s_q = 1; s.h_q = 16; s.h_kv = 1; s.page_size = 64; s.dtype = MLA_DTYPE_BF16;
    const int amx = mla_cpu_amx_available(), avx512bf16 = mla_cpu_avx512bf16_available(),
              avx512 = mla_cpu_avx512_available(), avx2 = mla_cpu_avx2_available(),
              neon = mla_cpu_neon_available();
    /* the default skips AVX512-BF16 on CPUs other than AMD's (src/cpu_tiles.h TL_(preferred)) */
    int amd = 0;
#if defined(__x86_64__) || defined(__i386__)
    {
        unsigned a, b, c, d;
        amd = __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
    }
#endif
    tc_expect(mla_cpu_amx_preferred() == amx, "AMX: the default takes it wherever it runs");
    tc_expect(mla_cpu_avx512bf16_preferred() == (avx512bf16 && amd),
              "AVX512-BF16: the default takes it on AMD CPUs only (this CPU: %s, runs it: %s, taken: %d)",
              amd ? "AMD" : "not AMD", avx512bf16 ? "yes" : "no", mla_cpu_avx512bf16_preferred());
    tc_expect(mla_cpu_avx512_preferred() == avx512, "AVX-512 FMA: the default takes it wherever it runs");
    tc_expect(mla_cpu_avx2_preferred() == avx2, "AVX2 FMA: the default takes it wherever it runs");
    tc_expect(mla_cpu_neon_preferred() == neon, "NEON FMA: the default takes it wherever it runs");
#if defined(__aarch64__)
    tc_expect(neon && !avx2, "AArch64: NEON runs (%d), the x86 builds do not (AVX2 %d)", neon, avx2);
#else
    tc_expect(!neon, "not AArch64: NEON does not run");
#endif
    const int dflt = amx                 ? MLA_CPU_KERNEL_AMX
                     : avx512bf16 && amd ? MLA_CPU_KERNEL_AVX512BF16
                     : avx512            ? MLA_CPU_KERNEL_AVX512
                     : avx2              ? MLA_CPU_KERNEL_AVX2
                     : neon              ? MLA_CPU_KERNEL_NEON
                                         : MLA_CPU_KERNEL_REF;
    printf("   this machine: AMX %s, AVX512-BF16 %s, AVX-512 %s, AVX2 %s\n", amx ? "yes" : "no",
           avx512bf16 ? "yes" : "no", avx512 ? "yes" : "no", avx2 ? "yes" : "no");
    printf("   NEON %s\n", neon ? "yes" : "no");
    /* each path's needs include the next one's */
    tc_expect(!amx || avx512bf16, "AMX runs, so AVX512-BF16 does");
    tc_expect(!avx512bf16 || avx512, "AVX512-BF16 runs, so AVX-512 does");
    tc_expect(!avx512 || avx2, "AVX-512 runs, so AVX2 does (every AVX-512 CPU has AVX2, FMA and F16C)");
    mla_decode_plan_t p = NULL;
    mla_status st;
    int k;
    unsetenv("MLA_CPU_KERNEL");
    if (tc_expect(mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU) == MLA_OK, "bf16 CPU plan: %s", mla_last_error()))
        tc_expect(p->cpu_kernel == dflt, "bf16 CPU plan runs %s (got %s)", tck_name(dflt), tck_name(p->cpu_kernel));
    mla_decode_plan_destroy(p);
    p = NULL;
    k = -1;
    st = mla_cpu_sparse_kernel(&k);
    tc_expect(st == MLA_OK && k == dflt, "CPU sparse calls run %s (got %s, %s)", tck_name(dflt),
              mla_status_string(st), tck_name(k));
    s.dtype = MLA_DTYPE_FP16; /* fp16 is not exact in bf16: always the reference */
    if (tc_expect(mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU) == MLA_OK, "fp16 CPU plan: %s", mla_last_error()))
        tc_expect(p->cpu_kernel == MLA_CPU_KERNEL_REF, "fp16 CPU plan runs the reference (got %s)",
                  tck_name(p->cpu_kernel));
    mla_decode_plan_destroy(p);
    /* Forcing a fast kernel: fp16 still gets the reference; bf16 gets the kernel where it runs,
     * else MLA_ERR_UNSUPPORTED, no plan, and a message naming the kernel. */
    static const struct { const char *env, *word; int kernel; } force[] = {
        {"amx", "AMX", MLA_CPU_KERNEL_AMX},
        {"avx512bf16", "AVX512-BF16", MLA_CPU_KERNEL_AVX512BF16},
        {"avx512", "AVX-512", MLA_CPU_KERNEL_AVX512},
        {"avx2", "AVX2", MLA_CPU_KERNEL_AVX2},
        {"neon", "NEON", MLA_CPU_KERNEL_NEON},
    };
    for (int f = 0; f < 5; f++) {
        const int runs = force[f].kernel == MLA_CPU_KERNEL_AMX          ? amx
                         : force[f].kernel == MLA_CPU_KERNEL_AVX512BF16 ? avx512bf16
                         : force[f].kernel == MLA_CPU_KERNEL_AVX512     ? avx512
                         : force[f].kernel == MLA_CPU_KERNEL_AVX2       ? avx2
                                                                        : neon;
        setenv("MLA_CPU_KERNEL", force[f].env, 1);
        s.dtype = MLA_DTYPE_FP16;
        p = NULL;
        st = mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU);
        tc_expect(st == MLA_OK && p && p->cpu_kernel == MLA_CPU_KERNEL_REF,
                  "MLA_CPU_KERNEL=%s with fp16: the reference (got %s: %s, %s)", force[f].env,
                  mla_status_string(st), mla_last_error(), p ? tck_name(p->cpu_kernel) : "no plan");
        mla_decode_plan_destroy(p);
        s.dtype = MLA_DTYPE_BF16;
        p = NULL;
        st = mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU);
        if (runs)
            tc_expect(st == MLA_OK && p && p->cpu_kernel == force[f].kernel,
                      "MLA_CPU_KERNEL=%s with bf16: %s (got %s: %s, %s)", force[f].env, tck_name(force[f].kernel),
                      mla_status_string(st), mla_last_error(), p ? tck_name(p->cpu_kernel) : "no plan");
        else
            tc_expect(st == MLA_ERR_UNSUPPORTED && !p && strstr(mla_last_error(), force[f].word),
                      "MLA_CPU_KERNEL=%s without %s: UNSUPPORTED, no plan, message names %s (got %s: %s)",
                      force[f].env, force[f].word, force[f].word, mla_status_string(st), mla_last_error());
        mla_decode_plan_destroy(p);
        k = -1;
        st = mla_cpu_sparse_kernel(&k);
        if (runs)
            tc_expect(st == MLA_OK && k == force[f].kernel, "MLA_CPU_KERNEL=%s: sparse calls run %s (got %s, %s)",
                      force[f].env, tck_name(force[f].kernel), mla_status_string(st), tck_name(k));
        else
            tc_expect(st == MLA_ERR_UNSUPPORTED && strstr(mla_last_error(), force[f].word),
                      "MLA_CPU_KERNEL=%s without %s: sparse kernel UNSUPPORTED (got %s: %s)", force[f].env,
                      force[f].word, mla_status_string(st), mla_last_error());
    }
    setenv("MLA_CPU_KERNEL", "ref", 1);
    p = NULL;
    if (tc_expect(mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU) == MLA_OK, "MLA_CPU_KERNEL=ref plan"))
        tc_expect(p->cpu_kernel == MLA_CPU_KERNEL_REF, "MLA_CPU_KERNEL=ref: the reference (got %s)",
                  tck_name(p->cpu_kernel));
    mla_decode_plan_destroy(p);
    k = -1;
    st = mla_cpu_sparse_kernel(&k);
    tc_expect(st == MLA_OK && k == MLA_CPU_KERNEL_REF, "MLA_CPU_KERNEL=ref: sparse calls run the reference (got %s, %s)",
              mla_status_string(st), tck_name(k));
    tck_env_restore(&env);
}

int main(void)
{
    test_misc();
    test_create();
    test_decode_args();
    test_fake_plans();
    test_cpu_kernel_choice();
    tc_case_free(&C0);
    free(snap_out);
    free(snap_lse);
    return tc_summary();
}
