/* test_kv_speed_cuda.c — the timing harness of the quantized decode attention: one layer of Llama-2-7B's
 * attention (32 heads, 32 KV heads, head_dim 128, blocks of 64) and of Llama-3-8B's (8 KV heads: 4 query heads
 * per CTA) for 64 decode rows at context 4096, over fp16, int8 and int4 caches, at the split length the engine
 * uses at that batch (256) and at 512 and 1024.  Prints ms per call and the KV bytes read per second, and checks
 * the bar at split 256: int8 at least as fast as fp16 (5% timing noise allowed), for both shapes.
 * The cache holds random bytes (finite scales): speed does not depend on the values.  Skips without a GPU.
 *
 *     build/tests/gpu/test_kv_speed_cuda --verbose     (the figures go to stderr)
 */
#include <stdio.h>

#include "gpu_util.h"

static double time_decode(int bits, int nkv, int split, double *gbps) {
    const int rows = 64, ctx = 4096, nh = 32, hd = 128, bs = 64, per_seq = ctx / bs;
    const int n_blocks = rows * per_seq;
    size_t tile = lmb_kv_tile_bytes(hd, bits, bs), layer = (size_t)n_blocks * nkv * tile;
    void *k, *v, *qkv, *out, *ws;
    GPU_OK(cudaMalloc(&k, layer));
    GPU_OK(cudaMalloc(&v, layer));
    GPU_OK(lmb_cuda_fill_uniform(k, layer / 2, 0.5f, 0.f, 1, LMB_CUDA_F16, NULL)); /* any bytes; fp16 scales finite */
    GPU_OK(lmb_cuda_fill_uniform(v, layer / 2, 0.5f, 0.f, 2, LMB_CUDA_F16, NULL));
    size_t qkv_n = (size_t)rows * (nh + 2 * nkv) * hd;
    GPU_OK(cudaMalloc(&qkv, 2 * qkv_n));
    GPU_OK(lmb_cuda_fill_uniform(qkv, qkv_n, 1.f, 0.f, 3, LMB_CUDA_F16, NULL));
    GPU_OK(cudaMalloc(&out, 2 * (size_t)rows * nh * hd));
    GPU_OK(cudaMalloc(&ws, lmb_cuda_attention_workspace(rows, nh, hd, ctx, split)));
    int32_t q_start[65], ctx_len[64], tok_seq[64], pos[64], *tables = malloc(sizeof(int32_t) * n_blocks);
    for (int s = 0; s < rows; s++) {
        q_start[s] = s, ctx_len[s] = ctx, tok_seq[s] = s, pos[s] = ctx - 1;
        for (int b = 0; b < per_seq; b++) tables[s * per_seq + b] = (b * rows + s) % n_blocks; /* interleaved */
    }
    q_start[rows] = rows;
    lmb_cuda_seqs seqs = {gpu_upload(q_start, sizeof q_start), gpu_upload(ctx_len, sizeof ctx_len),
                          gpu_upload(tables, sizeof(int32_t) * n_blocks), gpu_upload(tok_seq, sizeof tok_seq),
                          gpu_upload(pos, sizeof pos), per_seq};
    float scale = 1.0f / sqrtf((float)hd);
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    for (int i = 0; i < 3; i++)
        GPU_OK(lmb_cuda_attention_decode_kvq(out, qkv, k, v, &seqs, NULL, rows, nh, nkv, hd, bs, scale, ctx, split, ws, NULL,
                                             bits, LMB_CUDA_F16, NULL));
    const int iters = 20;
    cudaEventRecord(a, NULL);
    for (int i = 0; i < iters; i++)
        lmb_cuda_attention_decode_kvq(out, qkv, k, v, &seqs, NULL, rows, nh, nkv, hd, bs, scale, ctx, split, ws, NULL, bits,
                                      LMB_CUDA_F16, NULL);
    cudaEventRecord(b, NULL);
    GPU_OK(cudaEventSynchronize(b));
    GPU_OK(cudaGetLastError());
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    ms /= iters;
    *gbps = 2.0 * (double)layer / (ms * 1e-3) / 1e9;
    cudaEventDestroy(a), cudaEventDestroy(b);
    cudaFree(k), cudaFree(v), cudaFree(qkv), cudaFree(out), cudaFree(ws);
    cudaFree((void *)seqs.q_start), cudaFree((void *)seqs.ctx_len), cudaFree((void *)seqs.block_tables);
    cudaFree((void *)seqs.tok_seq), cudaFree((void *)seqs.positions);
    free(tables);
    return ms;
}

Test(kv_speed_cuda, decode_bs64_ctx4096_int8_not_slower_than_fp16, .timeout = 300) {
    gpu_require();
    const int bits[3] = {16, 8, 4}, nkvs[2] = {32, 8}, splits[3] = {256, 512, 1024};
    for (int h = 0; h < 2; h++) {
        double ms[3][3];
        for (int sp = 0; sp < 3; sp++)
            for (int i = 0; i < 3; i++) {
                double bw;
                ms[sp][i] = time_decode(bits[i], nkvs[h], splits[sp], &bw);
                fprintf(stderr, "kv decode attention, 64 rows x ctx 4096, %s layer, split %4d, %s: %.3f ms/layer "
                        "(%.0f GB/s of KV)\n", h ? "Llama-3-8B" : "Llama-2-7B", splits[sp],
                        bits[i] == 16 ? "fp16" : bits[i] == 8 ? "int8" : "int4", ms[sp][i], bw);
            }
        cr_assert_leq(ms[0][1], 1.05 * ms[0][0], "%s: int8 %.3f ms vs fp16 %.3f ms", h ? "GQA" : "MHA", ms[0][1],
                      ms[0][0]);
    }
}
