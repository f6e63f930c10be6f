# mla.c — the only build. `make` builds build/libmla.{so,a}, the C tests and build/mla-bench.
#   make            library + tests + bench (CUDA kernels too when nvcc is found)
#   make bench      the main job: build/mla-bench (GPU if one is visible, else CPU)
#   make test       every test suite that can run here (C, Python; GPU suites when a GPU is visible)
#   make MLA_CUDA=0 CPU-only build even where nvcc exists
#   make sass       per-kernel register/spill report from ptxas (needs nvcc)
#   make sass-counts per-kernel SASS instruction counts of the sm_90a code (HGMMA, UTMALDG, LDGSTS, SYNCS,
#                   BAR, STL/LDL) without a GPU (needs nvcc and nvdisasm: NVDISASM=path, tools/sass_counts.py)
#   make micro      the Hopper microbenchmarks of bench/micro/ (wgmma rates, conversion rates, fence cost)
BUILD    ?= build
CC       ?= cc
PYTHON   ?= python3
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
MLA_CUDA ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Wno-unused-parameter -fPIC -pthread -fvisibility=hidden \
            -D_GNU_SOURCE -Iinclude -Isrc -Iref
LDLIBS   += -lm -lpthread

# Hopper (sm_90a, wgmma/TMA) plus a portable tensor-core target for sm_80..sm_89.
NVCC_GENCODE ?= -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
                -gencode arch=compute_80,code=compute_80
NVCCFLAGS ?= -O3 -std=c++17 -lineinfo --use_fast_math -Xptxas=-v,--warn-on-spills,--warn-on-local-memory-usage
NVCCFLAGS += $(NVCC_GENCODE) -Xcompiler -fPIC,-fvisibility=hidden -Iinclude -Isrc -Ikernels $(MLA_DEFS)
# MLA_DEFS: extra -D flags for timing experiments (e.g. MLA_DEFS=-DMLA_DIAG=1 BUILD=build-diag1)
# MLA_ALLOW_SPILLS=1: timing builds only (e.g. MLA_DIAG=8, whose counters make v6 spill); never shipped

