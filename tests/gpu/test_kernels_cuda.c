/* test_kernels_cuda.c — every CUDA kernel against its CPU reference (kernels/cpu) on random data, for
 * fp16 and bf16.  Tolerances: relative L2 error 1e-2 (16-bit storage of inputs/outputs, fp32 math). */
#include <string.h>

#include "../../kernels/kernels.h"
#include "gpu_util.h"

static const lmb_cuda_dtype dts[2] = {LMB_CUDA_F16, LMB_CUDA_BF16};

/* H 384, 5000 and 12000: the register kernel with 1, 2 and 4 float4s per thread; 390: the plain one */
Test(kernels_cuda, embed_and_add_rmsnorm) {
    gpu_require();
    static const int Hs[] = {384, 390, 5000, 12000};
    for (int k = 0; k < 8; k++) {
        lmb_cuda_dtype dt = dts[k % 2];
        int V = 50, H = Hs[k / 2], T = 7;
        float *table = gpu_rand((size_t)V * H, dt, 1), *delta = gpu_rand((size_t)T * H, dt, 1), *w = gpu_rand(H, dt, 1);
        int32_t tok[7] = {3, 0, 49, 7, 7, 12, 1};
        void *d_table = gpu_upload16(table, (size_t)V * H, dt), *d_delta = gpu_upload16(delta, (size_t)T * H, dt);
        void *d_w = gpu_upload16(w, H, dt), *d_out;
        int32_t *d_tok = gpu_upload(tok, sizeof tok);
        float *d_resid;
        GPU_OK(cudaMalloc((void **)&d_resid, sizeof(float) * T * H));
        GPU_OK(cudaMalloc(&d_out, 2 * (size_t)T * H));
        GPU_OK(lmb_cuda_embed(d_resid, d_table, d_tok, T, H, dt, 0));
        GPU_OK(lmb_cuda_add_rmsnorm(d_resid, d_delta, d_w, d_out, NULL, T, H, 1e-5f, dt, 0));
        GPU_OK(cudaDeviceSynchronize());
        float *ref = malloc(sizeof(float) * T * H), *resid = malloc(sizeof(float) * T * H);
        lmb_cpu_embed(ref, table, tok, T, H);
        for (int i = 0; i < T * H; i++) ref[i] += delta[i];
        cudaMemcpy(resid, d_resid, sizeof(float) * T * H, cudaMemcpyDeviceToHost);
        cr_assert_lt(gpu_rel(resid, ref, (size_t)T * H), 1e-6, "residual");
        lmb_cpu_rmsnorm(ref, ref, w, T, H, 1e-5f);
        float *out = gpu_download16(d_out, (size_t)T * H, dt);
        cr_assert_lt(gpu_rel(out, ref, (size_t)T * H), 1e-2, "rmsnorm dt %d", k);
        /* row-gathered variant */
        int32_t rows[2] = {5, 1};
        int32_t *d_rows = gpu_upload(rows, sizeof rows);
        GPU_OK(lmb_cuda_add_rmsnorm(d_resid, NULL, d_w, d_out, d_rows, 2, H, 1e-5f, dt, 0));
        float *out2 = gpu_download16(d_out, (size_t)2 * H, dt);
        cr_assert_lt(gpu_rel(out2, ref + 5 * H, H), 1e-2);
        cr_assert_lt(gpu_rel(out2 + H, ref + 1 * H, H), 1e-2);
        free(table), free(delta), free(w), free(ref), free(resid), free(out), free(out2);
        cudaFree(d_table), cudaFree(d_delta), cudaFree(d_w), cudaFree(d_out), cudaFree(d_tok), cudaFree(d_resid);
        cudaFree(d_rows);
    }
}

