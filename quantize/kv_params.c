/* kv_params.c — the KV quantization parameters file (see kv_params.h and docs/FORMATS.md): derive, save, load
 * with checks, and convert to the engine's per-layer table.  Numbers are written with 9 significant digits, so
 * every float comes back bit-identical.
 */
#include "kv_params.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/fileio.h"
#include "../engine/tensor.h"

#define FORMAT "lmbatch-kv-params"
#define VERSION 1

static const char *kv_name[2] = {"k", "v"};
static const char *bits_name[2] = {"int8", "int4"};
static const int bits_of[2] = {8, 4};

int lmb_kv_params_init(lmb_kv_params *p, int n_layers, int n_kv_heads, int head_dim, lmb_error *err) {
    memset(p, 0, sizeof *p);
    if (n_layers < 1 || n_kv_heads < 1 || head_dim < 1)
        return lmb_fail(err, "KV params need positive layers, kv_heads and head_dim (got %d, %d, %d)", n_layers,
                        n_kv_heads, head_dim);
    p->n_layers = n_layers;
    p->n_kv_heads = n_kv_heads;
    p->head_dim = head_dim;
    size_t n = (size_t)n_layers * (size_t)n_kv_heads;
    for (int kv = 0; kv < 2; kv++) {
        p->min[kv] = malloc(sizeof(float) * n);
        p->max[kv] = malloc(sizeof(float) * n);
        for (int b = 0; b < 2; b++) {
            p->scale[b][kv] = calloc(n, sizeof(float));
            p->zp[b][kv] = calloc(n, sizeof(float));
        }
    }
    for (int kv = 0; kv < 2; kv++) {
        bool ok = p->min[kv] && p->max[kv];
        for (int b = 0; b < 2; b++) ok = ok && p->scale[b][kv] && p->zp[b][kv];
        if (!ok) {
            lmb_kv_params_free(p);
            return lmb_fail(err, "out of memory for KV params");
        }
        for (size_t i = 0; i < n; i++) p->min[kv][i] = INFINITY, p->max[kv][i] = -INFINITY;
    }
    return 0;
}

void lmb_kv_params_free(lmb_kv_params *p) {
    for (int kv = 0; kv < 2; kv++) {
        free(p->min[kv]);
        free(p->max[kv]);
        for (int b = 0; b < 2; b++) free(p->scale[b][kv]), free(p->zp[b][kv]);
    }
    memset(p, 0, sizeof *p);
}

void lmb_kv_params_derive(lmb_kv_params *p) {
    size_t n = (size_t)p->n_layers * (size_t)p->n_kv_heads;
    for (int kv = 0; kv < 2; kv++)
        for (size_t i = 0; i < n; i++) {
            float mn = p->min[kv][i], mx = p->max[kv][i];
            for (int b = 0; b < 2; b++) {
                float s = 0, z = 0;
                if (mn <= mx) {
                    if (p->symmetric) {
                        float am = fmaxf(fabsf(mn), fabsf(mx));
                        s = am / (float)((1 << (bits_of[b] - 1)) - 1);
                    } else {
                        s = (mx - mn) / (float)((1 << bits_of[b]) - 1);
                        z = (mn + mx) / 2;
                    }
                }
                p->scale[b][kv][i] = s;
                p->zp[b][kv][i] = z;
            }
        }
}

/* ---- save -------------------------------------------------------------------------------------------- */

/* A [layers][kv_heads] matrix, one layer per line; non-finite values (a head that saw nothing) as null. */
static void put_matrix(FILE *f, const lmb_kv_params *p, const char *indent, const char *key, const float *a, bool last) {
    fprintf(f, "%s\"%s\": [\n", indent, key);
    for (int l = 0; l < p->n_layers; l++) {
        fprintf(f, "%s  [", indent);
        for (int h = 0; h < p->n_kv_heads; h++) {
            float v = a[(size_t)l * p->n_kv_heads + h];
            if (isfinite(v))
                fprintf(f, "%s%.9g", h ? ", " : "", v);
            else
                fprintf(f, "%snull", h ? ", " : "");
        }
        fprintf(f, "]%s\n", l + 1 < p->n_layers ? "," : "");
    }
    fprintf(f, "%s]%s\n", indent, last ? "" : ",");
}

static char *json_str(const char *s) { /* a JSON string literal (jansson escapes it) */
    json_t *j = json_string(s ? s : "");
    char *o = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return o;
}

