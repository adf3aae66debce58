/* backend_cuda.c — the CUDA backend's set-up: device and library handles, weight upload (mmap -> pinned
 * staging -> device, converted to the model's 16-bit type on the way, timed), activation buffers, the KV
 * cache sized as LMDeploy's cache_max_entry_count (a fraction of the memory free after weights and
 * activations).  The forward lives in backend_cuda_forward.c.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_awq_cuda.h"
#include "backend_cuda_impl.h"
#include "backend_cuda_step.h"
#include "rope.h"

#define STAGE_BYTES ((size_t)64 << 20)

typedef struct stager {
    void *buf[2];
    cudaEvent_t done[2];
    int next;
} stager;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void convert_chunk(void *dst, lmb_cuda_dtype dt, const void *src, lmb_dtype st, size_t n) {
    uint16_t *d = dst;
    if ((st == LMB_F16 && dt == LMB_CUDA_F16) || (st == LMB_BF16 && dt == LMB_CUDA_BF16)) {
        memcpy(dst, src, n * 2);
        return;
    }
#pragma omp parallel for if (n > (1u << 18))
    for (size_t i = 0; i < n; i++) {
        float f = st == LMB_F32 ? ((const float *)src)[i]
                  : st == LMB_F16 ? lmb_f16_to_f32(((const uint16_t *)src)[i])
                                  : lmb_bf16_to_f32(((const uint16_t *)src)[i]);
        d[i] = dt == LMB_CUDA_F16 ? lmb_f32_to_f16(f) : lmb_f32_to_bf16(f);
    }
}

/* The element types convert_chunk reads. */
static int check_dtype(const lmb_tensor *t, lmb_error *err) {
    if (t->dtype != LMB_F32 && t->dtype != LMB_F16 && t->dtype != LMB_BF16)
        return lmb_fail(err, "tensor %s has dtype %s; the CUDA backend reads F32, F16 or BF16", t->name,
                        lmb_dtype_name(t->dtype));
    return 0;
}

/* Copies tensor t (converted to the device type) to dev, through the double-buffered pinned stage. */
static int upload(cuda_backend *c, stager *sg, void *dev, const lmb_tensor *t, lmb_error *err) {
    if (check_dtype(t, err)) return -1;
    size_t n = (size_t)lmb_tensor_numel(t), per = STAGE_BYTES / c->esz, src_es = lmb_dtype_size(t->dtype);
    for (size_t off = 0; off < n; off += per) {
        size_t cnt = n - off < per ? n - off : per;
        int k = sg->next;
        sg->next ^= 1;
        CUDA_CHECK(cudaEventSynchronize(sg->done[k]));
        convert_chunk(sg->buf[k], c->dt, (const unsigned char *)t->data + off * src_es, t->dtype, cnt);
        CUDA_CHECK(cudaMemcpyAsync((unsigned char *)dev + off * c->esz, sg->buf[k], cnt * c->esz,
                                   cudaMemcpyHostToDevice, c->stream));
        CUDA_CHECK(cudaEventRecord(sg->done[k], c->stream));
    }
    c->weight_bytes += n * c->esz;
    return 0;
}

int lmb_cuda_dev_alloc(void **p, size_t bytes, lmb_error *err) {
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        *p = NULL;
        return lmb_fail(err, "cannot allocate %.2f GiB on the GPU: %s", bytes / 1073741824.0, cudaGetErrorString(e));
    }
    return 0;
}

/* Fills a buffer of n elements with random values (benchmarks on random-weight models); the bytes count as
 * weights on the GPU, or in host memory where dev is the device alias of mapped host memory. */
static int fill_random_to(cuda_backend *c, void *dev, size_t n, float a, float offset, size_t *bytes, lmb_error *err) {
    static unsigned long long seq = 1;
    CUDA_CHECK(lmb_cuda_fill_uniform(dev, n, a, offset, 0x5eedULL * (seq++), c->dt, c->stream));
    *bytes += n * c->esz;
    return 0;
}

