/* backend_cuda_gemm.c — the CUDA backend's GEMMs: y[M,N] = x[M,K] W[N,K]^T (row-major, W as stored by HF).
 *
 * Three paths, chosen per call:
 *   - M <= 8: our GEMV (kernels/cuda/gemv.cu), which streams the weights once near the memory bandwidth;
 *   - otherwise cuBLASLt with an algorithm chosen once per shape (M, N, K, output type): the heuristic's best
 *     LMB_GEMM_CANDIDATES are each timed with CUDA events on the call's own buffers and the fastest kept.
 *     Tuning happens on the first eager call of a shape (the decode graphs are captured after one eager step
 *     of their batch size, so they replay tuned algorithms); shapes first met during a capture, and prefill
 *     shapes other than the full token budget, take the heuristic's first choice untimed;
 *   - --batch-invariant: plain cublasGemmEx for every M (one kernel family for every batch size).
 * LMB_NO_GEMV=1 / LMB_NO_GEMM_TUNE=1 turn the first two off, to compare versions. */
#include <stdlib.h>
#include <string.h>

#include "backend_cuda_impl.h"

#define LMB_GEMM_CANDIDATES 8
#define LMB_GEMM_PLANS 256

typedef struct gemm_plan {
    int M, N, K, f32;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

typedef struct cuda_gemm {
    cublasLtHandle_t lt;
    gemm_plan plans[LMB_GEMM_PLANS];
    int n_plans;
    bool tune;
    cudaEvent_t e0, e1;
} cuda_gemm;

#define LT_CHECK(call)                                                                                          \
    do {                                                                                                        \
        cublasStatus_t st_ = (call);                                                                            \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                       \
            return lmb_fail(err, "%s:%d: %s failed: cuBLAS status %d", __FILE__, __LINE__, #call, (int)st_);   \
    } while (0)

int lmb_cuda_gemm_init(cuda_backend *c, lmb_error *err) {
    cuda_gemm *g = calloc(1, sizeof *g);
    if (!g) return lmb_fail(err, "out of memory");
    c->gemm = g;
    LT_CHECK(cublasLtCreate(&g->lt));
    CUDA_CHECK(cudaEventCreate(&g->e0));
    CUDA_CHECK(cudaEventCreate(&g->e1));
    g->tune = !getenv("LMB_NO_GEMM_TUNE");
    return 0;
}

void lmb_cuda_gemm_free(cuda_backend *c) {
    cuda_gemm *g = c->gemm;
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) {
        gemm_plan *p = &g->plans[i];
        cublasLtMatrixLayoutDestroy(p->a), cublasLtMatrixLayoutDestroy(p->b), cublasLtMatrixLayoutDestroy(p->c);
        cublasLtMatmulDescDestroy(p->op);
    }
    if (g->e0) cudaEventDestroy(g->e0);
    if (g->e1) cudaEventDestroy(g->e1);
    if (g->lt) cublasLtDestroy(g->lt);
    free(g);
    c->gemm = NULL;
}

static int lt_run(cuda_backend *c, gemm_plan *p, const cublasLtMatmulAlgo_t *algo, const void *x, const void *w,
                  void *y, lmb_error *err) {
    const float one = 1.f, zero = 0.f;
    LT_CHECK(cublasLtMatmul(c->gemm->lt, p->op, &one, w, p->a, x, p->b, &zero, y, p->c, y, p->c, algo, c->blas_ws,
                            c->blas_ws_bytes, c->stream));
    return 0;
}

/* Builds the plan of a shape: descriptors, then the algorithm (timed when allowed). */
static int make_plan(cuda_backend *c, gemm_plan *p, const void *x, const void *w, void *y, bool timed, lmb_error *err) {
    cuda_gemm *g = c->gemm;
    cudaDataType t = c->dt == LMB_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_16F, to = p->f32 ? CUDA_R_32F : t;
    /* column-major view: y^T[N,M] = op(W^T)[N,K] x^T[K,M], W stored K x N (ld K) transposed */
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, t, (uint64_t)p->K, (uint64_t)p->N, p->K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, t, (uint64_t)p->K, (uint64_t)p->M, p->K));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->c, to, (uint64_t)p->N, (uint64_t)p->M, p->N));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = c->blas_ws_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res[LMB_GEMM_CANDIDATES];
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c, pref,
                                                       timed ? LMB_GEMM_CANDIDATES : 1, res, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || n == 0)
        return lmb_fail(err, "cuBLASLt has no algorithm for %d x %d x %d (status %d)", p->M, p->N, p->K, (int)st);
    int best = 0;
    if (timed && n > 1) {
        float best_ms = 1e30f;
        for (int i = 0; i < n; i++) {
            if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
            if (lt_run(c, p, &res[i].algo, x, w, y, err)) return -1; /* warm-up */
            CUDA_CHECK(cudaEventRecord(g->e0, c->stream));
            for (int r = 0; r < 5; r++)
                if (lt_run(c, p, &res[i].algo, x, w, y, err)) return -1;
            CUDA_CHECK(cudaEventRecord(g->e1, c->stream));
            CUDA_CHECK(cudaEventSynchronize(g->e1));
            float ms;
            CUDA_CHECK(cudaEventElapsedTime(&ms, g->e0, g->e1));
            if (ms < best_ms) best_ms = ms, best = i;
        }
    }
    p->algo = res[best].algo;
    return 0;
}

int lmb_cuda_gemm(cuda_backend *c, const void *x, const void *w, void *y, int M, int N, int K, bool f32_out,
                  lmb_error *err) {
    if (c->use_gemv && lmb_cuda_gemv_supported(M, N, K)) {
        CUDA_CHECK(lmb_cuda_gemv(y, f32_out, x, w, M, N, K, c->dt, (lmb_stream)c->stream));
        return 0;
    }
    cuda_gemm *g = c->gemm;
    if (g && !c->batch_invariant) {
        for (int i = 0; i < g->n_plans; i++) {
            gemm_plan *p = &g->plans[i];
            if (p->M == M && p->N == N && p->K == K && p->f32 == (int)f32_out) return lt_run(c, p, &p->algo, x, w, y, err);
        }
        if (g->n_plans < LMB_GEMM_PLANS) {
            enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
            CUDA_CHECK(cudaStreamIsCapturing(c->stream, &cs));
            bool timed = g->tune && cs == cudaStreamCaptureStatusNone && (M <= 512 || M == c->cap_t);
            gemm_plan *p = &g->plans[g->n_plans];
            memset(p, 0, sizeof *p);
            p->M = M, p->N = N, p->K = K, p->f32 = f32_out;
            if (make_plan(c, p, x, w, y, timed, err)) return lmb_error_prefix(err, "GEMM %d x %d x %d", M, N, K);
            g->n_plans++;
            return lt_run(c, p, &p->algo, x, w, y, err);
        }
    }
    const float one = 1.f, zero = 0.f;
    cudaDataType t = c->dt == LMB_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    /* row-major y[M,N] = x[M,K] w[N,K]^T  ==  column-major y^T = w^T(op T) x^T */
    CUBLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, t, K, x, t, K, &zero, y,
                              f32_out ? CUDA_R_32F : t, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}
