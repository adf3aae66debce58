/* test_inspect.c — `lmbatch inspect` run as a user would: the binary named by $LMB_BIN (set by `make test`),
 * on ../shared/models/tiny-qwen2 (skipped when absent) and on fixture models, in text and --json form, plus
 * its exit codes for a bad folder and bad usage.
 *
 * Expected tiny-qwen2 numbers: 2,187,072 parameters = its 4,374,144 bytes of F16 tensors / 2 (Python:
 * sum(t.numel() for t in load_file(...).values())); KV per token 2 x 3 layers x 2 heads x 16 x 2 B = 384 B.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../engine/fileio.h"
#include "support/fixtures.h"

static char tmp[64];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(inspect, .init = setup, .fini = teardown);

static const char *bin(void) {
    const char *b = getenv("LMB_BIN");
    if (b && *b) return b;
    return lmb_file_exists("build/lmbatch") ? "build/lmbatch" : NULL;
}

#define NEED_BIN()                                                                                                     \
    do {                                                                                                               \
        if (!bin()) cr_skip_test("LMB_BIN is not set and build/lmbatch is absent");                                    \
    } while (0)

/* Runs `lmbatch inspect ARGS`; returns the exit code, stdout in *out (caller frees), stderr in *errout. */
static int run(const char *args, char **out, char **errout) {
    char cmd[8192], o[4096], e[4096];
    lmb_path_join(o, sizeof o, tmp, "stdout.txt", NULL);
    lmb_path_join(e, sizeof e, tmp, "stderr.txt", NULL);
    snprintf(cmd, sizeof cmd, "'%s' inspect %s >'%s' 2>'%s'", bin(), args, o, e);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "could not run %s", cmd);
    size_t n;
    lmb_error err;
    cr_assert_eq(lmb_file_read_all(o, out, &n, &err), 0, "%s", err.msg);
    char *ebuf;
    cr_assert_eq(lmb_file_read_all(e, &ebuf, &n, &err), 0, "%s", err.msg);
    if (errout)
        *errout = ebuf;
    else
        free(ebuf);
    return WEXITSTATUS(st);
}

/* The value printed after `key` (the text output is "key<padding to 19 columns>value"). */
static const char *field(const char *text, const char *key, char *buf, size_t cap) {
    const char *p = text;
    size_t kl = strlen(key);
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 19 && strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            const char *v = p + kl;
            while (*v == ' ') v++;
            snprintf(buf, cap, "%.*s", (int)(len - (size_t)(v - p)), v);
            return buf;
        }
        p = eol ? eol + 1 : NULL;
    }
    cr_assert_fail("no \"%s\" line in:\n%s", key, text);
    return NULL;
}

#define EXPECT_FIELD(text, key, want)                                                                                  \
    do {                                                                                                               \
        char b_[512];                                                                                                  \
        cr_assert_str_eq(field(text, key, b_, sizeof b_), want, "field %s", key);                                      \
    } while (0)

Test(inspect, shared_tiny_qwen2_text) {
    char dir[4096];
    NEED_BIN();
    LMB_TEST_NEED_SHARED(dir, "models/tiny-qwen2");
    char args[4200], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    cr_assert_eq(run(args, &out, NULL), 0);
    EXPECT_FIELD(out, "architecture", "Qwen2ForCausalLM (qwen2)");
    EXPECT_FIELD(out, "hidden", "64");
    EXPECT_FIELD(out, "layers", "3");
    EXPECT_FIELD(out, "heads", "4");
    EXPECT_FIELD(out, "kv_heads", "2");
    EXPECT_FIELD(out, "head_dim", "16");
    EXPECT_FIELD(out, "ffn", "176");
    EXPECT_FIELD(out, "vocab", "32000");
    EXPECT_FIELD(out, "max_pos", "1024");
    EXPECT_FIELD(out, "rms_eps", "1e-06");
    EXPECT_FIELD(out, "tied_embeddings", "yes");
    EXPECT_FIELD(out, "bias", "qkv yes, o no, mlp no");
    EXPECT_FIELD(out, "rope", "default, theta 1000000");
    EXPECT_FIELD(out, "dtype", "F16");
    EXPECT_FIELD(out, "bos", "1");
    EXPECT_FIELD(out, "eos", "2");
    EXPECT_FIELD(out, "quantization", "none");
    EXPECT_FIELD(out, "parameters", "2187072 (2.19 M)");
    EXPECT_FIELD(out, "weights F16", "4374144 bytes (4.17 MiB)");
    EXPECT_FIELD(out, "weights total", "4374144 bytes (4.17 MiB)");
    EXPECT_FIELD(out, "kv/token fp16", "384 bytes, 2796202 tokens per GiB");
    EXPECT_FIELD(out, "kv/token int8", "240 bytes, 4473924 tokens per GiB");
    EXPECT_FIELD(out, "kv/token int4", "144 bytes, 7456540 tokens per GiB");
    free(out);
}