Test(kernels_cuda, silu_mul_and_bias) {
    gpu_require();
    for (int k = 0; k < 2; k++) {
        lmb_cuda_dtype dt = dts[k];
        int T = 5, F = 300;
        float *gu = gpu_rand((size_t)T * 2 * F, dt, 3);
        void *d_gu = gpu_upload16(gu, (size_t)T * 2 * F, dt), *d_out;
        GPU_OK(cudaMalloc(&d_out, 2 * (size_t)T * F));
        GPU_OK(lmb_cuda_silu_mul(d_out, d_gu, T, F, dt, 0));
        float *out = gpu_download16(d_out, (size_t)T * F, dt), *ref = malloc(sizeof(float) * T * F);
        for (int t = 0; t < T; t++) lmb_cpu_silu_mul(ref + t * F, gu + t * 2 * F, gu + t * 2 * F + F, 1, F);
        cr_assert_lt(gpu_rel(out, ref, (size_t)T * F), 1e-2);
        float *b = gpu_rand(F, dt, 1);
        void *d_b = gpu_upload16(b, F, dt);
        GPU_OK(lmb_cuda_add_bias(d_out, d_b, T, F, dt, 0));
        float *out2 = gpu_download16(d_out, (size_t)T * F, dt);
        for (int i = 0; i < T * F; i++) ref[i] = out[i] + b[i % F];
        cr_assert_lt(gpu_rel(out2, ref, (size_t)T * F), 1e-2);
        free(gu), free(out), free(ref), free(b), free(out2);
        cudaFree(d_gu), cudaFree(d_out), cudaFree(d_b);
    }
}

/* A random paged cache and a batch of sequences, built the same way for the CPU pool and the GPU cache. */
typedef struct attn_case {
    int n_seqs, nh, nkv, hd, bs, max_blocks, n_blocks;
    int ctx[4], qlen[4];
} attn_case;

