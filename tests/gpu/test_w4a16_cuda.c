/* test_w4a16_cuda.c — the W4A16 kernels (kernels/cuda/w4a16.cu, w4a16_wgmma.cu) against the CPU reference
 * (dequantize + fp32 GEMM, kernels/cpu/w4a16.c) on random AutoAWQ-layout weights repacked into W4 rows (as the
 * backend does at load), for Llama-2-7B's shapes (4096x4096, 11008x4096, 4096x11008, the fused 12288x4096) and
 * small odd ones, M = 1..8 (gemv), 1, 5, 8, 64, 70, 300 (WMMA), 1..600 with every tile shape, forced splits and
 * forced CTA counts (wgmma, where it runs); the dequantizer bit for bit; and the CUDA backend on AWQ models:
 * AutoAWQ-layout fixtures against the CPU backend through each path, and a random-weight AWQ Llama shape end to
 * end.
 *
 * Timing harness: LMB_W4A16_TIMING=1 build/tests/gpu/test_w4a16_cuda --filter 'w4a16_cuda/timing' --jobs 1
 * prints microseconds per call of each path next to cuBLAS fp16 on the same shape. */
#include <cublas_v2.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../engine/backend_awq_cuda.h"
#include "../../engine/engine.h"
#include "../../kernels/kernels.h"
#include "../support/engine_util.h"
#include "../support/fixtures.h"
#include "gpu_util.h"

typedef struct packed {
    int N, K, G;
    int32_t *qw, *qz; /* host, AutoAWQ's layout: what the CPU reference takes */
    uint16_t *sc;
    uint32_t *d_qw, *d_z; /* device, W4 rows: what the kernels take */
    void *d_sc;
} packed;

static packed make_packed(int N, int K, int G, uint64_t seed) {
    packed p = {N, K, G};
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, seed);
    size_t nw = (size_t)K * N / 8, nz = (size_t)K / G * N / 8, ns = (size_t)K / G * N, zw = ((size_t)K / G + 7) / 8;
    p.qw = malloc(4 * nw), p.qz = malloc(4 * nz), p.sc = malloc(2 * ns);
    for (size_t i = 0; i < nw; i++) p.qw[i] = (int32_t)lmb_test_rng_u64(&rng);
    for (size_t i = 0; i < nz; i++) p.qz[i] = (int32_t)lmb_test_rng_u64(&rng);
    for (size_t i = 0; i < ns; i++) p.sc[i] = lmb_f32_to_f16((float)(0.002 + 0.01 * lmb_test_rng_uniform(&rng)));
    uint32_t *rw = malloc(4 * nw), *rz = malloc(4 * zw * N);
    uint16_t *rs = malloc(2 * ns);
    cr_assert_eq(lmb_w4_rows_from_awq(rw, rz, rs, p.qw, p.qz, p.sc, K, N, G), 0, "repack N=%d K=%d G=%d", N, K, G);
    p.d_qw = gpu_upload(rw, 4 * nw), p.d_z = gpu_upload(rz, 4 * zw * N), p.d_sc = gpu_upload(rs, 2 * ns);
    free(rw), free(rz), free(rs);
    return p;
}

static void free_packed(packed *p) {
    free(p->qw), free(p->qz), free(p->sc);
    cudaFree(p->d_qw), cudaFree(p->d_z), cudaFree(p->d_sc);
}

typedef enum { PATH_GEMV, PATH_MMA, PATH_WGMMA } path;
static const char *path_name[] = {"gemv", "mma", "wgmma"};

#define N_TICKETS 4096
/* The wgmma kernel's split-K workspace and tickets (zeroed once; the kernel leaves them zero). */
static float *d_ws;
static unsigned *d_tickets;
static size_t ws_bytes = (size_t)64 << 20;
static void wgmma_workspace(void) {
    if (d_ws) return;
    GPU_OK(cudaMalloc((void **)&d_ws, ws_bytes));
    GPU_OK(cudaMalloc((void **)&d_tickets, N_TICKETS * sizeof(unsigned)));
    GPU_OK(cudaMemset(d_tickets, 0, N_TICKETS * sizeof(unsigned)));
}

/* Runs one path for x [M, K] (wgmma: K split `splits` ways, 0 = the launcher's choice); returns y [M, N] as
 * floats (caller frees). */
