/* worker.c — see worker.h.  A request of n choices is n engine requests; the generator handle packs the
 * worker's slot and the choice: (slot << 8) | choice.  A request is done when all its choices are. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "generate.h"
#include "runner.h"

int lmb_worker_cap(int max_seqs) {
    int extra = max_seqs / 4;
    return max_seqs + (extra < 2 ? 2 : extra);
}

typedef struct wstate {
    lmb_worker *w;
    lmb_engine *engine;
    lmb_gen *gen;
    lmb_work **slots;
    int *free_slots, n_free;
    int in_flight;
    lmb_ids ids;
    lmb_work *fin, *fin_tail; /* finished this round, handed over in one go */
} wstate;

static void finished(wstate *s, lmb_work *wk) {
    wk->next = NULL;
    if (s->fin_tail)
        s->fin_tail->next = wk;
    else
        s->fin = wk;
    s->fin_tail = wk;
}

/* Renders and tokenizes the item's text into s->ids. */
static int item_tokens(wstate *s, const lmb_item *it, lmb_error *err) {
    const lmb_worker *w = s->w;
    s->ids.n = 0;
    if (it->prompt)
        return lmb_tokenizer_encode(w->tok, it->prompt, strlen(it->prompt), LMB_TOK_ADD_SPECIAL, &s->ids, err);
    char *text;
    if (lmb_chat_template_render(w->tpl, it->messages, it->n_messages, lmb_tokenizer_bos_token(w->tok),
                                 lmb_tokenizer_eos_token(w->tok), w->tpl_system, &text, err))
        return -1;
    /* templates carry their own BOS; raw chat text gets the tokenizer's */
    int flags = w->tpl == LMB_TPL_RAW ? LMB_TOK_ADD_SPECIAL : 0;
    int rc = lmb_tokenizer_encode(w->tok, text, strlen(text), flags, &s->ids, err);
    free(text);
    return rc;
}

/* Submits every choice of wk, which the worker owns from here (in a slot, or on the finished list).  -1 only
 * on a fatal (engine-level) error; a request that cannot be served is finished with an error line. */
static int submit(wstate *s, lmb_work *wk, lmb_error *err) {
    lmb_item *it = &wk->it;
    lmb_error le;
    wk->device = s->w->index;
    if (!(wk->choices = calloc((size_t)it->n, sizeof *wk->choices))) {
        lmb_work_free(wk);
        return lmb_fail(err, "out of memory");
    }
    if (item_tokens(s, it, &le)) {
        if (lmb_work_fail(wk, LMB_ERR_INVALID, le.msg)) {
            lmb_work_free(wk);
            return lmb_fail(err, "out of memory");
        }
        finished(s, wk);
        return 0;
    }
    if (!it->has_seed) it->sampling.seed = lmb_derive_seed(s->w->run_seed, lmb_item_id_hash(it));
    if (it->messages && s->w->tpl_stop_id >= 0 && it->sampling.n_stop_ids < LMB_MAX_STOP_IDS)
        it->sampling.stop_ids[it->sampling.n_stop_ids++] = s->w->tpl_stop_id;
    int slot = s->free_slots[--s->n_free];
    s->slots[slot] = wk;
    s->in_flight++;
    for (int c = 0; c < it->n; c++) {
        lmb_sampling sp = it->sampling;
        if (c > 0) sp.seed = lmb_derive_seed(it->sampling.seed, (uint64_t)c); /* choice 0 keeps the line's seed */
        if (lmb_gen_submit(s->gen, ((uint64_t)slot << 8) | (uint64_t)c, s->ids.ids, s->ids.n, &sp,
                           (const char *const *)it->stop, it->n_stop, err))
            return -1;
    }
    return 0;
}

static int take_result(wstate *s, const lmb_gen_result *r, lmb_error *err) {
    int slot = (int)(r->handle >> 8), c = (int)(r->handle & 0xff);
    lmb_work *wk = s->slots[slot];
    if (r->finish == LMB_FINISH_ERROR) {
        if (lmb_work_fail(wk, LMB_ERR_ENGINE, r->error)) return lmb_fail(err, "out of memory");
    } else {
        lmb_choice *ch = &wk->choices[c];
        if (!(ch->text = malloc(r->text_len + 1))) return lmb_fail(err, "out of memory");
        memcpy(ch->text, r->text, r->text_len);
        ch->text[r->text_len] = '\0';
        ch->len = r->text_len;
        ch->finish_reason = r->finish_reason;
        ch->completion_tokens = r->completion_tokens;
        wk->prompt_tokens = r->prompt_tokens;
        s->w->completion_tokens += r->completion_tokens;
    }
    if (++wk->n_finished < wk->it.n) return 0;
    s->w->served++;
    s->w->prompt_tokens += wk->prompt_tokens;
    s->slots[slot] = NULL;
    s->free_slots[s->n_free++] = slot;
    s->in_flight--;
    finished(s, wk);
    return 0;
}

