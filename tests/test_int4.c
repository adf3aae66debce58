/* test_int4.c — the int4 quantizer and AutoAWQ packing (quantize/int4.c) and the CPU dequantizer
 * (kernels/cpu/w4a16.c): bit-exact agreement with a reference made from AutoAWQ's algorithm
 * (tests/fixtures/awq/pack_reference.safetensors, from tests/tools/make_awq_pack_reference.py), the nibble
 * order on a hand-made word, pack -> unpack round trips, dequantize = the quantized values, the
 * quantization error bound, and the repack into the CUDA kernels' "W4 rows" layout (dequantizing the repacked
 * buffers gives the AWQ dequantization bit for bit, odd shapes and unaligned sources included). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/safetensors.h"
#include "../kernels/kernels.h"
#include "../quantize/int4.h"
#include "support/fixtures.h"

#define REF "tests/fixtures/awq/pack_reference.safetensors"

static const lmb_tensor *need(const lmb_safetensors *st, const char *name) {
    const lmb_tensor *t = lmb_st_find(st, name);
    cr_assert(t, "%s: no tensor %s", REF, name);
    return t;
}

Test(int4, matches_autoawq_reference_bit_for_bit) {
    lmb_safetensors *st;
    lmb_error err;
    cr_assert_eq(lmb_st_open_file(REF, &st, &err), 0, "%s (run the tests from the repository root)", err.msg);
    const lmb_tensor *w = need(st, "w"), *iw = need(st, "intweight"), *zs = need(st, "zeros"), *sc = need(st, "scales");
    const lmb_tensor *qw = need(st, "qweight"), *qz = need(st, "qzeros");
    int out = (int)w->shape[0], in = (int)w->shape[1], G = atoi(lmb_st_metadata(st, "group_size")), ng = in / G;
    float *W = malloc(w->nbytes), *s = malloc(sizeof(float) * out * ng);
    int32_t *ref_codes = malloc(iw->nbytes), *ref_zeros = malloc(zs->nbytes), *ref_qw = malloc(qw->nbytes),
            *ref_qz = malloc(qz->nbytes);
    uint16_t *ref_s = malloc(sc->nbytes);
    memcpy(W, w->data, w->nbytes), memcpy(ref_codes, iw->data, iw->nbytes), memcpy(ref_zeros, zs->data, zs->nbytes);
    memcpy(ref_qw, qw->data, qw->nbytes), memcpy(ref_qz, qz->data, qz->nbytes), memcpy(ref_s, sc->data, sc->nbytes);
    uint8_t *codes = malloc((size_t)out * in), *zeros = malloc((size_t)out * ng);
    lmb_int4_quantize(W, out, in, G, codes, zeros, s);
    for (int i = 0; i < out * in; i++) cr_assert_eq(codes[i], ref_codes[i], "code %d (row %d col %d)", i, i / in, i % in);
    for (int i = 0; i < out * ng; i++) cr_assert_eq(zeros[i], ref_zeros[i], "zero %d", i);
    int32_t *pw = malloc(qw->nbytes), *pz = malloc(qz->nbytes);
    uint16_t *ps = malloc(sc->nbytes);
    lmb_awq_pack(codes, zeros, s, out, in, G, pw, pz, ps);
    cr_assert_eq(memcmp(pw, ref_qw, qw->nbytes), 0, "qweight differs from AutoAWQ's packing");
    cr_assert_eq(memcmp(pz, ref_qz, qz->nbytes), 0, "qzeros differs from AutoAWQ's packing");
    cr_assert_eq(memcmp(ps, ref_s, sc->nbytes), 0, "scales differ");
    /* the dequantized reference weights: (intweight - zero) * fp16 scale */
    float *D = malloc(sizeof(float) * out * in);
    lmb_cpu_awq_dequant(D, ref_qw, ref_qz, ref_s, in, out, G);
    for (int r = 0; r < out; r++)
        for (int k = 0; k < in; k++) {
            float want = (float)(ref_codes[r * in + k] - ref_zeros[r * ng + k / G]) *
                         lmb_f16_to_f32(ref_s[(k / G) * out + r]);
            cr_assert_eq(D[r * in + k], want, "dequant [%d, %d]", r, k);
        }
    free(W), free(s), free(ref_codes), free(ref_zeros), free(ref_qw), free(ref_qz), free(ref_s);
    free(codes), free(zeros), free(pw), free(pz), free(ps), free(D);
    lmb_st_close(st);
}

/* Codes 0..7 in output columns 0..7 pack as nibbles [0, 2, 4, 6, 1, 3, 5, 7] from the low end. */
Test(int4, nibble_order_by_hand) {
    uint8_t codes[8 * 1], zeros[8] = {0};
    float s[8];
    for (int n = 0; n < 8; n++) codes[n] = (uint8_t)n, s[n] = 1.f;
    int32_t qw, qz;
    uint16_t sc[8];
    lmb_awq_pack(codes, zeros, s, 8, 1, 1, &qw, &qz, sc);
    cr_assert_eq((uint32_t)qw, 0x75316420u, "got %08x", (uint32_t)qw);
    float W[8];
    lmb_cpu_awq_dequant(W, &qw, &qz, sc, 1, 8, 1);
    for (int n = 0; n < 8; n++) cr_assert_eq(W[n], (float)n);
}

Test(int4, pack_unpack_round_trip) {
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, 7);
    int shapes[][3] = {{8, 32, 32}, {16, 128, 64}, {40, 256, 128}, {64, 96, 32}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int out = shapes[t][0], in = shapes[t][1], G = shapes[t][2], ng = in / G;
        uint8_t *codes = malloc((size_t)out * in), *zeros = malloc((size_t)out * ng);
        uint8_t *c2 = malloc((size_t)out * in), *z2 = malloc((size_t)out * ng);
        float *s = malloc(sizeof(float) * out * ng);
        uint16_t *s16 = malloc(2 * (size_t)out * ng), *s2 = malloc(2 * (size_t)out * ng);
        int32_t *qw = malloc(4 * (size_t)in * out / 8), *qz = malloc(4 * (size_t)ng * out / 8);
        for (int i = 0; i < out * in; i++) codes[i] = (uint8_t)(lmb_test_rng_u64(&rng) & 15);
        for (int i = 0; i < out * ng; i++) {
            zeros[i] = (uint8_t)(lmb_test_rng_u64(&rng) & 15);
            s[i] = (float)(0.001 + 0.02 * lmb_test_rng_uniform(&rng));
        }
        lmb_awq_pack(codes, zeros, s, out, in, G, qw, qz, s16);
        lmb_awq_unpack(qw, qz, s16, out, in, G, c2, z2, s2);
        cr_assert_eq(memcmp(codes, c2, (size_t)out * in), 0, "codes, shape %zu", t);
        cr_assert_eq(memcmp(zeros, z2, (size_t)out * ng), 0, "zeros, shape %zu", t);
        for (int i = 0; i < out * ng; i++) cr_assert_eq(s2[i], lmb_f32_to_f16(s[i]));
        free(codes), free(zeros), free(c2), free(z2), free(s), free(s16), free(s2), free(qw), free(qz);
    }
}

/* quantize -> pack -> dequantize gives (q - z) * fp16(s): the fake-quantized weight up to the fp16 rounding
 * of s, and within s/2 of the original weight wherever no clamping happened. */
Test(int4, dequantized_equals_quantized_values) {
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, 11);
    int out = 48, in = 256, G = 64, ng = in / G;
    float *W = malloc(sizeof(float) * out * in), *F = malloc(sizeof(float) * out * in),
          *D = malloc(sizeof(float) * out * in), *s = malloc(sizeof(float) * out * ng);
    for (int i = 0; i < out * in; i++) W[i] = (float)(0.04 * lmb_test_rng_normal(&rng));
    memcpy(F, W, sizeof(float) * out * in);
    lmb_int4_fake_quant(F, out, in, G);
    uint8_t *codes = malloc((size_t)out * in), *zeros = malloc((size_t)out * ng);
    lmb_int4_quantize(W, out, in, G, codes, zeros, s);
    int32_t *qw = malloc(4 * (size_t)in * out / 8), *qz = malloc(4 * (size_t)ng * out / 8);
    uint16_t *s16 = malloc(2 * (size_t)out * ng);
    lmb_awq_pack(codes, zeros, s, out, in, G, qw, qz, s16);
    lmb_cpu_awq_dequant(D, qw, qz, s16, in, out, G);
    for (int r = 0; r < out; r++)
        for (int k = 0; k < in; k++) {
            size_t i = (size_t)r * in + k;
            float sg = s[r * ng + k / G];
            cr_assert_eq(D[i], (float)(codes[i] - zeros[r * ng + k / G]) * lmb_f16_to_f32(lmb_f32_to_f16(sg)));
            cr_assert_leq(fabsf(D[i] - F[i]), fabsf(F[i]) * 1e-3f + 1e-7f, "[%d,%d] %g vs %g", r, k, D[i], F[i]);
            cr_assert_leq(fabsf(F[i] - W[i]), 0.5f * sg * 1.0001f, "[%d,%d] error beyond s/2", r, k);
        }
    free(W), free(F), free(D), free(s), free(codes), free(zeros), free(qw), free(qz), free(s16);
}

/* The reference GEMM equals dequantize + dense matmul. */
Test(int4, w4a16_reference_matmul) {
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, 3);
    int M = 5, N = 24, K = 64, G = 32;
    int32_t qw[64 * 3], qz[2 * 3];
    uint16_t sc[2 * 24];
    for (int i = 0; i < 64 * 3; i++) qw[i] = (int32_t)lmb_test_rng_u64(&rng);
    for (int i = 0; i < 6; i++) qz[i] = (int32_t)lmb_test_rng_u64(&rng);
    for (int i = 0; i < 48; i++) sc[i] = lmb_f32_to_f16((float)(0.01 * lmb_test_rng_uniform(&rng)));
    float x[5 * 64], y[5 * 24], W[24 * 64];
    for (int i = 0; i < M * K; i++) x[i] = (float)lmb_test_rng_normal(&rng);
    lmb_cpu_w4a16_matmul(y, x, qw, qz, sc, M, N, K, G);
    lmb_cpu_awq_dequant(W, qw, qz, sc, K, N, G);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)x[m * K + k] * W[n * K + k];
            cr_assert_lt(fabs(y[m * N + n] - acc), 1e-5 * (1 + fabs(acc)));
        }
}

/* W4 rows by hand: code (n, k) = n + k (mod 16), zero (n, g) = n + 3g (mod 16), scale (n, g) = n + g. */
Test(int4, w4_rows_by_hand) {
    enum { N = 8, K = 16, G = 8, NG = K / G };
    uint8_t codes[N * K], zeros[N * NG];
    float s[N * NG];
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) codes[n * K + k] = (uint8_t)((n + k) % 16);
        for (int g = 0; g < NG; g++) zeros[n * NG + g] = (uint8_t)((n + 3 * g) % 16), s[n * NG + g] = (float)(n + g);
    }
    int32_t qw[K * N / 8], qz[NG * N / 8];
    uint16_t sc[NG * N];
    lmb_awq_pack(codes, zeros, s, N, K, G, qw, qz, sc);
    uint32_t rw[N * K / 8], rz[N];
    uint16_t rs[N * NG];
    cr_assert_eq(lmb_w4_rows_from_awq(rw, rz, rs, qw, qz, sc, K, N, G), 0);
    static const int order[8] = LMB_AWQ_ORDER;
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < K / 8; j++) {
            uint32_t want = 0;
            for (int i = 0; i < 8; i++) want |= (uint32_t)((n + 8 * j + order[i]) % 16) << (4 * i);
            uint32_t got = rw[n * (K / 8) + j];
            cr_assert_eq(got, want, "row %d word %d: got %08x, want %08x", n, j, got, want);
        }
        cr_assert_eq(rz[n], (uint32_t)(zeros[n * NG] | zeros[n * NG + 1] << 4), "zeros of row %d: %08x", n, rz[n]);
        for (int g = 0; g < NG; g++) cr_assert_eq(rs[n * NG + g], lmb_f32_to_f16((float)(n + g)));
    }
    cr_assert_eq(lmb_w4_rows_from_awq(rw, rz, rs, qw, qz, sc, 12, N, 4), -1, "K %% 8 != 0 refused");
    cr_assert_eq(lmb_w4_rows_from_awq(rw, rz, rs, qw, qz, sc, K, 4, G), -1, "N %% 8 != 0 refused");
    cr_assert_eq(lmb_w4_rows_from_awq(rw, rz, rs, qw, qz, sc, K, N, 3), -1, "K %% group != 0 refused");
}

