/* awq.c — lmb_quantize_awq: the quantize stage from model folder to packed folder (see quantize.h).
 *
 * One pass over the layers; each is copied to fp32, run on the calibration set (capturing the inputs of
 * its linears and advancing the fp residual stream), searched, folded, clipped, then quantized and packed
 * by the writer, and freed — memory holds one fp32 layer, the activations and the packed output.
 */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../engine/fileio.h"
#include "awq_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void lmb_awq_options_default(lmb_awq_options *o) {
    memset(o, 0, sizeof *o);
    o->calib_samples = 128;
    o->calib_seqlen = 2048;
    o->w_bits = 4;
    o->group_size = 128;
    o->method = LMB_QUANT_AWQ;
    o->clip = true;
    o->alpha = -1;
    o->backend = LMB_QDEV_CPU;
}

void lmb_awq_report_free(lmb_awq_report *r) {
    if (!r) return;
    free(r->layers);
    memset(r, 0, sizeof *r);
}

static int check_options(const lmb_awq_options *o, lmb_error *err) {
    if (!o->model_dir || !o->out_dir) return lmb_fail(err, "need a model folder and an output folder");
    if (o->w_bits != 4) return lmb_fail(err, "--w-bits %d: only 4-bit weights are supported", o->w_bits);
    if (o->group_size < 8 || o->group_size % 8)
        return lmb_fail(err, "--group-size %d: must be a positive multiple of 8 (AutoAWQ uses 32, 64 or 128)",
                        o->group_size);
    if (o->method == LMB_QUANT_AWQ && !o->calib_path && !o->calib_set) return lmb_fail(err, "AWQ needs --calib FILE");
    if (o->method == LMB_QUANT_AWQ && (o->calib_samples < 1 || o->calib_seqlen < 2))
        return lmb_fail(err, "--calib-samples must be >= 1 and --calib-seqlen >= 2");
    return 0;
}

/* Every linear must split into whole groups and whole int32 words. */
static int check_shapes(const lmb_model *m, int G, lmb_error *err) {
    const lmb_model_config *c = &m->cfg;
    if (c->quant.awq) return lmb_fail(err, "%s is already AWQ-quantized", m->dir);
    const lmb_layer_weights *L = &m->w.layers[0];
    const lmb_linear *ls[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
    const char *names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    for (int i = 0; i < 7; i++)
        if (ls[i]->in % G || ls[i]->out % 8)
            return lmb_fail(err, "%s: %s is [%d, %d]: its inputs must divide into groups of %d and its outputs into 8s",
                            m->dir, names[i], ls[i]->out, ls[i]->in, G);
    if (c->arch == LMB_ARCH_INTERNLM2 && c->head_dim % 8)
        return lmb_fail(err, "%s: InternLM2 wqkv needs head_dim %% 8 == 0", m->dir);
    return 0;
}

/* Creates the output folder; refuses the model folder itself and folders holding other checkpoints. */
static int prepare_out(const char *model_dir, const char *out_dir, lmb_error *err) {
    if (mkdir(out_dir, 0755) != 0 && !lmb_file_exists(out_dir))
        return lmb_fail(err, "%s: cannot create the output folder", out_dir);
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(model_dir, a) && realpath(out_dir, b) && strcmp(a, b) == 0)
        return lmb_fail(err, "--out %s is the model folder; choose another folder", out_dir);
    char p[4096];
    if (lmb_path_join(p, sizeof p, out_dir, "model.safetensors.index.json", err)) return -1;
    if (lmb_file_exists(p))
        return lmb_fail(err, "%s holds a sharded checkpoint (model.safetensors.index.json); choose an empty folder",
                        out_dir);
    return 0;
}

static const char *group_names[LMB_AWQ_GROUPS] = {"qkv", "o", "gate_up", "down"};

static void show_layer(int l, int n, const lmb_awq_group_stats *st, double secs) {
    fprintf(stderr, "quantize: layer %d/%d", l + 1, n);
    for (int g = 0; g < LMB_AWQ_GROUPS; g++)
        if (st[g].scaled)
            fprintf(stderr, "  %s a=%.2f mse %.3g->%.3g", group_names[g], st[g].alpha, st[g].mse_rtn,
                    st[g].mse_final > 0 ? st[g].mse_final : st[g].mse_best);
    fprintf(stderr, "  (%.1f s)\n", secs);
}

/* One layer of AWQ: capture, search, fold, clip, measure. */
static int awq_layer(lmb_calib_fwd *f, lmb_qlayer *L, const lmb_awq_options *o, lmb_awq_group_stats *st,
                     lmb_error *err) {
    float *scales[LMB_AWQ_GROUPS] = {0};
    int rc = lmb_calib_fwd_layer(f, L, err);
    if (!rc) rc = lmb_awq_search(f, L, o->group_size, o->alpha, o->duo, scales, st, err);
    if (!rc) rc = lmb_awq_fold(f, L, scales, err);
    if (!rc && o->clip && !o->dense) rc = lmb_awq_clip(f, L, o->group_size, err);
    if (!rc && !o->dense) rc = lmb_awq_measure(f, L, o->group_size, st, err);
    for (int g = 0; g < LMB_AWQ_GROUPS; g++) free(scales[g]);
    return rc;
}