static int fill_random(cuda_backend *c, void *dev, size_t n, float a, float offset, lmb_error *err) {
    return fill_random_to(c, dev, n, a, offset, &c->weight_bytes, err);
}

/* The embedding table in pinned host memory mapped into the device's address space (llama.cpp keeps
 * token_embd on the CPU too).  A step reads only its tokens' rows, over PCIe: 8 KiB a token for Llama-2-7B,
 * 4 MiB for a 512-token prefill.  c->embed is the device alias; the table's bytes stay free on the GPU. */
static int upload_host_table(cuda_backend *c, const lmb_tensor *t, bool random, float a, lmb_error *err) {
    if (check_dtype(t, err)) return -1;
    size_t n = (size_t)lmb_tensor_numel(t);
    cudaError_t e = cudaHostAlloc(&c->embed_host, n * c->esz,
                                  cudaHostAllocMapped | cudaHostAllocPortable | cudaHostAllocWriteCombined);
    if (e != cudaSuccess) {
        c->embed_host = NULL;
        return lmb_fail(err, "cannot pin %.2f GiB of host memory for %s (--embedding gpu keeps it on the GPU): %s",
                        n * c->esz / 1073741824.0, t->name, cudaGetErrorString(e));
    }
    CUDA_CHECK(cudaHostGetDevicePointer(&c->embed, c->embed_host, 0));
    if (random) return fill_random_to(c, c->embed, n, a, 0.f, &c->host_weight_bytes, err);
    convert_chunk(c->embed_host, c->dt, t->data, t->dtype, n);
    c->host_weight_bytes += n * c->esz;
    return 0;
}

/* Allocates a [rows, cols] device matrix and fills it from the listed tensors stacked by rows. */
static int upload_stacked(cuda_backend *c, stager *sg, void **dev, const lmb_tensor *const *parts, int n_parts,
                          size_t cols, bool random, float a, float offset, lmb_error *err) {
    size_t rows = 0;
    for (int i = 0; i < n_parts; i++) rows += (size_t)(parts[i]->ndim == 2 ? parts[i]->shape[0] : parts[i]->shape[0]);
    if (lmb_cuda_dev_alloc(dev, rows * cols * c->esz, err)) return -1;
    if (random) return fill_random(c, *dev, rows * cols, a, offset, err);
    size_t off = 0;
    for (int i = 0; i < n_parts; i++) {
        if (upload(c, sg, (unsigned char *)*dev + off * c->esz, parts[i], err)) return -1;
        off += (size_t)lmb_tensor_numel(parts[i]);
    }
    return 0;
}

static void cuda_destroy(lmb_backend *b) {
    cuda_backend *c = (cuda_backend *)b;
    if (!c) return;
    lmb_cuda_prof_report(c);
    lmb_cuda_graphs_free(c);
    lmb_cuda_gemm_free(c);
    lmb_cuda_step_free(c);
    lmb_cuda_awq_free(c); /* AWQ: first, so the layer slots that point at its linears are cleared */
    if (c->layers) {
        for (int l = 0; l < c->cfg.n_layers; l++) {
            cuda_layer *L = &c->layers[l];
            void *ps[] = {L->attn_norm, L->ffn_norm, L->wqkv, L->wo, L->wgu, L->wd, L->bqkv, L->bo, L->bgu, L->bd};
            for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) cudaFree(ps[i]);
        }
        free(c->layers);
    }
    if (c->head != c->embed) cudaFree(c->head);
    if (c->embed_host) cudaFreeHost(c->embed_host);
    else cudaFree(c->embed);
    void *ps[] = {c->final_norm, c->inv_freq, c->kv, c->kv_fixed, c->resid, c->xn, c->qkv, c->attn, c->gu, c->act,
                  c->y, c->xh, c->logits, c->sampled, c->attn_ws, c->attn_tickets, c->meta_d, c->blas_ws};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) cudaFree(ps[i]);
    cudaFreeHost(c->meta_h);
    cudaFreeHost(c->sampled_h);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