static json_t *run_json(const char *args) {
    char *out;
    cr_assert_eq(run(args, &out, NULL), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert(j && json_is_object(j), "not a JSON object (%s): %s", je.text, out);
    free(out);
    return j;
}

static long long jint(const json_t *o, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *v = o;
    for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, ".")) v = json_object_get(v, k);
    cr_assert(json_is_integer(v), "%s is not an integer", path);
    return (long long)json_integer_value(v);
}

static const char *jstr(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

Test(inspect, shared_tiny_qwen2_json) {
    char dir[4096];
    NEED_BIN();
    LMB_TEST_NEED_SHARED(dir, "models/tiny-qwen2");
    char args[4200];
    snprintf(args, sizeof args, "--json '%s'", dir);
    json_t *j = run_json(args);
    cr_assert_str_eq(jstr(j, "architecture"), "Qwen2ForCausalLM");
    cr_assert_str_eq(jstr(j, "arch"), "qwen2");
    cr_assert_str_eq(jstr(j, "dtype"), "F16");
    cr_assert_eq(jint(j, "hidden"), 64);
    cr_assert_eq(jint(j, "layers"), 3);
    cr_assert_eq(jint(j, "kv_heads"), 2);
    cr_assert_eq(jint(j, "head_dim"), 16);
    cr_assert_eq(jint(j, "vocab"), 32000);
    cr_assert_eq(jint(j, "bos"), 1);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(j, "eos"), 0)), 2);
    cr_assert(json_is_true(json_object_get(j, "tied_embeddings")));
    cr_assert(json_is_true(json_object_get(j, "qkv_bias")));
    cr_assert(json_is_null(json_object_get(j, "quantization")));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "rope"), "type")), "default");
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(j, "rope"), "theta")), 1e6, 1e-6);
    cr_assert_eq(jint(j, "params"), 2187072);
    cr_assert_eq(jint(j, "weight_bytes.F16"), 4374144);
    cr_assert_eq(jint(j, "weight_bytes_total"), 4374144);
    cr_assert_eq(jint(j, "kv_bytes_per_token.fp16"), 384);
    cr_assert_eq(jint(j, "kv_bytes_per_token.int8"), 240);
    cr_assert_eq(jint(j, "kv_bytes_per_token.int4"), 144);
    cr_assert_eq(jint(j, "kv_tokens_per_gib.fp16"), 2796202);
    cr_assert_eq(jint(j, "kv_tokens_per_gib.int4"), 7456540);
    json_decref(j);
}