int lmb_quantize_awq(const lmb_awq_options *o, lmb_awq_report *report, lmb_error *err) {
    if (report) memset(report, 0, sizeof *report);
    if (check_options(o, err)) return -1;
    double t0 = now_s();
    lmb_model *m = NULL;
    lmb_tokenizer *tok = NULL;
    lmb_calib_set cs = {0};
    lmb_calib_fwd f = {0};
    lmb_qwriter *w = NULL;
    lmb_qlayer L = {0}, HL = {0};
    lmb_qdev *d = NULL;
    bool awq = o->method == LMB_QUANT_AWQ;
    int rc = -1;
    if (lmb_model_open(o->model_dir, &m, err) || check_shapes(m, o->group_size, err) ||
        prepare_out(o->model_dir, o->out_dir, err))
        goto done;
    int nl = m->cfg.n_layers;
    if (report && !(report->layers = calloc((size_t)nl, sizeof *report->layers))) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    if (report) report->n_layers = nl;
    if (lmb_qdev_open(&d, awq ? o->backend : LMB_QDEV_CPU, o->device, o->exact_fp32, err)) goto done;
    if (awq) {
        if (o->calib_set) {
            if (lmb_calib_from_stream(o->calib_set->tokens, (long)o->calib_set->n_seqs * o->calib_set->seqlen,
                                      o->calib_set->n_seqs, o->calib_set->seqlen, &cs, err))
                goto done;
        } else if (lmb_tokenizer_load_dir(o->model_dir, &tok, err) ||
                   lmb_calib_load(o->calib_path, tok, o->calib_samples, o->calib_seqlen, &cs, err)) {
            goto done;
        }
        if (lmb_calib_fwd_init(&f, d, m, &cs, err)) goto done;
        if (!o->quiet)
            fprintf(stderr, "quantize: calibration %d x %d tokens from %s (%ld tokens) on the %s\n", cs.n_seqs,
                    cs.seqlen, o->calib_path ? o->calib_path : "token ids", cs.stream_tokens, d->ops->name);
        if (report) {
            report->calib_seqs = cs.n_seqs;
            report->calib_seqlen = cs.seqlen;
            report->calib_stream_tokens = cs.stream_tokens;
        }
    }
    if (lmb_qwriter_open(&w, m, o->out_dir, o->group_size, o->dense, err)) goto done;
    for (int l = 0; l < nl; l++) {
        double tl = now_s();
        lmb_awq_group_stats st[LMB_AWQ_GROUPS] = {0};
        if (lmb_qlayer_load(d, m, l, &L, err)) goto done;
        if (awq && awq_layer(&f, &L, o, st, err)) {
            lmb_error_prefix(err, "layer %d", l);
            goto done;
        }
        if (lmb_qlayer_to_host(d, &L, &HL, err) || lmb_qwriter_add_layer(w, l, &HL, err)) goto done;
        lmb_qlayer_free_host(d, &HL);
        lmb_qlayer_free(d, &L);
        if (report) memcpy(report->layers[l], st, sizeof st);
        if (!o->quiet) {
            if (awq) show_layer(l, nl, st, now_s() - tl);
            else fprintf(stderr, "quantize: layer %d/%d (rtn)\n", l + 1, nl);
        }
    }
    const char *base = !awq || !o->calib_path ? ""
                       : strrchr(o->calib_path, '/') ? strrchr(o->calib_path, '/') + 1
                                                     : o->calib_path;
    json_t *mj = json_pack("{s:s, s:i, s:i, s:b, s:s, s:i, s:i}", "method", awq ? "awq" : "rtn", "w_bits", 4,
                           "group_size", o->group_size, "clip", awq && o->clip, "calib", base, "calib_samples",
                           cs.n_seqs, "calib_seqlen", cs.seqlen);
    char *meta = mj ? json_dumps(mj, JSON_COMPACT) : NULL;
    json_decref(mj);
    int wrc = lmb_qwriter_finish(w, meta, err);
    free(meta);
    if (wrc) goto done;
    if (report) report->seconds = now_s() - t0;
    if (!o->quiet) fprintf(stderr, "quantize: wrote %s in %.1f s\n", o->out_dir, now_s() - t0);
    rc = 0;
done:
    if (d) {
        lmb_qlayer_free_host(d, &HL);
        lmb_qlayer_free(d, &L);
        if (f.d) lmb_calib_fwd_free(&f);
    }
    lmb_qdev_close(d);
    lmb_qwriter_close(w);
    lmb_calib_free(&cs);
    lmb_tokenizer_free(tok);
    lmb_model_close(m);
    if (rc && report) lmb_awq_report_free(report);
    return rc;
}
