/* int4.c — see int4.h: AutoAWQ's asymmetric int4 group quantizer and its GEMM packing.
 *
 * Rounding follows torch (round half to even: rintf under the default rounding mode), and every value
 * is computed in the same order as AutoAWQ's fp32 path, so codes, zeros and scales are bit-identical to
 * its output for the same fp32 weights (tests/test_int4.c checks this against a reference made with
 * AutoAWQ's code, tests/tools/make_awq_pack_reference.py).
 */
#include "int4.h"

#include <math.h>

#include "../engine/tensor.h"
#include "../kernels/kernels.h"

/* One group of n weights: its fp32 scale and zero point. */
static inline void group_params(const float *w, int n, float *s, float *z) {
    float mx = w[0], mn = w[0];
    for (int i = 1; i < n; i++) {
        mx = w[i] > mx ? w[i] : mx;
        mn = w[i] < mn ? w[i] : mn;
    }
    float range = mx - mn;
    *s = (range > 1e-5f ? range : 1e-5f) / 15.0f;
    float zz = -rintf(mn / *s);
    *z = zz < 0.f ? 0.f : zz > 15.f ? 15.f : zz;
}

static inline float code(float w, float s, float z) {
    float q = rintf(w / s) + z;
    return q < 0.f ? 0.f : q > 15.f ? 15.f : q;
}

void lmb_int4_quantize(const float *W, int out, int in, int group, uint8_t *codes, uint8_t *zeros, float *scales) {
    int ng = in / group;
#pragma omp parallel for schedule(static) if ((long)out * in > (1L << 16))
    for (int r = 0; r < out; r++)
        for (int g = 0; g < ng; g++) {
            const float *w = W + (size_t)r * in + (size_t)g * group;
            float s, z;
            group_params(w, group, &s, &z);
            scales[(size_t)r * ng + g] = s;
            zeros[(size_t)r * ng + g] = (uint8_t)z;
            for (int i = 0; i < group; i++) codes[(size_t)r * in + (size_t)g * group + i] = (uint8_t)code(w[i], s, z);
        }
}

void lmb_int4_fake_quant(float *W, int out, int in, int group) {
    int ng = in / group;
#pragma omp parallel for schedule(static) if ((long)out * in > (1L << 16))
    for (int r = 0; r < out; r++)
        for (int g = 0; g < ng; g++) {
            float *w = W + (size_t)r * in + (size_t)g * group;
            float s, z;
            group_params(w, group, &s, &z);
            for (int i = 0; i < group; i++) w[i] = (code(w[i], s, z) - z) * s;
        }
}

void lmb_awq_pack(const uint8_t *codes, const uint8_t *zeros, const float *scales, int out, int in, int group,
                  int32_t *qweight, int32_t *qzeros, uint16_t *scales_f16) {
    static const int order[8] = LMB_AWQ_ORDER;
    int ng = in / group, o8 = out / 8;
#pragma omp parallel for schedule(static) if ((long)out * in > (1L << 16))
    for (int k = 0; k < in; k++)
        for (int c = 0; c < o8; c++) {
            uint32_t word = 0;
            for (int i = 0; i < 8; i++) word |= (uint32_t)(codes[(size_t)(8 * c + order[i]) * in + k] & 15u) << (4 * i);
            qweight[(size_t)k * o8 + c] = (int32_t)word;
        }
    for (int g = 0; g < ng; g++) {
        for (int c = 0; c < o8; c++) {
            uint32_t word = 0;
            for (int i = 0; i < 8; i++) word |= (uint32_t)(zeros[(size_t)(8 * c + order[i]) * ng + g] & 15u) << (4 * i);
            qzeros[(size_t)g * o8 + c] = (int32_t)word;
        }
        for (int n = 0; n < out; n++) scales_f16[(size_t)g * out + n] = lmb_f32_to_f16(scales[(size_t)n * ng + g]);
    }
}

void lmb_awq_unpack(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales_f16, int out, int in,
                    int group, uint8_t *codes, uint8_t *zeros, uint16_t *scales_out) {
    static const int order[8] = LMB_AWQ_ORDER;
    int ng = in / group, o8 = out / 8;
    for (int k = 0; k < in; k++)
        for (int c = 0; c < o8; c++) {
            uint32_t word = (uint32_t)qweight[(size_t)k * o8 + c];
            for (int i = 0; i < 8; i++) codes[(size_t)(8 * c + order[i]) * in + k] = (uint8_t)((word >> (4 * i)) & 15u);
        }
    for (int g = 0; g < ng; g++) {
        for (int c = 0; c < o8; c++) {
            uint32_t word = (uint32_t)qzeros[(size_t)g * o8 + c];
            for (int i = 0; i < 8; i++) zeros[(size_t)(8 * c + order[i]) * ng + g] = (uint8_t)((word >> (4 * i)) & 15u);
        }
        for (int n = 0; n < out; n++) scales_out[(size_t)n * ng + g] = scales_f16[(size_t)g * out + n];
    }
}
