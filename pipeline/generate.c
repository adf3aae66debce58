/* generate.c — see generate.h.  Per request: a detokenizer, the text so far, its stop strings.  After each
 * token the new text is appended and searched for a stop string from the first position where a match could
 * newly end; a match trims the text there, finishes the request with "stop" and aborts it in the engine
 * (its later events are ignored). */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "strbuf.h"

typedef struct gen_req {
    uint64_t handle;
    lmb_detok detok;
    lmb_strbuf text;
    char *stop[LMB_MAX_STOP_STRINGS];
    int n_stop;
    size_t max_stop_len;
    bool stopped; /* a stop string matched; waiting for the engine's abort event */
    int n_prompt, n_generated;
    struct gen_req *next; /* hash chain */
} gen_req;

#define GEN_BUCKETS 4096

struct lmb_gen {
    lmb_engine *engine;
    const lmb_tokenizer *tok;
    gen_req *buckets[GEN_BUCKETS];
    int n_live;
    long tokens;
    lmb_gen_result *done;
    int n_done, cap_done;
    gen_req **dead; /* freed at the next step, after the caller has read the results */
    int n_dead, cap_dead;
};

static gen_req **find_slot(lmb_gen *g, uint64_t h) {
    gen_req **p = &g->buckets[(h * 0x9E3779B97F4A7C15ULL) >> 52];
    while (*p && (*p)->handle != h) p = &(*p)->next;
    return p;
}

static void req_free(gen_req *r) {
    lmb_detok_free(&r->detok);
    lmb_sb_free(&r->text);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r);
}

int lmb_gen_create(lmb_engine *engine, const lmb_tokenizer *tok, lmb_gen **out, lmb_error *err) {
    lmb_gen *g = calloc(1, sizeof *g);
    if (!g) return lmb_fail(err, "out of memory");
    g->engine = engine;
    g->tok = tok;
    *out = g;
    return 0;
}

void lmb_gen_free(lmb_gen *g) {
    if (!g) return;
    for (int b = 0; b < GEN_BUCKETS; b++)
        for (gen_req *r = g->buckets[b], *n; r; r = n) {
            n = r->next;
            req_free(r);
        }
    for (int i = 0; i < g->n_dead; i++) req_free(g->dead[i]);
    free(g->dead);
    free(g->done);
    free(g);
}

int lmb_gen_pending(const lmb_gen *g) { return g->n_live; }
long lmb_gen_tokens(const lmb_gen *g) { return g->tokens; }

int lmb_gen_submit(lmb_gen *g, uint64_t handle, const int32_t *ids, size_t n, const lmb_sampling *s,
                   const char *const *stops, int n_stops, lmb_error *err) {
    if (*find_slot(g, handle)) return lmb_fail(err, "request handle %llu is already in flight", (unsigned long long)handle);
    gen_req *r = calloc(1, sizeof *r);
    if (!r) return lmb_fail(err, "out of memory");
    r->handle = handle;
    lmb_detok_init(&r->detok);
    for (int i = 0; i < n_stops && i < LMB_MAX_STOP_STRINGS; i++) {
        size_t len = strlen(stops[i]);
        if (!(r->stop[i] = malloc(len + 1))) {
            req_free(r);
            return lmb_fail(err, "out of memory");
        }
        memcpy(r->stop[i], stops[i], len + 1);
        r->n_stop++;
        if (len > r->max_stop_len) r->max_stop_len = len;
    }
    lmb_request q = {.id = handle, .prompt = ids, .n_prompt = n, .sampling = *s};
    if (lmb_engine_submit(g->engine, &q, err)) {
        req_free(r);
        return -1;
    }
    *find_slot(g, handle) = r;
    g->n_live++;
    return 0;
}