int lmb_kv_params_save(const lmb_kv_params *p, const char *path, lmb_error *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return lmb_fail(err, "out of memory writing %s", path);
    char *model = json_str(p->model), *file = json_str(p->calib_file);
    fprintf(f, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n", FORMAT, VERSION);
    fprintf(f, "  \"layers\": %d,\n  \"kv_heads\": %d,\n  \"head_dim\": %d,\n  \"symmetric\": %s,\n", p->n_layers,
            p->n_kv_heads, p->head_dim, p->symmetric ? "true" : "false");
    fprintf(f, "  \"calibration\": {\"model\": %s, \"file\": %s, \"sequences\": %d, \"seqlen\": %d, \"tokens\": %ld},\n",
            model ? model : "\"\"", file ? file : "\"\"", p->calib_seqs, p->calib_seqlen, p->calib_tokens);
    free(model);
    free(file);
    for (int kv = 0; kv < 2; kv++) {
        char key[16];
        snprintf(key, sizeof key, "%s_min", kv_name[kv]);
        put_matrix(f, p, "  ", key, p->min[kv], false);
        snprintf(key, sizeof key, "%s_max", kv_name[kv]);
        put_matrix(f, p, "  ", key, p->max[kv], false);
    }
    for (int b = 0; b < 2; b++) {
        fprintf(f, "  \"%s\": {\n", bits_name[b]);
        for (int kv = 0; kv < 2; kv++) {
            char key[16];
            snprintf(key, sizeof key, "%s_scale", kv_name[kv]);
            put_matrix(f, p, "    ", key, p->scale[b][kv], false);
            snprintf(key, sizeof key, "%s_zp", kv_name[kv]);
            put_matrix(f, p, "    ", key, p->zp[b][kv], kv == 1);
        }
        fprintf(f, "  }%s\n", b == 0 ? "," : "");
    }
    fprintf(f, "}\n");
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return lmb_fail(err, "out of memory writing %s", path);
    }
    int rc = lmb_file_write_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

/* ---- load -------------------------------------------------------------------------------------------- */

static int get_int(json_t *o, const char *key, int *out, const char *path, lmb_error *err) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 20))
        return lmb_fail(err, "%s: field \"%s\" must be a positive integer", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

/* Reads a [layers][kv_heads] matrix of numbers into a.  min/max may hold null (a head that saw nothing). */
static int get_matrix(const lmb_kv_params *p, json_t *o, const char *section, const char *key, float *a,
                      bool nonneg, bool nullable, const char *path, lmb_error *err) {
    json_t *m = json_object_get(o, key);
    const char *dot = section ? "." : "";
    section = section ? section : "";
    if (!json_is_array(m) || (int)json_array_size(m) != p->n_layers)
        return lmb_fail(err, "%s: field %s%s\"%s\" must be an array of %d layers", path, section, dot, key,
                        p->n_layers);
    for (int l = 0; l < p->n_layers; l++) {
        json_t *r = json_array_get(m, (size_t)l);
        if (!json_is_array(r) || (int)json_array_size(r) != p->n_kv_heads)
            return lmb_fail(err, "%s: field %s%s\"%s\"[%d] must be an array of %d KV heads", path, section, dot, key,
                            l, p->n_kv_heads);
        for (int h = 0; h < p->n_kv_heads; h++) {
            json_t *v = json_array_get(r, (size_t)h);
            float *dst = &a[(size_t)l * p->n_kv_heads + h];
            if (nullable && json_is_null(v)) {
                *dst = strstr(key, "min") ? INFINITY : -INFINITY;
                continue;
            }
            double x = json_number_value(v);
            if (!json_is_number(v) || !isfinite(x) || fabs(x) > 3.0e38 || (nonneg && x < 0))
                return lmb_fail(err, "%s: field %s%s\"%s\"[%d][%d] must be a finite number%s", path, section, dot,
                                key, l, h, nonneg ? " >= 0" : "");
            *dst = (float)x;
        }
    }
    return 0;
}

int lmb_kv_params_load(const char *path, lmb_kv_params *p, lmb_error *err) {
    memset(p, 0, sizeof *p);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) return lmb_fail(err, "%s:%d: not valid JSON: %s", path, je.line, je.text);
    int rc = -1, layers, heads, hd;
    json_t *fmt = json_object_get(o, "format"), *ver = json_object_get(o, "version");
    if (!json_is_object(o) || !json_is_string(fmt) || strcmp(json_string_value(fmt), FORMAT) != 0) {
        lmb_fail(err, "%s: not a KV params file (field \"format\" must be \"%s\"; made by lmbatch quantize kv)",
                 path, FORMAT);
        goto done;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != VERSION) {
        lmb_fail(err, "%s: field \"version\" must be %d", path, VERSION);
        goto done;
    }
    if (get_int(o, "layers", &layers, path, err) || get_int(o, "kv_heads", &heads, path, err) ||
        get_int(o, "head_dim", &hd, path, err) || lmb_kv_params_init(p, layers, heads, hd, err))
        goto done;
    json_t *sym = json_object_get(o, "symmetric");
    if (sym && !json_is_boolean(sym)) {
        lmb_fail(err, "%s: field \"symmetric\" must be true or false", path);
        goto done;
    }
    p->symmetric = json_is_true(sym);
    json_t *cal = json_object_get(o, "calibration");
    if (json_is_object(cal)) {
        json_t *v;
        if (json_is_string(v = json_object_get(cal, "model")))
            snprintf(p->model, sizeof p->model, "%s", json_string_value(v));
        if (json_is_string(v = json_object_get(cal, "file")))
            snprintf(p->calib_file, sizeof p->calib_file, "%s", json_string_value(v));
        if (json_is_integer(v = json_object_get(cal, "sequences"))) p->calib_seqs = (int)json_integer_value(v);
        if (json_is_integer(v = json_object_get(cal, "seqlen"))) p->calib_seqlen = (int)json_integer_value(v);
        if (json_is_integer(v = json_object_get(cal, "tokens"))) p->calib_tokens = (long)json_integer_value(v);
    }
    for (int kv = 0; kv < 2; kv++) {
        char key[16];
        snprintf(key, sizeof key, "%s_min", kv_name[kv]);
        if (get_matrix(p, o, NULL, key, p->min[kv], false, true, path, err)) goto done;
        snprintf(key, sizeof key, "%s_max", kv_name[kv]);
        if (get_matrix(p, o, NULL, key, p->max[kv], false, true, path, err)) goto done;
    }
    for (int b = 0; b < 2; b++) {
        json_t *q = json_object_get(o, bits_name[b]);
        if (!json_is_object(q)) {
            lmb_fail(err, "%s: field \"%s\" must be an object with k_scale, k_zp, v_scale, v_zp", path, bits_name[b]);
            goto done;
        }
        for (int kv = 0; kv < 2; kv++) {
            char key[16];
            snprintf(key, sizeof key, "%s_scale", kv_name[kv]);
            if (get_matrix(p, q, bits_name[b], key, p->scale[b][kv], true, false, path, err)) goto done;
            snprintf(key, sizeof key, "%s_zp", kv_name[kv]);
            if (get_matrix(p, q, bits_name[b], key, p->zp[b][kv], false, false, path, err)) goto done;
        }
    }
    rc = 0;
done:
    json_decref(o);
    if (rc) lmb_kv_params_free(p);
    return rc;
}