static void run_attention_case(const attn_case *ac, lmb_cuda_dtype dt, bool prefill) {
    int nh = ac->nh, nkv = ac->nkv, hd = ac->hd, bs = ac->bs, S = ac->n_seqs, MB = ac->max_blocks;
    int T = 0;
    int32_t q_start[5], ctx_len[4];
    for (int s = 0; s < S; s++) q_start[s] = T, T += ac->qlen[s], ctx_len[s] = ac->ctx[s];
    q_start[S] = T;
    int32_t *tables = malloc(sizeof(int32_t) * S * MB), *positions = malloc(sizeof(int32_t) * T);
    int32_t *tok_seq = malloc(sizeof(int32_t) * T);
    int64_t *slots = malloc(sizeof(int64_t) * T);
    /* blocks handed out in a shuffled order so tables are not contiguous */
    int next = 0;
    for (int s = 0; s < S; s++)
        for (int b = 0; b < MB; b++) tables[s * MB + b] = (next++ * 7) % ac->n_blocks;
    for (int s = 0; s < S; s++)
        for (int j = 0; j < ac->qlen[s]; j++) {
            int t = q_start[s] + j;
            positions[t] = ac->ctx[s] - ac->qlen[s] + j;
            tok_seq[t] = s;
            slots[t] = (int64_t)tables[s * MB + positions[t] / bs] * bs + positions[t] % bs;
        }
    /* fill the whole cache with random K/V (rounded to dt), mirrored into the CPU pool */
    size_t layer_elems = (size_t)ac->n_blocks * nkv * bs * hd;
    float *kf = gpu_rand(layer_elems, dt, 1), *vf = gpu_rand(layer_elems, dt, 1);
    lmb_kv_pool pool = {.block_size = bs, .n_layers = 1, .n_kv = nkv, .hd = hd};
    pool.block_stride = (size_t)2 * nkv * bs * hd;
    pool.pool = malloc(sizeof(float) * pool.block_stride * ac->n_blocks);
    for (int b = 0; b < ac->n_blocks; b++)
        for (int h = 0; h < nkv; h++) {
            memcpy(lmb_kv_tile(&pool, b, 0, 0, h), kf + ((size_t)b * nkv + h) * bs * hd, sizeof(float) * bs * hd);
            memcpy(lmb_kv_tile(&pool, b, 0, 1, h), vf + ((size_t)b * nkv + h) * bs * hd, sizeof(float) * bs * hd);
        }
    int qkv_dim = (nh + 2 * nkv) * hd;
    float *qkv = gpu_rand((size_t)T * qkv_dim, dt, 1);
    float *q = malloc(sizeof(float) * T * nh * hd);
    for (int t = 0; t < T; t++) memcpy(q + (size_t)t * nh * hd, qkv + (size_t)t * qkv_dim, sizeof(float) * nh * hd);
    float scale = 1.0f / sqrtf((float)hd);
    int max_ctx = 0;
    for (int s = 0; s < S; s++) max_ctx = ac->ctx[s] > max_ctx ? ac->ctx[s] : max_ctx;
    float *ref = malloc(sizeof(float) * T * nh * hd), *scratch = malloc(sizeof(float) * lmb_cpu_attention_scratch(max_ctx));
    lmb_cpu_attention(ref, q, &pool, 0, nh, S, q_start, positions, tables, MB, scale, scratch, max_ctx);

    void *d_k = gpu_upload16(kf, layer_elems, dt), *d_v = gpu_upload16(vf, layer_elems, dt);
    void *d_qkv = gpu_upload16(qkv, (size_t)T * qkv_dim, dt), *d_out;
    GPU_OK(cudaMalloc(&d_out, 2 * (size_t)T * nh * hd));
    GPU_OK(cudaMemset(d_out, 0xff, 2 * (size_t)T * nh * hd)); /* poison: NaN in both dtypes */
    lmb_cuda_seqs seqs = {gpu_upload(q_start, sizeof(int32_t) * (S + 1)), gpu_upload(ctx_len, sizeof(int32_t) * S),
                          gpu_upload(tables, sizeof(int32_t) * S * MB), gpu_upload(tok_seq, sizeof(int32_t) * T),
                          gpu_upload(positions, sizeof(int32_t) * T), MB};
    if (prefill) {
        int32_t tiles[128];
        int n_tiles = 0;
        for (int s = 0; s < S; s++)
            for (int t = q_start[s]; t < q_start[s + 1]; t += 64) tiles[2 * n_tiles] = s, tiles[2 * n_tiles + 1] = t, n_tiles++;
        int32_t *d_tiles = gpu_upload(tiles, sizeof(int32_t) * 2 * n_tiles);
        GPU_OK(lmb_cuda_attention_prefill(d_out, d_qkv, d_k, d_v, &seqs, d_tiles, n_tiles, nh, nkv, hd, bs, scale, dt, 0));
        cudaFree(d_tiles);
    } else {
        int split = 64;
        void *ws;
        GPU_OK(cudaMalloc(&ws, lmb_cuda_attention_workspace(T, nh, hd, max_ctx, split)));
        GPU_OK(lmb_cuda_attention_decode(d_out, d_qkv, d_k, d_v, &seqs, NULL, T, nh, nkv, hd, bs, scale, max_ctx, split,
                                         ws, dt, 0));
        cudaFree(ws);
    }
    GPU_OK(cudaDeviceSynchronize());
    float *out = gpu_download16(d_out, (size_t)T * nh * hd, dt);
    double e = gpu_rel(out, ref, (size_t)T * nh * hd);
    cr_assert_lt(e, 1e-2, "%s hd %d dt %d: rel err %g", prefill ? "prefill" : "decode", hd, dt, e);
    free(tables), free(positions), free(tok_seq), free(slots), free(kf), free(vf), free(pool.pool), free(qkv), free(q);
    free(ref), free(scratch), free(out);
    cudaFree(d_k), cudaFree(d_v), cudaFree(d_qkv), cudaFree(d_out);
    cudaFree((void *)seqs.q_start), cudaFree((void *)seqs.ctx_len), cudaFree((void *)seqs.block_tables);
    cudaFree((void *)seqs.tok_seq), cudaFree((void *)seqs.positions);
}

