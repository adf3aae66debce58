/* test_kv_params.c — offline KV-cache scales (quantize/kv_params.c, quantize/kv_calibrate.c): the derivation
 * (asymmetric and symmetric), the params file's bit-exact round trip and its error messages, the conversion to
 * the engine's table (zero = zp - 2^(b-1) scale, fp16-rounded, shapes checked against the model), calibration of
 * a fixture model through the engine's tap (its ranges cover what the cache stores), and the calibration text
 * loader (plain and JSONL; needs ../shared's tokenizer).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "../engine/fileio.h"
#include "../engine/tensor.h"
#include "../quantize/kv_calibrate.h"
#include "../quantize/kv_params.h"
#include "support/fixtures.h"

static char tmp[64];
static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}
static void teardown(void) { lmb_test_rmtree(tmp, NULL); }
TestSuite(kv_params, .init = setup, .fini = teardown);

static void random_params(lmb_kv_params *p, int L, int H, bool sym, uint64_t seed) {
    lmb_error err;
    cr_assert_eq(lmb_kv_params_init(p, L, H, 64, &err), 0, "%s", err.msg);
    lmb_test_rng r;
    lmb_test_rng_seed(&r, seed);
    for (int kv = 0; kv < 2; kv++)
        for (int i = 0; i < L * H; i++) {
            p->min[kv][i] = (float)(-lmb_test_rng_uniform(&r) * 10 + 1);
            p->max[kv][i] = p->min[kv][i] + (float)(lmb_test_rng_uniform(&r) * 20);
        }
    p->min[1][0] = INFINITY, p->max[1][0] = -INFINITY; /* a head that saw nothing */
    p->symmetric = sym;
    lmb_kv_params_derive(p);
    snprintf(p->model, sizeof p->model, "dir with \"quotes\"");
    p->calib_seqs = 3, p->calib_seqlen = 100, p->calib_tokens = 300;
}

Test(kv_params, derive_follows_the_file_convention) {
    lmb_kv_params p;
    random_params(&p, 2, 3, false, 1);
    for (int kv = 0; kv < 2; kv++)
        for (int i = 0; i < 6; i++) {
            float mn = p.min[kv][i], mx = p.max[kv][i];
            if (!(mn <= mx)) {
                cr_assert(p.scale[0][kv][i] == 0 && p.zp[0][kv][i] == 0);
                continue;
            }
            cr_assert_float_eq(p.scale[LMB_KVP_INT8][kv][i], (mx - mn) / 255, 1e-6);
            cr_assert_float_eq(p.scale[LMB_KVP_INT4][kv][i], (mx - mn) / 15, 1e-6);
            cr_assert_float_eq(p.zp[LMB_KVP_INT8][kv][i], (mn + mx) / 2, 1e-6);
        }
    lmb_kv_params_free(&p);
    random_params(&p, 2, 3, true, 1);
    float am = fmaxf(fabsf(p.min[0][4]), fabsf(p.max[0][4]));
    cr_assert_float_eq(p.scale[LMB_KVP_INT8][0][4], am / 127, 1e-6);
    cr_assert_float_eq(p.scale[LMB_KVP_INT4][0][4], am / 7, 1e-6);
    cr_assert_eq(p.zp[LMB_KVP_INT8][0][4], 0.f);
    lmb_kv_params_free(&p);
}

static void same_array(const float *a, const float *b, int n, const char *what) {
    for (int i = 0; i < n; i++)
        cr_assert(memcmp(&a[i], &b[i], sizeof(float)) == 0 || (isinf(a[i]) && isinf(b[i]) && a[i] == b[i]),
                  "%s[%d]: %.9g != %.9g", what, i, a[i], b[i]);
}

