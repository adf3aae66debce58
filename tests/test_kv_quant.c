/* test_kv_quant.c — the int8/int4 KV-cache format on the CPU (kernels/kv_quant.h, kernels/cpu/kv_quant.c,
 * kernels/cpu/attention.c): directed fp16 rounding, the quantize/dequantize round trip within scale/2 per
 * element, saturation with offline scales, int4 packing, the tile layout, and attention over a quantized pool:
 * exactly fp32 attention over the dequantized values, and within stated bounds of fp32 attention over the
 * unquantized ones.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/tensor.h"
#include "../kernels/kernels.h"
#include "support/fixtures.h"

static float f16v(uint16_t h) { return lmb_f16_to_f32(h); }

Test(kv_quant, f16_directed_rounding_brackets_the_value) {
    lmb_test_rng r;
    lmb_test_rng_seed(&r, 5);
    for (int i = 0; i < 200000; i++) {
        /* magnitudes from fp16 subnormals (~6e-8) to beyond the fp16 range */
        double mag = pow(2.0, -26 + 44 * lmb_test_rng_uniform(&r));
        float x = (float)((lmb_test_rng_uniform(&r) < 0.5 ? -1 : 1) * mag);
        uint16_t d = lmb_f16_round_down(x), u = lmb_f16_round_up(x);
        cr_assert_leq(f16v(d), x, "down(%g) = %g", x, f16v(d));
        cr_assert_geq(f16v(u), x, "up(%g) = %g", x, f16v(u));
        if (fabsf(x) <= 65504.f) {
            /* adjacent (or equal when x is representable): nothing in fp16 lies strictly between them */
            float nearest = f16v(lmb_f32_to_f16(x));
            cr_assert(nearest == f16v(d) || nearest == f16v(u), "%g: %g %g %g", x, f16v(d), nearest, f16v(u));
            if (f16v(d) != f16v(u)) {
                uint16_t next = (d & 0x8000u) ? (d == 0x8000u ? 0x0001u : (uint16_t)(d - 1)) : (uint16_t)(d + 1);
                cr_assert_eq(f16v(next), f16v(u), "%g: %g and %g are not adjacent", x, f16v(d), f16v(u));
            }
        }
    }
    cr_assert_eq(f16v(lmb_f16_round_down(0.f)), 0.f);
    cr_assert_eq(f16v(lmb_f16_round_up(0.f)), 0.f);
    cr_assert_eq(f16v(lmb_f16_round_down(70000.f)), 65504.f);
    cr_assert(isinf(f16v(lmb_f16_round_up(70000.f))));
}

/* Rows of many shapes: uniform, gaussian with outliers, tiny, large, constant, one spike. */
static void fill_row(lmb_test_rng *r, float *x, int n, int kind) {
    for (int i = 0; i < n; i++) {
        double g = lmb_test_rng_normal(r);
        switch (kind % 6) {
        case 0: x[i] = (float)(lmb_test_rng_uniform(r) * 2 - 1); break;
        case 1: x[i] = (float)(g * (lmb_test_rng_uniform(r) < 0.02 ? 20 : 1)); break;
        case 2: x[i] = (float)(g * 1e-5); break;
        case 3: x[i] = (float)(g * 3000 + 500); break;
        case 4: x[i] = 0.37f; break;
        default: x[i] = i == n / 3 ? 50.f : (float)(g * 0.01); break;
        }
    }
}

static void check_round_trip(int bits) {
    lmb_test_rng r;
    lmb_test_rng_seed(&r, (uint64_t)bits);
    const int ns[] = {2, 8, 16, 64, 80, 128, 256};
    float x[256], y[256];
    uint8_t codes[256];
    for (int it = 0; it < 3000; it++) {
        int n = ns[it % 7];
        fill_row(&r, x, n, it / 7);
        uint16_t param[2];
        memset(codes, 0xAB, sizeof codes);
        lmb_kv_quantize_row(x, n, bits, NULL, codes, param);
        lmb_kv_dequantize_row(codes, param, n, bits, y);
        float scale = f16v(param[0]), zero = f16v(param[1]), mn = x[0], mx = x[0];
        for (int i = 1; i < n; i++) mn = fminf(mn, x[i]), mx = fmaxf(mx, x[i]);
        /* the stored parameters: zero at or just below min, scale the smallest fp16 covering the range */
        cr_assert_leq(zero, mn);
        cr_assert_geq(scale, 0.f);
        cr_assert_geq(zero + (float)lmb_kv_qmax(bits) * scale, mx * (1 - 1e-6f) - 1e-30f);
        /* ... at most one fp16 step of min above the exact range, rounded up once */
        float ulp_mn = f16v(lmb_f16_round_up(mn)) - f16v(lmb_f16_round_down(mn));
        cr_assert_leq(scale, (mx - mn + ulp_mn) / lmb_kv_qmax(bits) * (1 + 1.0f / 512) + 6e-8f, "scale %g for range %g",
                      scale, mx - mn);
        for (int i = 0; i < n; i++) {
            float err = fabsf(x[i] - y[i]);
            /* the bound: half a step, plus fp32 rounding of the arithmetic itself */
            float tol = scale / 2 + 4e-7f * (fabsf(x[i]) + fabsf(zero));
            cr_assert_leq(err, tol, "%d bits n %d elem %d: x %.9g -> %.9g (scale %g, zero %g)", bits, n, i, x[i], y[i],
                          scale, zero);
        }
        int used = bits == 4 ? n / 2 : n; /* nothing written past the row's bytes */
        if (used < 256) cr_assert_eq(codes[used], 0xAB, "%d-bit row of %d wrote past its %d bytes", bits, n, used);
    }
}

