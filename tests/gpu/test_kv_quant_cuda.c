/* test_kv_quant_cuda.c — the int8/int4 KV cache on the GPU against the CPU reference (kernels/kv_quant.h):
 *  - the quantizing write (RoPE, then per-token scale/zero and codes): codes and {scale, zero} bit-identical to
 *    lmb_kv_quantize_row on the same (GPU-rotated, 16-bit) values, both online and with offline scales; rows of
 *    slot -1 untouched;
 *  - decode (fast lane-per-8-dims kernel and the generic one) and prefill (tensor cores) attention over quantized
 *    tiles against lmb_cpu_attention over the same tiles: relative L2 error < 1e-2 (the 16-bit q and output).
 * Skips without a GPU. */
#include <string.h>

#include "../../kernels/kernels.h"
#include "gpu_util.h"

static const lmb_cuda_dtype dts[2] = {LMB_CUDA_F16, LMB_CUDA_BF16};

static void write_case(lmb_cuda_dtype dt, int bits, int hd, bool offline) {
    const int T = 4, nh = 4, nkv = 2, bs = 8, n_blocks = 4, qkv_dim = (nh + 2 * nkv) * hd;
    float *qkv = gpu_rand((size_t)T * qkv_dim, dt, 2);
    int32_t pos[4] = {0, 9, 30, 3};
    int64_t slots[4] = {2 * bs + 0, 1 * bs + 1, -1, 3 * bs + 7};
    double inv[128];
    float invf[128];
    for (int i = 0; i < hd / 2; i++) invf[i] = (float)(inv[i] = pow(10000.0, -2.0 * i / hd));
    size_t tile = lmb_kv_tile_bytes(hd, bits, bs), cache = (size_t)n_blocks * nkv * tile;
    float fixed[2 * 2 * 2]; /* [K|V][nkv][scale, zero]: range [-2, 2] in int8/int4 steps, fp16-exact */
    for (int i = 0; i < 4; i++) {
        float s = bits == 8 ? 4.f / 256 : 4.f / 16;
        fixed[2 * i] = s;
        fixed[2 * i + 1] = -2.f;
    }
    void *d_qkv = gpu_upload16(qkv, (size_t)T * qkv_dim, dt), *d_k, *d_v;
    GPU_OK(cudaMalloc(&d_k, cache));
    GPU_OK(cudaMalloc(&d_v, cache));
    GPU_OK(cudaMemset(d_k, 0xEE, cache));
    GPU_OK(cudaMemset(d_v, 0xEE, cache));
    int32_t *d_pos = gpu_upload(pos, sizeof pos);
    int64_t *d_slots = gpu_upload(slots, sizeof slots);
    float *d_inv = gpu_upload(invf, sizeof(float) * hd / 2), *d_fixed = gpu_upload(fixed, sizeof fixed);
    GPU_OK(lmb_cuda_rope_kv_write_kvq(d_qkv, d_k, d_v, d_pos, d_slots, d_inv, offline ? d_fixed : NULL, T, nh, nkv, hd,
                                      bs, bits, dt, 0));
    GPU_OK(cudaDeviceSynchronize());
    float *rot = gpu_download16(d_qkv, (size_t)T * qkv_dim, dt);
    unsigned char *kc = malloc(cache), *vc = malloc(cache);
    GPU_OK(cudaMemcpy(kc, d_k, cache, cudaMemcpyDeviceToHost));
    GPU_OK(cudaMemcpy(vc, d_v, cache, cudaMemcpyDeviceToHost));
    /* q and k rotated as the CPU rotates them (16-bit rounding apart) */
    float *q = malloc(sizeof(float) * T * nh * hd), *kk = malloc(sizeof(float) * T * nkv * hd);
    for (int t = 0; t < T; t++) {
        memcpy(q + t * nh * hd, qkv + t * qkv_dim, sizeof(float) * nh * hd);
        memcpy(kk + t * nkv * hd, qkv + t * qkv_dim + nh * hd, sizeof(float) * nkv * hd);
    }
    lmb_cpu_rope(q, kk, pos, T, nh, nkv, hd, inv);
    size_t row = lmb_kv_row_bytes(hd, bits), poff = lmb_kv_param_offset(hd, bits, bs);
    uint8_t codes[256];
    for (int t = 0; t < T; t++) {
        cr_assert_lt(gpu_rel(rot + t * qkv_dim, q + t * nh * hd, (size_t)nh * hd), 1e-2);
        cr_assert_lt(gpu_rel(rot + t * qkv_dim + nh * hd, kk + t * nkv * hd, (size_t)nkv * hd), 1e-2);
        if (slots[t] < 0) continue;
        int b = (int)(slots[t] / bs), o = (int)(slots[t] % bs);
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < nkv; h++) {
                /* the reference quantizes the very values the GPU read: rotated k, v, in 16 bits */
                const float *x = rot + t * qkv_dim + (nh + kv * nkv + h) * hd;
                uint16_t want[2], got[2];
                lmb_kv_quantize_row(x, hd, bits, offline ? fixed + (kv * nkv + h) * 2 : NULL, codes, want);
                const unsigned char *tl = (kv ? vc : kc) + ((size_t)b * nkv + h) * tile;
                memcpy(got, tl + poff + 4 * (size_t)o, 4);
                cr_assert(got[0] == want[0] && got[1] == want[1], "bits %d hd %d t %d %s head %d: scale/zero %04x %04x, "
                          "want %04x %04x", bits, hd, t, kv ? "V" : "K", h, got[0], got[1], want[0], want[1]);
                cr_assert(memcmp(tl + (size_t)o * row, codes, row) == 0, "bits %d hd %d t %d %s head %d: codes differ",
                          bits, hd, t, kv ? "V" : "K", h);
            }
    }
    /* block 0 and the rest of block 2 were not written (slot -1 and unused rows keep the 0xEE fill) */
    for (size_t i = 0; i < (size_t)nkv * tile; i++) cr_assert_eq(kc[i], 0xEE, "block 0 byte %zu written", i);
    free(qkv), free(rot), free(kc), free(vc), free(q), free(kk);
    cudaFree(d_qkv), cudaFree(d_k), cudaFree(d_v), cudaFree(d_pos), cudaFree(d_slots), cudaFree(d_inv), cudaFree(d_fixed);
}

