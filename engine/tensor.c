/* tensor.c — dtype names/sizes and bulk conversion to fp32 (see tensor.h). */
#include "tensor.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[LMB_DTYPE_COUNT] = {
    [LMB_DTYPE_INVALID] = {"INVALID", 0}, [LMB_F32] = {"F32", 4}, [LMB_F16] = {"F16", 2},
    [LMB_BF16] = {"BF16", 2},             [LMB_F64] = {"F64", 8}, [LMB_I64] = {"I64", 8},
    [LMB_I32] = {"I32", 4},               [LMB_I16] = {"I16", 2}, [LMB_I8] = {"I8", 1},
    [LMB_U8] = {"U8", 1},                 [LMB_BOOL] = {"BOOL", 1},
};

size_t lmb_dtype_size(lmb_dtype t) { return (t > 0 && t < LMB_DTYPE_COUNT) ? dtype_info[t].size : 0; }

const char *lmb_dtype_name(lmb_dtype t) {
    return (t >= 0 && t < LMB_DTYPE_COUNT) ? dtype_info[t].name : "INVALID";
}

lmb_dtype lmb_dtype_parse(const char *s) {
    for (int t = 1; t < LMB_DTYPE_COUNT; t++)
        if (strcmp(s, dtype_info[t].name) == 0) return (lmb_dtype)t;
    return LMB_DTYPE_INVALID;
}

int64_t lmb_tensor_numel(const lmb_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void lmb_to_f32(float *dst, const void *src, lmb_dtype src_type, size_t n) {
    switch (src_type) {
    case LMB_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case LMB_F16: {
        const uint16_t *s = src;
#pragma omp parallel for if (n > (1u << 20))
        for (size_t i = 0; i < n; i++) dst[i] = lmb_f16_to_f32(s[i]);
        break;
    }
    case LMB_BF16: {
        const uint16_t *s = src;
#pragma omp parallel for if (n > (1u << 20))
        for (size_t i = 0; i < n; i++) dst[i] = lmb_bf16_to_f32(s[i]);
        break;
    }
    default:
        memset(dst, 0, n * sizeof(float)); /* callers check dtypes at bind time; never reached for weights */
        break;
    }
}
