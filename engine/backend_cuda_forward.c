/* backend_cuda_forward.c — one forward of the CUDA backend: pack the step's metadata into pinned memory,
 * copy it to the device in one transfer, enqueue the layers, sample on the GPU, copy the ids back (the
 * only device->host transfer of a step).  Decode-only steps replay a CUDA graph captured once per batch
 * bucket (1, 2, 4, ... 512 sequences, padded with inert rows) and context class (512, 1K, ... keys); other
 * steps run eagerly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_awq_cuda.h"
#include "backend_cuda_impl.h"
#include "backend_cuda_step.h"

#define GRAPH_HISTORY 65536 /* history tokens a graph step may carry */

typedef struct plan {
    int T, S, R;      /* tokens, sequences, logit rows */
    int n_tiles, n_dec;
    int max_ctx;      /* bounds every row's context (sizes the split-K grid) */
    bool sample;
    bool rows_all;    /* logit rows are 0..R-1 and decode rows all T tokens (graph steps) */
    size_t hist_used; /* history tokens */
} plan;

static size_t al(size_t x) { return (x + 15) & ~(size_t)15; }

void lmb_cuda_meta_layout(cuda_backend *c) {
    size_t T = (size_t)c->cap_t, R = (size_t)c->cap_r, rows = T > R ? T : R, o = 0;
    cuda_meta_layout *m = &c->ml;
    m->tokens = o, o = al(o + 4 * T);
    m->positions = o, o = al(o + 4 * T);
    m->slots = o, o = al(o + 8 * T);
    m->tok_seq = o, o = al(o + 4 * T);
    m->q_start = o, o = al(o + 4 * (R + 1));
    m->ctx_len = o, o = al(o + 4 * R);
    m->tables = o, o = al(o + 4 * R * (size_t)c->max_blocks);
    m->rows = o, o = al(o + 4 * rows);
    m->tiles = o, o = al(o + 8 * (T / 64 + R + 1));
    m->dec_rows = o, o = al(o + 4 * T);
    m->params = o, o = al(o + sizeof(lmb_cuda_sample_params) * R);
    m->history = o, o = al(o + 4 * (size_t)c->cap_hist);
    m->end = o;
}

#define P(cat) lmb_cuda_prof_mark(c, LMB_PROF_##cat)
#define H(off, type) ((type *)(c->meta_h + c->ml.off))
#define D(off, type) ((type *)(c->meta_d + c->ml.off))

static void *kv_ptr(cuda_backend *c, int layer, int v) {
    return (unsigned char *)c->kv + (2 * (size_t)layer + (size_t)v) * c->kv_layer_bytes;
}

static int gemm(cuda_backend *c, const void *x, const void *w, void *y, int M, int N, int K, bool f32_out,
                lmb_error *err) {
    if (lmb_cuda_awq_owns(c, w)) return lmb_cuda_awq_gemm(c, x, w, y, M, N, K, err); /* AWQ: W4A16 kernels */
    return lmb_cuda_gemm(c, x, w, y, M, N, K, f32_out, err);
}