/* Appends the token's text; returns 1 if a stop string now matches (text trimmed), 0 if not, -1 on error. */
static int add_token(lmb_gen *g, gen_req *r, int32_t tok, lmb_error *err) {
    char *piece = NULL;
    size_t plen = 0;
    if (lmb_detok_push(&r->detok, g->tok, tok, &piece, &plen, err)) return -1;
    size_t old = r->text.len;
    lmb_sb_append(&r->text, piece, plen);
    free(piece);
    if (r->text.oom) return lmb_fail(err, "out of memory for generated text");
    if (r->n_stop == 0 || plen == 0) return 0;
    size_t from = old >= r->max_stop_len ? old - r->max_stop_len + 1 : 0;
    size_t best = (size_t)-1;
    for (int i = 0; i < r->n_stop; i++) {
        const char *m = memmem(r->text.s + from, r->text.len - from, r->stop[i], strlen(r->stop[i]));
        if (m && (size_t)(m - r->text.s) < best) best = (size_t)(m - r->text.s);
    }
    if (best == (size_t)-1) return 0;
    lmb_sb_truncate(&r->text, best);
    return 1;
}

static int finish_req(lmb_gen *g, gen_req *r, lmb_finish why, const char *error, lmb_error *err) {
    if (g->n_done == g->cap_done) {
        int nc = g->cap_done ? g->cap_done * 2 : 64;
        lmb_gen_result *nd = realloc(g->done, sizeof *nd * (size_t)nc);
        if (!nd) return lmb_fail(err, "out of memory");
        g->done = nd;
        g->cap_done = nc;
    }
    if (g->n_dead == g->cap_dead) {
        int nc = g->cap_dead ? g->cap_dead * 2 : 64;
        gen_req **nd = realloc(g->dead, sizeof *nd * (size_t)nc);
        if (!nd) return lmb_fail(err, "out of memory");
        g->dead = nd;
        g->cap_dead = nc;
    }
    if (!r->stopped) { /* text held back by the detokenizer (bytes that never formed a character) */
        char *tail = NULL;
        size_t tlen = 0;
        if (lmb_detok_flush(&r->detok, g->tok, &tail, &tlen, err)) return -1;
        lmb_sb_append(&r->text, tail, tlen);
        free(tail);
    }
    static const char *reasons[] = {"", "length", "stop", "abort", "error"};
    if (!r->text.s) lmb_sb_append(&r->text, "", 0);
    g->done[g->n_done++] = (lmb_gen_result){
        .handle = r->handle,
        .text = r->text.s,
        .text_len = r->text.len,
        .finish = why,
        .finish_reason = reasons[why],
        .prompt_tokens = r->n_prompt,
        .completion_tokens = r->n_generated,
        .error = error,
    };
    *find_slot(g, r->handle) = r->next;
    r->next = NULL;
    g->dead[g->n_dead++] = r;
    g->n_live--;
    return 0;
}

int lmb_gen_step(lmb_gen *g, const lmb_gen_result **done, int *n_done, lmb_error *err) {
    for (int i = 0; i < g->n_dead; i++) req_free(g->dead[i]);
    g->n_dead = 0;
    g->n_done = 0;
    const lmb_event *ev;
    int n_ev;
    if (lmb_engine_step(g->engine, &ev, &n_ev, err)) return -1;
    for (int i = 0; i < n_ev; i++) {
        const lmb_event *e = &ev[i];
        gen_req *r = *find_slot(g, e->id);
        if (!r) continue;
        r->n_prompt = e->n_prompt;
        if (r->stopped) {
            if (e->finish != LMB_FINISH_NONE && finish_req(g, r, LMB_FINISH_STOP, NULL, err)) return -1;
            continue;
        }
        if (e->has_token) {
            r->n_generated = e->n_generated;
            g->tokens++;
            /* EOS / stop ids and other special tokens are not part of the text */
            bool hide = e->finish == LMB_FINISH_STOP || lmb_tokenizer_is_special(g->tok, e->token);
            if (!hide) {
                int m = add_token(g, r, e->token, err);
                if (m < 0) return -1;
                if (m == 1) {
                    r->stopped = true;
                    if (e->finish != LMB_FINISH_NONE) {
                        if (finish_req(g, r, LMB_FINISH_STOP, NULL, err)) return -1;
                    } else {
                        lmb_engine_abort(g->engine, e->id);
                    }
                    continue;
                }
            }
        }
        if (e->finish != LMB_FINISH_NONE && finish_req(g, r, e->finish, e->message, err)) return -1;
    }
    *done = g->done;
    *n_done = g->n_done;
    return 0;
}
