# lmbatch — build, test and install the Debian dependencies.
#
#   make                 build/lmbatch (CUDA backend compiled when nvcc is on PATH; CUDA=0|1 overrides)
#   make test            build and run the Criterion suite (GPU tests skip, saying so, without a GPU)
#   make SAN=1 test      the same under ASan + UBSan (objects in build/san; CUDA off unless CUDA=1 is given)
#   make deps            apt-get the libraries a fresh Debian/Ubuntu machine needs
#   make CUDA_ARCH=sm_80 another GPU architecture (default sm_90a, the H100 with its wgmma instructions; the
#                        W4A16 wgmma GEMM is built for sm_90a only)
#
# Sources are found by wildcard: a new .c in engine/ kernels/cpu/ quantize/ pipeline/ jobs/ joins the build;
# files named *cuda*.c or kernels/cuda/*.cu only when CUDA=1, files named *nocuda*.c only when CUDA=0.

CC        ?= cc
NVCC      ?= nvcc
CUDA_ARCH ?= sm_90a
, := ,
SAN       ?= 0
HAVE_NVCC := $(shell command -v $(NVCC) 2>/dev/null)
ifeq ($(SAN),1)
CUDA      ?= 0
BUILD     ?= build/san
else
CUDA      ?= $(if $(HAVE_NVCC),1,0)
BUILD     ?= build
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(HAVE_NVCC))

VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
WARN      := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Wno-missing-field-initializers
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 $(WARN) -fopenmp -D_GNU_SOURCE -DLMB_VERSION='"0.1.0+$(VERSION)"' -MMD -MP
LDLIBS    := -ljansson -larchive -lpcre2-8 -fopenmp -lm -lpthread
NVARCH    := $(if $(filter sm_90a,$(CUDA_ARCH)),-gencode arch=compute_90a$(,)code=[sm_90a$(,)compute_90a],-arch=$(CUDA_ARCH))
NVFLAGS   := -O3 -std=c++17 $(NVARCH) -Xcompiler -Wall -lineinfo --expt-relaxed-constexpr -MMD -MP
NVFLAGS   += -DLMB_HAVE_WGMMA=$(if $(filter sm_90a,$(CUDA_ARCH)),1,0)

ifeq ($(SAN),1)
CFLAGS    += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS   += -fsanitize=address,undefined
endif

SRC_DIRS  := engine kernels/cpu quantize pipeline jobs
ALL_C     := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))
ifeq ($(CUDA),1)
LIB_C     := $(filter-out %nocuda.c pipeline/main.c,$(ALL_C))
LIB_CU    := $(wildcard kernels/cuda/*.cu)
CFLAGS    += -DLMB_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart_static -ldl -lrt -lstdc++
else
LIB_C     := $(filter-out %cuda.c pipeline/main.c,$(ALL_C)) $(filter %nocuda.c,$(ALL_C))
LIB_CU    :=
endif
LIB_OBJ   := $(LIB_C:%.c=$(BUILD)/obj/%.o) $(LIB_CU:%.cu=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/liblmbatch.a
BIN       := $(BUILD)/lmbatch

TEST_SUPPORT := $(wildcard tests/support/*.c)
TEST_C    := $(wildcard tests/test_*.c)
ifeq ($(CUDA),1)
TEST_C    += $(wildcard tests/gpu/test_*.c)
endif
TEST_BIN  := $(TEST_C:tests/%.c=$(BUILD)/tests/%)
TEST_SUP_OBJ := $(TEST_SUPPORT:%.c=$(BUILD)/obj/%.o)

.PHONY: all test deps clean
all: $(BIN)

$(BIN): $(BUILD)/obj/pipeline/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(TEST_SUP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_SUP_OBJ) $(LIB) $(LDLIBS) -lcriterion

# Each test binary runs in turn; the summary names the failing ones.  LMB_TEST_SHARED points the tests at
# ../shared (they skip what needs it when it is absent).
test: $(BIN) $(TEST_BIN)
	@LMB_BIN=$(abspath $(BIN)) ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 \
	  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 sh tests/run.sh $(TEST_BIN)

deps:
	apt-get update
	apt-get install -y build-essential libjansson-dev libarchive-dev libcriterion-dev libpcre2-dev

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