/* Enqueues the forward described by p (metadata already on the device or copied by the caller's graph). */
static int enqueue(cuda_backend *c, const plan *p, lmb_error *err) {
    const lmb_model_config *m = &c->cfg;
    const int H = m->hidden, nh = m->n_heads, nkv = m->n_kv_heads, hd = m->head_dim, F = m->ffn, T = p->T;
    const float eps = (float)m->rms_eps, scale = 1.0f / sqrtf((float)hd);
    lmb_stream s = (lmb_stream)c->stream;
    lmb_cuda_seqs seqs = {D(q_start, int32_t), D(ctx_len, int32_t), D(tables, int32_t), D(tok_seq, int32_t),
                          D(positions, int32_t), c->max_blocks};
    P(EMBED);
    CUDA_CHECK(lmb_cuda_embed(c->resid, c->embed, D(tokens, int32_t), T, H, c->dt, s));
    if (lmb_cuda_step_applies(c, T, p->n_dec, p->n_tiles)) /* batch 1, AWQ: every layer in one kernel */
        return lmb_cuda_step_enqueue(c, D(positions, int32_t), D(tok_seq, int32_t), D(tables, int32_t),
                                     D(slots, int64_t), err);
    for (int l = 0; l < m->n_layers; l++) {
        const cuda_layer *L = &c->layers[l];
        void *kc = kv_ptr(c, l, 0), *vc = kv_ptr(c, l, 1);
        /* attention block (the previous layer's MLP output joins the residual here) */
        P(NORM);
        CUDA_CHECK(lmb_cuda_add_rmsnorm(c->resid, l ? c->y : NULL, L->attn_norm, c->xn, NULL, T, H, eps, c->dt, s));
        P(QKV);
        if (gemm(c, c->xn, L->wqkv, c->qkv, T, c->qkv_dim, H, false, err)) return -1;
        P(BIAS);
        if (L->bqkv) CUDA_CHECK(lmb_cuda_add_bias(c->qkv, L->bqkv, T, c->qkv_dim, c->dt, s));
        P(ROPE); /* KV quantization (issue 6): the _kvq calls take c->kv_bits (16 = the plain kernels) */
        const float *fixed = c->kv_fixed ? c->kv_fixed + (size_t)l * 2 * nkv * 2 : NULL;
        CUDA_CHECK(lmb_cuda_rope_kv_write_kvq(c->qkv, kc, vc, D(positions, int32_t), D(slots, int64_t), c->inv_freq,
                                              fixed, T, nh, nkv, hd, c->block_size, c->kv_bits, c->dt, s));
        P(ATTN_PREFILL);
        if (p->n_tiles)
            CUDA_CHECK(lmb_cuda_attention_prefill_kvq(c->attn, c->qkv, kc, vc, &seqs, D(tiles, int32_t), p->n_tiles, nh,
                                                      nkv, hd, c->block_size, scale, c->kv_bits, c->dt, s));
        P(ATTN_DECODE);
        for (int off = 0; off < p->n_dec; off += c->cap_r) {
            int n = p->n_dec - off < c->cap_r ? p->n_dec - off : c->cap_r;
            const int32_t *rows = p->rows_all && off == 0 && n == p->n_dec ? NULL : D(dec_rows, int32_t) + off;
            /* few rows: shorter splits, so that enough CTAs share the context (bs 1: 32 heads x ctx/64) */
            int split = n <= c->small_rows ? c->split_small : c->split_len;
            CUDA_CHECK(lmb_cuda_attention_decode_kvq(c->attn, c->qkv, kc, vc, &seqs, rows, n, nh, nkv, hd,
                                                     c->block_size, scale, p->max_ctx, split, c->attn_ws,
                                                     c->attn_tickets, c->kv_bits, c->dt, s));
        }
        P(O);
        if (gemm(c, c->attn, L->wo, c->y, T, H, nh * hd, false, err)) return -1;
        P(BIAS);
        if (L->bo) CUDA_CHECK(lmb_cuda_add_bias(c->y, L->bo, T, H, c->dt, s));
        /* MLP block */
        P(NORM);
        CUDA_CHECK(lmb_cuda_add_rmsnorm(c->resid, c->y, L->ffn_norm, c->xn, NULL, T, H, eps, c->dt, s));
        P(GU);
        if (gemm(c, c->xn, L->wgu, c->gu, T, 2 * F, H, false, err)) return -1;
        P(BIAS);
        if (L->bgu) CUDA_CHECK(lmb_cuda_add_bias(c->gu, L->bgu, T, 2 * F, c->dt, s));
        P(ACT);
        CUDA_CHECK(lmb_cuda_silu_mul(c->act, c->gu, T, F, c->dt, s));
        P(DOWN);
        if (gemm(c, c->act, L->wd, c->y, T, H, F, false, err)) return -1;
        P(BIAS);
        if (L->bd) CUDA_CHECK(lmb_cuda_add_bias(c->y, L->bd, T, H, c->dt, s));
    }
    return 0;
}