Test(inspect, fixture_internlm2_sharded) {
    NEED_BIN();
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_INTERNLM2);
    s.dtype = LMB_BF16;
    s.layers = 3;
    s.heads = 8;
    s.kv_heads = 2; /* head_dim 8 */
    s.ffn = 96;
    s.vocab = 300;
    s.rope_theta = 500000.0;
    s.max_pos = 4096;
    s.shards = 2;
    char dir[4096];
    lmb_error err;
    lmb_path_join(dir, sizeof dir, tmp, "il", NULL);
    mkdir(dir, 0755);
    cr_assert_eq(lmb_test_make_model(dir, &s, &err), 0, "%s", err.msg);
    /* params: 2 x 300 x 64 (embed, output) + 64 (norm) + 3 x (2x64 + 64x(64+2x16) + 64x64 + 3x64x96) */
    long long params = 2LL * 300 * 64 + 64 + 3LL * (2 * 64 + 64 * (64 + 32) + 64 * 64 + 3 * 64 * 96);
    long long kv16 = 2LL * 3 * 2 * 8 * 2, kv8 = kv16 / 2 + 3 * 2 * 8, kv4 = kv16 / 4 + 3 * 2 * 8;
    char *out, want[128];
    cr_assert_eq(run(dir, &out, NULL), 0);
    EXPECT_FIELD(out, "architecture", "InternLM2ForCausalLM (internlm2)");
    EXPECT_FIELD(out, "head_dim", "8");
    EXPECT_FIELD(out, "max_pos", "4096");
    EXPECT_FIELD(out, "rope", "default, theta 500000");
    EXPECT_FIELD(out, "dtype", "BF16");
    EXPECT_FIELD(out, "tied_embeddings", "no");
    snprintf(want, sizeof want, "%lld (%.2f M)", params, params / 1e6);
    EXPECT_FIELD(out, "parameters", want);
    snprintf(want, sizeof want, "%lld bytes (%.2f MiB)", 2 * params, 2 * params / 1048576.0);
    EXPECT_FIELD(out, "weights BF16", want);
    snprintf(want, sizeof want, "%lld bytes, %lld tokens per GiB", kv16, (1LL << 30) / kv16);
    EXPECT_FIELD(out, "kv/token fp16", want);
    free(out);
    char args[4200];
    snprintf(args, sizeof args, "'%s' --json", dir);
    json_t *j = run_json(args);
    cr_assert_eq(jint(j, "params"), params);
    cr_assert_eq(jint(j, "weight_bytes.BF16"), 2 * params);
    cr_assert_eq(jint(j, "weight_bytes_total"), 2 * params);
    cr_assert_eq(jint(j, "kv_bytes_per_token.fp16"), kv16);
    cr_assert_eq(jint(j, "kv_bytes_per_token.int8"), kv8);
    cr_assert_eq(jint(j, "kv_bytes_per_token.int4"), kv4);
    cr_assert_eq(jint(j, "kv_tokens_per_gib.int8"), (1LL << 30) / kv8);
    json_decref(j);
}

Test(inspect, fixture_awq_reports_int32_and_f16_bytes) {
    NEED_BIN();
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.dtype = LMB_F16;
    s.awq_group = 32;
    lmb_error err;
    cr_assert_eq(lmb_test_make_model(tmp, &s, &err), 0, "%s", err.msg);
    char args[4200];
    snprintf(args, sizeof args, "--json %s", tmp);
    json_t *j = run_json(args);
    const json_t *q = json_object_get(j, "quantization");
    cr_assert_str_eq(json_string_value(json_object_get(q, "method")), "awq");
    cr_assert_eq(jint(j, "quantization.bits"), 4);
    cr_assert_eq(jint(j, "quantization.group_size"), 32);
    /* per layer: linears hold 64x(64+32+32+64) + 2x64x128 + 128x64 = 36864 weights -> /2 bytes packed I32,
     * scales F16: (64/32)x(64+32+32+64+128+128) + (128/32)x64 = 1152 values; qzeros I32: those / 8 x 4 B */
    long long i32 = 2 * (36864 / 2 + 1152 / 2), f16 = 2LL * (2 * 256 * 64 + 64 + 2 * (2 * 64 + 1152));
    cr_assert_eq(jint(j, "weight_bytes.I32"), i32);
    cr_assert_eq(jint(j, "weight_bytes.F16"), f16);
    cr_assert_eq(jint(j, "weight_bytes_total"), i32 + f16);
    json_decref(j);
}

Test(inspect, bad_folder_and_usage) {
    NEED_BIN();
    char *out, *errs;
    char args[4200];
    snprintf(args, sizeof args, "'%s'", tmp);
    cr_assert_eq(run(args, &out, &errs), 4);
    cr_assert(strstr(errs, "lmbatch inspect: ") && strstr(errs, tmp) && strstr(errs, "config.json"), "%s", errs);
    cr_assert_str_eq(out, "");
    free(out);
    free(errs);
    cr_assert_eq(run("", &out, &errs), 2);
    cr_assert(strstr(errs, "usage: lmbatch inspect MODEL_DIR"), "%s", errs);
    free(out);
    free(errs);
    cr_assert_eq(run("--bogus x", &out, &errs), 2);
    cr_assert(strstr(errs, "--bogus"), "%s", errs);
    free(out);
    free(errs);
    cr_assert_eq(run("--help", &out, &errs), 0);
    free(out);
    free(errs);
}