static float *run_path(path pth, const packed *p, const void *d_x, int M, int splits) {
    void *d_y;
    GPU_OK(cudaMalloc(&d_y, 2 * (size_t)M * p->N));
    GPU_OK(cudaMemset(d_y, 0xff, 2 * (size_t)M * p->N)); /* poison: NaN */
    if (pth == PATH_GEMV)
        GPU_OK(lmb_cuda_w4a16_gemv(d_y, d_x, p->d_qw, p->d_z, p->d_sc, M, p->N, p->K, p->G, 0));
    else if (pth == PATH_MMA)
        GPU_OK(lmb_cuda_w4a16_mma(d_y, d_x, p->d_qw, p->d_z, p->d_sc, M, p->N, p->K, p->G, 0));
    else {
        wgmma_workspace();
        GPU_OK(lmb_cuda_w4a16_wgmma(d_y, d_x, p->d_qw, p->d_z, p->d_sc, M, p->N, p->K, p->G, splits, d_ws, ws_bytes,
                                    d_tickets, N_TICKETS, 0));
    }
    GPU_OK(cudaDeviceSynchronize());
    float *y = gpu_download16(d_y, (size_t)M * p->N, LMB_CUDA_F16);
    cudaFree(d_y);
    return y;
}

static void check_case_split(path pth, int M, int N, int K, int G, int splits) {
    packed p = make_packed(N, K, G, (uint64_t)N * 31 + K);
    float *x = gpu_rand((size_t)M * K, LMB_CUDA_F16, 1), *ref = malloc(sizeof(float) * (size_t)M * N);
    void *d_x = gpu_upload16(x, (size_t)M * K, LMB_CUDA_F16);
    lmb_cpu_w4a16_matmul(ref, x, p.qw, p.qz, p.sc, M, N, K, G);
    float *y = run_path(pth, &p, d_x, M, splits);
    double r = gpu_rel(y, ref, (size_t)M * N);
    if (!(r < 5e-3)) { /* where it goes wrong: the first mismatches and how many are not finite */
        size_t bad = 0, nonfinite = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            nonfinite += !isfinite(y[i]);
            if (fabsf(y[i] - ref[i]) > 0.05f * (fabsf(ref[i]) + 0.1f) && bad++ < 8)
                fprintf(stderr, "%s M=%d N=%d: y[%zu][%zu] = %g, want %g\n", path_name[pth], M, N, i / N, i % N, y[i],
                        ref[i]);
        }
        fprintf(stderr, "%s M=%d N=%d K=%d: %zu of %zu outputs off, %zu not finite\n", path_name[pth], M, N, K, bad,
                (size_t)M * N, nonfinite);
    }
    cr_assert_lt(r, 5e-3, "%s M=%d N=%d K=%d G=%d splits %d: relative error %g", path_name[pth], M, N, K, G, splits, r);
    if (pth != PATH_MMA) { /* fixed summation order: a second launch gives the same bits */
        float *y2 = run_path(pth, &p, d_x, M, splits);
        cr_assert_eq(memcmp(y, y2, sizeof(float) * M * N), 0, "%s M=%d N=%d K=%d splits %d is not repeatable",
                     path_name[pth], M, N, K, splits);
        free(y2);
    }
    free(y), free(x), free(ref);
    cudaFree(d_x);
    free_packed(&p);
}
static void check_case(path pth, int M, int N, int K, int G) { check_case_split(pth, M, N, K, G, 0); }

static const int shapes[][3] = {{4096, 4096, 128}, {11008, 4096, 128}, {4096, 11008, 128}, {12288, 4096, 128},
                                {40, 64, 32},      {264, 192, 64},     {136, 96, 32}};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

Test(w4a16_cuda, gemv_matches_cpu_reference) {
    gpu_require();
    int Ms[] = {1, 2, 3, 4, 5, 8};
    for (size_t s = 0; s < N_SHAPES; s++)
        for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++) {
            if (s < 4 && Ms[m] != 1 && Ms[m] != 5 && Ms[m] != 8) continue; /* the big shapes at the brief's M */
            check_case(PATH_GEMV, Ms[m], shapes[s][0], shapes[s][1], shapes[s][2]);
        }
}