/* Final norm + head (+ sampling) for rows [off, off + n) of the logit rows. */
static int head_rows(cuda_backend *c, const plan *p, int off, int n, lmb_error *err) {
    const lmb_model_config *m = &c->cfg;
    lmb_stream s = (lmb_stream)c->stream;
    const int32_t *rows = p->rows_all ? NULL : D(rows, int32_t) + off;
    P(NORM);
    /* the step kernel leaves the last layer's output added to resid */
    const void *delta = lmb_cuda_step_applies(c, p->T, p->n_dec, p->n_tiles) ? NULL : c->y;
    CUDA_CHECK(lmb_cuda_add_rmsnorm(c->resid, delta, c->final_norm, c->xh, rows, n, m->hidden, (float)m->rms_eps, c->dt,
                                    s));
    P(HEAD);
    if (gemm(c, c->xh, c->head, c->logits, n, m->vocab, m->hidden, true, err)) return -1;
    if (p->sample) {
        P(SAMPLE);
        CUDA_CHECK(lmb_cuda_sample(c->sampled, c->logits, D(params, lmb_cuda_sample_params) + off, D(history, int32_t),
                                   n, m->vocab, s));
        CUDA_CHECK(cudaMemcpyAsync(c->sampled_h + off, c->sampled, sizeof(int32_t) * (size_t)n, cudaMemcpyDeviceToHost,
                                   c->stream));
    }
    return 0;
}

/* ---- metadata ---------------------------------------------------------------------------------------- */

static int pack(cuda_backend *c, const lmb_batch *b, plan *p, int pad_to, lmb_error *err) {
    const int bs = c->block_size;
    int T = b->n_tokens, S = b->n_seqs, R = b->n_logits;
    if (T > c->cap_t) return lmb_fail(err, "batch of %d tokens exceeds the backend's %d", T, c->cap_t);
    if (S > c->cap_r) return lmb_fail(err, "batch of %d sequences exceeds the backend's %d", S, c->cap_r);
    if (b->max_blocks > c->max_blocks) return lmb_fail(err, "block table of %d exceeds %d", b->max_blocks, c->max_blocks);
    memset(p, 0, sizeof *p);
    int32_t *tok = H(tokens, int32_t), *pos = H(positions, int32_t), *ts = H(tok_seq, int32_t);
    int32_t *qs = H(q_start, int32_t), *ctx = H(ctx_len, int32_t), *tab = H(tables, int32_t);
    int32_t *tiles = H(tiles, int32_t), *dec = H(dec_rows, int32_t);
    int64_t *slot = H(slots, int64_t);
    memcpy(tok, b->tokens, sizeof(int32_t) * (size_t)T);
    memcpy(pos, b->positions, sizeof(int32_t) * (size_t)T);
    bool mma = lmb_cuda_attention_prefill_supported(c->cfg.head_dim);
    for (int s = 0; s < S; s++) {
        const int32_t *bt = b->block_tables + (size_t)s * b->max_blocks;
        memcpy(tab + (size_t)s * c->max_blocks, bt, sizeof(int32_t) * (size_t)b->max_blocks);
        qs[s] = b->q_start[s];
        ctx[s] = b->ctx_len[s];
        int q0 = b->q_start[s], q1 = b->q_start[s + 1];
        for (int t = q0; t < q1; t++) {
            ts[t] = s;
            slot[t] = (int64_t)bt[pos[t] / bs] * bs + pos[t] % bs;
            if (pos[t] + 1 > p->max_ctx) p->max_ctx = pos[t] + 1;
        }
        if (q1 - q0 == 1 || !mma) {
            for (int t = q0; t < q1; t++) dec[p->n_dec++] = t;
        } else {
            for (int t = q0; t < q1; t += 64) {
                tiles[2 * p->n_tiles] = s;
                tiles[2 * p->n_tiles + 1] = t;
                p->n_tiles++;
            }
        }
    }
    qs[S] = b->q_start[S];
    memcpy(H(rows, int32_t), b->logit_rows, sizeof(int32_t) * (size_t)R);
    p->sample = b->sample != NULL;
    if (p->sample) {
        lmb_cuda_sample_params *sp = H(params, lmb_cuda_sample_params);
        int32_t *hist = H(history, int32_t);
        size_t h = 0;
        for (int r = 0; r < R; r++) {
            const lmb_sample_row *row = &b->sample[r];
            const lmb_sampling *q = &row->params;
            sp[r] = (lmb_cuda_sample_params){q->temperature, q->top_p, q->min_p, q->repetition_penalty, q->top_k, 0,
                                             (long long)h, q->seed, row->counter};
            if (row->history && q->repetition_penalty != 1.0f) {
                if (h + (size_t)row->n_history > (size_t)c->cap_hist)
                    return lmb_fail(err, "repetition-penalty history of %zu tokens exceeds %d", h + row->n_history,
                                    c->cap_hist);
                memcpy(hist + h, row->history, sizeof(int32_t) * (size_t)row->n_history);
                sp[r].n_history = row->n_history;
                h += (size_t)row->n_history;
            }
        }
        p->hist_used = h;
    }
    p->T = T, p->S = S, p->R = R;
    if (pad_to > S) { /* inert rows for a graph bucket: greedy, no cache write, attend to block 0 slot 0 */
        for (int i = S; i < pad_to; i++) {
            tok[i] = 0, pos[i] = 0, ts[i] = i, slot[i] = -1, qs[i + 1] = i + 1, ctx[i] = 1;
            memset(tab + (size_t)i * c->max_blocks, 0, sizeof(int32_t) * (size_t)c->max_blocks);
            H(rows, int32_t)[i] = i;
            H(params, lmb_cuda_sample_params)[i] = (lmb_cuda_sample_params){0};
        }
        p->T = p->S = p->R = pad_to;
    }
    return 0;
}

