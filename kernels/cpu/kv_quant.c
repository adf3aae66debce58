/* kv_quant.c — the CPU reference of KV-cache quantization (format and formulas in kernels/kv_quant.h).  The
 * CUDA write kernel (kernels/cuda/kv_quant.cu) does the same operations in the same order: the fp32 range, the
 * directed fp16 roundings of zero and scale, a true division and rint, so codes agree except where the inputs
 * differ (the GPU quantizes K after its fp16 RoPE).
 */
#include <math.h>
#include <string.h>

#include "../../engine/tensor.h"
#include "../kv_quant.h"

/* The next fp16 toward -inf from bit pattern h (h not NaN, not -inf). */
static uint16_t f16_next_down(uint16_t h) {
    if (h == 0x0000u) return 0x8001u;   /* +0 -> the smallest negative subnormal */
    if (h & 0x8000u) return (uint16_t)(h + 1); /* negative: larger magnitude */
    return (uint16_t)(h - 1);
}

uint16_t lmb_f16_round_down(float x) {
    uint16_t h = lmb_f32_to_f16(x);
    if (isnan(x)) return h;
    if (lmb_f16_to_f32(h) > x && h != 0xfc00u) h = f16_next_down(h);
    return h;
}

uint16_t lmb_f16_round_up(float x) { return (uint16_t)(lmb_f16_round_down(-x) ^ 0x8000u); }

void lmb_kv_quantize_row(const float *x, int n, int bits, const float *fixed, uint8_t *codes, uint16_t *param) {
    const int Q = lmb_kv_qmax(bits);
    float scale, zero;
    if (fixed) {
        scale = fixed[0];
        zero = fixed[1];
    } else {
        float mn = x[0], mx = x[0];
        for (int i = 1; i < n; i++) {
            mn = fminf(mn, x[i]);
            mx = fmaxf(mx, x[i]);
        }
        uint16_t zh = lmb_f16_round_down(mn);
        zero = lmb_f16_to_f32(zh);
        scale = lmb_f16_to_f32(lmb_f16_round_up((mx - zero) / (float)Q));
    }
    param[0] = lmb_f32_to_f16(scale);
    param[1] = lmb_f32_to_f16(zero);
    if (bits == 4) memset(codes, 0, (size_t)(n + 1) / 2);
    for (int i = 0; i < n; i++) {
        float q = scale > 0 ? rintf((x[i] - zero) / scale) : 0.f;
        int u = q > (float)Q ? Q : q > 0.f ? (int)q : 0; /* also maps NaN to 0 */
        if (bits == 8)
            codes[i] = (uint8_t)u;
        else
            codes[i / 2] |= (uint8_t)(u << (4 * (i & 1)));
    }
}

void lmb_kv_dequantize_row(const uint8_t *codes, const uint16_t *param, int n, int bits, float *out) {
    const float scale = lmb_f16_to_f32(param[0]), zero = lmb_f16_to_f32(param[1]);
    for (int i = 0; i < n; i++) {
        int u = bits == 8 ? codes[i] : (codes[i / 2] >> (4 * (i & 1))) & 15;
        out[i] = (float)u * scale + zero;
    }
}
