/* backend_cuda_prof.c — where a CUDA step's time goes, by operation (LMB_PROFILE=1).
 *
 * With the variable set, graphs are off and each operation of the forward is preceded by a CUDA event; after
 * the step's synchronisation the gaps between consecutive events are added to the operation that started
 * them, separately for decode-only steps and steps with prefill.  The table goes to stderr when the backend
 * closes.  The events serialise nothing, but without graphs launch gaps show up in the figures: read them as
 * shares, and take end-to-end speed from a run without LMB_PROFILE. */
#include <stdio.h>
#include <stdlib.h>

#include "backend_cuda_impl.h"

#define PROF_MAX 4096

static const char *names[LMB_PROF_N] = {"embed",       "norm",   "qkv gemm",  "bias",      "rope+kv write",
                                        "attn prefill", "attn decode", "o gemm", "gate/up gemm", "silu*mul",
                                        "down gemm",   "head gemm", "sampling", "copies"};

typedef struct cuda_prof {
    cudaEvent_t ev[PROF_MAX];
    int cat[PROF_MAX];
    int n;
    double ms[2][LMB_PROF_N];
    long steps[2], tokens[2];
} cuda_prof;

int lmb_cuda_prof_init(cuda_backend *c, lmb_error *err) {
    const char *e = getenv("LMB_PROFILE");
    if (!e || !*e || *e == '0') return 0;
    cuda_prof *p = calloc(1, sizeof *p);
    if (!p) return lmb_fail(err, "out of memory");
    for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventCreate(&p->ev[i]));
    c->prof = p;
    return 0;
}

void lmb_cuda_prof_mark(cuda_backend *c, int cat) {
    cuda_prof *p = c->prof;
    if (!p || p->n >= PROF_MAX) return;
    cudaEventRecord(p->ev[p->n], c->stream);
    p->cat[p->n++] = cat;
}

void lmb_cuda_prof_step(cuda_backend *c, bool prefill, int tokens) {
    cuda_prof *p = c->prof;
    if (!p) return;
    lmb_cuda_prof_mark(c, -1);
    cudaEventSynchronize(p->ev[p->n - 1]);
    for (int i = 0; i + 1 < p->n; i++) {
        float ms = 0;
        if (p->cat[i] >= 0 && cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]) == cudaSuccess)
            p->ms[prefill][p->cat[i]] += ms;
    }
    p->steps[prefill]++;
    p->tokens[prefill] += tokens;
    p->n = 0;
}

void lmb_cuda_prof_report(cuda_backend *c) {
    cuda_prof *p = c->prof;
    if (!p) return;
    static const char *kind[2] = {"decode-only steps", "steps with prefill"};
    for (int k = 0; k < 2; k++) {
        if (!p->steps[k]) continue;
        double total = 0;
        for (int i = 0; i < LMB_PROF_N; i++) total += p->ms[k][i];
        fprintf(stderr, "lmbatch profile: %s: %ld steps, %ld tokens, %.1f ms (%.3f ms/step)\n", kind[k], p->steps[k],
                p->tokens[k], total, total / (double)p->steps[k]);
        for (int i = 0; i < LMB_PROF_N; i++)
            if (p->ms[k][i] > 0)
                fprintf(stderr, "  %-14s %9.1f ms %5.1f%% %8.3f ms/step\n", names[i], p->ms[k][i],
                        100 * p->ms[k][i] / total, p->ms[k][i] / (double)p->steps[k]);
    }
    for (int i = 0; i < PROF_MAX; i++) cudaEventDestroy(p->ev[i]);
    free(p);
    c->prof = NULL;
}