/* ---- graphs ------------------------------------------------------------------------------------------ */

void lmb_cuda_graphs_free(cuda_backend *c) {
    for (int i = 0; i < LMB_CUDA_BUCKETS; i++)
        for (int k = 0; k < LMB_CUDA_CTX_CLASSES; k++)
            if (c->graphs[i][k]) {
                cudaGraphExecDestroy(c->graphs[i][k]);
                c->graphs[i][k] = NULL;
            }
}

/* The context class of a decode step whose longest row has max_ctx keys: the graph captured for *cls_ctx keys
 * (512, 1K, ..., or the full context) sizes the decode attention's grid, whose CTAs past a row's context do
 * nothing but still cost launch slots (bs1 at context ~200 under a 4096-key grid: 2048 CTAs, 12 us a layer). */
static int ctx_class(const cuda_backend *c, int max_ctx, int *cls_ctx) {
    const int full = c->max_blocks * c->block_size;
    for (int k = 0; k < LMB_CUDA_CTX_CLASSES - 1 && (512 << k) < full; k++)
        if (max_ctx <= 512 << k) {
            *cls_ctx = 512 << k;
            return k;
        }
    *cls_ctx = full;
    return LMB_CUDA_CTX_CLASSES - 1;
}

static size_t graph_copy_bytes(const cuda_backend *c) {
    size_t hist = GRAPH_HISTORY < c->cap_hist ? GRAPH_HISTORY : (size_t)c->cap_hist;
    return c->ml.history + 4 * hist;
}

