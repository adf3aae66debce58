/* model.c — lmb_model_open/close: a model folder's config, its safetensors (mapped) and the bound weights.
 *
 * The model owns the tensor set and the weights; every weight view stays valid until lmb_model_close.
 * When config.json names no dtype, the embedding's dtype stands in, so cfg.dtype is always F32/F16/BF16
 * on an open model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int lmb_model_open(const char *dir, lmb_model **out, lmb_error *err) {
    *out = NULL;
    lmb_model *m = calloc(1, sizeof *m);
    if (!m) return lmb_fail(err, "%s: out of memory", dir);
    int n = snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof m->dir) {
        free(m);
        return lmb_fail(err, "model folder path too long: %s", dir);
    }
    if (lmb_config_load(dir, &m->cfg, err) || lmb_st_open_dir(dir, &m->st, err)) goto fail;
    if (lmb_weights_bind(&m->cfg, m->st, &m->w, err)) {
        lmb_error_prefix(err, "%s", dir);
        goto fail;
    }
    if (m->cfg.dtype == LMB_DTYPE_INVALID) m->cfg.dtype = m->w.embed.dtype;
    *out = m;
    return 0;
fail:
    lmb_model_close(m);
    return -1;
}

void lmb_model_close(lmb_model *m) {
    if (!m) return;
    lmb_weights_free(&m->w, m->cfg.n_layers);
    lmb_st_close(m->st);
    free(m);
}
