/* backend_awq_cuda.c — AWQ (W4A16) linears in the CUDA backend: upload of AutoAWQ's GEMM layout repacked into
 * the kernels' W4 rows layout (kernels.h; fused q|k|v and gate|up stacked along the outputs, as the dense
 * weights are), random generation for benchmarks, and the per-M dispatch of kernels/cuda/w4a16.cu.  See
 * backend_awq_cuda.h.
 */
#include "backend_awq_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

struct lmb_cuda_awq {
    lmb_cuda_awq_linear *lin; /* 4 per layer, allocated once: the layer slots point into it */
    int n_lin, cap;
    void *scratch; /* dequantized fp16 row chunks for cuBLAS; the wgmma kernel's stream-K partials */
    size_t scratch_bytes;
    int mma_max_m;
    bool wgmma;                     /* the wgmma kernel runs here (an sm_90a build on compute capability 9.0) */
    int wgmma_min_m, wgmma_max_m;   /* the M it takes */
    unsigned *tickets;              /* its stream-K tickets (zero between launches) */
};
#define AWQ_TICKETS 4096

/* A linear stored AWQ-style: bound qweight, or (random-weight models) a qweight view without data. */
static bool is_awq(const lmb_linear *l) { return l->qweight.ndim == 2; }

int lmb_cuda_awq_check(const lmb_model *m, lmb_error *err) {
    if (m->cfg.quant.bits != 4) return lmb_fail(err, "AWQ with %d bits: the W4A16 kernels take 4", m->cfg.quant.bits);
    if (is_awq(&m->w.head)) return lmb_fail(err, "%s: a quantized lm_head is not supported", m->dir);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const lmb_layer_weights *s = &m->w.layers[l];
        if (is_awq(&s->q) != is_awq(&s->k) || is_awq(&s->q) != is_awq(&s->v) || is_awq(&s->gate) != is_awq(&s->up))
            return lmb_fail(err, "%s: layer %d mixes quantized and dense q/k/v or gate/up, which the fused GEMMs "
                                 "cannot run", m->dir, l);
    }
    return 0;
}

static unsigned long long next_seed(void) {
    static unsigned long long seq = 1;
    return 0xa3a5ULL * (seq++);
}

/* parts stacked by rows (1-D: concatenated) as fp16 on the device (dense linears and biases of AWQ models). */
static int upload_f16(cuda_backend *c, const lmb_model *m, void **dev, const lmb_tensor *const *parts, int n,
                      lmb_error *err) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)lmb_tensor_numel(parts[i]);
    if (lmb_cuda_dev_alloc(dev, total * 2, err)) return -1;
    c->weight_bytes += total * 2;
    if (m->random_weights) {
        CUDA_CHECK(lmb_cuda_fill_uniform(*dev, total, 0.0346f, 0.f, next_seed(), LMB_CUDA_F16, (lmb_stream)c->stream));
        return 0;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const lmb_tensor *t = parts[i];
        size_t cnt = (size_t)lmb_tensor_numel(t);
        uint16_t *h = malloc(2 * (cnt ? cnt : 1));
        float *f = malloc(sizeof(float) * (cnt ? cnt : 1));
        if (!h || !f) {
            free(h), free(f);
            return lmb_fail(err, "out of memory converting %s", t->name);
        }
        lmb_to_f32(f, t->data, t->dtype, cnt);
        for (size_t k = 0; k < cnt; k++) h[k] = lmb_f32_to_f16(f[k]);
        cudaError_t e = cudaMemcpy((uint16_t *)*dev + off, h, 2 * cnt, cudaMemcpyHostToDevice);
        free(h), free(f);
        CUDA_CHECK(e);
        off += cnt;
    }
    return 0;
}

static const char *name_of(const lmb_linear *p) { return p->qweight.name ? p->qweight.name : "an AWQ linear"; }

/* One fused AWQ linear from parts sharing K (concatenated along N), repacked at load into W4 rows: part i's
 * rows follow part i-1's in each of the three buffers. */
static int upload_awq(cuda_backend *c, const lmb_model *m, const lmb_linear *const *parts, int n, void **slot,
                      lmb_error *err) {
    struct lmb_cuda_awq *a = c->awq;
    int K = parts[0]->in, G = m->cfg.quant.group_size, N = 0;
    for (int i = 0; i < n; i++) N += parts[i]->out;
    if (G <= 0 || K % 8 || G % 8 || K % G)
        return lmb_fail(err, "AWQ linear of %d inputs with group size %d: the CUDA W4A16 kernels need the inputs "
                             "and the group size to be multiples of 8 (and the inputs of the group size)", K, G);
    lmb_cuda_awq_linear *d = &a->lin[a->n_lin++];
    d->N = N, d->K = K, d->group = G;
    size_t ng = (size_t)K / G, zw = (ng + 7) / 8, per_w = (size_t)K / 8 * 4, per_z = zw * 4, per_s = ng * 2;
    size_t bw = N * per_w, bz = N * per_z, bs = N * per_s; /* bytes; bz is AutoAWQ's up to zw's padding */
    if (lmb_cuda_dev_alloc((void **)&d->qweight, bw, err) || lmb_cuda_dev_alloc((void **)&d->zeros, bz, err) ||
        lmb_cuda_dev_alloc(&d->scales, bs, err))
        return -1;
    c->weight_bytes += bw + bz + bs;
    *slot = d;
    if (m->random_weights) { /* weights (q - 8) * s, s ~ 0.0043: std ~0.02 like the dense random models */
        lmb_stream s = (lmb_stream)c->stream;
        CUDA_CHECK(lmb_cuda_fill_bits(d->qweight, (size_t)N * K / 8, next_seed(), s));
        CUDA_CHECK(cudaMemsetAsync(d->zeros, 0x88, bz, c->stream)); /* every zero point 8 */
        CUDA_CHECK(lmb_cuda_fill_uniform(d->scales, ng * N, 0.001f, 0.0043f, next_seed(), LMB_CUDA_F16, s));
        return 0;
    }
    size_t row = 0; /* output row where the part starts */
    for (int i = 0; i < n; i++) {
        const lmb_linear *p = parts[i];
        size_t rows = (size_t)p->out;
        void *hw = malloc(rows * per_w), *hz = malloc(rows * per_z), *hs = malloc(rows * per_s);
        if (!hw || !hz || !hs) {
            free(hw), free(hz), free(hs);
            return lmb_fail(err, "out of memory repacking %s", name_of(p));
        }
        int bad = lmb_w4_rows_from_awq(hw, hz, hs, p->qweight.data, p->qzeros.data, p->scales.data, K, p->out, G);
        cudaError_t e = cudaSuccess;
        if (!bad) e = cudaMemcpy((unsigned char *)d->qweight + row * per_w, hw, rows * per_w, cudaMemcpyHostToDevice);
        if (!bad && e == cudaSuccess)
            e = cudaMemcpy((unsigned char *)d->zeros + row * per_z, hz, rows * per_z, cudaMemcpyHostToDevice);
        if (!bad && e == cudaSuccess)
            e = cudaMemcpy((unsigned char *)d->scales + row * per_s, hs, rows * per_s, cudaMemcpyHostToDevice);
        free(hw), free(hz), free(hs);
        if (bad) return lmb_fail(err, "%s: %d outputs, %d inputs, group %d cannot be repacked (outputs and inputs "
                                      "must be multiples of 8)", name_of(p), p->out, K, G);
        CUDA_CHECK(e);
        row += rows;
    }
    return 0;
}

/* A (possibly fused) linear: AWQ when its parts are, else dense fp16 rows. */
static int upload_linear(cuda_backend *c, const lmb_model *m, const lmb_linear *const *parts, int n, void **slot,
                         lmb_error *err) {
    if (is_awq(parts[0])) return upload_awq(c, m, parts, n, slot, err);
    const lmb_tensor *w[3];
    for (int i = 0; i < n; i++) w[i] = &parts[i]->w;
    return upload_f16(c, m, slot, w, n, err);
}

static int upload_bias(cuda_backend *c, const lmb_model *m, const lmb_linear *const *parts, int n, void **slot,
                       lmb_error *err) {
    const lmb_tensor *b[3];
    for (int i = 0; i < n; i++) b[i] = &parts[i]->bias;
    return upload_f16(c, m, slot, b, n, err);
}

/* The dequant + cuBLAS path's scratch: the largest linear dequantized whole (up to 256 MB; bigger linears go in
 * runs of rows), so each step makes one cuBLAS call per linear.  Runs of rows sized to stay in L2 (24 MB) cost
 * more than the extra HBM traffic: at M = 256 their GEMMs are too narrow to fill the SMs (docs/PERF.md). */
static int alloc_scratch(cuda_backend *c, lmb_error *err) {
    struct lmb_cuda_awq *a = c->awq;
    int max_n = 8, max_k = 1;
    for (int i = 0; i < a->n_lin; i++) {
        max_n = a->lin[i].N > max_n ? a->lin[i].N : max_n;
        max_k = a->lin[i].K > max_k ? a->lin[i].K : max_k;
    }
    const char *mb = getenv("LMB_W4A16_SCRATCH_MB");
    double scratch_mb = mb && atof(mb) > 0 ? atof(mb) : 256;
    a->scratch_bytes = (size_t)(scratch_mb * 1048576.0);
    size_t full = (size_t)max_k * max_n * 2, least = (size_t)max_k * 8 * 2;
    if (a->scratch_bytes > full) a->scratch_bytes = full;
    if (a->scratch_bytes < least) a->scratch_bytes = least;
    if (lmb_cuda_dev_alloc(&a->scratch, a->scratch_bytes, err)) return -1;
    if (a->wgmma) {
        if (lmb_cuda_dev_alloc((void **)&a->tickets, AWQ_TICKETS * sizeof(unsigned), err)) return -1;
        CUDA_CHECK(cudaMemsetAsync(a->tickets, 0, AWQ_TICKETS * sizeof(unsigned), c->stream));
    }
    return 0;
}

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v && atoi(v) >= 0 ? atoi(v) : dflt;
}

int lmb_cuda_awq_load_layer(cuda_backend *c, const lmb_model *m, int l, lmb_error *err) {
    if (!c->awq) {
        struct lmb_cuda_awq *a = calloc(1, sizeof *a);
        if (!a || !(a->lin = calloc((size_t)m->cfg.n_layers * 4, sizeof *a->lin))) {
            free(a);
            return lmb_fail(err, "out of memory");
        }
        a->cap = m->cfg.n_layers * 4;
        c->awq = a;
        a->mma_max_m = env_int("LMB_W4A16_MMA_MAX_M", 128); /* v6 mma beats dequant + cuBLAS to M 128 at least */
        a->wgmma = lmb_cuda_w4a16_wgmma_available() && env_int("LMB_W4A16_WGMMA", 1);
        a->wgmma_min_m = env_int("LMB_W4A16_WGMMA_MIN_M", LMB_W4A16_GEMV_MAX_M + 1);
        a->wgmma_max_m = env_int("LMB_W4A16_WGMMA_MAX_M", 2048); /* at par with dequantize + cuBLAS there (H100) */
    }
    const lmb_model_config *cf = &m->cfg;
    const lmb_layer_weights *s = &m->w.layers[l];
    cuda_layer *L = &c->layers[l];
    const lmb_linear *qkv[3] = {&s->q, &s->k, &s->v}, *o[1] = {&s->o}, *gu[2] = {&s->gate, &s->up}, *d[1] = {&s->down};
    if (upload_linear(c, m, qkv, 3, &L->wqkv, err) || upload_linear(c, m, o, 1, &L->wo, err) ||
        upload_linear(c, m, gu, 2, &L->wgu, err) || upload_linear(c, m, d, 1, &L->wd, err) ||
        (cf->qkv_bias && upload_bias(c, m, qkv, 3, &L->bqkv, err)) || (cf->o_bias && upload_bias(c, m, o, 1, &L->bo, err)) ||
        (cf->mlp_bias && (upload_bias(c, m, gu, 2, &L->bgu, err) || upload_bias(c, m, d, 1, &L->bd, err))))
        return lmb_error_prefix(err, "layer %d", l);
    if (l == cf->n_layers - 1 && alloc_scratch(c, err)) return -1;
    return 0;
}