static size_t cuda_kv_block_bytes(lmb_backend *b, int block_size) {
    cuda_backend *c = (cuda_backend *)b;
    /* KV quantization (issue 6): tiles of 16-bit rows, or int8/int4 codes + per-token scales (kv_quant.h) */
    return 2 * (size_t)c->cfg.n_layers * c->cfg.n_kv_heads * lmb_kv_tile_bytes(c->cfg.head_dim, c->kv_bits, block_size);
}

static int cuda_kv_budget(lmb_backend *b, const lmb_engine_config *cfg, size_t *bytes, lmb_error *err) {
    size_t free_b, total;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    if (cfg->kv_cache_mb > 0) {
        *bytes = (size_t)(cfg->kv_cache_mb * 1048576.0);
        if (*bytes > free_b)
            return lmb_fail(err, "--kv-cache-mb %.0f exceeds the %.0f MiB free on the GPU", cfg->kv_cache_mb,
                            free_b / 1048576.0);
    } else {
        *bytes = (size_t)(cfg->cache_fraction * (double)free_b);
    }
    return 0;
}

static int cuda_kv_alloc(lmb_backend *b, int n_blocks, int block_size, lmb_error *err) {
    cuda_backend *c = (cuda_backend *)b;
    size_t bytes = cuda_kv_block_bytes(b, block_size) * (size_t)n_blocks;
    if (lmb_cuda_dev_alloc(&c->kv, bytes, err)) return -1;
    CUDA_CHECK(cudaMemsetAsync(c->kv, 0, bytes, c->stream)); /* padded graph rows read block 0: keep it finite */
    c->n_blocks = n_blocks;
    c->block_size = block_size;
    c->kv_layer_bytes = bytes / (2 * (size_t)c->cfg.n_layers);
    int ctx = c->cfg.max_pos < n_blocks * block_size ? c->cfg.max_pos : n_blocks * block_size;
    c->max_blocks = (ctx + block_size - 1) / block_size;
    /* split-K workspace for decode attention: rows up to cap_r, contexts up to ctx */
    /* quantized rows are 2-4x smaller: longer splits keep a CTA's bytes up (H100, 64 rows x ctx 4096: int8
     * 1.035 -> 1.000 ms per Llama-2-7B layer, 0.494 -> 0.463 per Llama-3-8B layer; fp16 gains < 1%) */
    c->split_len = c->kv_bits < 16 ? 512 : 256;
    const char *sl = getenv("LMB_ATTN_SPLIT"); /* to compare split lengths on the GPU machine */
    if (sl && atoi(sl) >= 64 && atoi(sl) <= 4096) c->split_len = atoi(sl);
    c->split_small = 64;
    c->small_rows = 1024 / c->cfg.n_heads > 1 ? 1024 / c->cfg.n_heads : 1;
    if (c->batch_invariant) c->small_rows = 0; /* one split length for every batch size */
    if (c->small_rows > c->cap_r) c->small_rows = c->cap_r;
    size_t ws = lmb_cuda_attention_workspace(c->cap_r, c->cfg.n_heads, c->cfg.head_dim, ctx, c->split_len),
           ws_small = lmb_cuda_attention_workspace(c->small_rows, c->cfg.n_heads, c->cfg.head_dim, ctx, c->split_small);
    if (lmb_cuda_dev_alloc(&c->attn_ws, ws > ws_small ? ws : ws_small, err)) return -1;
    /* the split CTAs' tickets: the last of a row's merges it (LMB_ATTN_MERGE=kernel: a merge kernel, to compare) */
    const char *mg = getenv("LMB_ATTN_MERGE");
    if (!(mg && strcmp(mg, "kernel") == 0)) {
        size_t tb = lmb_cuda_attention_tickets(c->cap_r, c->cfg.n_heads);
        if (lmb_cuda_dev_alloc((void **)&c->attn_tickets, tb, err)) return -1;
        CUDA_CHECK(cudaMemsetAsync(c->attn_tickets, 0, tb, c->stream));
    }
    if (lmb_cuda_step_init(c, err)) return -1; /* the batch-1 decode step kernel, where it runs */
    lmb_cuda_meta_layout(c);
    CUDA_CHECK(cudaMallocHost((void **)&c->meta_h, c->ml.end));
    if (lmb_cuda_dev_alloc((void **)&c->meta_d, c->ml.end, err)) return -1;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    size_t free_b, total;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    c->peak_bytes = total - free_b;
    return 0;
}