/* ---- the engine's table ------------------------------------------------------------------------------ */

int lmb_kv_params_fixed(const lmb_kv_params *p, const lmb_model_config *cfg, int bits, float **out, lmb_error *err) {
    *out = NULL;
    if (bits != 8 && bits != 4) return lmb_fail(err, "KV params apply to int8 or int4 caches, not %d bits", bits);
    if (p->n_layers != cfg->n_layers || p->n_kv_heads != cfg->n_kv_heads || p->head_dim != cfg->head_dim)
        return lmb_fail(err, "KV params are for %d layers x %d KV heads x head_dim %d, the model has %d x %d x %d",
                        p->n_layers, p->n_kv_heads, p->head_dim, cfg->n_layers, cfg->n_kv_heads, cfg->head_dim);
    int b = bits == 8 ? LMB_KVP_INT8 : LMB_KVP_INT4;
    float half = (float)(1 << (bits - 1));
    size_t n = (size_t)p->n_layers * 2 * (size_t)p->n_kv_heads * 2;
    float *t = malloc(sizeof(float) * n);
    if (!t) return lmb_fail(err, "out of memory");
    for (int l = 0; l < p->n_layers; l++)
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < p->n_kv_heads; h++) {
                size_t i = (size_t)l * p->n_kv_heads + h;
                float s = lmb_f16_to_f32(lmb_f32_to_f16(p->scale[b][kv][i]));
                float z = lmb_f16_to_f32(lmb_f32_to_f16(p->zp[b][kv][i] - half * s));
                if (!isfinite(s) || !isfinite(z)) {
                    free(t);
                    return lmb_fail(err, "KV params layer %d %s head %d: scale %g / zero point %g do not fit fp16", l,
                                    kv_name[kv], h, p->scale[b][kv][i], p->zp[b][kv][i]);
                }
                float *e = t + (((size_t)l * 2 + kv) * p->n_kv_heads + h) * 2;
                e[0] = s;
                e[1] = z;
            }
    *out = t;
    return 0;
}

int lmb_kv_params_load_fixed(const char *path, const lmb_model_config *cfg, int bits, float **out, lmb_error *err) {
    lmb_kv_params p;
    if (lmb_kv_params_load(path, &p, err)) return -1;
    int rc = lmb_kv_params_fixed(&p, cfg, bits, out, err);
    lmb_kv_params_free(&p);
    if (rc) lmb_error_prefix(err, "%s", path);
    return rc;
}
