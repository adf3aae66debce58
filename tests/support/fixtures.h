/* fixtures.h — test fixtures made by code, so the suite runs on a fresh machine: tiny random model folders
 * (config.json + safetensors, single or sharded, any of the four architectures, optionally AWQ-shaped),
 * a seeded PRNG, scratch folders under /tmp, and where ../shared lives.
 *
 * Everything here is deterministic: the same spec and seed give byte-identical files.
 */
#ifndef LMB_TEST_FIXTURES_H
#define LMB_TEST_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../engine/error.h"
#include "../../engine/model.h"
#include "../../engine/tensor.h"

/* ---- PRNG: splitmix64 + Box-Muller ---------------------------------------------------------------------- */
typedef struct lmb_test_rng {
    uint64_t state;
    bool has_spare;
    double spare;
} lmb_test_rng;

void lmb_test_rng_seed(lmb_test_rng *r, uint64_t seed);
uint64_t lmb_test_rng_u64(lmb_test_rng *r);
double lmb_test_rng_uniform(lmb_test_rng *r); /* [0, 1) */
double lmb_test_rng_normal(lmb_test_rng *r);  /* mean 0, std 1 */

/* ---- tiny random models --------------------------------------------------------------------------------- */
typedef struct lmb_test_model_spec {
    lmb_arch arch;
    int hidden, layers, heads, kv_heads;
    int head_dim; /* 0: hidden / heads, not written to config.json; else written (InternLM2 needs hidden/heads) */
    int ffn, vocab;
    bool tied;       /* tie_word_embeddings: no lm_head.weight / output.weight */
    lmb_dtype dtype; /* F32, F16 or BF16, for every weight */
    uint64_t seed;
    double rope_theta;
    int max_pos;
    int shards;     /* <= 1: model.safetensors; N > 1: model-0000i-of-0000N.safetensors + index json */
    int awq_group;  /* > 0: every linear stored AWQ-style (random qweight/qzeros, small F16 scales) */
    bool attn_bias; /* Llama attention_bias (q, k, v, o) / InternLM2 bias (wqkv, wo); Qwen2 has q/k/v biases anyway */
} lmb_test_model_spec;

/* Llama-family defaults for arch: hidden 64, 2 layers, 4 heads, 2 KV heads, ffn 128, vocab 256, F32,
 * seed 1, theta 10000, max_pos 256, untied, one file (Qwen2 gets q/k/v biases, as the architecture has). */
void lmb_test_model_spec_default(lmb_test_model_spec *s, lmb_arch arch);

/* Writes DIR/config.json and the safetensors file(s) of a random model.  Linear weights ~ N(0, 0.05),
 * embeddings ~ N(0, 0.1), biases ~ N(0, 0.02), norm weights ~ 1 + N(0, 0.1); config has bos 1, eos 2. */
int lmb_test_make_model(const char *dir, const lmb_test_model_spec *spec, lmb_error *err);

/* ---- files ---------------------------------------------------------------------------------------------- */
/* mkdtemp("/tmp/lmb-test-XXXXXX") into buf (cap >= 32). */
int lmb_test_tmpdir(char *buf, size_t cap, lmb_error *err);
/* rm -r path (no-op when absent). */
int lmb_test_rmtree(const char *path, lmb_error *err);
/* DIR/NAME in one of 64 static buffers used in turn, so a call may take several such paths at once. */
char *lmb_test_join(const char *dir, const char *name);
/* Writes DIR/NAME with the given bytes (not atomic; for crafted files).  path_out (may be NULL) gets the path. */
int lmb_test_write_file(const char *dir, const char *name, const void *data, size_t n, char *path_out, size_t cap);

/* ../shared (or $LMB_TEST_SHARED) joined with rel into buf; false when that path does not exist. */
bool lmb_test_shared_path(char *buf, size_t cap, const char *rel);

/* In a Criterion test: fills `buf` with the shared path or skips the test, saying what is missing. */
#define LMB_TEST_NEED_SHARED(buf, rel)                                                                                 \
    do {                                                                                                               \
        if (!lmb_test_shared_path(buf, sizeof(buf), rel)) {                                                            \
            cr_skip_test("%s not found (../shared is absent; set LMB_TEST_SHARED to point at it)", buf);               \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

#endif
