/* kv_memory.c — see kv_memory.h. */
#include "kv_memory.h"

#include <string.h>

#include "../kernels/kv_quant.h"

const char *lmb_kv_bits_name(int bits) {
    switch (bits) {
    case 32: return "fp32";
    case 16: return "fp16";
    case 8: return "int8";
    case 4: return "int4";
    default: return "?";
    }
}

int lmb_kv_bits_parse(const char *s) {
    if (!s) return 0;
    if (strcmp(s, "fp16") == 0) return 16;
    if (strcmp(s, "int8") == 0) return 8;
    if (strcmp(s, "int4") == 0) return 4;
    return 0;
}

size_t lmb_kv_block_bytes(const lmb_model_config *c, int bits, int block_size) {
    return 2 * (size_t)c->n_layers * (size_t)c->n_kv_heads * lmb_kv_tile_bytes(c->head_dim, bits, block_size);
}

void lmb_kv_capacity_of(const lmb_model_config *c, int bits, int block_size, size_t budget, int seq_len,
                        lmb_kv_capacity *out) {
    memset(out, 0, sizeof *out);
    out->bits = bits;
    out->block_size = block_size;
    out->seq_len = seq_len;
    out->budget = budget;
    out->block_bytes = lmb_kv_block_bytes(c, bits, block_size);
    if (block_size < 1 || out->block_bytes == 0) return;
    out->bytes_per_token = (double)out->block_bytes / block_size;
    out->blocks = (long)(budget / out->block_bytes);
    out->tokens = out->blocks * (long)block_size;
    long per_seq = seq_len > 0 ? (seq_len + block_size - 1) / block_size : 0;
    out->seqs = per_seq ? out->blocks / per_seq : 0;
}

size_t lmb_cuda_activation_bytes(const lmb_model_config *c, int max_batch_tokens, int max_seqs) {
    /* mirrors alloc_activations() in backend_cuda.c (16-bit activations, fp32 residual and logits) */
    size_t T = (size_t)max_batch_tokens, R = (size_t)(max_seqs > 256 ? max_seqs : 256);
    if (R > T && T >= 256) R = T;
    size_t H = (size_t)c->hidden, F = (size_t)c->ffn, e = 2;
    size_t qkv = (size_t)(c->n_heads + 2 * c->n_kv_heads) * (size_t)c->head_dim;
    size_t att = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t b = T * H * 4 + T * H * e + T * qkv * e + T * att * e + T * 2 * F * e + T * F * e + T * H * e;
    b += R * H * e + R * (size_t)c->vocab * 4 + R * 4;
    b += (size_t)32 << 20; /* cuBLAS workspace */
    return b;
}

size_t lmb_cuda_kv_budget_formula(size_t gpu_bytes, size_t weight_bytes, size_t activation_bytes, double fraction) {
    size_t used = LMB_CUDA_CONTEXT_BYTES + weight_bytes + activation_bytes;
    if (used >= gpu_bytes) return 0;
    return (size_t)(fraction * (double)(gpu_bytes - used));
}

void lmb_kv_report(FILE *f, const char *prefix, size_t weight_bytes, const char *kv_mode, const lmb_kv_capacity *cap) {
    const double GiB = 1024.0 * 1024 * 1024;
    fprintf(f, "%sweights %.2f GiB (%zu bytes)\n", prefix, weight_bytes / GiB, weight_bytes);
    fprintf(f, "%sKV cache %s%s%s: %.0f bytes per token (%.1f KiB)\n", prefix, lmb_kv_bits_name(cap->bits),
            kv_mode ? ", " : "", kv_mode ? kv_mode : "", cap->bytes_per_token, cap->bytes_per_token / 1024);
    fprintf(f, "%sKV capacity %.2f GiB = %ld blocks x %d = %ld tokens = %ld sequences of %d tokens\n", prefix,
            (double)cap->blocks * (double)cap->block_bytes / GiB, cap->blocks, cap->block_size, cap->tokens, cap->seqs,
            cap->seq_len);
}