Test(kv_quant, int8_round_trip_within_half_a_step) { check_round_trip(8); }
Test(kv_quant, int4_round_trip_within_half_a_step) { check_round_trip(4); }

Test(kv_quant, int4_packs_two_per_byte_low_nibble_first) {
    float x[4] = {0, 15, 3, 7}; /* min 0, max 15: scale 1, zero 0 */
    uint8_t c[2];
    uint16_t p[2];
    lmb_kv_quantize_row(x, 4, 4, NULL, c, p);
    cr_assert_eq(f16v(p[0]), 1.f);
    cr_assert_eq(f16v(p[1]), 0.f);
    cr_assert_eq(c[0], 0xF0);
    cr_assert_eq(c[1], 0x73);
    float y[4] = {0, 255, 3, 128};
    uint8_t c8[4];
    lmb_kv_quantize_row(y, 4, 8, NULL, c8, p);
    cr_assert(c8[0] == 0 && c8[1] == 255 && c8[2] == 3 && c8[3] == 128);
}

Test(kv_quant, offline_scales_saturate_outside_their_range) {
    /* int8, range [-1, 1] as the params file would say it (zp 0, scale 2/255): zero = -128 * scale */
    float scale = f16v(lmb_f32_to_f16(2.0f / 255)), zero = f16v(lmb_f32_to_f16(-128 * scale));
    float fixed[2] = {scale, zero};
    float x[6] = {-1.f, 0.5f, 0.999f, 3.f, -7.f, 0.f}, y[6];
    uint8_t c[6];
    uint16_t p[2];
    lmb_kv_quantize_row(x, 6, 8, fixed, c, p);
    cr_assert_eq(f16v(p[0]), scale);
    cr_assert_eq(f16v(p[1]), zero);
    lmb_kv_dequantize_row(c, p, 6, 8, y);
    for (int i = 0; i < 3; i++) cr_assert_leq(fabsf(x[i] - y[i]), scale / 2 + 1e-6f, "elem %d", i);
    cr_assert_eq(c[3], 255); /* saturated */
    cr_assert_eq(c[4], 0);
    cr_assert_leq(fabsf(y[5]), scale / 2 + 1e-6f);
}

Test(kv_quant, tile_layout) {
    /* codes, then {scale, zero} at a multiple of 4, tile padded to 16; fp32/fp16 tiles unpadded */
    cr_assert_eq(lmb_kv_tile_bytes(128, 8, 64), 64 * 128 + 64 * 4);
    cr_assert_eq(lmb_kv_tile_bytes(128, 4, 64), 64 * 64 + 64 * 4);
    cr_assert_eq(lmb_kv_tile_bytes(128, 16, 64), 64 * 256);
    cr_assert_eq(lmb_kv_tile_bytes(64, 32, 16), 16 * 256);
    cr_assert_eq(lmb_kv_param_offset(6, 4, 3), 12); /* 3 rows x 3 bytes = 9 -> 12 */
    cr_assert_eq(lmb_kv_tile_bytes(6, 4, 3), 32);   /* 12 + 12 = 24 -> 32 */
    for (int bs = 1; bs <= 65; bs += 7)
        for (int hd = 2; hd <= 258; hd += 16)
            for (int b = 4; b <= 8; b += 4) {
                size_t t = lmb_kv_tile_bytes(hd, b, bs), po = lmb_kv_param_offset(hd, b, bs);
                cr_assert(t % 16 == 0 && po % 4 == 0 && po >= (size_t)bs * lmb_kv_row_bytes(hd, b) &&
                          t >= po + 4 * (size_t)bs);
            }
}

/* ---- attention over a quantized pool ----------------------------------------------------------------- */

typedef struct pools {
    lmb_kv_pool f32, q, deq; /* fp32 originals, quantized, fp32 holding the dequantized values */
} pools;

static void make_pool(lmb_kv_pool *p, int bits, int L, int nkv, int bs, int hd, int n_blocks) {
    *p = (lmb_kv_pool){.block_size = bs, .n_layers = L, .n_kv = nkv, .hd = hd, .bits = bits};
    if (lmb_kv_is_quantized(bits)) {
        p->tile_bytes = lmb_kv_tile_bytes(hd, bits, bs);
        p->qpool = calloc((size_t)n_blocks * L * 2 * nkv, p->tile_bytes);
    } else {
        p->block_stride = (size_t)L * 2 * nkv * bs * hd;
        p->pool = calloc((size_t)n_blocks * p->block_stride, sizeof(float));
    }
}

