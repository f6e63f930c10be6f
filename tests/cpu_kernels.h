/* cpu_kernels.h — the CPU kernels (src/internal.h: MLA_CPU_KERNEL_*) for the
 * tests that run every kernel this machine has: names, which kernel a bf16 decode plan or a
 * sparse call made now runs, which kernels run here, and the testing hook MLA_CPU_KERNEL saved,
 * set and given back (a caller's setting is never lost). Include after common.h and internal.h. */
#ifndef MLA_TESTS_CPU_KERNELS_H
#define MLA_TESTS_CPU_KERNELS_H

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TCK_MAX_KERNELS 6

/* "REF" or the fast path's short name ("AMX", "AVX512BF16", ...; src/api.c's table). */
static inline const char *tck_name(int kernel)
{
    if (kernel == MLA_CPU_KERNEL_REF) return "REF";
    const mla_cpu_path *cp = mla_cpu_path_of(kernel);
    return cp ? cp->name : "unknown";
}

/* The value of MLA_CPU_KERNEL that forces the kernel. */
static inline const char *tck_env_value(int kernel)
{
    const mla_cpu_path *cp = mla_cpu_path_of(kernel);
    return cp ? cp->hook : "ref";
}

/* Where the kernel's code is. */
static inline const char *tck_what(int kernel)
{
    const mla_cpu_path *cp = mla_cpu_path_of(kernel);
    return cp ? cp->what : "the C reference (ref/)";
}

/* The caller's MLA_CPU_KERNEL, kept as a copy (getenv's pointer does not survive setenv). */
typedef struct {
    int set;
    char *value;
} tck_env;

static inline tck_env tck_env_save(void)
{
    tck_env e = {0, NULL};
    const char *v = getenv("MLA_CPU_KERNEL");
    if (v) {
        const size_t n = strlen(v) + 1;
        e.value = (char *)malloc(n);
        if (e.value) {
            memcpy(e.value, v, n);
            e.set = 1;
        }
    }
    return e;
}

/* Puts the saved value back (or unsets the hook if it was unset) and frees the copy. */
static inline void tck_env_restore(tck_env *e)
{
    if (e->set) setenv("MLA_CPU_KERNEL", e->value, 1);
    else unsetenv("MLA_CPU_KERNEL");
    free(e->value);
    e->value = NULL;
    e->set = 0;
}

/* The kernel a bf16 CPU decode plan created now runs (plan->cpu_kernel, with MLA_CPU_KERNEL as
 * it is); -1 when the plan cannot be created (mla_last_error() says why, e.g. MLA_CPU_KERNEL
 * names a kernel that does not run here). */
static inline int tck_decode_kernel(void)
{
    mla_decode_shape s = mla_decode_shape_default();
    s.b = 1; s.s_q = 1; s.h_q = 16; s.h_kv = 1; s.page_size = 64; s.dtype = MLA_DTYPE_BF16;
    mla_decode_plan_t p = NULL;
    if (mla_decode_plan_create(&p, &s, MLA_DEVICE_CPU) != MLA_OK) return -1;
    const int k = p->cpu_kernel;
    mla_decode_plan_destroy(p);
    return k;
}

/* The kernel a CPU sparse call made now runs (mla_cpu_sparse_kernel); -1 as above. */
static inline int tck_sparse_kernel(void)
{
    int k = MLA_CPU_KERNEL_REF;
    return mla_cpu_sparse_kernel(&k) == MLA_OK ? k : -1;
}

/* The kernels that run on this machine other than `main_kernel`, fastest first (AMX,
 * AVX512-BF16, AVX-512 FMA, AVX2 FMA, NEON FMA, then the reference, which always runs). Returns their number; list holds TCK_MAX_KERNELS. */
static inline int tck_other_kernels(int main_kernel, int *list)
{
    int n = 0, np = 0;
    const mla_cpu_path *paths = mla_cpu_paths(&np);
    for (int x = 0; x < np && n < TCK_MAX_KERNELS - 1; x++)
        if (paths[x].kernel != main_kernel && paths[x].available()) list[n++] = paths[x].kernel;
    if (main_kernel != MLA_CPU_KERNEL_REF) list[n++] = MLA_CPU_KERNEL_REF;
    return n;
}

#endif
