/* qdev_cuda.c — the GPU quantize device (qdev.h): buffers in device memory, matmuls and attention through
 * cuBLAS (TF32 tensor cores unless exact_fp32), everything else in kernels/cuda/calib.cu, all on one stream.
 * Operations that return host values (reductions, row maxima) synchronize the stream.
 *
 * Attention per sequence: for each of the rep query heads sharing a KV head, S = Q K^T * scale for all KV
 * heads in one strided-batched SGEMM, the causal softmax, then O = S V the same way (scores for the whole
 * [T, T] square are computed and the masked ones zeroed: 2x the FLOPs of a causal kernel, still small next
 * to the linears).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/cuda_check.h"
#include "../kernels/kernels_cuda.h"
#include "qdev.h"

typedef struct cuda_impl {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    float *vec;         /* host vectors (scales, clamp limits) uploaded for one op */
    size_t vec_cap;
    double *dred, *dout; /* reduction scratch and results */
    size_t dred_cap, dout_cap;
    double *hred;
    size_t hred_cap;
    float *S; /* attention scores [nkv, T, T] */
    size_t S_cap;
    float *rope_cs, *rope_sn; /* [seqlen, hd/2] */
    int rope_seqlen, rope_hd;
    const double *rope_inv_freq;
} cuda_impl;

static void cuda_failed(lmb_qdev *d, const char *file, int line, const char *what, const char *why) {
    lmb_qdev_fail(d, "%s:%d: %s failed: %s", file, line, what, why);
}

#define QCUDA(d, call)                                                                      \
    do {                                                                                    \
        cudaError_t e_ = (cudaError_t)(call);                                               \
        if (e_ != cudaSuccess) cuda_failed(d, __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)
#define QBLAS(d, call)                                                                         \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS) cuda_failed(d, __FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
    } while (0)

static cuda_impl *impl(lmb_qdev *d) { return (cuda_impl *)d->impl; }

static float *cu_alloc(lmb_qdev *d, size_t n) {
    if (d->failed) return NULL;
    void *p = NULL;
    size_t bytes = sizeof(float) * (n ? n : 1);
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        lmb_qdev_fail(d, "out of GPU memory: %.2f GiB requested, %.2f GiB free of %.2f", bytes / 1073741824.0,
                      fr / 1073741824.0, tot / 1073741824.0);
        return NULL;
    }
    return p;
}

/* cudaFree after the stream has drained: the buffer's last readers are on the non-blocking stream. */
static void cu_release(lmb_qdev *d, float *p) {
    cudaStreamSynchronize(impl(d)->stream);
    cudaFree(p);
}

/* Grows a device scratch buffer to at least `bytes`. */
static void *grow(lmb_qdev *d, void **buf, size_t *cap, size_t bytes) {
    if (d->failed) return NULL;
    if (bytes <= *cap) return *buf;
    cudaStreamSynchronize(impl(d)->stream);
    cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    if (cudaMalloc(buf, bytes) != cudaSuccess) {
        cudaGetLastError();
        *buf = NULL;
        lmb_qdev_fail(d, "out of GPU memory for %.2f MiB of scratch", bytes / 1048576.0);
        return NULL;
    }
    *cap = bytes;
    return *buf;
}

/* Uploads a host vector of n floats for the next operation. */
static const float *vec(lmb_qdev *d, const float *host, size_t n) {
    cuda_impl *c = impl(d);
    if (!grow(d, (void **)&c->vec, &c->vec_cap, sizeof(float) * (n ? n : 1))) return NULL;
    QCUDA(d, cudaMemcpyAsync(c->vec, host, sizeof(float) * n, cudaMemcpyHostToDevice, c->stream));
    return d->failed ? NULL : c->vec;
}

static void cu_put(lmb_qdev *d, float *dst, const float *host, size_t n) {
    if (!d->failed && n) QCUDA(d, cudaMemcpyAsync(dst, host, sizeof(float) * n, cudaMemcpyHostToDevice, impl(d)->stream));
}

static void cu_get(lmb_qdev *d, float *host, const float *src, size_t n) {
    if (d->failed || !n) return;
    QCUDA(d, cudaMemcpyAsync(host, src, sizeof(float) * n, cudaMemcpyDeviceToHost, impl(d)->stream));
    QCUDA(d, cudaStreamSynchronize(impl(d)->stream));
}

static void cu_copy2d(lmb_qdev *d, float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int cols) {
    if (d->failed || rows <= 0 || cols <= 0) return;
    QCUDA(d, cudaMemcpy2DAsync(dst, ld_dst * sizeof(float), src, ld_src * sizeof(float), (size_t)cols * sizeof(float),
                               (size_t)rows, cudaMemcpyDeviceToDevice, impl(d)->stream));
}

static void cu_matmul(lmb_qdev *d, float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    if (d->failed || M <= 0) return;
    const float one = 1.f, zero = 0.f;
    QBLAS(d, cublasSgemm(impl(d)->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, K, x, K, &zero, y, N));
    if (b) QCUDA(d, lmb_cuda_f32_add_bias(y, b, M, N, impl(d)->stream));
}

