/* tensor.h — a borrowed view of one stored tensor (dtype, shape, bytes) and the element types lmbatch reads.
 *
 * A lmb_tensor never owns its data: it points into a mapped safetensors file or into a buffer whose owner is
 * named where the view is made (e.g. lmb_weights owns the split InternLM2 q/k/v).  Conversions between
 * fp32 and fp16/bf16 live here so every module rounds the same way (round to nearest even).
 */
#ifndef LMB_TENSOR_H
#define LMB_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum lmb_dtype {
    LMB_DTYPE_INVALID = 0,
    LMB_F32,
    LMB_F16,
    LMB_BF16,
    LMB_F64,
    LMB_I64,
    LMB_I32,
    LMB_I16,
    LMB_I8,
    LMB_U8,
    LMB_BOOL,
    LMB_DTYPE_COUNT
} lmb_dtype;

#define LMB_MAX_DIMS 8

typedef struct lmb_tensor {
    const char *name; /* borrowed; NULL for an absent optional tensor */
    lmb_dtype dtype;
    int ndim;
    int64_t shape[LMB_MAX_DIMS];
    const void *data;
    size_t nbytes;
} lmb_tensor;

/* Size of one element in bytes, 0 for LMB_DTYPE_INVALID. */
size_t lmb_dtype_size(lmb_dtype t);
/* safetensors spelling ("F32", "BF16", ...) <-> enum; lmb_dtype_parse returns LMB_DTYPE_INVALID if unknown. */
const char *lmb_dtype_name(lmb_dtype t);
lmb_dtype lmb_dtype_parse(const char *s);

int64_t lmb_tensor_numel(const lmb_tensor *t);
static inline bool lmb_tensor_present(const lmb_tensor *t) { return t->data != NULL; }

/* Copies n elements of src (F32/F16/BF16) into dst as fp32. */
void lmb_to_f32(float *dst, const void *src, lmb_dtype src_type, size_t n);

static inline float lmb_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t lmb_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float lmb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ffu;
            u = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t lmb_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow (>= 65520) -> inf */
    if (a < 0x38800000u) { /* subnormal or zero in fp16 */
        if (a < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        /* value = m * 2^(e-150); the fp16 subnormal unit is 2^-24, so q = m * 2^(e-126) */
        uint32_t sh = 126 - e;
        uint32_t q = m >> sh;
        uint32_t rem = m & ((1u << sh) - 1u);
        uint32_t half = 1u << (sh - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u; /* rebias 127 -> 15, round to nearest even */
    return (uint16_t)(sign | (r >> 13));
}

#endif