Test(kv_params, file_round_trip_is_bit_exact) {
    for (int sym = 0; sym < 2; sym++) {
        lmb_kv_params p, q;
        random_params(&p, 3, 2, sym, 10 + (uint64_t)sym);
        char path[256];
        lmb_error err;
        lmb_path_join(path, sizeof path, tmp, "params.json", NULL);
        cr_assert_eq(lmb_kv_params_save(&p, path, &err), 0, "%s", err.msg);
        cr_assert_eq(lmb_kv_params_load(path, &q, &err), 0, "%s", err.msg);
        cr_assert(q.n_layers == 3 && q.n_kv_heads == 2 && q.head_dim == 64 && q.symmetric == (bool)sym);
        cr_assert_str_eq(q.model, p.model);
        cr_assert(q.calib_seqs == 3 && q.calib_seqlen == 100 && q.calib_tokens == 300);
        for (int kv = 0; kv < 2; kv++) {
            same_array(p.min[kv], q.min[kv], 6, "min");
            same_array(p.max[kv], q.max[kv], 6, "max");
            for (int b = 0; b < 2; b++) {
                same_array(p.scale[b][kv], q.scale[b][kv], 6, "scale");
                same_array(p.zp[b][kv], q.zp[b][kv], 6, "zp");
            }
        }
        lmb_kv_params_free(&p);
        lmb_kv_params_free(&q);
    }
}

static void expect_load_error(const char *text, const char *want) {
    char path[256];
    lmb_error err;
    lmb_test_write_file(tmp, "bad.json", text, strlen(text), path, sizeof path);
    lmb_kv_params p;
    cr_assert_neq(lmb_kv_params_load(path, &p, &err), 0, "accepted: %s", text);
    cr_assert(strstr(err.msg, want) && strstr(err.msg, "bad.json"), "message \"%s\" lacks \"%s\"", err.msg, want);
}

Test(kv_params, bad_files_are_errors_naming_the_field) {
    expect_load_error("{", "not valid JSON");
    expect_load_error("{\"format\": \"something\"}", "\"format\"");
    expect_load_error("{\"format\": \"lmbatch-kv-params\", \"version\": 2}", "\"version\"");
    expect_load_error("{\"format\": \"lmbatch-kv-params\", \"version\": 1, \"layers\": 0}", "\"layers\"");
    const char *head = "{\"format\": \"lmbatch-kv-params\", \"version\": 1, \"layers\": 1, \"kv_heads\": 2, "
                       "\"head_dim\": 8, ";
    const char *mm = "\"k_min\": [[0, 0]], \"k_max\": [[1, 1]], \"v_min\": [[0, 0]], \"v_max\": [[1, 1]], ";
    char buf[2048];
    snprintf(buf, sizeof buf, "%s\"k_min\": [[0]]}", head);
    expect_load_error(buf, "\"k_min\"[0] must be an array of 2 KV heads");
    snprintf(buf, sizeof buf, "%s%s\"int8\": 5}", head, mm);
    expect_load_error(buf, "\"int8\"");
    snprintf(buf, sizeof buf,
             "%s%s\"int8\": {\"k_scale\": [[1, -1]], \"k_zp\": [[0, 0]], \"v_scale\": [[1, 1]], \"v_zp\": [[0, 0]]}}", head,
             mm);
    expect_load_error(buf, "int8.\"k_scale\"[0][1] must be a finite number >= 0");
    snprintf(buf, sizeof buf,
             "%s%s\"int8\": {\"k_scale\": [[1, 1]], \"k_zp\": [[0, \"x\"]], \"v_scale\": [[1, 1]], \"v_zp\": [[0, 0]]}}",
             head, mm);
    expect_load_error(buf, "int8.\"k_zp\"[0][1]");
}