static void cu_rmsnorm(lmb_qdev *d, float *y, const float *x, const float *g, int T, int H, float eps) {
    if (!d->failed) QCUDA(d, lmb_cuda_f32_rmsnorm(y, x, g, T, H, eps, impl(d)->stream));
}

static void cu_rope(lmb_qdev *d, float *q, float *k, int T, int seqlen, int nh, int nkv, int hd,
                    const double *inv_freq) {
    cuda_impl *c = impl(d);
    if (d->failed) return;
    if (c->rope_seqlen != seqlen || c->rope_hd != hd || c->rope_inv_freq != inv_freq) {
        size_t n = (size_t)seqlen * (hd / 2);
        float *h = malloc(sizeof(float) * 2 * n);
        if (!h) {
            lmb_qdev_fail(d, "out of memory for the RoPE table");
            return;
        }
        for (int p = 0; p < seqlen; p++)
            for (int i = 0; i < hd / 2; i++) {
                double ang = (double)p * inv_freq[i];
                h[(size_t)p * (hd / 2) + i] = (float)cos(ang);
                h[n + (size_t)p * (hd / 2) + i] = (float)sin(ang);
            }
        cudaStreamSynchronize(c->stream);
        cudaFree(c->rope_cs);
        c->rope_cs = c->rope_sn = NULL;
        c->rope_seqlen = 0;
        if ((c->rope_cs = cu_alloc(d, 2 * n))) {
            c->rope_sn = c->rope_cs + n;
            QCUDA(d, cudaMemcpyAsync(c->rope_cs, h, sizeof(float) * 2 * n, cudaMemcpyHostToDevice, c->stream));
            QCUDA(d, cudaStreamSynchronize(c->stream)); /* before h is freed */
            c->rope_seqlen = seqlen, c->rope_hd = hd, c->rope_inv_freq = inv_freq;
        }
        free(h);
        if (d->failed) return;
    }
    QCUDA(d, lmb_cuda_f32_rope(q, k, c->rope_cs, c->rope_sn, T, seqlen, nh, nkv, hd, c->stream));
}

static void cu_attention(lmb_qdev *d, float *out, const float *q, const float *k, const float *v, int n_seqs, int T,
                         int nh, int nkv, int hd) {
    cuda_impl *c = impl(d);
    if (!grow(d, (void **)&c->S, &c->S_cap, sizeof(float) * (size_t)nkv * T * T)) return;
    int rep = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd), one = 1.f, zero = 0.f;
    long long sq = (long long)T * T;
    for (int s = 0; s < n_seqs && !d->failed; s++) {
        const float *qs = q + (size_t)s * T * nh * hd, *ks = k + (size_t)s * T * nkv * hd, *vs = v + (size_t)s * T * nkv * hd;
        float *os = out + (size_t)s * T * nh * hd;
        for (int r = 0; r < rep && !d->failed; r++) { /* query heads kv * rep + r, kv = 0 .. nkv-1 */
            QBLAS(d, cublasSgemmStridedBatched(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &scale, ks, nkv * hd, hd,
                                               qs + (size_t)r * hd, nh * hd, (long long)rep * hd, &zero, c->S, T, sq,
                                               nkv));
            QCUDA(d, lmb_cuda_f32_causal_softmax(c->S, nkv, T, c->stream));
            QBLAS(d, cublasSgemmStridedBatched(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &one, vs, nkv * hd, hd,
                                               c->S, T, sq, &zero, os + (size_t)r * hd, nh * hd, (long long)rep * hd,
                                               nkv));
        }
    }
}

static void cu_silu_mul(lmb_qdev *d, float *out, const float *gate, const float *up, int T, int F) {
    if (!d->failed) QCUDA(d, lmb_cuda_f32_silu_mul(out, gate, up, (size_t)T * F, impl(d)->stream));
}

static void cu_add(lmb_qdev *d, float *x, const float *h, size_t n) {
    if (!d->failed) QCUDA(d, lmb_cuda_f32_add(x, h, n, impl(d)->stream));
}

static void cu_scale_cols(lmb_qdev *d, float *x, int rows, int cols, const float *s, bool divide) {
    const float *sd = vec(d, s, (size_t)cols);
    if (sd) QCUDA(d, lmb_cuda_f32_scale_cols(x, rows, cols, sd, divide, impl(d)->stream));
}

static void cu_unscale_rows(lmb_qdev *d, float *w, float *b, int rows, int cols, const float *s) {
    const float *sd = vec(d, s, (size_t)rows);
    if (sd) QCUDA(d, lmb_cuda_f32_unscale_rows(w, b, rows, cols, sd, impl(d)->stream));
}

static void cu_fake_quant(lmb_qdev *d, float *w, int rows, int cols, int group) {
    if (!d->failed) QCUDA(d, lmb_cuda_f32_fake_quant(w, rows, cols, group, impl(d)->stream));
}

static void cu_clamp_rows(lmb_qdev *d, float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int cols,
                          const float *m) {
    const float *md = vec(d, m, (size_t)rows);
    if (md) QCUDA(d, lmb_cuda_f32_clamp_rows(dst, ld_dst, src, ld_src, rows, cols, md, impl(d)->stream));
}