Test(kernels_cuda, attention_decode_matches_cpu) {
    gpu_require();
    /* decode rows (qlen 1) with contexts across several splits, GQA 8/2, head dims 8 (stories260K), 64, 128,
     * 256 (the lane-per-8-dims kernel) and 80, 96 (the generic fallback) */
    int hds[6] = {8, 64, 80, 96, 128, 256};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 6; i++) {
            attn_case ac = {.n_seqs = 3, .nh = 8, .nkv = 2, .hd = hds[i], .bs = 16, .max_blocks = 20, .n_blocks = 64,
                            .ctx = {1, 150, 300}, .qlen = {1, 1, 1}};
            run_attention_case(&ac, dts[k], false);
            /* prefill rows through the CUDA-core path too (any head_dim) */
            attn_case pc = {.n_seqs = 2, .nh = 4, .nkv = 4, .hd = hds[i], .bs = 16, .max_blocks = 12, .n_blocks = 40,
                            .ctx = {37, 100}, .qlen = {37, 20}};
            run_attention_case(&pc, dts[k], false);
        }
}

Test(kernels_cuda, attention_prefill_matches_cpu) {
    gpu_require();
    int hds[2] = {64, 128};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++) {
            /* a fresh prompt, a chunk on top of a cached prefix, and a short one; GQA 6/2; block size 16 */
            attn_case ac = {.n_seqs = 3, .nh = 6, .nkv = 2, .hd = hds[i], .bs = 16, .max_blocks = 16, .n_blocks = 64,
                            .ctx = {130, 200, 5}, .qlen = {130, 70, 5}};
            run_attention_case(&ac, dts[k], true);
            attn_case bc = {.n_seqs = 1, .nh = 4, .nkv = 4, .hd = hds[i], .bs = 64, .max_blocks = 5, .n_blocks = 8,
                            .ctx = {300}, .qlen = {300}};
            run_attention_case(&bc, dts[k], true);
        }
}

Test(kernels_cuda, rope_and_kv_write_match_cpu) {
    gpu_require();
    for (int k = 0; k < 2; k++) {
        lmb_cuda_dtype dt = dts[k];
        int T = 3, nh = 4, nkv = 2, hd = 64, bs = 8, n_blocks = 4, qkv_dim = (nh + 2 * nkv) * hd;
        float *qkv = gpu_rand((size_t)T * qkv_dim, dt, 1);
        int32_t pos[3] = {0, 9, 30};
        int64_t slots[3] = {2 * bs + 0, 1 * bs + 1, -1};
        double inv[32];
        float invf[32];
        for (int i = 0; i < hd / 2; i++) invf[i] = (float)(inv[i] = pow(10000.0, -2.0 * i / hd));
        void *d_qkv = gpu_upload16(qkv, (size_t)T * qkv_dim, dt), *d_k, *d_v;
        size_t cache = (size_t)n_blocks * nkv * bs * hd;
        GPU_OK(cudaMalloc(&d_k, 2 * cache));
        GPU_OK(cudaMalloc(&d_v, 2 * cache));
        GPU_OK(cudaMemset(d_k, 0, 2 * cache));
        GPU_OK(cudaMemset(d_v, 0, 2 * cache));
        int32_t *d_pos = gpu_upload(pos, sizeof pos);
        int64_t *d_slots = gpu_upload(slots, sizeof slots);
        float *d_inv = gpu_upload(invf, sizeof(float) * hd / 2);
        GPU_OK(lmb_cuda_rope_kv_write(d_qkv, d_k, d_v, d_pos, d_slots, d_inv, T, nh, nkv, hd, bs, dt, 0));
        float *out = gpu_download16(d_qkv, (size_t)T * qkv_dim, dt), *kc = gpu_download16(d_k, cache, dt);
        float *vc = gpu_download16(d_v, cache, dt);
        float *q = malloc(sizeof(float) * T * nh * hd), *kk = malloc(sizeof(float) * T * nkv * hd);
        for (int t = 0; t < T; t++) {
            memcpy(q + t * nh * hd, qkv + t * qkv_dim, sizeof(float) * nh * hd);
            memcpy(kk + t * nkv * hd, qkv + t * qkv_dim + nh * hd, sizeof(float) * nkv * hd);
        }
        lmb_cpu_rope(q, kk, pos, T, nh, nkv, hd, inv);
        for (int t = 0; t < T; t++) {
            cr_assert_lt(gpu_rel(out + t * qkv_dim, q + t * nh * hd, (size_t)nh * hd), 1e-2);
            cr_assert_lt(gpu_rel(out + t * qkv_dim + nh * hd, kk + t * nkv * hd, (size_t)nkv * hd), 1e-2);
            if (slots[t] < 0) continue;
            int b = (int)(slots[t] / bs), o = (int)(slots[t] % bs);
            for (int h = 0; h < nkv; h++) {
                cr_assert_lt(gpu_rel(kc + (((size_t)b * nkv + h) * bs + o) * hd, kk + (t * nkv + h) * hd, hd), 1e-2);
                cr_assert_lt(gpu_rel(vc + (((size_t)b * nkv + h) * bs + o) * hd, qkv + t * qkv_dim + (nh + nkv + h) * hd, hd),
                             1e-3);
            }
        }
        free(qkv), free(out), free(kc), free(vc), free(q), free(kk);
        cudaFree(d_qkv), cudaFree(d_k), cudaFree(d_v), cudaFree(d_pos), cudaFree(d_slots), cudaFree(d_inv);
    }
}