bool lmb_cuda_awq_owns(const cuda_backend *c, const void *w) {
    const struct lmb_cuda_awq *a = c->awq;
    return a && (const lmb_cuda_awq_linear *)w >= a->lin && (const lmb_cuda_awq_linear *)w < a->lin + a->n_lin;
}

int lmb_cuda_awq_gemm(cuda_backend *c, const void *x, const void *w, void *y, int M, int N, int K, lmb_error *err) {
    const struct lmb_cuda_awq *a = c->awq;
    const lmb_cuda_awq_linear *d = w;
    if (d->N != N || d->K != K)
        return lmb_fail(err, "AWQ linear is [%d, %d] but the forward multiplies by [%d, %d]", d->N, d->K, N, K);
    lmb_stream s = (lmb_stream)c->stream;
    if (M <= LMB_W4A16_GEMV_MAX_M) {
        CUDA_CHECK(lmb_cuda_w4a16_gemv(y, x, d->qweight, d->zeros, d->scales, M, N, K, d->group, s));
        return 0;
    }
    if (a->wgmma && M >= a->wgmma_min_m && M <= a->wgmma_max_m) {
        /* refused (K not a multiple of 64, a group other than 64 << j, a K too deep for its shared memory, no
         * tensor-map encoder): the paths below */
        int rc = lmb_cuda_w4a16_wgmma(y, x, d->qweight, d->zeros, d->scales, M, N, K, d->group, 0, a->scratch,
                                      a->scratch_bytes, a->tickets, AWQ_TICKETS, s);
        if (rc != (int)cudaErrorInvalidValue) {
            CUDA_CHECK(rc);
            return 0;
        }
    }
    if (M <= a->mma_max_m && K % 32 == 0 && d->group % 32 == 0) {
        CUDA_CHECK(lmb_cuda_w4a16_mma(y, x, d->qweight, d->zeros, d->scales, M, N, K, d->group, s));
        return 0;
    }
    /* the whole linear unless it exceeds the scratch */
    return lmb_cuda_awq_dq_gemm(c->blas, s, a->scratch, (int)(a->scratch_bytes / ((size_t)K * 2)), d, x, y, M, err);
}

int lmb_cuda_awq_dq_gemm(cublasHandle_t blas, lmb_stream s, void *scratch, int chunk, const lmb_cuda_awq_linear *d,
                         const void *x, void *y, int M, lmb_error *err) {
    /* runs of rows dequantized to fp16 [nc, K] row-major, each multiplied with cuBLAS: OP_T makes the [K, nc]
     * column-major scratch W^T's rows n0.. */
    const float one = 1.f, zero = 0.f;
    const int N = d->N, K = d->K;
    chunk &= ~7;
    if (chunk > N) chunk = N;
    if (chunk < 8) return lmb_fail(err, "W4A16 dequant scratch of %d rows: it needs at least 8", chunk);
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int nc = N - n0 < chunk ? N - n0 : chunk;
        CUDA_CHECK(lmb_cuda_w4a16_dequant(scratch, d->qweight, d->zeros, d->scales, N, K, d->group, n0, nc, s));
        CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, nc, M, K, &one, scratch, CUDA_R_16F, K, x,
                                  CUDA_R_16F, K, &zero, (unsigned char *)y + (size_t)n0 * 2, CUDA_R_16F, N,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

void lmb_cuda_awq_free(cuda_backend *c) {
    struct lmb_cuda_awq *a = c->awq;
    if (!a) return;
    for (int l = 0; c->layers && l < c->cfg.n_layers; l++) {
        cuda_layer *L = &c->layers[l];
        void **slots[] = {&L->wqkv, &L->wo, &L->wgu, &L->wd};
        for (int i = 0; i < 4; i++)
            if (lmb_cuda_awq_owns(c, *slots[i])) *slots[i] = NULL;
    }
    for (int i = 0; i < a->n_lin; i++) {
        cudaFree(a->lin[i].qweight);
        cudaFree(a->lin[i].zeros);
        cudaFree(a->lin[i].scales);
    }
    cudaFree(a->scratch);
    cudaFree(a->tickets);
    free(a->lin);
    free(a);
    c->awq = NULL;
}