/* Takes up to `room` works from the queue; waits while there is nothing to do.  Returns false to exit. */
static bool pull(wstate *s, lmb_work **first) {
    lmb_workq *q = s->w->q;
    *first = NULL;
    lmb_work **tail = first;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->stop) {
            pthread_mutex_unlock(&q->mu);
            return false;
        }
        int room = s->w->cap - s->in_flight;
        while (room-- > 0 && q->todo) {
            lmb_work *wk = q->todo;
            q->todo = wk->next;
            if (!q->todo) q->todo_tail = NULL;
            wk->next = NULL;
            *tail = wk;
            tail = &wk->next;
        }
        if (*first || s->in_flight > 0) break;
        if (q->closed) {
            pthread_mutex_unlock(&q->mu);
            return false;
        }
        pthread_cond_wait(&q->cv_work, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return true;
}

static int run_loop(wstate *s, lmb_error *err) {
    lmb_worker *w = s->w;
    lmb_work *batch;
    while (pull(s, &batch)) {
        while (batch) {
            lmb_work *wk = batch;
            batch = wk->next;
            wk->next = NULL;
            if (submit(s, wk, err)) {
                while (batch) {
                    lmb_work *n = batch->next;
                    lmb_work_free(batch);
                    batch = n;
                }
                return -1;
            }
        }
        if (lmb_gen_pending(s->gen) > 0) {
            long before = lmb_gen_tokens(s->gen);
            const lmb_gen_result *res;
            int n_res;
            if (lmb_gen_step(s->gen, &res, &n_res, err)) return -1;
            for (int i = 0; i < n_res; i++)
                if (take_result(s, &res[i], err)) return -1;
            atomic_fetch_add(&w->q->tokens, lmb_gen_tokens(s->gen) - before);
        }
        if (s->fin) {
            lmb_workq_push_done(w->q, s->fin, s->fin_tail);
            s->fin = s->fin_tail = NULL;
        }
    }
    return 0;
}

static void *worker_main(void *arg) {
    lmb_worker *w = arg;
    wstate s = {.w = w};
    lmb_error err;
    int code = LMB_EXIT_MODEL;
    if (lmb_engine_open(&w->cfg, w->model_dir, &s.engine, &err)) {
        if (w->label_errors) lmb_error_prefix(&err, "device %d", w->cfg.device);
        goto fail;
    }
    if (lmb_gen_create(s.engine, w->tok, &s.gen, &err)) goto fail;
    s.slots = calloc((size_t)w->cap, sizeof *s.slots);
    s.free_slots = malloc(sizeof(int) * (size_t)w->cap);
    if (!s.slots || !s.free_slots) {
        lmb_fail(&err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < w->cap; i++) s.free_slots[s.n_free++] = w->cap - 1 - i;
    if (run_loop(&s, &err)) goto fail;
    goto done;
fail:
    lmb_workq_fail(w->q, code, &err);
done:
    if (s.fin) lmb_workq_push_done(w->q, s.fin, s.fin_tail); /* the writer frees them */
    if (s.slots)
        for (int i = 0; i < w->cap; i++) lmb_work_free(s.slots[i]); /* abandoned in flight: redone on resume */
    if (s.engine) lmb_engine_get_stats(s.engine, &w->stats);
    free(s.slots);
    free(s.free_slots);
    lmb_ids_free(&s.ids);
    lmb_gen_free(s.gen);
    lmb_engine_close(s.engine);
    return NULL;
}

int lmb_worker_start(lmb_worker *w, lmb_error *err) {
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return lmb_fail(err, "cannot start the worker thread for device %d", w->cfg.device);
    w->started = true;
    return 0;
}

void lmb_worker_join(lmb_worker *w) {
    if (w->started) pthread_join(w->thread, NULL);
    w->started = false;
}
