/* fuzz_common.h — what the libFuzzer harnesses of tests/fuzz/ share: the input reader, a
 * seeded RNG, half / e4m3 decoding, exact-span tensor views and buffers with an independent
 * layout verdict, tolerance checks, failure expectations and a standalone replay main
 * (-DMLA_FUZZ_STANDALONE: replays files or directories without libFuzzer, for gcc/valgrind).
 * Header-only; every function is static. */
#ifndef MLA_FUZZ_COMMON_H
#define MLA_FUZZ_COMMON_H

#include "mla.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_FN static __attribute__((unused))

/* Hot loops (data fill, the fp64 reference) carry no coverage instrumentation: comparison
 * tracing there only slows the fuzzer down. */
#if defined(__clang__) && __clang_major__ >= 13
#define NO_COV __attribute__((no_sanitize("coverage")))
#else
#define NO_COV
#endif

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

#define FAIL(...)                                                                           \
    do {                                                                                    \
        fprintf(stderr, "fuzz: FAILURE at %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                                       \
        fprintf(stderr, "\n  last error: \"%s\"\n", mla_last_error());                     \
        abort();                                                                            \
    } while (0)

typedef struct reader { const uint8_t *p; size_t n; } reader;
FZ_FN uint8_t rd8(reader *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}
FZ_FN uint32_t rd32(reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)rd8(r) << (8 * i);
    return v;
}

/* A stride value the harnesses inject, chosen by byte b: 0, -1, 1, the int64 extremes, huge
 * powers of two, or 0..31 (mostly too small: the dims would overlap). */
FZ_FN int64_t fz_weird_stride(uint32_t b)
{
    switch (b % 8) {
    case 0: return 0;
    case 1: return -1;
    case 2: return 1;
    case 3: return INT64_MAX;
    case 4: return INT64_MIN;
    case 5: return 1ll << 40;
    case 6: return 1ll << 62;
    default: return (int64_t)(b >> 3);
    }
}

