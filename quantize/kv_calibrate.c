/* kv_calibrate.c — see kv_calibrate.h.  The ranges are gathered by the CPU backend's kv_tap (engine.h), so the
 * K seen here is exactly what the cache would store: after the projection bias and RoPE, in fp32.
 */
#include "kv_calibrate.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "../engine/fileio.h"
#include "../engine/kv_memory.h"

void lmb_kv_calib_options_default(lmb_kv_calib_options *o) {
    memset(o, 0, sizeof *o);
    o->samples = 128;
    o->seqlen = 2048;
}

/* ---- calibration text -------------------------------------------------------------------------------- */

static bool looks_like_jsonl(const char *path, const char *text) {
    const char *dot = strstr(path, ".jsonl");
    if (dot && (dot[6] == 0 || dot[6] == '.')) return true;
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') text++;
    return *text == '{';
}

int lmb_kv_calib_tokens(const char *path, const lmb_tokenizer *tok, lmb_ids *out, long *records, lmb_error *err) {
    char *text;
    size_t len;
    *records = 0;
    if (lmb_file_read_all(path, &text, &len, err)) return -1;
    int rc = -1;
    if (len == 0) {
        lmb_fail(err, "%s: the calibration file is empty", path);
        goto done;
    }
    if (!looks_like_jsonl(path, text)) {
        if (lmb_tokenizer_encode(tok, text, len, LMB_TOK_ADD_SPECIAL, out, err)) goto done;
        rc = 0;
        goto done;
    }
    long line_no = 0;
    for (char *p = text; p < text + len;) {
        char *eol = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = eol ? (size_t)(eol - p) : (size_t)(text + len - p);
        line_no++;
        const char *q = p;
        while (q < p + n && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < p + n) { /* blank lines are skipped */
            json_error_t je;
            json_t *o = json_loadb(p, n, 0, &je);
            json_t *s = json_is_object(o) ? json_object_get(o, "text") : NULL;
            if (!json_is_string(s) && json_is_object(o)) s = json_object_get(o, "prompt");
            if (!json_is_string(s)) {
                json_decref(o);
                lmb_fail(err, "%s:%ld: %s", path, line_no,
                         o ? "expected an object with a \"text\" or \"prompt\" string" : je.text);
                goto done;
            }
            int e = lmb_tokenizer_encode(tok, json_string_value(s), json_string_length(s), LMB_TOK_ADD_SPECIAL, out, err);
            json_decref(o);
            if (e) {
                lmb_error_prefix(err, "%s:%ld", path, line_no);
                goto done;
            }
            (*records)++;
        }
        p += n + 1;
    }
    if (*records == 0) {
        lmb_fail(err, "%s: no calibration text (every line was blank)", path);
        goto done;
    }
    rc = 0;
done:
    free(text);
    return rc;
}

/* ---- the forward with the tap ------------------------------------------------------------------------ */

typedef struct tap_state {
    lmb_kv_params *p;
    int hd;
} tap_state;

static void tap(void *user, int layer, const float *k, const float *v, int n_tokens) {
    tap_state *s = user;
    lmb_kv_params *p = s->p;
    const float *src[2] = {k, v};
    size_t row = (size_t)p->n_kv_heads * (size_t)s->hd;
    for (int kv = 0; kv < 2; kv++)
        for (int h = 0; h < p->n_kv_heads; h++) {
            size_t i = (size_t)layer * p->n_kv_heads + h;
            float mn = p->min[kv][i], mx = p->max[kv][i];
            for (int t = 0; t < n_tokens; t++) {
                const float *x = src[kv] + (size_t)t * row + (size_t)h * s->hd;
                for (int d = 0; d < s->hd; d++) {
                    mn = fminf(mn, x[d]);
                    mx = fmaxf(mx, x[d]);
                }
            }
            p->min[kv][i] = mn;
            p->max[kv][i] = mx;
        }
}

int lmb_kv_calibrate_ids(const lmb_model *m, const int32_t *ids, long n, const lmb_kv_calib_options *o,
                         lmb_kv_params *p, lmb_error *err) {
    const lmb_model_config *c = &m->cfg;
    if (n < 1) return lmb_fail(err, "no calibration tokens");
    if (o->samples < 1 || o->seqlen < 2) return lmb_fail(err, "need at least one window of at least 2 tokens");
    if (lmb_kv_params_init(p, c->n_layers, c->n_kv_heads, c->head_dim, err)) return -1;
    p->symmetric = o->symmetric;
    long L = o->seqlen < c->max_pos ? o->seqlen : c->max_pos;
    if (L > n) L = n;
    long W = n / L < o->samples ? n / L : o->samples;
    tap_state ts = {p, c->head_dim};
    lmb_engine_config cfg;
    lmb_engine_config_default(&cfg);
    cfg.quiet = true;
    cfg.threads = o->threads;
    cfg.kv_tap = tap;
    cfg.kv_tap_user = &ts;
    cfg.max_batch_tokens = (int)L;
    size_t need = lmb_kv_block_bytes(c, 32, cfg.block_size) * (size_t)((L + cfg.block_size - 1) / cfg.block_size + 1);
    cfg.kv_cache_mb = (double)need / (1024.0 * 1024.0) + 1;
    lmb_engine *e = NULL;
    float *logits = malloc(sizeof(float) * (size_t)c->vocab);
    int rc = -1;
    if (!logits) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    if (lmb_engine_open_model(&cfg, m, &e, err)) goto done;
    for (long w = 0; w < W; w++) {
        long start = W > 1 ? (long)((double)w * (double)(n - L) / (double)(W - 1)) : 0;
        if (lmb_engine_logits(e, ids + start, (int)L, (int)L - 1, logits, err)) {
            lmb_error_prefix(err, "calibration window %ld", w);
            goto done;
        }
        if (!o->quiet) fprintf(stderr, "\rquantize kv: window %ld/%ld", w + 1, W);
    }
    if (!o->quiet) fputc('\n', stderr);
    p->calib_seqs = (int)W;
    p->calib_seqlen = (int)L;
    p->calib_tokens = W * L;
    lmb_kv_params_derive(p);
    rc = 0;
done:
    lmb_engine_close(e);
    free(logits);
    if (rc) lmb_kv_params_free(p);
    return rc;
}

int lmb_kv_calibrate(const lmb_kv_calib_options *o, lmb_kv_params *p, lmb_error *err) {
    lmb_model *m = NULL;
    lmb_tokenizer *tok = NULL;
    lmb_ids ids = {0};
    long records = 0;
    int rc = -1;
    memset(p, 0, sizeof *p);
    if (lmb_model_open(o->model_dir, &m, err) || lmb_tokenizer_load_dir(o->model_dir, &tok, err) ||
        lmb_kv_calib_tokens(o->calib_path, tok, &ids, &records, err))
        goto done;
    if (lmb_kv_calibrate_ids(m, ids.ids, (long)ids.n, o, p, err)) goto done;
    snprintf(p->model, sizeof p->model, "%s", o->model_dir);
    snprintf(p->calib_file, sizeof p->calib_file, "%s", o->calib_path);
    rc = 0;
done:
    lmb_ids_free(&ids);
    lmb_tokenizer_free(tok);
    lmb_model_close(m);
    return rc;
}