C_SRCS   := $(wildcard src/*.c) $(wildcard ref/*.c)
ifeq ($(MLA_CUDA),1)
C_SRCS   := $(filter-out src/gpu_stub.c,$(C_SRCS))
CU_SRCS  := $(wildcard src/*.cu) $(wildcard kernels/*.cu)
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/targets/x86_64-linux/lib -lcudart_static -ldl -lrt
CFLAGS   += -DMLA_WITH_CUDA=1 -I$(CUDA_HOME)/include
BENCH_LIBS := -L$(CUDA_HOME)/lib64 -lcublas -Wl,-rpath,$(CUDA_HOME)/lib64
else
CU_SRCS  :=
CUDA_LIBS :=
BENCH_LIBS :=
endif
MLA_GIT_COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
OBJS     := $(C_SRCS:%.c=$(BUILD)/obj/%.o) $(CU_SRCS:%.cu=$(BUILD)/obj/%.cu.o)

TEST_SRCS := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRCS:tests/%.c=$(BUILD)/%)
BENCH_SRCS := $(wildcard bench/*.c)

LIB_LDFLAGS := -shared -Wl,-soname,libmla.so.$(shell sed -n 's/^\#define MLA_VERSION_MAJOR \([0-9]*\)/\1/p' include/mla.h) \
               -static-libstdc++

.PHONY: all lib tests bench micro test test-c test-py test-gpu sass clean FORCE
all: lib tests $(BUILD)/mla-bench

lib: $(BUILD)/libmla.so $(BUILD)/libmla.a

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h src/*.h ref/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(wildcard include/*.h src/*.h kernels/*.h kernels/*.cuh)
	@mkdir -p $(dir $@) $(BUILD)/ptxas
	$(NVCC) $(NVCCFLAGS) -c $< -o $@ 2> $(BUILD)/ptxas/$(subst /,_,$<).log || (cat $(BUILD)/ptxas/$(subst /,_,$<).log; exit 1)
	@[ "$(MLA_ALLOW_SPILLS)" = 1 ] || ! grep -E "spill stores|spill loads|bytes stack frame" $(BUILD)/ptxas/$(subst /,_,$<).log | grep -vE " 0 bytes spill stores, 0 bytes spill loads|0 bytes stack frame" || (echo "error: $< spills or uses local memory"; exit 1)
	@! grep -iE "serializ|C75[0-9][0-9]" $(BUILD)/ptxas/$(subst /,_,$<).log || (echo "error: $< has serialised wgmma"; exit 1)

$(BUILD)/libmla.so: $(OBJS)
	$(CXX) $(LIB_LDFLAGS) -o $@ $(OBJS) $(CUDA_LIBS) $(LDLIBS)

$(BUILD)/libmla.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $(OBJS)

# Tests and the bench link the static library (and the CUDA runtime when built with CUDA).
$(BUILD)/test_%: tests/test_%.c $(wildcard tests/*.h) $(BUILD)/libmla.a
	$(CC) $(CFLAGS) -Itests $< -o $@ $(BUILD)/libmla.a $(CUDA_LIBS) -lstdc++ $(LDLIBS)

tests: $(TESTS)

# always relinked (2 s): the commit it prints must be the tree's, not that of the last rebuild
$(BUILD)/mla-bench: $(BENCH_SRCS) $(wildcard bench/*.h tests/*.h) $(BUILD)/libmla.a FORCE
	$(CC) $(CFLAGS) -Itests -Ibench -DMLA_GIT_COMMIT=\"$(MLA_GIT_COMMIT)\" $(BENCH_SRCS) -o $@ $(BUILD)/libmla.a $(CUDA_LIBS) $(BENCH_LIBS) -lstdc++ $(LDLIBS)

bench: $(BUILD)/mla-bench
	$(BUILD)/mla-bench

# Hopper microbenchmarks (docs/performance.md §7); run on an H100/H200
MICRO := $(patsubst bench/micro/%.cu,$(BUILD)/%,$(wildcard bench/micro/*.cu))
micro: $(MICRO)
$(MICRO): $(BUILD)/%: bench/micro/%.cu kernels/ptx.cuh kernels/sm90.cuh kernels/wgmma_ops.cuh
	@mkdir -p $(BUILD)
	$(NVCC) -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -Ikernels -Iinclude -Isrc $< -o $@

test: all
	./tests/run_all.sh

test-c: tests
	./tests/run_all.sh --c-only

# Hardening (issue 8): C tests under ASan+UBSan+LSan, TSan (test_threads) and valgrind, CPU-only,
# in build-asan/, build-tsan/, build-vg/; the libFuzzer harness for FUZZ_SECONDS (default 90).
FUZZ_SECONDS ?= 90
.PHONY: sanitize fuzz
sanitize:
	./tests/sanitize.sh all

fuzz:
	./tests/fuzz/run.sh $(FUZZ_SECONDS)

sass: $(BUILD)/libmla.so
	@for f in $(BUILD)/ptxas/*.log; do echo "== $$f"; grep -E "Compiling entry|registers|spill" $$f; done

NVDISASM ?= $(shell command -v nvdisasm 2>/dev/null || ls $(CUDA_HOME)/bin/nvdisasm 2>/dev/null)
SASS_CUBINS := $(patsubst kernels/%.cu,$(BUILD)/cubin/%.cubin,$(wildcard kernels/*.cu))
$(BUILD)/cubin/%.cubin: kernels/%.cu $(wildcard kernels/*.cuh kernels/*.h include/*.h src/*.h) | $(BUILD)/cubin
	$(NVCC) -O3 -std=c++17 -lineinfo --use_fast_math -Iinclude -Isrc -Ikernels $(MLA_DEFS) -cubin -arch=sm_90a $< -o $@
$(BUILD)/cubin:
	mkdir -p $@
.PHONY: sass-counts
sass-counts: $(SASS_CUBINS)
	$(PYTHON) tools/sass_counts.py $(if $(NVDISASM),--nvdisasm $(NVDISASM)) $(SASS_CUBINS)

clean:
	rm -rf $(BUILD)

FORCE:
