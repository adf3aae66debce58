/* int4.h — 4-bit group quantization as AutoAWQ does it, and packing into AutoAWQ's GEMM layout.
 *
 * Per output row and group of `group` input columns (AutoAWQ's pseudo_quantize_tensor, zero_point=True):
 *   s = max(max(w) - min(w), 1e-5) / 15,  z = clamp(-round(min(w) / s), 0, 15),
 *   q = clamp(round(w / s) + z, 0, 15),   w ≈ (q - z) * s        (round = half to even, as torch.round)
 * with s in fp32 for the codes and stored as fp16 (AutoAWQ's from_linear does the same), so the
 * dequantized weight of a packed linear is (q - z) * fp16(s).  The packed tensors (qweight [in, out/8],
 * qzeros [in/group, out/8] int32, scales [in/group, out] fp16, nibble order LMB_AWQ_ORDER) are described
 * in kernels/kernels.h, whose lmb_cpu_awq_dequant reads them back.
 */
#ifndef LMB_INT4_H
#define LMB_INT4_H

#include <stdint.h>

/* Quantizes W [out, in] fp32: codes [out, in], zeros [out, in/group] (0..15) and scales [out, in/group]
 * fp32 (not yet rounded to fp16).  in % group == 0.  Rows in parallel (OpenMP). */
void lmb_int4_quantize(const float *W, int out, int in, int group, uint8_t *codes, uint8_t *zeros, float *scales);

/* W <- (q - z) * s in place, s fp32: the "pseudo-quantized" weight the AWQ search measures. */
void lmb_int4_fake_quant(float *W, int out, int in, int group);

/* Packs codes [out, in] and zeros [out, in/group] (values 0..15) and fp32 scales [out, in/group] into
 * qweight int32 [in, out/8], qzeros int32 [in/group, out/8] and scales fp16 [in/group, out].
 * out % 8 == 0, in % group == 0. */
void lmb_awq_pack(const uint8_t *codes, const uint8_t *zeros, const float *scales, int out, int in, int group,
                  int32_t *qweight, int32_t *qzeros, uint16_t *scales_f16);

/* The inverse of lmb_awq_pack: codes [out, in], zeros [out, in/group] and fp16 scales [out, in/group]. */
void lmb_awq_unpack(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales_f16, int out, int in,
                    int group, uint8_t *codes, uint8_t *zeros, uint16_t *scales_out);

#endif
