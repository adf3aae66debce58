/* runner.c — see runner.h.  In-flight requests live in a slot table; a slot's index is the handle the
 * generator and the engine know the request by. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "generate.h"
#include "progress.h"
#include "sink.h"
#include "source.h"
#include "tokenizer.h"

uint64_t lmb_derive_seed(uint64_t run_seed, uint64_t id_hash) {
    uint64_t z = run_seed ^ (id_hash + 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct run_state {
    const lmb_run_options *o;
    lmb_tokenizer *tok;
    lmb_engine *engine;
    lmb_gen *gen;
    lmb_sink *sink;
    lmb_chat_template tpl;
    int32_t tpl_stop_id; /* end-of-turn token of the template, -1 if none */
    lmb_item *slots;
    int n_slots;
    int *free_slots, n_free;
    lmb_run_summary *sum;
    lmb_ids ids;
} run_state;

static int write_error(run_state *st, json_t *id, const char *origin, long line, const char *msg, lmb_error *err) {
    json_t *o = lmb_error_line(id, origin, line, msg);
    int rc = o ? lmb_sink_write(st->sink, o, err) : lmb_fail(err, "out of memory");
    json_decref(o);
    st->sum->errors++;
    return rc;
}

/* Renders and tokenizes the item's text into st->ids. */
static int item_tokens(run_state *st, const lmb_item *it, lmb_error *err) {
    st->ids.n = 0;
    if (it->prompt) return lmb_tokenizer_encode(st->tok, it->prompt, strlen(it->prompt), LMB_TOK_ADD_SPECIAL, &st->ids, err);
    char *text;
    if (lmb_chat_template_render(st->tpl, it->messages, it->n_messages, lmb_tokenizer_bos_token(st->tok),
                                 lmb_tokenizer_eos_token(st->tok), &text, err))
        return -1;
    /* templates carry their own BOS; raw chat text gets the tokenizer's */
    int flags = st->tpl == LMB_TPL_RAW ? LMB_TOK_ADD_SPECIAL : 0;
    int rc = lmb_tokenizer_encode(st->tok, text, strlen(text), flags, &st->ids, err);
    free(text);
    return rc;
}

/* Takes one input line: an error line, or a submitted request.  Returns -1 only on a fatal error. */
static int take_line(run_state *st, const lmb_line *l, lmb_error *err) {
    st->sum->lines++;
    int slot = st->free_slots[--st->n_free];
    lmb_item *it = &st->slots[slot];
    lmb_error le;
    if (lmb_item_parse(l->text, l->len, l->number, &st->o->defaults, it, &le) || item_tokens(st, it, &le)) {
        int rc = write_error(st, it->id, l->origin, l->number, le.msg, err);
        lmb_item_free(it);
        st->free_slots[st->n_free++] = slot;
        return rc;
    }
    if (!it->has_seed) it->sampling.seed = lmb_derive_seed(st->o->seed, lmb_item_id_hash(it));
    if (it->messages && st->tpl_stop_id >= 0 && it->sampling.n_stop_ids < LMB_MAX_STOP_IDS)
        it->sampling.stop_ids[it->sampling.n_stop_ids++] = st->tpl_stop_id;
    if (lmb_gen_submit(st->gen, (uint64_t)slot, st->ids.ids, st->ids.n, &it->sampling, (const char *const *)it->stop,
                       it->n_stop, err))
        return -1;
    return 0;
}

static int take_result(run_state *st, const lmb_gen_result *r, lmb_error *err) {
    lmb_item *it = &st->slots[r->handle];
    int rc;
    if (r->finish == LMB_FINISH_ERROR) {
        rc = write_error(st, it->id, NULL, it->line, r->error ? r->error : "request failed", err);
    } else {
        json_t *o = lmb_result_line(it->id, r->text, r->text_len, r->finish_reason, r->prompt_tokens,
                                    r->completion_tokens);
        rc = o ? lmb_sink_write(st->sink, o, err) : lmb_fail(err, "out of memory");
        json_decref(o);
        st->sum->ok++;
        st->sum->prompt_tokens += r->prompt_tokens;
        st->sum->completion_tokens += r->completion_tokens;
    }
    lmb_item_free(it);
    st->free_slots[st->n_free++] = (int)r->handle;
    return rc;
}