Test(kv_params, engine_table_shifts_the_zero_point_and_checks_the_model) {
    lmb_kv_params p;
    random_params(&p, 2, 2, false, 3);
    lmb_model_config c = {.n_layers = 2, .n_kv_heads = 2, .head_dim = 64};
    float *t;
    lmb_error err;
    for (int bits = 8; bits >= 4; bits -= 4) {
        cr_assert_eq(lmb_kv_params_fixed(&p, &c, bits, &t, &err), 0, "%s", err.msg);
        int b = bits == 8 ? LMB_KVP_INT8 : LMB_KVP_INT4;
        for (int l = 0; l < 2; l++)
            for (int kv = 0; kv < 2; kv++)
                for (int h = 0; h < 2; h++) {
                    size_t i = (size_t)l * 2 + h;
                    const float *e = t + ((l * 2 + kv) * 2 + h) * 2;
                    /* scale rounded to fp16, then zero = zp - 2^(b-1) scale from the rounded scale, rounded */
                    float s = p.scale[b][kv][i], z = p.zp[b][kv][i] - (float)(1 << (bits - 1)) * e[0];
                    cr_assert_float_eq(e[0], s, fabsf(s) / 2048 + 1e-7f);
                    cr_assert_float_eq(e[1], z, fabsf(z) / 2048 + 1e-7f);
                    /* fp16-representable, as the cache stores them */
                    cr_assert_eq(e[0], lmb_f16_to_f32(lmb_f32_to_f16(e[0])));
                    cr_assert_eq(e[1], lmb_f16_to_f32(lmb_f32_to_f16(e[1])));
                    if (p.min[kv][i] <= p.max[kv][i]) { /* the range maps onto codes 0 .. 2^b - 1 */
                        float lo = (p.min[kv][i] - e[1]) / e[0], hi = (p.max[kv][i] - e[1]) / e[0];
                        cr_assert(lo > -1.f && hi < (float)(1 << bits), "codes %g .. %g", lo, hi);
                    }
                }
        free(t);
    }
    c.n_kv_heads = 4;
    cr_assert_neq(lmb_kv_params_fixed(&p, &c, 8, &t, &err), 0);
    cr_assert(strstr(err.msg, "2 layers x 2 KV heads") && strstr(err.msg, "2 x 4"), "%s", err.msg);
    c.n_kv_heads = 2;
    cr_assert_neq(lmb_kv_params_fixed(&p, &c, 16, &t, &err), 0);
    lmb_kv_params_free(&p);
}

/* ---- calibration on a fixture model -------------------------------------------------------------------- */

typedef struct seen {
    int hd, nkv;
    float mn[2][2][2], mx[2][2][2]; /* [layer][kv][head] */
} seen;

static void watch(void *user, int layer, const float *k, const float *v, int n) {
    seen *s = user;
    const float *src[2] = {k, v};
    for (int kv = 0; kv < 2; kv++)
        for (int t = 0; t < n; t++)
            for (int h = 0; h < s->nkv; h++)
                for (int d = 0; d < s->hd; d++) {
                    float x = src[kv][((size_t)t * s->nkv + h) * s->hd + d];
                    s->mn[layer][kv][h] = fminf(s->mn[layer][kv][h], x);
                    s->mx[layer][kv][h] = fmaxf(s->mx[layer][kv][h], x);
                }
}