/* dequant_rows(repack(awq)) == awq_dequant(awq) bit for bit on random words; groups 8..128, group counts that
 * are not a multiple of 8 (padded zero words, whose unused nibbles stay 0), N = 8, sources at odd addresses. */
Test(int4, w4_rows_round_trip) {
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, 17);
    int shapes[][3] = {{8, 32, 32},   {8, 96, 32},   {16, 576, 64}, {24, 1152, 128}, {40, 72, 8},
                       {64, 256, 32}, {8, 2304, 64}, {32, 48, 24},  {136, 1280, 128}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int N = shapes[t][0], K = shapes[t][1], G = shapes[t][2], ng = K / G, ZW = (ng + 7) / 8;
        size_t nw = (size_t)K * N / 8, nz = (size_t)ng * N / 8, ns = (size_t)ng * N;
        /* the AWQ buffers one byte into an allocation, as tensors inside a mapped file can be */
        unsigned char *src = malloc(1 + 4 * nw + 4 * nz + 2 * ns);
        unsigned char *qw = src + 1, *qz = qw + 4 * nw, *sc = qz + 4 * nz;
        for (size_t i = 0; i < nw; i++) {
            uint32_t v = (uint32_t)lmb_test_rng_u64(&rng);
            memcpy(qw + 4 * i, &v, 4);
        }
        for (size_t i = 0; i < nz; i++) {
            uint32_t v = (uint32_t)lmb_test_rng_u64(&rng);
            memcpy(qz + 4 * i, &v, 4);
        }
        for (size_t i = 0; i < ns; i++) {
            uint16_t v = lmb_f32_to_f16((float)(0.001 + 0.02 * lmb_test_rng_uniform(&rng)));
            memcpy(sc + 2 * i, &v, 2);
        }
        uint32_t *rw = malloc(4 * nw), *rz = malloc(4 * (size_t)N * ZW);
        uint16_t *rs = malloc(2 * ns);
        float *want = malloc(sizeof(float) * (size_t)N * K), *got = malloc(sizeof(float) * (size_t)N * K);
        cr_assert_eq(lmb_w4_rows_from_awq(rw, rz, rs, qw, qz, sc, K, N, G), 0, "shape %zu", t);
        lmb_cpu_awq_dequant(want, qw, qz, sc, K, N, G);
        lmb_cpu_w4_rows_dequant(got, rw, rz, rs, K, N, G);
        for (size_t i = 0; i < (size_t)N * K; i++)
            cr_assert_eq(memcmp(&got[i], &want[i], 4), 0, "N=%d K=%d G=%d: w[%zu, %zu] %g, AWQ gives %g", N, K, G,
                         i / K, i % K, got[i], want[i]);
        if (ng % 8)
            for (int n = 0; n < N; n++)
                cr_assert_eq(rz[(size_t)n * ZW + ZW - 1] >> (4 * (ng % 8)), 0u, "N=%d K=%d G=%d: row %d padding", N, K,
                             G, n);
        free(src), free(rw), free(rz), free(rs), free(want), free(got);
    }
}