static void cuda_stats(lmb_backend *b, lmb_engine_stats *s) {
    cuda_backend *c = (cuda_backend *)b;
    s->weight_bytes = c->weight_bytes;
    s->host_weight_bytes = c->host_weight_bytes;
    s->peak_device_bytes = c->peak_bytes;
}

static const lmb_backend_ops cuda_ops = {
    .name = "cuda",
    .kv_block_bytes = cuda_kv_block_bytes,
    .kv_budget = cuda_kv_budget,
    .kv_alloc = cuda_kv_alloc,
    .forward = lmb_cuda_forward,
    .stats = cuda_stats,
    .destroy = cuda_destroy,
};

static int load_weights(cuda_backend *c, const lmb_model *model, bool embed_host, lmb_error *err) {
    const lmb_model_config *m = &c->cfg;
    const lmb_weights *w = &model->w;
    bool rnd = model->random_weights;
    const float a = 0.0346f; /* uniform(-a, a) has std 0.02 */
    stager sg = {0};
    int rc = -1;
    for (int k = 0; k < 2; k++) {
        if (cudaMallocHost(&sg.buf[k], STAGE_BYTES) != cudaSuccess || cudaEventCreate(&sg.done[k]) != cudaSuccess) {
            lmb_fail(err, "cannot allocate %zu MiB of pinned staging memory", STAGE_BYTES >> 20);
            goto done;
        }
    }
    size_t H = (size_t)m->hidden;
    double t0 = now_s();
#define ONE(dst, tensor, cols, amp, off)                                                                       \
    do {                                                                                                       \
        const lmb_tensor *p_[1] = {(tensor)};                                                                  \
        if (upload_stacked(c, &sg, (void **)&(dst), p_, 1, (cols), rnd, (amp), (off), err)) goto done;         \
    } while (0)
    if (embed_host) {
        if (upload_host_table(c, &w->embed, rnd, a, err)) goto done;
    } else {
        ONE(c->embed, &w->embed, H, a, 0.f);
    }
    ONE(c->final_norm, &w->final_norm, 1, 0.f, 1.f);
    if (m->tied_embeddings) c->head = c->embed;
    else ONE(c->head, &w->head.w, H, a, 0.f);
    for (int l = 0; l < m->n_layers; l++) {
        const lmb_layer_weights *s = &w->layers[l];
        cuda_layer *L = &c->layers[l];
        const lmb_tensor *qkv[3] = {&s->q.w, &s->k.w, &s->v.w}, *gu[2] = {&s->gate.w, &s->up.w};
        ONE(L->attn_norm, &s->attn_norm, 1, 0.f, 1.f);
        ONE(L->ffn_norm, &s->ffn_norm, 1, 0.f, 1.f);
        if (m->quant.awq) { /* AWQ: the linears and their biases come from backend_awq_cuda.c */
            if (lmb_cuda_awq_load_layer(c, model, l, err)) goto done;
            continue;
        }
        if (upload_stacked(c, &sg, &L->wqkv, qkv, 3, H, rnd, a, 0.f, err)) goto done;
        if (m->qkv_bias) {
            const lmb_tensor *b[3] = {&s->q.bias, &s->k.bias, &s->v.bias};
            if (upload_stacked(c, &sg, &L->bqkv, b, 3, 1, rnd, a, 0.f, err)) goto done;
        }
        ONE(L->wo, &s->o.w, (size_t)m->n_heads * m->head_dim, a, 0.f);
        if (upload_stacked(c, &sg, &L->wgu, gu, 2, H, rnd, a, 0.f, err)) goto done;
        ONE(L->wd, &s->down.w, (size_t)m->ffn, a, 0.f);
        if (m->o_bias) ONE(L->bo, &s->o.bias, 1, a, 0.f);
        if (m->mlp_bias) {
            const lmb_tensor *b[2] = {&s->gate.bias, &s->up.bias};
            if (upload_stacked(c, &sg, &L->bgu, b, 2, 1, rnd, a, 0.f, err)) goto done;
            ONE(L->bd, &s->down.bias, 1, a, 0.f);
        }
    }
#undef ONE
    if (cudaStreamSynchronize(c->stream) != cudaSuccess) {
        lmb_fail(err, "weight upload failed: %s", cudaGetErrorString(cudaGetLastError()));
        goto done;
    }
    c->load_seconds = now_s() - t0;
    rc = 0;
done:
    for (int k = 0; k < 2; k++) {
        if (sg.done[k]) cudaEventDestroy(sg.done[k]);
        if (sg.buf[k]) cudaFreeHost(sg.buf[k]);
    }
    return rc;
}

