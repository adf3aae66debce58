/* writer.c — see writer.h.  The line's shape follows the format of the input line it answers. */
#include "writer.h"

#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "openai.h"

int lmb_writer_init(lmb_writer *w, lmb_sink *sink, bool in_order, size_t window, const char *model_name,
                    lmb_error *err) {
    memset(w, 0, sizeof *w);
    w->sink = sink;
    w->in_order = in_order;
    w->window = window;
    w->model_name = model_name;
    if (in_order && !(w->ring = calloc(window, sizeof *w->ring))) return lmb_fail(err, "out of memory");
    return 0;
}

void lmb_writer_free(lmb_writer *w) {
    if (w->ring)
        for (size_t i = 0; i < w->window; i++) lmb_work_free(w->ring[i]);
    free(w->ring);
    w->ring = NULL;
}

static json_t *line_of(lmb_writer *w, const lmb_work *wk) {
    const lmb_item *it = &wk->it;
    if (wk->err_code)
        return it->format == LMB_FMT_OPENAI ? lmb_openai_error_line(it->id, wk->origin, wk->line, wk->err_code, wk->err_msg)
                                            : lmb_error_line_code(it->id, wk->origin, wk->line, wk->err_code, wk->err_msg);
    if (it->format == LMB_FMT_OPENAI)
        return lmb_openai_result_line(it, wk->choices, it->n, wk->prompt_tokens, w->model_name, time(NULL));
    const lmb_choice *c = &wk->choices[0];
    return lmb_result_line(it->id, c->text, c->len, c->finish_reason, wk->prompt_tokens, c->completion_tokens);
}

static int write_one(lmb_writer *w, lmb_work *wk, lmb_error *err) {
    json_t *o = line_of(w, wk);
    int rc = o ? lmb_sink_write(w->sink, o, err) : lmb_fail(err, "out of memory");
    json_decref(o);
    w->written++;
    if (wk->err_code) {
        w->errors++;
        if (strcmp(wk->err_code, LMB_ERR_DUPLICATE) == 0) w->duplicates++;
    } else {
        w->ok++;
        w->prompt_tokens += wk->prompt_tokens;
        for (int i = 0; i < wk->it.n; i++) w->completion_tokens += wk->choices[i].completion_tokens;
    }
    if (wk->device >= 0 && wk->device < LMB_MAX_DEVICES) w->dev_lines[wk->device]++;
    lmb_work_free(wk);
    return rc;
}

int lmb_writer_put(lmb_writer *w, lmb_work *wk, lmb_error *err) {
    if (!w->in_order) return write_one(w, wk, err);
    if (wk->seq < w->next || wk->seq - w->next >= w->window) {
        unsigned long long seq = wk->seq;
        lmb_work_free(wk);
        return lmb_fail(err, "internal error: output line %llu outside the ordering window", seq);
    }
    w->ring[wk->seq % w->window] = wk;
    while (w->ring[w->next % w->window]) {
        lmb_work *h = w->ring[w->next % w->window];
        w->ring[w->next % w->window] = NULL;
        w->next++;
        if (write_one(w, h, err)) return -1;
    }
    return 0;
}