Test(kv_params, calibration_records_the_ranges_the_cache_sees, .timeout = 60) {
    lmb_test_model_spec spec;
    lmb_test_model_spec_default(&spec, LMB_ARCH_QWEN2); /* q/k/v biases: K after bias and RoPE */
    spec.vocab = 300;
    lmb_error err;
    cr_assert_eq(lmb_test_make_model(tmp, &spec, &err), 0, "%s", err.msg);
    lmb_model *m;
    cr_assert_eq(lmb_model_open(tmp, &m, &err), 0, "%s", err.msg);
    int32_t ids[400];
    lmb_test_rng r;
    lmb_test_rng_seed(&r, 4);
    for (int i = 0; i < 400; i++) ids[i] = 3 + (int32_t)(lmb_test_rng_u64(&r) % 290);
    lmb_kv_calib_options o;
    lmb_kv_calib_options_default(&o);
    o.samples = 3;
    o.seqlen = 100;
    o.quiet = true;
    lmb_kv_params p;
    cr_assert_eq(lmb_kv_calibrate_ids(m, ids, 400, &o, &p, &err), 0, "%s", err.msg);
    cr_assert(p.calib_seqs == 3 && p.calib_seqlen == 100 && p.calib_tokens == 300);
    /* the same three windows (evenly spaced: starts 0, 150, 300) through an engine with our own tap */
    seen s = {.hd = m->cfg.head_dim, .nkv = m->cfg.n_kv_heads};
    for (int i = 0; i < 8; i++) ((float *)s.mn)[i] = INFINITY, ((float *)s.mx)[i] = -INFINITY;
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.quiet = true;
    cfg.kv_cache_mb = 8;
    cfg.kv_tap = watch;
    cfg.kv_tap_user = &s;
    lmb_engine *e;
    cr_assert_eq(lmb_engine_open_model(&cfg, m, &e, &err), 0, "%s", err.msg);
    float *logits = malloc(sizeof(float) * 300);
    for (int w = 0; w < 3; w++) cr_assert_eq(lmb_engine_logits(e, ids + 150 * w, 100, 99, logits, &err), 0, "%s", err.msg);
    for (int l = 0; l < 2; l++)
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < 2; h++) {
                size_t i = (size_t)l * 2 + h;
                cr_assert_eq(p.min[kv][i], s.mn[l][kv][h]);
                cr_assert_eq(p.max[kv][i], s.mx[l][kv][h]);
                cr_assert_lt(p.min[kv][i], p.max[kv][i]);
            }
    lmb_engine_close(e);
    /* the tap is CPU-only: asking for it elsewhere is an error, not a silent no-op */
    cfg.backend = "cuda";
    cr_assert_neq(lmb_engine_open_model(&cfg, m, &e, &err), 0);
    cr_assert(strstr(err.msg, "CPU"), "%s", err.msg);
    free(logits);
    lmb_kv_params_free(&p);
    lmb_model_close(m);
}

Test(kv_params, calibration_text_plain_and_jsonl) {
    char model[512];
    LMB_TEST_NEED_SHARED(model, "models/pycoder-22M");
    lmb_tokenizer *tok;
    lmb_error err;
    cr_assert_eq(lmb_tokenizer_load_dir(model, &tok, &err), 0, "%s", err.msg);
    char plain[256], jsonl[256], bad[256];
    const char *t = "def f(x):\n    return x\n";
    const char *j = "{\"text\": \"def f(x):\"}\n\n{\"prompt\": \"    return x\"}\n";
    lmb_test_write_file(tmp, "c.txt", t, strlen(t), plain, sizeof plain);
    lmb_test_write_file(tmp, "c.jsonl", j, strlen(j), jsonl, sizeof jsonl);
    lmb_test_write_file(tmp, "b.jsonl", "{\"text\": \"a\"}\n{\"txt\": 1}\n", 26, bad, sizeof bad);
    lmb_ids a = {0}, b = {0}, c = {0};
    long rec;
    cr_assert_eq(lmb_kv_calib_tokens(plain, tok, &a, &rec, &err), 0, "%s", err.msg);
    cr_assert_eq(rec, 0);
    cr_assert(a.n > 5 && a.ids[0] == 1, "BOS first");
    cr_assert_eq(lmb_kv_calib_tokens(jsonl, tok, &b, &rec, &err), 0, "%s", err.msg);
    cr_assert_eq(rec, 2);
    int bos = 0;
    for (size_t i = 0; i < b.n; i++) bos += b.ids[i] == 1;
    cr_assert_eq(bos, 2, "one BOS per record");
    cr_assert_neq(lmb_kv_calib_tokens(bad, tok, &c, &rec, &err), 0);
    cr_assert(strstr(err.msg, "b.jsonl:2") && strstr(err.msg, "\"text\""), "%s", err.msg);
    lmb_ids_free(&a), lmb_ids_free(&b), lmb_ids_free(&c);
    lmb_tokenizer_free(tok);
}