static int alloc_activations(cuda_backend *c, const lmb_engine_config *cfg, lmb_error *err) {
    const lmb_model_config *m = &c->cfg;
    size_t T = (size_t)cfg->max_batch_tokens, R = (size_t)(cfg->max_seqs > 256 ? cfg->max_seqs : 256);
    if (R > T && T >= 256) R = T;
    c->cap_t = (int)T;
    c->cap_r = (int)R;
    c->qkv_dim = (m->n_heads + 2 * m->n_kv_heads) * m->head_dim;
    size_t att = (size_t)m->n_heads * m->head_dim, e = c->esz;
    if (lmb_cuda_dev_alloc((void **)&c->resid, T * m->hidden * sizeof(float), err) ||
        lmb_cuda_dev_alloc(&c->xn, T * m->hidden * e, err) || lmb_cuda_dev_alloc(&c->qkv, T * c->qkv_dim * e, err) ||
        lmb_cuda_dev_alloc(&c->attn, T * att * e, err) || lmb_cuda_dev_alloc(&c->gu, T * 2 * m->ffn * e, err) ||
        lmb_cuda_dev_alloc(&c->act, T * m->ffn * e, err) || lmb_cuda_dev_alloc(&c->y, T * m->hidden * e, err) ||
        lmb_cuda_dev_alloc(&c->xh, R * m->hidden * e, err) ||
        lmb_cuda_dev_alloc((void **)&c->logits, R * m->vocab * sizeof(float), err) ||
        lmb_cuda_dev_alloc((void **)&c->sampled, R * sizeof(int32_t), err))
        return -1;
    CUDA_CHECK(cudaMallocHost((void **)&c->sampled_h, R * sizeof(int32_t)));
    c->cap_hist = 1 << 20;
    return 0;
}