static uint64_t rng_state;
FZ_FN uint64_t rng_next(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
FZ_FN int64_t rng_int(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

/* Independent half-precision conversions (the harness does not use the library's). */
FZ_FN double bf16_to_double(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
FZ_FN double fp16_to_double(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp((double)(m + 1024), e - 25);
    return sign ? -v : v;
}
/* A value k/128, k in [-64, 64]: at most 7 significant bits, exact in bf16 and fp16. */
NO_COV FZ_FN uint16_t small_half(int fp16)
{
    const int k = (int)rng_int(-64, 64);
    if (k == 0) return 0;
    const int a = k < 0 ? -k : k;
    int p = 0;
    while ((a >> (p + 1)) != 0) p++;                 /* a = 1.f * 2^p, value = 1.f * 2^(p-7) */
    if (fp16) {
        const int man = ((a << 10) >> p) - 1024;     /* exact: a has <= 7 bits */
        return (uint16_t)((k < 0 ? 0x8000 : 0) | ((p - 7 + 15) << 10) | man);
    }
    const int man = ((a << 7) >> p) - 128;
    return (uint16_t)((k < 0 ? 0x8000 : 0) | ((p - 7 + 127) << 7) | man);
}

/* Element kinds of q / k_cache / out: 16-bit (bf16, fp16) or float8_e4m3fn (1 byte). */
enum { EK_BF16 = 0, EK_FP16 = 1, EK_E4M3 = 2 };
FZ_FN int ek_of(mla_dtype d) { return d == MLA_DTYPE_FP16 ? EK_FP16 : d == MLA_DTYPE_FP8_E4M3 ? EK_E4M3 : EK_BF16; }
FZ_FN size_t ek_size(int ek) { return ek == EK_E4M3 ? 1 : 2; }

/* Independent float8_e4m3fn decoding: bias 7, 3 mantissa bits, no inf, 0x7f/0xff NaN. */
FZ_FN double e4m3_to_double(uint8_t c)
{
    const int sign = c >> 7, e = (c >> 3) & 15, m = c & 7;
    double v;
    if (e == 15 && m == 7) v = NAN;
    else if (e == 0) v = ldexp((double)m, -9);
    else v = ldexp((double)(8 + m), e - 10);
    return sign ? -v : v;
}
/* A random e4m3 code of magnitude <= 0.9375 (exponent field <= 6). */
NO_COV FZ_FN uint8_t small_e4m3(void)
{
    const uint64_t r = rng_next();
    return (uint8_t)(((r & 1) << 7) | (((r >> 1) % 7) << 3) | ((r >> 8) & 7));
}
/* Writes a small random value of kind ek at p. */
NO_COV FZ_FN void put_small(uint8_t *p, int ek)
{
    if (ek == EK_E4M3) { *p = small_e4m3(); return; }
    const uint16_t v = small_half(ek == EK_FP16);
    memcpy(p, &v, 2);
}
/* Writes NaN (sel 1), +Inf (2) or -Inf (3) of kind ek at p (e4m3 has no inf: NaN). */
FZ_FN void put_special(uint8_t *p, int ek, int sel)
{
    if (ek == EK_E4M3) { *p = sel == 3 ? 0xff : 0x7f; return; }
    static const uint16_t v[2][3] = {{0x7fc0, 0x7f80, 0xff80}, {0x7e00, 0x7c00, 0xfc00}};
    memcpy(p, &v[ek][sel - 1], 2);
}


/* ---------------------------------------------------------------------------------------- */
/* Tensor layouts                                                                            */
/* ---------------------------------------------------------------------------------------- */

#define BIG_ELEMS (1ll << 20) /* buffers larger than this are not allocated ("big" scenario) */

typedef struct view {
    int nd;              /* outer dims (the innermost contiguous span is `inner`)        */
    int64_t dim[3];
    int64_t stride[3];
    int64_t inner;
    int64_t lo, hi;      /* element offsets covered: [lo, hi] (valid when !overflow)     */
    int overflow;        /* offsets do not fit int64                                     */
} view;

FZ_FN void view_span(view *v)
{
    __int128 lo = 0, hi = (__int128)v->inner - 1;
    for (int d = 0; d < v->nd; d++) {
        if (v->dim[d] <= 1) continue;
        __int128 e = (__int128)v->stride[d] * (v->dim[d] - 1);
        if (e < 0) lo += e; else hi += e;
    }
    v->overflow = v->inner < 1 || lo < INT64_MIN / 4 || lo > INT64_MAX / 4 ||
                  hi < INT64_MIN / 4 || hi > INT64_MAX / 4;
    v->lo = v->overflow ? 0 : (int64_t)lo;
    v->hi = v->overflow ? 0 : (int64_t)hi;
}
FZ_FN int64_t view_elems(const view *v) { return v->hi - v->lo + 1; }

/* Layout verdicts, independent of the library: 0 ok, 1 must be rejected, 2 either. */
enum { V_OK = 0, V_FAIL = 1, V_EITHER = 2 };

/* Brute force: do two elements of the view share an address? (small views only) */
NO_COV FZ_FN int view_overlaps(const view *v)
{
    const int64_t n = view_elems(v);
    uint8_t *seen = (uint8_t *)calloc((size_t)n, 1);
    if (!seen) FAIL("calloc");
    int64_t idx[3] = {0, 0, 0};
    int ov = 0;
    for (;;) {
        int64_t off = -v->lo;
        for (int d = 0; d < v->nd; d++) off += idx[d] * v->stride[d];
        for (int64_t e = 0; e < v->inner && !ov; e++) {
            if (seen[off + e]) ov = 1;
            seen[off + e] = 1;
        }
        if (ov) break;
        int d = v->nd - 1;
        while (d >= 0 && ++idx[d] == v->dim[d]) idx[d--] = 0;
        if (d < 0) break;
    }
    free(seen);
    return ov;
}

/* The contract: strides >= 0, >= 1 where the extent is > 1, offsets fit int64, no element of
 * the tensor aliases another. (The library also rejects some non-aliasing interleavings that
 * are not nested; those are "either".) */
FZ_FN int view_verdict(const view *v, int small)
{
    for (int d = 0; d < v->nd; d++) {
        if (v->stride[d] < 0) return V_FAIL;
        if (v->dim[d] > 1 && v->stride[d] == 0) return V_FAIL;
    }
    if (v->overflow) return V_FAIL;
    if (!small) return V_EITHER;
    if (view_overlaps(v)) return V_FAIL;
    /* nested: sorted by stride, each stride covers the span inside it */
    int ord[3], n = 0;
    for (int d = 0; d < v->nd; d++) if (v->dim[d] > 1) ord[n++] = d;
    for (int x = 1; x < n; x++)
        for (int y = x; y > 0 && v->stride[ord[y]] < v->stride[ord[y - 1]]; y--) {
            int t = ord[y]; ord[y] = ord[y - 1]; ord[y - 1] = t;
        }
    int64_t span = v->inner;
    for (int x = 0; x < n; x++) {
        if (v->stride[ord[x]] < span) return V_EITHER;
        span += v->stride[ord[x]] * (v->dim[ord[x]] - 1);
    }
    return V_OK;
}

/* A buffer of exactly the view's span (+ `mis` bytes of misalignment in front). */
typedef struct buf {
    uint8_t *mem;     /* malloc'd block                        */
    void *base;       /* pointer handed to the library          */
    size_t bytes;     /* bytes of the view's span               */
    uint8_t *first;   /* address of element offset lo           */
} buf;

FZ_FN void buf_alloc(buf *b, const view *v, size_t esz, int mis)
{
    b->bytes = (size_t)view_elems(v) * esz;
    b->mem = (uint8_t *)malloc(b->bytes + (size_t)mis);
    if (!b->mem) FAIL("malloc %zu", b->bytes);
    b->first = b->mem + mis;
    b->base = b->first - v->lo * (int64_t)esz;
}

/* A bf16 element of a buffer (element offset from base). */
NO_COV FZ_FN double elem_at_bf16(const buf *bf, int64_t off)
{
    uint16_t h;
    memcpy(&h, (const uint8_t *)bf->base + off * 2, 2);
    return bf16_to_double(h);
}


/* ---------------------------------------------------------------------------------------- */
/* Checks                                                                                    */
/* ---------------------------------------------------------------------------------------- */

FZ_FN int64_t sat_add(int64_t x, int64_t y)
{
    int64_t z;
    return __builtin_add_overflow(x, y, &z) ? (y > 0 ? INT64_MAX : INT64_MIN) : z;
}

NO_COV FZ_FN int close_enough(double got, double want, double atol, double rtol)
{
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

FZ_FN void expect_failure(mla_status st, const char *what, int allow_unsupported)
{
    if (st == MLA_OK) FAIL("%s succeeded but the input is invalid", what);
    if (!(st == MLA_ERR_INVALID_ARGUMENT || (allow_unsupported && st == MLA_ERR_UNSUPPORTED)))
        FAIL("%s returned %s (%d), not a documented status for this input", what,
             mla_status_string(st), (int)st);
    const char *msg = mla_last_error();
    if (!msg || !msg[0]) FAIL("%s failed with an empty mla_last_error()", what);
    if (strlen(msg) > 1000) FAIL("%s: error message too long", what);
}

NO_COV FZ_FN void check_untouched(const buf *b, uint8_t pat, const char *what)
{
    for (size_t x = 0; x < b->bytes; x++)
        if (b->first[x] != pat) FAIL("%s: byte %zu written by a call that failed", what, x);
}

#ifdef MLA_FUZZ_STANDALONE
/* Replays files (or every file of directories) given as arguments. */
#include <dirent.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FZ_FN int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return 1; }
    static uint8_t data[4096];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    LLVMFuzzerTestOneInput(data, n);
    return 0;
}

FZ_FN int fz_replay_main(const char *fz_name, int argc, char **argv)
{
    int files = 0, bad = 0;
    for (int x = 1; x < argc; x++) {
        struct stat sb;
        if (stat(argv[x], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            DIR *d = opendir(argv[x]);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.') continue;
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", argv[x], de->d_name);
                bad += replay_file(p);
                files++;
            }
            if (d) closedir(d);
        } else {
            bad += replay_file(argv[x]);
            files++;
        }
    }
    printf("%s replay: %d inputs, %d unreadable, no failure\n", fz_name, files, bad);
    return bad ? 1 : 0;
}

#define FZ_REPLAY_MAIN(name) \
    int main(int argc, char **argv) { return fz_replay_main(name, argc, argv); }
#endif

#endif