static bool blank_line(const lmb_line *l) {
    for (size_t i = 0; i < l->len; i++)
        if (!strchr(" \t\r", l->text[i])) return false;
    return true;
}

int lmb_run(const lmb_run_options *o, lmb_run_summary *sum, lmb_error *err) {
    memset(sum, 0, sizeof *sum);
    run_state st = {.o = o, .sum = sum, .tpl_stop_id = -1};
    lmb_source *src = NULL;
    int rc = -1;
    double t0 = lmb_now();
    if (lmb_tokenizer_load_dir(o->model_dir, &st.tok, err)) goto done;
    st.tpl = o->chat_template >= 0 ? (lmb_chat_template)o->chat_template
                                   : lmb_chat_template_detect(lmb_tokenizer_chat_template(st.tok));
    const char *stop_tok = lmb_chat_template_stop_token(st.tpl);
    if (stop_tok) st.tpl_stop_id = lmb_tokenizer_token_to_id(st.tok, stop_tok);
    if (lmb_source_open(o->input, &src, err)) goto done;
    if (lmb_engine_open(&o->engine, o->model_dir, &st.engine, err)) goto done;
    if (lmb_gen_create(st.engine, st.tok, &st.gen, err)) goto done;
    st.n_slots = o->engine.max_seqs * 2 + 16;
    st.slots = calloc((size_t)st.n_slots, sizeof *st.slots);
    st.free_slots = malloc(sizeof(int) * (size_t)st.n_slots);
    if (!st.slots || !st.free_slots) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < st.n_slots; i++) st.free_slots[st.n_free++] = st.n_slots - 1 - i;
    if (lmb_sink_open(o->output, &st.sink, err)) goto done;
    if (!o->quiet)
        fprintf(stderr, "lmbatch: chat template %s%s\n", lmb_chat_template_name(st.tpl),
                o->chat_template >= 0 ? "" : " (detected)");

    lmb_progress prog;
    lmb_progress_init(&prog, lmb_source_count_lines(o->input), o->progress_interval, o->quiet);
    bool input_done = false;
    for (;;) {
        while (!input_done && st.n_free > 0) {
            lmb_line l;
            int r = lmb_source_next(src, &l, err);
            if (r < 0) goto done;
            if (r == 0) {
                input_done = true;
                break;
            }
            if (blank_line(&l)) continue;
            if (take_line(&st, &l, err)) goto done;
        }
        if (lmb_gen_pending(st.gen) == 0) {
            if (input_done) break;
            continue;
        }
        const lmb_gen_result *res;
        int n_res;
        if (lmb_gen_step(st.gen, &res, &n_res, err)) goto done;
        for (int i = 0; i < n_res; i++)
            if (take_result(&st, &res[i], err)) goto done;
        lmb_progress_update(&prog, sum->ok + sum->errors, sum->errors, lmb_gen_tokens(st.gen));
    }
    lmb_progress_finish(&prog);
    rc = lmb_sink_commit(st.sink, err);
    st.sink = NULL;
done:
    sum->seconds = lmb_now() - t0;
    lmb_sink_abandon(st.sink);
    if (st.slots)
        for (int i = 0; i < st.n_slots; i++) lmb_item_free(&st.slots[i]);
    free(st.slots);
    free(st.free_slots);
    lmb_ids_free(&st.ids);
    lmb_gen_free(st.gen);
    lmb_engine_close(st.engine);
    lmb_source_close(src);
    lmb_tokenizer_free(st.tok);
    return rc;
}