int lmb_backend_cuda_create(const lmb_model *model, const lmb_engine_config *cfg, lmb_backend **out,
                            lmb_error *err) {
    *out = NULL;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0)
        return lmb_fail(err, "no CUDA device available (%s); use --backend cpu",
                        e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (cfg->device < 0 || cfg->device >= n_dev)
        return lmb_fail(err, "--device %d: this machine has %d CUDA device(s)", cfg->device, n_dev);
    const lmb_model_config *m = &model->cfg;
    if (m->quant.awq && lmb_cuda_awq_check(model, err)) return -1; /* AWQ: backend_awq_cuda.c */
    if (m->head_dim % 2 || m->head_dim > 256)
        return lmb_fail(err, "head_dim %d is not supported by the CUDA kernels (even, at most 256)", m->head_dim);
    cuda_backend *c = calloc(1, sizeof *c);
    if (!c) return lmb_fail(err, "out of memory");
    c->base.ops = &cuda_ops;
    c->base.model = model;
    c->cfg = *m;
    c->device = cfg->device;
    c->dt = m->dtype == LMB_BF16 && !m->quant.awq ? LMB_CUDA_BF16 : LMB_CUDA_F16; /* AWQ: fp16, as its scales */
    c->esz = 2;
    c->kv_bits = cfg->kv_bits == 8 || cfg->kv_bits == 4 ? cfg->kv_bits : 16; /* KV quantization (issue 6) */
    c->base.kv_bits = c->kv_bits;
    int rc = -1;
#define TRY(call)                                                                                               \
    do {                                                                                                        \
        cudaError_t e_ = (call);                                                                                \
        if (e_ != cudaSuccess) {                                                                                \
            lmb_fail(err, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_));          \
            goto done;                                                                                          \
        }                                                                                                       \
    } while (0)
    TRY(cudaSetDevice(c->device));
    TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    if (lmb_cuda_prof_init(c, err)) goto done;
    c->batch_invariant = cfg->batch_invariant;
    c->use_gemv = !cfg->batch_invariant && !getenv("LMB_NO_GEMV");
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        lmb_fail(err, "cublasCreate failed");
        goto done;
    }
    size_t ws = 32u << 20;
    TRY(cudaMalloc(&c->blas_ws, ws));
    c->blas_ws_bytes = ws;
    if (lmb_cuda_gemm_init(c, err)) goto done;
    if (cublasSetStream(c->blas, c->stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetWorkspace(c->blas, c->blas_ws, ws) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
        lmb_fail(err, "cuBLAS set-up failed");
        goto done;
    }
    c->layers = calloc((size_t)m->n_layers, sizeof *c->layers);
    if (!c->layers) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    {
        double inv[512];
        float invf[512];
        lmb_rope_inv_freq(m, inv);
        for (int i = 0; i < m->head_dim / 2; i++) invf[i] = (float)inv[i];
        TRY(cudaMalloc((void **)&c->inv_freq, sizeof(float) * (size_t)(m->head_dim / 2)));
        TRY(cudaMemcpy(c->inv_freq, invf, sizeof(float) * (size_t)(m->head_dim / 2), cudaMemcpyHostToDevice));
    }
    if (cfg->kv_fixed && c->kv_bits != 16) { /* KV quantization (issue 6): offline scales, [layer][K|V][nkv][2] */
        size_t n = (size_t)m->n_layers * 2 * (size_t)m->n_kv_heads * 2;
        TRY(cudaMalloc((void **)&c->kv_fixed, sizeof(float) * n));
        TRY(cudaMemcpy(c->kv_fixed, cfg->kv_fixed, sizeof(float) * n, cudaMemcpyHostToDevice));
    }
    if (cfg->embedding == LMB_EMBED_HOST && m->tied_embeddings) {
        lmb_fail(err, "--embedding host: this model ties its head to the embedding, which the head's GEMM reads "
                      "whole every step; use --embedding gpu or auto");
        goto done;
    }
    bool embed_host = cfg->embedding == LMB_EMBED_HOST ||
                      (cfg->embedding == LMB_EMBED_AUTO && m->quant.awq && !m->tied_embeddings);
    if (load_weights(c, model, embed_host, err) || alloc_activations(c, cfg, err)) goto done;
    if (!cfg->quiet) {
        struct cudaDeviceProp prop;
        TRY(cudaGetDeviceProperties(&prop, c->device));
        char host[96] = "";
        if (c->host_weight_bytes)
            snprintf(host, sizeof host, " (+ %.2f GiB embedding in host memory)", c->host_weight_bytes / 1073741824.0);
        fprintf(stderr, "lmbatch: %s, %s weights %.2f GiB%s %s in %.2f s (%.1f GB/s)\n", prop.name,
                c->dt == LMB_CUDA_BF16 ? "bf16" : "fp16", c->weight_bytes / 1073741824.0, host,
                model->random_weights ? "generated" : "uploaded", c->load_seconds,
                c->load_seconds > 0 ? (c->weight_bytes + c->host_weight_bytes) / c->load_seconds / 1e9 : 0);
    }
#undef TRY
    rc = 0;
done:
    if (rc) {
        cuda_destroy(&c->base);
        return -1;
    }
    *out = &c->base;
    return 0;
}