Test(kv_quant_cuda, quantizing_write_matches_cpu) {
    gpu_require();
    const int hds[4] = {8, 64, 80, 128};
    for (int k = 0; k < 2; k++)
        for (int b = 8; b >= 4; b -= 4)
            for (int i = 0; i < 4; i++) {
                write_case(dts[k], b, hds[i], false);
                write_case(dts[k], b, hds[i], true);
            }
}

/* ---- attention over quantized tiles ------------------------------------------------------------------ */

typedef struct attn_case {
    int n_seqs, nh, nkv, hd, bs, max_blocks, n_blocks;
    int ctx[4], qlen[4];
} attn_case;

static void attention_case(const attn_case *ac, lmb_cuda_dtype dt, int bits, bool prefill) {
    int nh = ac->nh, nkv = ac->nkv, hd = ac->hd, bs = ac->bs, S = ac->n_seqs, MB = ac->max_blocks, T = 0;
    int32_t q_start[5], ctx_len[4];
    for (int s = 0; s < S; s++) q_start[s] = T, T += ac->qlen[s], ctx_len[s] = ac->ctx[s];
    q_start[S] = T;
    int32_t *tables = malloc(sizeof(int32_t) * S * MB), *positions = malloc(sizeof(int32_t) * T);
    int32_t *tok_seq = malloc(sizeof(int32_t) * T);
    for (int s = 0, next = 0; s < S; s++)
        for (int b = 0; b < MB; b++) tables[s * MB + b] = (next++ * 7) % ac->n_blocks;
    for (int s = 0; s < S; s++)
        for (int j = 0; j < ac->qlen[s]; j++) {
            int t = q_start[s] + j;
            positions[t] = ac->ctx[s] - ac->qlen[s] + j;
            tok_seq[t] = s;
        }
    /* a quantized CPU pool of random rows (one layer), its tiles mirrored into the GPU's per-layer K and V caches */
    lmb_kv_pool pool = {.block_size = bs, .n_layers = 1, .n_kv = nkv, .hd = hd, .bits = bits};
    size_t tile = lmb_kv_tile_bytes(hd, bits, bs), layer = (size_t)ac->n_blocks * nkv * tile;
    pool.tile_bytes = tile;
    pool.qpool = calloc(2 * layer, 1);
    unsigned char *kc = malloc(layer), *vc = malloc(layer);
    float *x = malloc(sizeof(float) * hd);
    for (int b = 0; b < ac->n_blocks; b++)
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < nkv; h++) {
                unsigned char *t = lmb_kv_qtile(&pool, b, 0, kv, h);
                for (int o = 0; o < bs; o++) {
                    for (int d = 0; d < hd; d++) x[d] = gpu_frand() * (1 + (d % 7 == 0)); /* some wider dims */
                    uint16_t prm[2];
                    lmb_kv_quantize_row(x, hd, bits, NULL, t + (size_t)o * lmb_kv_row_bytes(hd, bits), prm);
                    memcpy(t + lmb_kv_param_offset(hd, bits, bs) + 4 * (size_t)o, prm, 4);
                }
                memcpy((kv ? vc : kc) + ((size_t)b * nkv + h) * tile, t, tile);
            }
    int qkv_dim = (nh + 2 * nkv) * hd;
    float *qkv = gpu_rand((size_t)T * qkv_dim, dt, 1), *q = malloc(sizeof(float) * T * nh * hd);
    for (int t = 0; t < T; t++) memcpy(q + (size_t)t * nh * hd, qkv + (size_t)t * qkv_dim, sizeof(float) * nh * hd);
    float scale = 1.0f / sqrtf((float)hd);
    int max_ctx = 0;
    for (int s = 0; s < S; s++) max_ctx = ac->ctx[s] > max_ctx ? ac->ctx[s] : max_ctx;
    float *ref = malloc(sizeof(float) * T * nh * hd), *scratch = malloc(sizeof(float) * lmb_cpu_attention_scratch(max_ctx));
    lmb_cpu_attention(ref, q, &pool, 0, nh, S, q_start, positions, tables, MB, scale, scratch, max_ctx);

    void *d_k = gpu_upload(kc, layer), *d_v = gpu_upload(vc, layer), *d_qkv = gpu_upload16(qkv, (size_t)T * qkv_dim, dt);
    void *d_out;
    GPU_OK(cudaMalloc(&d_out, 2 * (size_t)T * nh * hd));
    GPU_OK(cudaMemset(d_out, 0xff, 2 * (size_t)T * nh * hd));
    lmb_cuda_seqs seqs = {gpu_upload(q_start, sizeof(int32_t) * (S + 1)), gpu_upload(ctx_len, sizeof(int32_t) * S),
                          gpu_upload(tables, sizeof(int32_t) * S * MB), gpu_upload(tok_seq, sizeof(int32_t) * T),
                          gpu_upload(positions, sizeof(int32_t) * T), MB};
    if (prefill) {
        int32_t tiles[128];
        int n_tiles = 0;
        for (int s = 0; s < S; s++)
            for (int t = q_start[s]; t < q_start[s + 1]; t += 64) tiles[2 * n_tiles] = s, tiles[2 * n_tiles + 1] = t, n_tiles++;
        int32_t *d_tiles = gpu_upload(tiles, sizeof(int32_t) * 2 * n_tiles);
        GPU_OK(lmb_cuda_attention_prefill_kvq(d_out, d_qkv, d_k, d_v, &seqs, d_tiles, n_tiles, nh, nkv, hd, bs, scale,
                                              bits, dt, 0));
        cudaFree(d_tiles);
    } else {
        int split = 64;
        void *ws;
        unsigned *tickets;
        size_t ob = 2 * (size_t)T * nh * hd, tb = lmb_cuda_attention_tickets(T, nh);
        GPU_OK(cudaMalloc(&ws, lmb_cuda_attention_workspace(T, nh, hd, max_ctx, split)));
        GPU_OK(cudaMalloc((void **)&tickets, tb));
        GPU_OK(cudaMemset(tickets, 0, tb));
        /* the split CTAs merging by tickets (twice: a launch leaves them zero) give the merge kernel's bits */
        unsigned char *by_kernel = malloc(ob), *by_ticket = malloc(ob), *zero = calloc(tb, 1), *left = malloc(tb);
        for (int i = 0; i < 3; i++) {
            GPU_OK(lmb_cuda_attention_decode_kvq(d_out, d_qkv, d_k, d_v, &seqs, NULL, T, nh, nkv, hd, bs, scale,
                                                 max_ctx, split, ws, i ? tickets : NULL, bits, dt, 0));
            GPU_OK(cudaMemcpy(i ? by_ticket : by_kernel, d_out, ob, cudaMemcpyDeviceToHost));
            if (i) cr_assert(memcmp(by_ticket, by_kernel, ob) == 0, "%d-bit hd %d: ticket merge differs", bits, hd);
            GPU_OK(cudaMemset(d_out, 0xff, ob));
        }
        GPU_OK(cudaMemcpy(left, tickets, tb, cudaMemcpyDeviceToHost));
        cr_assert(memcmp(left, zero, tb) == 0, "tickets left non-zero");
        GPU_OK(cudaMemcpy(d_out, by_kernel, ob, cudaMemcpyHostToDevice));
        free(by_kernel), free(by_ticket), free(zero), free(left);
        cudaFree(ws), cudaFree(tickets);
    }
    GPU_OK(cudaDeviceSynchronize());
    float *out = gpu_download16(d_out, (size_t)T * nh * hd, dt);
    double e = gpu_rel(out, ref, (size_t)T * nh * hd);
    cr_assert_lt(e, 1e-2, "%s %d-bit hd %d dt %d: rel err %g", prefill ? "prefill" : "decode", bits, hd, dt, e);
    free(tables), free(positions), free(tok_seq), free(pool.qpool), free(kc), free(vc), free(x), free(qkv), free(q);
    free(ref), free(scratch), free(out);
    cudaFree(d_k), cudaFree(d_v), cudaFree(d_qkv), cudaFree(d_out);
    cudaFree((void *)seqs.q_start), cudaFree((void *)seqs.ctx_len), cudaFree((void *)seqs.block_tables);
    cudaFree((void *)seqs.tok_seq), cudaFree((void *)seqs.positions);
}