static int capture(cuda_backend *c, int bucket, int cls, int cls_ctx, int B, lmb_error *err) {
    plan p = {.T = B, .S = B, .R = B, .n_dec = B, .max_ctx = cls_ctx, .sample = true, .rows_all = true};
    cudaGraph_t g;
    CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    int rc = cudaMemcpyAsync(c->meta_d, c->meta_h, graph_copy_bytes(c), cudaMemcpyHostToDevice, c->stream) != cudaSuccess;
    if (rc) lmb_fail(err, "graph capture: metadata copy failed");
    if (!rc) rc = enqueue(c, &p, err);
    if (!rc) rc = head_rows(c, &p, 0, B, err);
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (rc) {
        if (e == cudaSuccess) cudaGraphDestroy(g);
        return -1;
    }
    CUDA_CHECK(e);
    e = cudaGraphInstantiate(&c->graphs[bucket][cls], g, 0);
    cudaGraphDestroy(g);
    CUDA_CHECK(e);
    return 0;
}

/* ---- entry ------------------------------------------------------------------------------------------- */

int lmb_cuda_forward(lmb_backend *b, const lmb_batch *batch, float *logits, int32_t *tokens, lmb_error *err) {
    cuda_backend *c = (cuda_backend *)b;
    const int V = c->cfg.vocab;
    bool decode_only = batch->sample && batch->n_tokens == batch->n_seqs && batch->n_logits == batch->n_seqs;
    int bucket = -1, B = 1;
    if (decode_only && !c->prof && !getenv("LMB_NO_GRAPHS"))
        for (int i = 0; i < LMB_CUDA_BUCKETS; i++, B *= 2)
            if (B >= batch->n_seqs && B <= c->cap_r && B <= c->cap_t) {
                bucket = i;
                break;
            }
    plan p;
    bool hist_ok = true;
    if (pack(c, batch, &p, bucket >= 0 ? B : 0, err)) return -1;
    int cls_ctx = 0, cls = bucket >= 0 ? ctx_class(c, p.max_ctx, &cls_ctx) : 0;
    if (bucket >= 0 && p.hist_used <= GRAPH_HISTORY && !c->graph_warm[bucket]) {
        c->graph_warm[bucket] = true; /* first step of this size runs eagerly: GEMM algorithms get chosen */
        hist_ok = false;
    }
    if (bucket >= 0 && p.hist_used <= GRAPH_HISTORY && hist_ok) {
        if (!c->graphs[bucket][cls] && capture(c, bucket, cls, cls_ctx, B, err))
            return lmb_error_prefix(err, "CUDA graph for batch %d, context %d", B, cls_ctx);
        CUDA_CHECK(cudaGraphLaunch(c->graphs[bucket][cls], c->stream));
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        memcpy(tokens, c->sampled_h, sizeof(int32_t) * (size_t)batch->n_logits);
        return 0;
    }
    if (bucket >= 0) { /* too much history for a graph: run the padded step eagerly */
        p.rows_all = true;
        p.n_dec = p.T;
        p.max_ctx = c->max_blocks * c->block_size;
    }
    size_t bytes = p.sample && p.hist_used ? c->ml.history + 4 * p.hist_used : c->ml.history;
    P(COPY);
    CUDA_CHECK(cudaMemcpyAsync(c->meta_d, c->meta_h, bytes, cudaMemcpyHostToDevice, c->stream));
    if (enqueue(c, &p, err)) return -1;
    for (int off = 0; off < p.R; off += c->cap_r) {
        int n = p.R - off < c->cap_r ? p.R - off : c->cap_r;
        if (head_rows(c, &p, off, n, err)) return -1;
        if (!p.sample && logits) {
            CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)off * V, c->logits, sizeof(float) * (size_t)n * V,
                                       cudaMemcpyDeviceToHost, c->stream));
            CUDA_CHECK(cudaStreamSynchronize(c->stream));
        }
    }
    lmb_cuda_prof_step(c, p.n_tiles > 0 || p.n_dec < p.T, p.T);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (p.sample) memcpy(tokens, c->sampled_h, sizeof(int32_t) * (size_t)batch->n_logits);
    return 0;
}
