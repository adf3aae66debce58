/* kv_quant.h — the quantized KV-cache format (int8 / int4), shared by the CPU reference (kernels/cpu/kv_quant.c,
 * kernels/cpu/attention.c) and the CUDA kernels (kernels/cuda/kv_quant.cu, attention_*.cu).  Plain C, also
 * included from C++.
 *
 * A token's K (or V) row of one KV head, head_dim values x, is stored as unsigned codes u in [0, Q]
 * (Q = 255 for 8 bits, 15 for 4 bits) plus two fp16 numbers, scale and zero, and read back as
 *     x̂ = u * scale + zero                          (fp32 math, on the fp16 values)
 * Online (per token and per head, as LMDeploy's quant_policy): zero = fp16_down(min x),
 * scale = fp16_up((max x - zero) / Q), u = clamp(rint((x - zero) / scale), 0, Q) (u = 0 when scale is 0).  The
 * directed roundings keep [zero, zero + Q scale] ⊇ [min, max], so |x - x̂| <= scale / 2 for every element.
 * Offline (lmbatch quantize kv): scale and zero are fixed per layer, K|V and head; values outside the range
 * saturate.  Either way the row's scale and zero are stored beside it, so readers never care which it was.
 *
 * Tile = one (block, layer, K|V, head): block_size rows of codes (row bytes: head_dim for 8 bits, head_dim/2
 * for 4 bits: element 2i in the low nibble of byte i, 2i+1 in the high nibble), then at the next multiple of 4
 * bytes block_size pairs {fp16 scale, fp16 zero}; the tile is padded to 16 bytes.  Unquantized tiles (fp32 on
 * the CPU, fp16/bf16 on the GPU) are block_size x head_dim elements, unpadded.
 */
#ifndef LMB_KV_QUANT_H
#define LMB_KV_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* bits: 32 (CPU fp32), 16 (GPU fp16/bf16), 8 or 4. */
static inline int lmb_kv_is_quantized(int bits) { return bits == 8 || bits == 4; }
static inline int lmb_kv_qmax(int bits) { return (1 << bits) - 1; }

/* Bytes of one token's codes (or elements) for one head. */
static inline size_t lmb_kv_row_bytes(int hd, int bits) { return ((size_t)hd * (size_t)bits + 7) / 8; }

/* Offset of the {scale, zero} pairs inside a quantized tile. */
static inline size_t lmb_kv_param_offset(int hd, int bits, int block_size) {
    return ((size_t)block_size * lmb_kv_row_bytes(hd, bits) + 3) & ~(size_t)3;
}

/* Bytes of one tile (block_size tokens of one head, K or V). */
static inline size_t lmb_kv_tile_bytes(int hd, int bits, int block_size) {
    if (!lmb_kv_is_quantized(bits)) return (size_t)block_size * lmb_kv_row_bytes(hd, bits);
    size_t b = lmb_kv_param_offset(hd, bits, block_size) + 4 * (size_t)block_size;
    return (b + 15) & ~(size_t)15;
}

/* fp16 bit patterns rounded toward -inf / +inf (the largest fp16 <= x, the smallest >= x). */
uint16_t lmb_f16_round_down(float x);
uint16_t lmb_f16_round_up(float x);

/* Quantizes x[0..n) (n even for 4 bits) into codes (lmb_kv_row_bytes(n, bits) bytes) and param[0..1] (fp16
 * scale, zero).  fixed: {scale, zero} (fp16-representable) to use instead of the row's range, or NULL. */
void lmb_kv_quantize_row(const float *x, int n, int bits, const float *fixed, uint8_t *codes, uint16_t *param);
/* x̂ = u * scale + zero for the n codes of a row. */
void lmb_kv_dequantize_row(const uint8_t *codes, const uint16_t *param, int n, int bits, float *out);

#ifdef __cplusplus
}
#endif

#endif