/* The WMMA kernel (v6). */
Test(w4a16_cuda, mma_matches_cpu_reference) {
    gpu_require();
    int Ms[] = {1, 5, 8, 64, 70, 300};
    for (size_t s = 0; s < N_SHAPES; s++)
        for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
            check_case(PATH_MMA, Ms[m], shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* The wgmma kernel (sm_90a builds on compute capability 9.0): token tiles of 64, 128, 192 and 256 and 256-row
 * tiles (each M's own, then every shape forced), rows past N, the launcher's CTA count, forced splits of each
 * tile's K (ragged: 64 k-tiles over 3; 3 over 3) and forced CTA counts whose ranges straddle tiles (stream-K),
 * each repeatable bit for bit; the tickets are left zero. */
Test(w4a16_cuda, wgmma_matches_cpu_reference) {
    gpu_require();
    if (!lmb_cuda_w4a16_wgmma_available()) cr_skip_test("no wgmma: not an sm_90a build on a compute capability 9.0 GPU");
    int Ms[] = {1, 9, 64, 70, 130, 256, 300, 600};
    for (size_t s = 0; s < N_SHAPES; s++) {
        if (shapes[s][1] % 64 || shapes[s][2] % 64) continue;
        for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++) check_case(PATH_WGMMA, Ms[m], shapes[s][0], shapes[s][1], shapes[s][2]);
    }
    check_case_split(PATH_WGMMA, 200, 4096, 4096, 128, 3);
    check_case_split(PATH_WGMMA, 64, 264, 192, 64, 3);
    check_case_split(PATH_WGMMA, 256, 4096, 11008, 128, 1);
    /* every tile shape, whatever M would pick */
    static const int tiles[][2] = {{64, 1}, {128, 1}, {192, 1}, {256, 1}, {64, 2}, {128, 2}};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(lmb_cuda_w4a16_wgmma_shape(tiles[i][0], tiles[i][1]), 0);
        check_case_split(PATH_WGMMA, 100, 12288, 4096, 128, 0);
        check_case_split(PATH_WGMMA, 300, 264, 192, 64, 2);
    }
    cr_assert_neq(lmb_cuda_w4a16_wgmma_shape(256, 2), 0, "no 256 x 256 tile");
    lmb_cuda_w4a16_wgmma_shape(0, 0);
    /* stream-K ranges that straddle tiles: CTA counts that are not multiples of the tile count */
    static const int ctas[][4] = {{200, 12288, 4096, 132}, {300, 4096, 11008, 100}, {64, 4096, 4096, 77}, {130, 264, 192, 5}};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(lmb_cuda_w4a16_wgmma_ctas(ctas[i][3]), 0);
        check_case_split(PATH_WGMMA, ctas[i][0], ctas[i][1], ctas[i][2], 128 >> (i == 3), 0);
    }
    lmb_cuda_w4a16_wgmma_ctas(0);
    unsigned t[N_TICKETS];
    GPU_OK(cudaMemcpy(t, d_tickets, sizeof t, cudaMemcpyDeviceToHost));
    for (int i = 0; i < N_TICKETS; i++) cr_assert_eq(t[i], 0u, "ticket %d left at %u", i, t[i]);
}

/* Rows [n0, n0 + nc) as fp16 [nc, K]: the AWQ dequantization rounded to fp16, bit for bit. */
Test(w4a16_cuda, dequant_is_exact) {
    gpu_require();
    int N = 264, K = 192, G = 64, n0 = 72, nc = 120;
    packed p = make_packed(N, K, G, 5);
    float *W = malloc(sizeof(float) * N * K);
    lmb_cpu_awq_dequant(W, p.qw, p.qz, p.sc, K, N, G);
    void *d_w;
    GPU_OK(cudaMalloc(&d_w, 2 * (size_t)K * nc));
    GPU_OK(lmb_cuda_w4a16_dequant(d_w, p.d_qw, p.d_z, p.d_sc, N, K, G, n0, nc, 0));
    float *got = gpu_download16(d_w, (size_t)K * nc, LMB_CUDA_F16);
    for (int n = 0; n < nc; n++)
        for (int k = 0; k < K; k++) {
            float want = lmb_f16_to_f32(lmb_f32_to_f16(W[(size_t)(n0 + n) * K + k]));
            cr_assert_eq(got[(size_t)n * K + k], want, "[n %d, k %d]", n0 + n, k);
        }
    cr_assert_neq(lmb_cuda_w4a16_dequant(d_w, p.d_qw, p.d_z, p.d_sc, N, K, G, N - 4, 8, 0), 0, "rows past N refused");
    free(W), free(got);
    cudaFree(d_w);
    free_packed(&p);
}

