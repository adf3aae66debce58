/* qdev.h — where the quantize stage's arithmetic runs: the calibration forward (fp32 decoder layers over
 * whole calibration sequences), the AWQ scale search and the clipping search, on the CPU (kernels/cpu,
 * OpenMP) or on a GPU (cuBLAS + kernels/cuda/calib.cu).  The algorithm (calibrate.c, awq_search.c,
 * awq_clip.c) is written once against this table; it never reads a device buffer directly.
 *
 * Buffers are fp32 arrays in the device's memory (host memory on the CPU device).  Small per-channel
 * vectors (scales, clamp limits, statistics) are host arrays.  Rows are row-major with the given leading
 * dimension.  Errors are sticky, as CUDA's are: an operation that fails records the first error and the
 * ones after it do nothing; callers check lmb_qdev_status at stage boundaries.
 *
 * On the GPU the matmuls use TF32 tensor cores (10-bit mantissa, about the precision of AutoAWQ's fp16
 * calibration) unless the device was opened with exact_fp32.
 */
#ifndef LMB_QDEV_H
#define LMB_QDEV_H

#include <stdbool.h>
#include <stddef.h>

#include "../engine/error.h"

typedef struct lmb_qdev lmb_qdev;

typedef struct lmb_qdev_ops {
    const char *name;
    float *(*alloc)(lmb_qdev *d, size_t n); /* NULL (and the sticky error) when out of memory */
    void (*release)(lmb_qdev *d, float *p);
    void (*put)(lmb_qdev *d, float *dst, const float *host, size_t n);
    void (*get)(lmb_qdev *d, float *host, const float *src, size_t n);
    /* dst[r, c] = src[r, c] for r < rows, c < cols */
    void (*copy2d)(lmb_qdev *d, float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows, int cols);
    /* y[M, N] = x[M, K] w[N, K]^T (+ b[N] when b) */
    void (*matmul)(lmb_qdev *d, float *y, const float *x, const float *w, const float *b, int M, int N, int K);
    void (*rmsnorm)(lmb_qdev *d, float *y, const float *x, const float *g, int T, int H, float eps);
    /* rotate-half RoPE of q [T, nh*hd] and k [T, nkv*hd] in place; token t is at position t % seqlen */
    void (*rope)(lmb_qdev *d, float *q, float *k, int T, int seqlen, int nh, int nkv, int hd,
                 const double *inv_freq);
    /* causal attention of n_seqs sequences of T tokens: out [n_seqs*T, nh*hd] from q, k, v (RoPE applied) */
    void (*attention)(lmb_qdev *d, float *out, const float *q, const float *k, const float *v, int n_seqs, int T,
                      int nh, int nkv, int hd);
    void (*silu_mul)(lmb_qdev *d, float *out, const float *gate, const float *up, int T, int F);
    void (*add)(lmb_qdev *d, float *x, const float *h, size_t n); /* x += h */
    /* x[r, c] *= s[c], or /= s[c] when divide (s on the host) */
    void (*scale_cols)(lmb_qdev *d, float *x, int rows, int cols, const float *s, bool divide);
    /* w[r, :] /= s[r] and b[r] /= s[r] (b may be NULL) */
    void (*unscale_rows)(lmb_qdev *d, float *w, float *b, int rows, int cols, const float *s);
    /* each group of `group` consecutive inputs of a row replaced by its asymmetric int4 value (int4.h) */
    void (*fake_quant)(lmb_qdev *d, float *w, int rows, int cols, int group);
    /* dst[r, c] = clamp(src[r, c], -m[r], m[r]) (m on the host; dst may be src) */
    void (*clamp_rows)(lmb_qdev *d, float *dst, size_t ld_dst, const float *src, size_t ld_src, int rows,
                       int cols, const float *m);
    /* per row: max |w[r, c]| (host out[rows]) */
    void (*row_absmax)(lmb_qdev *d, const float *w, size_t ld, int rows, int cols, float *out);
    /* per column: sum over rows of |a| (b == NULL) or of (a - b)^2 (host out[cols]) */
    void (*col_sums)(lmb_qdev *d, const float *a, const float *b, int rows, int cols, double *out);
    /* sum of (a - b)^2 */
    double (*sq_err)(lmb_qdev *d, const float *a, const float *b, size_t n);
    void (*destroy)(lmb_qdev *d);
} lmb_qdev_ops;

struct lmb_qdev {
    const lmb_qdev_ops *ops;
    bool host_memory; /* buffers are host memory (the CPU device) */
    size_t scratch_bytes; /* bound on the calibration's per-chunk scratch (whole sequences per chunk) */
    bool failed;
    lmb_error error; /* the first failure */
    void *impl;
};

typedef enum lmb_qdev_kind { LMB_QDEV_AUTO, LMB_QDEV_CPU, LMB_QDEV_CUDA } lmb_qdev_kind;

/* AUTO: the GPU when this build has CUDA and a device is present, else the CPU. */
int lmb_qdev_open(lmb_qdev **out, lmb_qdev_kind kind, int device, bool exact_fp32, lmb_error *err);
void lmb_qdev_close(lmb_qdev *d);
int lmb_qdev_cpu_open(lmb_qdev **out, lmb_error *err);
/* Fails with a clear message in a build without CUDA or without a device (qdev_nocuda.c). */
int lmb_qdev_cuda_open(lmb_qdev **out, int device, bool exact_fp32, lmb_error *err);
bool lmb_qdev_cuda_present(void);

/* Records the first failure (later ones are dropped). */
void lmb_qdev_fail(lmb_qdev *d, const char *fmt, ...) LMB_PRINTF(2, 3);
/* 0, or -1 with the recorded error copied into err. */
int lmb_qdev_status(const lmb_qdev *d, lmb_error *err);

/* A host view of n floats of a device buffer: p itself on the CPU device, else a malloc'ed copy in *tmp
 * (free it); NULL when out of memory (sticky error). */
const float *lmb_qdev_host_view(lmb_qdev *d, const float *p, size_t n, float **tmp);

#endif