Test(kernels_cuda, gemv_matches_cpu) {
    gpu_require();
    /* M = 1..8 rows, shapes of stories260K-like and Llama-2-7B layers (K = 11008 has a ragged last step) */
    int shapes[4][2] = {{64, 64}, {300, 520}, {4096, 4096}, {4096, 11008}};
    for (int k = 0; k < 2; k++)
        for (int si = 0; si < 4; si++)
            for (int mi = 0; mi < 5; mi++) {
                const int Ms[5] = {1, 2, 3, 7, 8}, M = Ms[mi];
                int N = shapes[si][0], K = shapes[si][1];
                float *x = gpu_rand((size_t)M * K, dts[k], 1), *w = gpu_rand((size_t)N * K, dts[k], 0.05f);
                float *ref = malloc(sizeof(float) * (size_t)M * N);
                lmb_cpu_matmul(ref, x, w, NULL, M, N, K);
                void *dx = gpu_upload16(x, (size_t)M * K, dts[k]), *dw = gpu_upload16(w, (size_t)N * K, dts[k]);
                for (int f32 = 0; f32 < 2; f32++) {
                    void *dy;
                    size_t yb = (f32 ? 4 : 2) * (size_t)M * N;
                    GPU_OK(cudaMalloc(&dy, yb));
                    GPU_OK(cudaMemset(dy, 0xff, yb)); /* poison: NaN in both types */
                    GPU_OK(lmb_cuda_gemv(dy, f32, dx, dw, M, N, K, dts[k], NULL));
                    GPU_OK(cudaDeviceSynchronize());
                    float *got;
                    if (f32) {
                        got = malloc(yb);
                        GPU_OK(cudaMemcpy(got, dy, yb, cudaMemcpyDeviceToHost));
                    } else {
                        got = gpu_download16(dy, (size_t)M * N, dts[k]);
                    }
                    double r = gpu_rel(got, ref, (size_t)M * N);
                    cr_assert_lt(r, dts[k] == LMB_CUDA_F16 ? 2e-3 : 1e-2, "gemv M=%d N=%d K=%d %s%s: rel %g", M, N, K,
                                 dts[k] == LMB_CUDA_F16 ? "f16" : "bf16", f32 ? " f32 out" : "", r);
                    free(got);
                    cudaFree(dy);
                }
                cudaFree(dx), cudaFree(dw);
                free(x), free(w), free(ref);
            }
}