/* ---- the backend ------------------------------------------------------------------------------------------ */

static char tmp[64];

static float *backend_logits_with(const char *dir, const char *backend, int embedding, const int32_t *ids, int n,
                                 int *V, lmb_engine_stats *st) {
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.backend = backend;
    cfg.embedding = embedding;
    cfg.quiet = true;
    cfg.kv_cache_mb = 64;
    lmb_engine *e;
    lmb_error err;
    cr_assert_eq(lmb_engine_open(&cfg, dir, &e, &err), 0, "%s: %s", backend, err.msg);
    *V = lmb_engine_model_config(e)->vocab;
    float *l = malloc(sizeof(float) * (size_t)n * *V);
    cr_assert_eq(lmb_engine_logits(e, ids, n, 0, l, &err), 0, "%s", err.msg);
    if (st) lmb_engine_get_stats(e, st);
    lmb_engine_close(e);
    return l;
}

static float *backend_logits(const char *dir, const char *backend, const int32_t *ids, int n, int *V) {
    return backend_logits_with(dir, backend, LMB_EMBED_AUTO, ids, n, V, NULL);
}

/* A small fp16 model (hidden 128, 4 heads over 2 KV heads, ffn 256) in tmp/name: AutoAWQ-layout linears of
 * group awq_group (0: dense), the head tied to the embedding or not; its spec in *s. */