Test(kv_quant_cuda, attention_decode_matches_cpu) {
    gpu_require();
    /* head dims 8, 64, 128, 256 (lane-per-8-dims kernel) and 80, 96 (generic); contexts over several splits */
    const int hds[6] = {8, 64, 80, 96, 128, 256};
    for (int k = 0; k < 2; k++)
        for (int b = 8; b >= 4; b -= 4)
            for (int i = 0; i < 6; i++) {
                attn_case ac = {.n_seqs = 3, .nh = 8, .nkv = 2, .hd = hds[i], .bs = 16, .max_blocks = 20, .n_blocks = 64,
                                .ctx = {1, 150, 300}, .qlen = {1, 1, 1}};
                attention_case(&ac, dts[k], b, false);
                attn_case pc = {.n_seqs = 2, .nh = 4, .nkv = 4, .hd = hds[i], .bs = 16, .max_blocks = 12, .n_blocks = 40,
                                .ctx = {37, 100}, .qlen = {37, 20}};
                attention_case(&pc, dts[k], b, false);
            }
}

Test(kv_quant_cuda, attention_prefill_matches_cpu) {
    gpu_require();
    const int hds[2] = {64, 128};
    for (int k = 0; k < 2; k++)
        for (int b = 8; b >= 4; b -= 4)
            for (int i = 0; i < 2; i++) {
                attn_case ac = {.n_seqs = 3, .nh = 6, .nkv = 2, .hd = hds[i], .bs = 16, .max_blocks = 16, .n_blocks = 64,
                                .ctx = {130, 200, 5}, .qlen = {130, 70, 5}};
                attention_case(&ac, dts[k], b, true);
                attn_case bc = {.n_seqs = 1, .nh = 4, .nkv = 4, .hd = hds[i], .bs = 64, .max_blocks = 5, .n_blocks = 8,
                                .ctx = {300}, .qlen = {300}};
                attention_case(&bc, dts[k], b, true);
            }
}