static void cu_row_absmax(lmb_qdev *d, const float *w, size_t ld, int rows, int cols, float *out) {
    cuda_impl *c = impl(d);
    float *o = grow(d, (void **)&c->dout, &c->dout_cap, sizeof(float) * (size_t)(rows ? rows : 1));
    if (!o) return;
    QCUDA(d, lmb_cuda_f32_row_absmax(w, ld, rows, cols, o, c->stream));
    cu_get(d, out, o, (size_t)rows);
}

static void cu_col_sums(lmb_qdev *d, const float *a, const float *b, int rows, int cols, double *out) {
    cuda_impl *c = impl(d);
    double *scratch = grow(d, (void **)&c->dred, &c->dred_cap, lmb_cuda_f32_col_sums_scratch(rows, cols) + 8);
    double *o = grow(d, (void **)&c->dout, &c->dout_cap, sizeof(double) * (size_t)(cols ? cols : 1));
    if (!scratch || !o) return;
    QCUDA(d, lmb_cuda_f32_col_sums(a, b, rows, cols, scratch, o, c->stream));
    QCUDA(d, cudaMemcpyAsync(out, o, sizeof(double) * (size_t)cols, cudaMemcpyDeviceToHost, c->stream));
    QCUDA(d, cudaStreamSynchronize(c->stream));
}

static double cu_sq_err(lmb_qdev *d, const float *a, const float *b, size_t n) {
    cuda_impl *c = impl(d);
    int nb = lmb_cuda_f32_sq_err_blocks();
    double *part = grow(d, (void **)&c->dred, &c->dred_cap, sizeof(double) * (size_t)nb);
    if (!part || !n) return 0;
    if ((size_t)nb > c->hred_cap) {
        free(c->hred);
        c->hred_cap = 0;
        if (!(c->hred = malloc(sizeof(double) * (size_t)nb))) {
            lmb_qdev_fail(d, "out of memory");
            return 0;
        }
        c->hred_cap = (size_t)nb;
    }
    QCUDA(d, lmb_cuda_f32_sq_err(a, b, n, part, c->stream));
    QCUDA(d, cudaMemcpyAsync(c->hred, part, sizeof(double) * (size_t)nb, cudaMemcpyDeviceToHost, c->stream));
    QCUDA(d, cudaStreamSynchronize(c->stream));
    double s = 0;
    for (int i = 0; i < nb && !d->failed; i++) s += c->hred[i];
    return d->failed ? 0 : s;
}

static void cu_destroy(lmb_qdev *d) {
    cuda_impl *c = impl(d);
    if (c) {
        if (c->stream) cudaStreamSynchronize(c->stream);
        cudaFree(c->vec), cudaFree(c->dred), cudaFree(c->dout), cudaFree(c->S), cudaFree(c->rope_cs);
        free(c->hred);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(d);
}

static const lmb_qdev_ops cuda_ops = {
    .name = "gpu",
    .alloc = cu_alloc,
    .release = cu_release,
    .put = cu_put,
    .get = cu_get,
    .copy2d = cu_copy2d,
    .matmul = cu_matmul,
    .rmsnorm = cu_rmsnorm,
    .rope = cu_rope,
    .attention = cu_attention,
    .silu_mul = cu_silu_mul,
    .add = cu_add,
    .scale_cols = cu_scale_cols,
    .unscale_rows = cu_unscale_rows,
    .fake_quant = cu_fake_quant,
    .clamp_rows = cu_clamp_rows,
    .row_absmax = cu_row_absmax,
    .col_sums = cu_col_sums,
    .sq_err = cu_sq_err,
    .destroy = cu_destroy,
};

bool lmb_qdev_cuda_present(void) {
    int n = 0;
    bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    cudaGetLastError();
    return ok;
}

static int open_impl(cuda_impl *c, int device, bool exact_fp32, lmb_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return lmb_fail(err, "no CUDA device for the quantize stage (%s); use --backend cpu",
                        e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    if (device < 0 || device >= n) return lmb_fail(err, "--device %d: this machine has %d CUDA device(s)", device, n);
    c->device = device;
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&c->blas));
    CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    CUBLAS_CHECK(cublasSetMathMode(c->blas, exact_fp32 ? CUBLAS_DEFAULT_MATH : CUBLAS_TF32_TENSOR_OP_MATH));
    return 0;
}

int lmb_qdev_cuda_open(lmb_qdev **out, int device, bool exact_fp32, lmb_error *err) {
    *out = NULL;
    lmb_qdev *d = calloc(1, sizeof *d);
    cuda_impl *c = calloc(1, sizeof *c);
    if (!d || !c) {
        free(d), free(c);
        return lmb_fail(err, "out of memory");
    }
    d->ops = &cuda_ops;
    d->impl = c;
    if (open_impl(c, device, exact_fp32, err)) {
        cu_destroy(d);
        return -1;
    }
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    d->scratch_bytes = fr / 16 < ((size_t)2 << 30) ? fr / 16 : ((size_t)2 << 30);
    *out = d;
    return 0;
}