static void small_model(char *dir, size_t cap, const char *name, lmb_arch arch, int awq_group, bool tied,
                        lmb_test_model_spec *s) {
    lmb_error err;
    lmb_test_model_spec_default(s, arch);
    s->awq_group = awq_group;
    s->tied = tied;
    s->dtype = LMB_F16;
    s->hidden = 128, s->heads = 4, s->kv_heads = 2, s->ffn = 256;
    snprintf(dir, cap, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    cr_assert_eq(lmb_test_make_model(dir, s, &err), 0, "%s", err.msg);
}

/* Prompts through AutoAWQ-layout fixtures, one per path: 5 tokens (gemv), 96 (WMMA, or wgmma where it runs and
 * the group is 64), 160 (dequant + cuBLAS on the whole linear, or wgmma), 160 in runs of 8 rows (a scratch of the
 * least size: LMB_W4A16_SCRATCH_MB is read at load), and with group 64 the WMMA and dequant paths again with the
 * wgmma kernel turned off (LMB_W4A16_WGMMA=0). */
Test(w4a16_cuda, awq_model_matches_cpu_backend_on_every_path) {
    gpu_require();
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    for (int a = 0; a < 2; a++) {
        lmb_test_model_spec s;
        char dir[128];
        small_model(dir, sizeof dir, a ? "m1" : "m0", a ? LMB_ARCH_QWEN2 : LMB_ARCH_LLAMA, a ? 64 : 32, false, &s);
        static const struct {
            int len;
            bool runs, no_wgmma;
        } cases[] = {{5, 0, 0}, {96, 0, 0}, {160, 0, 0}, {160, 1, 0}, {96, 0, 1}, {160, 0, 1}};
        for (int i = 0; i < (a ? 6 : 4); i++) {
            int32_t ids[160];
            for (int t = 0; t < cases[i].len; t++) ids[t] = (int32_t)((t * 37 + 11) % s.vocab);
            int V;
            if (cases[i].runs) setenv("LMB_W4A16_SCRATCH_MB", "0.001", 1);
            if (cases[i].no_wgmma) setenv("LMB_W4A16_WGMMA", "0", 1);
            float *cpu = backend_logits(dir, "cpu", ids, cases[i].len, &V),
                  *gpu = backend_logits(dir, "cuda", ids, cases[i].len, &V);
            unsetenv("LMB_W4A16_SCRATCH_MB"), unsetenv("LMB_W4A16_WGMMA");
            double r = gpu_rel(gpu, cpu, (size_t)cases[i].len * V);
            cr_assert_lt(r, 2e-2, "%s, %d tokens%s%s: CUDA vs CPU logits relative error %g", lmb_arch_name(s.arch),
                         cases[i].len, cases[i].runs ? " (runs of 8 rows)" : "",
                         cases[i].no_wgmma ? " (wgmma off)" : "", r);
            free(cpu), free(gpu);
        }
    }
    lmb_test_rmtree(tmp, NULL);
}

/* --embedding: the table in mapped host memory gives the same bits as on the GPU, and its bytes move from the
 * GPU's count to the host's; auto puts it in host memory for AWQ models only; a tied head refuses host. */
Test(w4a16_cuda, embedding_in_host_memory) {
    gpu_require();
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    for (int awq = 0; awq < 2; awq++) {
        lmb_test_model_spec s;
        char dir[128];
        small_model(dir, sizeof dir, awq ? "e1" : "e0", LMB_ARCH_LLAMA, awq ? 32 : 0, false, &s);
        int32_t ids[100];
        for (int t = 0; t < 100; t++) ids[t] = (int32_t)((t * 53 + 7) % s.vocab);
        for (int i = 0; i < 2; i++) { /* 3 tokens (gemv at bs1), 100 tokens (a prefill) */
            int n = i ? 100 : 3, V;
            lmb_engine_stats sg, sh, sa;
            float *g = backend_logits_with(dir, "cuda", LMB_EMBED_GPU, ids, n, &V, &sg);
            float *h = backend_logits_with(dir, "cuda", LMB_EMBED_HOST, ids, n, &V, &sh);
            float *a = backend_logits_with(dir, "cuda", LMB_EMBED_AUTO, ids, n, &V, &sa);
            cr_assert_eq(memcmp(g, h, sizeof(float) * (size_t)n * V), 0, "awq %d, %d tokens: host table differs", awq, n);
            cr_assert_eq(memcmp(g, a, sizeof(float) * (size_t)n * V), 0, "awq %d, %d tokens: auto differs", awq, n);
            size_t table = (size_t)s.vocab * s.hidden * 2;
            cr_assert_eq(sg.host_weight_bytes, 0);
            cr_assert_eq(sh.host_weight_bytes, table, "host bytes %zu, table %zu", sh.host_weight_bytes, table);
            cr_assert_eq(sh.weight_bytes + table, sg.weight_bytes, "GPU bytes %zu + %zu != %zu", sh.weight_bytes, table,
                         sg.weight_bytes);
            cr_assert_eq(sa.host_weight_bytes, awq ? table : 0, "auto: host bytes %zu", sa.host_weight_bytes);
            free(g), free(h), free(a);
        }
    }
    lmb_test_model_spec s;
    char dir[128];
    small_model(dir, sizeof dir, "tied", LMB_ARCH_LLAMA, 32, true, &s);
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.backend = "cuda";
    cfg.quiet = true;
    cfg.kv_cache_mb = 64;
    cfg.embedding = LMB_EMBED_HOST;
    lmb_engine *e = NULL;
    cr_assert_neq(lmb_engine_open(&cfg, dir, &e, &err), 0, "a tied head with --embedding host must be refused");
    cr_assert(strstr(err.msg, "ties its head"), "message: %s", err.msg);
    cfg.embedding = LMB_EMBED_AUTO;
    cr_assert_eq(lmb_engine_open(&cfg, dir, &e, &err), 0, "tied, auto: %s", err.msg);
    lmb_engine_stats st;
    lmb_engine_get_stats(e, &st);
    cr_assert_eq(st.host_weight_bytes, 0, "tied, auto keeps the table on the GPU");
    lmb_engine_close(e);
    lmb_test_rmtree(tmp, NULL);
}

Test(w4a16_cuda, random_awq_llama_runs) {
    gpu_require();
    lmb_model *m;
    lmb_error err;
    cr_assert_eq(lmb_model_random("tinyllama-1.1b", LMB_F16, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_model_random_awq(m, 128, &err), 0, "%s", err.msg);
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.backend = "cuda";
    cfg.quiet = true;
    cfg.kv_cache_mb = 256;
    lmb_engine *e;
    cr_assert_eq(lmb_engine_open_model(&cfg, m, &e, &err), 0, "%s", err.msg);
    int32_t ids[40];
    for (int t = 0; t < 40; t++) ids[t] = 1 + t * 13;
    float *l = malloc(sizeof(float) * 40 * m->cfg.vocab);
    cr_assert_eq(lmb_engine_logits(e, ids, 40, 0, l, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < (size_t)40 * m->cfg.vocab; i++) cr_assert(isfinite(l[i]), "logit %zu is %g", i, l[i]);
    lmb_engine_stats st;
    lmb_engine_get_stats(e, &st);
    /* 4-bit linears: about 0.52 bytes per linear parameter, plus the fp16 head; the embedding in host memory */
    cr_assert_lt(st.weight_bytes, (size_t)800 << 20, "weights %zu bytes", st.weight_bytes);
    cr_assert_eq(st.host_weight_bytes, (size_t)m->cfg.vocab * m->cfg.hidden * 2, "host %zu bytes", st.host_weight_bytes);
    free(l);
    lmb_engine_close(e);
    lmb_model_close(m);
}

/* ---- the batch-1 decode step kernel (w4a16_step.cu) ---------------------------------------------------------- */

/* An engine on dir (or on the open model m) with LMB_W4_STEP set to mode; NULL (test skipped) where mode "1" is
 * refused because this build or device cannot run the kernel. */
static lmb_engine *open_step(const char *dir, const lmb_model *m, const char *mode) {
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.backend = "cuda";
    cfg.quiet = true;
    cfg.kv_cache_mb = 256;
    setenv("LMB_W4_STEP", mode, 1);
    lmb_engine *e = NULL;
    lmb_error err;
    int rc = m ? lmb_engine_open_model(&cfg, m, &e, &err) : lmb_engine_open(&cfg, dir, &e, &err);
    unsetenv("LMB_W4_STEP");
    if (rc && strstr(err.msg, "cannot run") && (strstr(err.msg, "sm_90a") || strstr(err.msg, "capability")))
        cr_skip_test("the decode step kernel needs an sm_90a build on a compute capability 9.0 device: %s", err.msg);
    cr_assert_eq(rc, 0, "LMB_W4_STEP=%s: %s", mode, err.msg);
    return e;
}

/* Greedy tokens of single requests (prompts of len[i] tokens, gen[i] new ones: the step kernel runs every decode
 * step, under a CUDA graph after the first) with the kernel and with the separate kernels.  Its linears and norms
 * give the separate kernels' bits, its attention sums in another order: the tokens must agree until a near-tie
 * (the separate kernels' logits of the two tokens within 1e-3 of their range), where that request's comparison
 * stops (random-weight models meet near-ties often). */
static void step_matches_kernels(const char *what, const char *dir, const lmb_model *m, const int *len, const int *gen,
                                 int n) {
    lmb_engine *on = open_step(dir, m, "1"), *off = open_step(dir, m, "0");
    const int V = lmb_engine_model_config(off)->vocab;
    lmb_error err;
    int ties = 0;
    for (int i = 0; i < n; i++) {
        int32_t ids[LMB_TEST_MAX_GEN + 256];
        for (int t = 0; t < len[i]; t++) ids[t] = (int32_t)(1 + (t * 37 + 11 * i) % (V - 1));
        lmb_request r = {.prompt = ids, .n_prompt = (size_t)len[i]};
        lmb_test_sampling(&r.sampling, false, gen[i], i);
        lmb_test_result a, b;
        cr_assert_eq(lmb_test_run_all(on, &r, 1, &a, &err), 0, "%s", err.msg);
        cr_assert_eq(lmb_test_run_all(off, &r, 1, &b, &err), 0, "%s", err.msg);
        cr_assert_eq(a.n, gen[i], "%s request %d: %d tokens (%s)", what, i, a.n, a.message);
        for (int t = 0; t < gen[i]; t++) {
            if (a.tokens[t] == b.tokens[t]) continue;
            const int nc = len[i] + t;
            memcpy(ids + len[i], b.tokens, sizeof(int32_t) * (size_t)t);
            float *lg = malloc(sizeof(float) * (size_t)V);
            cr_assert_eq(lmb_engine_logits(off, ids, nc, nc - 1, lg, &err), 0, "%s", err.msg);
            float lo = lg[0], hi = lg[0];
            for (int v = 1; v < V; v++) lo = fminf(lo, lg[v]), hi = fmaxf(hi, lg[v]);
            const float gap = fabsf(lg[a.tokens[t]] - lg[b.tokens[t]]);
            free(lg);
            cr_assert_lt(gap, 1e-3f * (hi - lo),
                         "%s request %d step %d: step kernel %d, separate kernels %d (logit gap %g of range %g)",
                         what, i, t, a.tokens[t], b.tokens[t], gap, hi - lo);
            ties++;
            break;
        }
    }
    cr_log_info("%s: %d of %d requests stopped at a near-tie", what, ties, n);
    lmb_engine_close(on);
    lmb_engine_close(off);
}

/* Small AutoAWQ-layout fixtures (head_dim 32, 4 query heads over 2 KV heads; contexts of 1 to 3 attention splits)
 * and a random-weight TinyLlama-1.1B shape (head_dim 64, 32 over 4 heads, ffn 5632: 44 groups a down row). */
Test(w4a16_cuda, decode_step_kernel_matches_separate_kernels) {
    gpu_require();
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    lmb_test_model_spec s;
    char dir[128];
    small_model(dir, sizeof dir, "s0", LMB_ARCH_LLAMA, 32, false, &s);
    const int len[] = {3, 70, 130}, gen[] = {60, 40, 40};
    step_matches_kernels("small llama, group 32", dir, NULL, len, gen, 3);
    lmb_test_rmtree(tmp, NULL);
    lmb_model *m;
    cr_assert_eq(lmb_model_random("tinyllama-1.1b", LMB_F16, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_model_random_awq(m, 128, &err), 0, "%s", err.msg);
    const int len2[] = {40, 100}, gen2[] = {16, 16};
    step_matches_kernels("random TinyLlama-1.1B AWQ", NULL, m, len2, gen2, 2);
    lmb_model_close(m);
}

/* ---- timing -------------------------------------------------------------------------------------------------- */

static double time_us(cudaEvent_t a, cudaEvent_t b, int reps) {
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    return 1000.0 * ms / reps;
}

/* Microseconds per run of stmt, timed over reps runs between two CUDA events (e0, e1 in scope). */
#define TIME_US(reps, stmt)                                                                                          \
    ({                                                                                                               \
        cudaEventRecord(e0, 0);                                                                                      \
        for (int r_ = 0; r_ < (reps); r_++) stmt;                                                                    \
        cudaEventRecord(e1, 0);                                                                                      \
        cudaEventSynchronize(e1);                                                                                    \
        time_us(e0, e1, reps);                                                                                       \
    })

/* Columns: gemv; the WMMA kernel; the wgmma kernel (tile and CTAs as its launcher picks), with another tile
 * (256 rows at M <= 128; above, 256 tokens x 128 rows, or 192 where M picks 256), with one CTA a tile (no
 * stream-K) and with stream-K over one CTA an SM; dequantize + cuBLAS (the backend's lmb_cuda_awq_dq_gemm) on the whole
 * linear and in runs of rows that stay in L2 (24 MB, the backend's before v7); the dequantization alone; cuBLAS
 * on fp16 weights. */
Test(w4a16_cuda, timing) {
    gpu_require();
    if (!getenv("LMB_W4A16_TIMING")) cr_skip_test("set LMB_W4A16_TIMING=1 to time the W4A16 kernels");
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    int Ms[] = {1, 4, 8, 16, 32, 64, 128, 192, 256, 384, 512, 2048}, reps = 50;
    /* LMB_W4A16_TIMING_ONLY=N,K,M: that row alone (for a profiler: each column is then 50 launches in a row) */
    int only[3] = {0, 0, 0};
    const char *o = getenv("LMB_W4A16_TIMING_ONLY");
    if (o && *o && sscanf(o, "%d,%d,%d", &only[0], &only[1], &only[2]) != 3)
        cr_assert_fail("LMB_W4A16_TIMING_ONLY=%s: want N,K,M", o);
    const bool wg = lmb_cuda_w4a16_wgmma_available();
    if (wg) wgmma_workspace();
    int sms = 132;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    fprintf(stderr, "%-12s %5s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %10s %10s\n", "N x K", "M", "gemv", "wmma", "wgmma",
            "wg alt", "wg tile", "wg sms", "dq+blas", "dq 24MB", "dq only", "fp16", "gemv GB/s", "wgmma TF/s");
    for (size_t s = 0; s < 4; s++) {
        int N = shapes[s][0], K = shapes[s][1], G = shapes[s][2];
        if (only[0] && (only[0] != N || only[1] != K)) continue;
        packed p = make_packed(N, K, G, 1);
        void *d_x, *d_y, *d_w16, *d_scratch;
        GPU_OK(cudaMalloc(&d_x, 2 * (size_t)2048 * K));
        GPU_OK(cudaMalloc(&d_y, 2 * (size_t)2048 * N));
        GPU_OK(cudaMalloc(&d_w16, 2 * (size_t)N * K));
        GPU_OK(cudaMalloc(&d_scratch, 2 * (size_t)N * K));
        /* random, not zeros: an H100 compresses zero-filled lines in L2, which flatters the fp16 GEMM */
        GPU_OK(lmb_cuda_fill_uniform(d_x, (size_t)2048 * K, 1.f, 0.f, 11, LMB_CUDA_F16, 0));
        GPU_OK(lmb_cuda_fill_uniform(d_w16, (size_t)N * K, 0.02f, 0.f, 12, LMB_CUDA_F16, 0));
        int l2 = (int)(((size_t)24 << 20) / (2 * (size_t)K));
        lmb_cuda_awq_linear lin = {p.d_qw, p.d_z, p.d_sc, N, K, G};
        lmb_error err;
        const float one = 1, zero = 0;
        double t_dq_only = TIME_US(reps, lmb_cuda_w4a16_dequant(d_scratch, p.d_qw, p.d_z, p.d_sc, N, K, G, 0, N, 0));
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            int M = Ms[mi];
            if (only[0] && only[2] != M) continue;
            double t_gemv = -1;
            if (M <= 8) t_gemv = TIME_US(reps, lmb_cuda_w4a16_gemv(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 0));
            double t_mma = TIME_US(reps, lmb_cuda_w4a16_mma(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 0));
            double t_wg = -1, t_alt = -1, t_tile = -1, t_sk = -1;
            if (wg) {
                t_wg = TIME_US(reps, lmb_cuda_w4a16_wgmma(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 0, d_ws, ws_bytes,
                                                          d_tickets, N_TICKETS, 0));
                /* the other tile: 256 rows for M <= 128; above, 256 tokens, or 192 where M picks 256 */
                const bool picks256 = (M + 255) / 256 * 256 <= (M + 191) / 192 * 192 && (M + 255) / 256 * 256 <= (M + 127) / 128 * 128;
                lmb_cuda_w4a16_wgmma_shape(M <= 64 ? 64 : M <= 128 ? 128 : picks256 ? 192 : 256, M <= 128 ? 2 : 1);
                t_alt = TIME_US(reps, lmb_cuda_w4a16_wgmma(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 0, d_ws, ws_bytes,
                                                           d_tickets, N_TICKETS, 0));
                lmb_cuda_w4a16_wgmma_shape(0, 0);
                t_tile = TIME_US(reps, lmb_cuda_w4a16_wgmma(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 1, d_ws, ws_bytes,
                                                            d_tickets, N_TICKETS, 0));
                lmb_cuda_w4a16_wgmma_ctas(sms); /* stream-K over one CTA an SM */
                if (lmb_cuda_w4a16_wgmma(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 0, d_ws, ws_bytes, d_tickets,
                                         N_TICKETS, 0) == 0)
                    t_sk = TIME_US(reps, lmb_cuda_w4a16_wgmma(d_y, d_x, p.d_qw, p.d_z, p.d_sc, M, N, K, G, 0, d_ws,
                                                              ws_bytes, d_tickets, N_TICKETS, 0));
                lmb_cuda_w4a16_wgmma_ctas(0);
            }
            double t_whole = TIME_US(reps, lmb_cuda_awq_dq_gemm(h, 0, d_scratch, N, &lin, d_x, d_y, M, &err));
            double t_l2 = TIME_US(reps, lmb_cuda_awq_dq_gemm(h, 0, d_scratch, l2, &lin, d_x, d_y, M, &err));
            double t_fp16 = TIME_US(reps, cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, d_w16, CUDA_R_16F, K,
                                                       d_x, CUDA_R_16F, K, &zero, d_y, CUDA_R_16F, N,
                                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%d", N, K);
            double bytes = (double)K * N / 2 + (double)K / G * N * 2.5;
            fprintf(stderr, "%-12s %5d %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %10.0f %10.0f\n", shape, M,
                    t_gemv, t_mma, t_wg, t_alt, t_tile, t_sk, t_whole, t_l2, t_dq_only, t_fp16, t_gemv > 0 ? bytes / t_gemv / 1e3 : 0.0,
                    t_wg > 0 ? 2.0 * M * N * K / t_wg / 1e6 : 0.0);
        }
        cudaFree(d_x), cudaFree(d_y), cudaFree(d_w16), cudaFree(d_scratch);
        free_packed(&p);
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cublasDestroy(h);
}