/* One sequence of n tokens, random K/V written through lmb_cpu_kv_write into all three pools. */
static void attention_case(int bits, int hd, double bound) {
    const int L = 2, nkv = 2, nh = 6, bs = 16, n = 150, mb = (n + bs - 1) / bs, n_blocks = mb + 3;
    lmb_test_rng r;
    lmb_test_rng_seed(&r, 77 + (uint64_t)hd);
    pools P;
    make_pool(&P.f32, 32, L, nkv, bs, hd, n_blocks);
    make_pool(&P.q, bits, L, nkv, bs, hd, n_blocks);
    make_pool(&P.deq, 32, L, nkv, bs, hd, n_blocks);
    int32_t table[16], q_start[2] = {0, n}, pos[150];
    for (int b = 0; b < mb; b++) table[b] = (b * 5 + 2) % n_blocks; /* scattered blocks */
    for (int t = 0; t < n; t++) pos[t] = t;
    size_t row = (size_t)nkv * hd;
    float *k = malloc(sizeof(float) * n * row), *v = malloc(sizeof(float) * n * row);
    float *q = malloc(sizeof(float) * n * nh * hd);
    for (size_t i = 0; i < n * row; i++) k[i] = (float)lmb_test_rng_normal(&r), v[i] = (float)lmb_test_rng_normal(&r);
    for (size_t i = 0; i < (size_t)n * nh * hd; i++) q[i] = (float)lmb_test_rng_normal(&r);
    for (int l = 0; l < L; l++) {
        lmb_cpu_kv_write(&P.f32, l, k, v, 1, q_start, pos, table, mb);
        lmb_cpu_kv_write(&P.q, l, k, v, 1, q_start, pos, table, mb);
    }
    /* the dequantized pool, row by row from the quantized tiles */
    float buf[256];
    for (int b = 0; b < mb; b++)
        for (int l = 0; l < L; l++)
            for (int kv = 0; kv < 2; kv++)
                for (int h = 0; h < nkv; h++)
                    for (int o = 0; o < bs; o++) {
                        const unsigned char *tile = lmb_kv_qtile(&P.q, table[b], l, kv, h);
                        uint16_t prm[2];
                        memcpy(prm, tile + lmb_kv_param_offset(hd, bits, bs) + 4 * o, 4);
                        lmb_kv_dequantize_row(tile + (size_t)o * lmb_kv_row_bytes(hd, bits), prm, hd, bits, buf);
                        memcpy(lmb_kv_tile(&P.deq, table[b], l, kv, h) + (size_t)o * hd, buf, sizeof(float) * hd);
                    }
    float scale = 1.0f / sqrtf((float)hd);
    float *sc = malloc(sizeof(float) * lmb_cpu_attention_scratch(n));
    float *o_f32 = malloc(sizeof(float) * n * nh * hd), *o_q = malloc(sizeof(float) * n * nh * hd);
    float *o_deq = malloc(sizeof(float) * n * nh * hd);
    for (int l = 0; l < L; l++) {
        lmb_cpu_attention(o_f32, q, &P.f32, l, nh, 1, q_start, pos, table, mb, scale, sc, n);
        lmb_cpu_attention(o_q, q, &P.q, l, nh, 1, q_start, pos, table, mb, scale, sc, n);
        lmb_cpu_attention(o_deq, q, &P.deq, l, nh, 1, q_start, pos, table, mb, scale, sc, n);
        /* the reference dequantizes, then does exactly the fp32 math: bit-identical */
        cr_assert(memcmp(o_q, o_deq, sizeof(float) * n * nh * hd) == 0, "%d bits hd %d layer %d: not the fp32 math", bits,
                  hd, l);
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)n * nh * hd; i++) {
            num += ((double)o_q[i] - o_f32[i]) * ((double)o_q[i] - o_f32[i]);
            den += (double)o_f32[i] * o_f32[i];
        }
        double rel = sqrt(num / den);
        cr_assert_lt(rel, bound, "%d bits hd %d layer %d: relative error %g vs fp32 (bound %g)", bits, hd, l, rel, bound);
    }
    free(P.f32.pool), free(P.q.qpool), free(P.deq.pool), free(k), free(v), free(q), free(sc), free(o_f32), free(o_q);
    free(o_deq);
}

/* Bounds for N(0, 1) K/V and q (logits std ~1): a row's step is ~6/255 (int8) or ~6/15 (int4) of its range, so
 * the output's relative error is ~1% (int8) and ~15% (int4); measured 0.7% / 12% (hd 64), the bounds leave 2-3x. */
Test(kv_quant, attention_int8_matches_fp32_within_2_percent) {
    attention_case(8, 64, 2e-2);
    attention_case(8, 128, 2e-2);
    attention_case(8, 16, 2e-2);
}

Test(kv_quant, attention_int4_matches_fp32_within_25_percent) {
    attention_case(4, 64, 0.25);
    attention_case(4, 128, 0.25);
    attention_case(4, 16, 0.25);
}
