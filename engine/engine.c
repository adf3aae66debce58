/* engine.c — requests in, events out: the step loop of continuous batching (see engine.h).
 *
 * A step: apply aborts -> plan (scheduler.c) -> pack the planned chunks into one varlen batch -> backend
 * forward (+ sampling) -> append sampled tokens, check EOS / stop ids / max_tokens / context, emit events,
 * free the blocks of finished sequences at once.  Rejected requests are answered with an error event at the
 * next step.  Sequences are found by id through a small open-addressing table.
 */
#include "engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kv_quant.h"
#include "../quantize/kv_params.h"
#include "backend.h"
#include "kv_cache.h"
#include "kv_memory.h"
#include "scheduler.h"
#include "sequence.h"

struct lmb_engine {
    lmb_engine_config cfg;
    const lmb_model *model;
    lmb_model *owned_model;
    lmb_backend *backend;
    lmb_kv_blocks kv;
    lmb_scheduler sched;
    int ctx_limit; /* min(max_position_embeddings, cache capacity in tokens) */
    long next_arrival;
    /* id -> live sequence */
    lmb_seq **table;
    int table_cap, table_n;
    lmb_seq **rejected;
    int n_rejected, cap_rejected;
    /* events of the last step; finished sequences are freed at the start of the next step */
    lmb_event *events;
    int n_events, cap_events;
    lmb_seq **graveyard;
    int n_graveyard, cap_graveyard;
    /* per-step batch arrays */
    lmb_sched_item *items;
    int32_t *b_tokens, *b_pos, *b_qstart, *b_ctx, *b_tables, *b_rows, *b_out;
    lmb_sample_row *b_sample;
    int cap_tokens, cap_tables;
    lmb_engine_stats stats;
};

void lmb_engine_config_default(lmb_engine_config *c) {
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->max_batch_tokens = 2048;
    c->max_seqs = 256;
    c->block_size = 64;
    c->cache_fraction = 0.9;
    c->kv_bits = 16;
}

/* ---- id table ---------------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static lmb_seq **table_slot(lmb_engine *e, uint64_t id) {
    size_t mask = (size_t)e->table_cap - 1, i = mix(id) & mask;
    while (e->table[i] && e->table[i]->id != id) i = (i + 1) & mask;
    return &e->table[i];
}

static lmb_seq *table_find(lmb_engine *e, uint64_t id) {
    return e->table_cap ? *table_slot(e, id) : NULL;
}

static int table_put(lmb_engine *e, lmb_seq *s, lmb_error *err) {
    if ((e->table_n + 1) * 2 > e->table_cap) {
        int ncap = e->table_cap ? e->table_cap * 2 : 256;
        lmb_seq **old = e->table;
        int ocap = e->table_cap;
        e->table = calloc((size_t)ncap, sizeof *e->table);
        if (!e->table) {
            e->table = old;
            return lmb_fail(err, "out of memory for the request table");
        }
        e->table_cap = ncap;
        for (int i = 0; i < ocap; i++)
            if (old[i]) *table_slot(e, old[i]->id) = old[i];
        free(old);
    }
    *table_slot(e, s->id) = s;
    e->table_n++;
    return 0;
}

static void table_del(lmb_engine *e, uint64_t id) {
    lmb_seq **slot = table_slot(e, id);
    if (!*slot) return;
    *slot = NULL;
    e->table_n--;
    /* re-insert the rest of the cluster (linear probing deletion) */
    size_t mask = (size_t)e->table_cap - 1, i = (size_t)(slot - e->table);
    for (i = (i + 1) & mask; e->table[i]; i = (i + 1) & mask) {
        lmb_seq *s = e->table[i];
        e->table[i] = NULL;
        *table_slot(e, s->id) = s;
    }
}

/* ---- helpers ------------------------------------------------------------------------------------------ */

static int push_ptr(lmb_seq ***arr, int *n, int *cap, lmb_seq *s, lmb_error *err) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        lmb_seq **na = realloc(*arr, sizeof *na * (size_t)nc);
        if (!na) return lmb_fail(err, "out of memory");
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = s;
    return 0;
}

static void seq_free(lmb_seq *s) {
    if (!s) return;
    lmb_block_table_free(&s->blocks);
    free(s->tokens);
    free(s);
}

static int seq_append(lmb_seq *s, int32_t tok, lmb_error *err) {
    if (s->n_tokens == s->cap_tokens) {
        int nc = s->cap_tokens * 2;
        int32_t *nt = realloc(s->tokens, sizeof *nt * (size_t)nc);
        if (!nt) return lmb_fail(err, "out of memory growing request %" PRIu64, s->id);
        s->tokens = nt;
        s->cap_tokens = nc;
    }
    s->tokens[s->n_tokens++] = tok;
    return 0;
}

static int push_event(lmb_engine *e, const lmb_seq *s, bool has_token, int32_t tok, lmb_error *err) {
    if (e->n_events == e->cap_events) {
        int nc = e->cap_events ? e->cap_events * 2 : 256;
        lmb_event *ne = realloc(e->events, sizeof *ne * (size_t)nc);
        if (!ne) return lmb_fail(err, "out of memory for events");
        e->events = ne;
        e->cap_events = nc;
    }
    e->events[e->n_events++] = (lmb_event){
        .id = s->id,
        .has_token = has_token,
        .token = tok,
        .finish = s->finish,
        .n_prompt = s->n_prompt,
        .n_generated = lmb_seq_generated(s),
        .message = s->finish == LMB_FINISH_ERROR ? s->message : NULL,
    };
    return 0;
}

/* Ends s: frees its blocks now; the struct lives until the next step so the event's message stays valid. */
static int finish(lmb_engine *e, lmb_seq *s, lmb_finish why, lmb_error *err) {
    s->finish = why;
    lmb_kv_blocks_release(&e->kv, &s->blocks);
    lmb_scheduler_remove(&e->sched, s);
    table_del(e, s->id);
    return push_ptr(&e->graveyard, &e->n_graveyard, &e->cap_graveyard, s, err);
}

/* ---- open / close ------------------------------------------------------------------------------------- */

int lmb_engine_open_model(const lmb_engine_config *cfg, const lmb_model *model, lmb_engine **out,
                          lmb_error *err) {
    *out = NULL;
    lmb_engine *e = calloc(1, sizeof *e);
    if (!e) return lmb_fail(err, "out of memory");
    e->cfg = *cfg;
    e->model = model;
    lmb_scheduler_init(&e->sched);
    const char *bk = cfg->backend ? cfg->backend : "cpu";
    if (cfg->block_size < 1 || cfg->max_batch_tokens < 1 || cfg->max_seqs < 1) {
        lmb_engine_close(e);
        return lmb_fail(err, "engine settings must be positive (block size %d, max batch tokens %d, max seqs %d)",
                        cfg->block_size, cfg->max_batch_tokens, cfg->max_seqs);
    }
    /* KV cache quantization (issue 6): the element size, and offline scales read here for the backend */
    if (cfg->kv_bits != 16 && cfg->kv_bits != 8 && cfg->kv_bits != 4) {
        lmb_engine_close(e);
        return lmb_fail(err, "KV cache bits must be 16, 8 or 4, got %d", cfg->kv_bits);
    }
    if ((cfg->kv_params || cfg->kv_fixed) && cfg->kv_bits == 16) {
        lmb_engine_close(e);
        return lmb_fail(err, "KV quantization parameters (--kv-params) need --kv int8 or int4");
    }
    if (cfg->kv_tap && strcmp(bk, "cpu") != 0) {
        lmb_engine_close(e);
        return lmb_fail(err, "the KV calibration tap runs on the CPU backend only");
    }
    lmb_engine_config bcfg = *cfg;
    float *fixed = NULL;
    if (cfg->kv_params && !cfg->kv_fixed) {
        if (lmb_kv_params_load_fixed(cfg->kv_params, &model->cfg, cfg->kv_bits, &fixed, err)) {
            lmb_engine_close(e);
            return -1;
        }
        bcfg.kv_fixed = fixed;
    }
    int rc;
    if (strcmp(bk, "cpu") == 0) {
        rc = lmb_backend_cpu_create(model, &bcfg, &e->backend, err);
    } else if (strcmp(bk, "cuda") == 0) {
        rc = lmb_backend_cuda_create(model, &bcfg, &e->backend, err);
    } else {
        rc = lmb_fail(err, "unknown backend \"%s\" (expected cpu or cuda)", bk);
    }
    free(fixed);
    e->cfg.kv_fixed = NULL; /* borrowed during open only */
    if (rc) {
        lmb_engine_close(e);
        return -1;
    }
    size_t budget = 0, block_bytes = e->backend->ops->kv_block_bytes(e->backend, cfg->block_size);
    if (e->backend->ops->kv_budget(e->backend, cfg, &budget, err)) {
        lmb_engine_close(e);
        return -1;
    }
    long n_blocks = (long)(budget / block_bytes);
    if (n_blocks < 1) {
        lmb_engine_close(e);
        return lmb_fail(err, "the KV cache budget (%zu bytes) holds no block of %d tokens (%zu bytes)", budget,
                        cfg->block_size, block_bytes);
    }
    if (n_blocks > (1L << 30)) n_blocks = 1L << 30;
    if (lmb_kv_blocks_init(&e->kv, (int)n_blocks, cfg->block_size, err) ||
        e->backend->ops->kv_alloc(e->backend, (int)n_blocks, cfg->block_size, err)) {
        lmb_engine_close(e);
        return -1;
    }
    int cap_tokens = (int)(n_blocks * cfg->block_size);
    e->ctx_limit = model->cfg.max_pos < cap_tokens ? model->cfg.max_pos : cap_tokens;
    e->items = calloc((size_t)cfg->max_seqs, sizeof *e->items);
    if (!e->items) {
        lmb_engine_close(e);
        return lmb_fail(err, "out of memory");
    }
    e->stats.kv_blocks_total = (int)n_blocks;
    e->stats.block_size = cfg->block_size;
    e->stats.kv_bytes = (size_t)n_blocks * block_bytes;
    e->stats.kv_bits = e->backend->kv_bits;
    e->stats.kv_bytes_per_token = block_bytes / (size_t)cfg->block_size;
    if (!cfg->quiet) {
        fprintf(stderr, "lmbatch: %s backend, KV cache %ld blocks x %d tokens = %ld tokens (%.2f GiB)\n",
                e->backend->ops->name, n_blocks, cfg->block_size, n_blocks * cfg->block_size,
                (double)e->stats.kv_bytes / (1024.0 * 1024 * 1024));
        /* the memory report: what the weights take, what a token of KV costs, how many sequences fit */
        lmb_engine_stats st;
        lmb_engine_get_stats(e, &st);
        lmb_kv_capacity cap;
        lmb_kv_capacity_of(&model->cfg, e->backend->kv_bits, cfg->block_size, e->stats.kv_bytes, model->cfg.max_pos,
                           &cap);
        const char *mode = !lmb_kv_is_quantized(cap.bits) ? NULL
                           : cfg->kv_params || cfg->kv_fixed ? "offline per-layer/per-head scales"
                                                             : "per-token scales";
        lmb_kv_report(stderr, "lmbatch: ", st.weight_bytes, mode, &cap);
    }
    *out = e;
    return 0;
}

int lmb_engine_open(const lmb_engine_config *cfg, const char *model_dir, lmb_engine **out, lmb_error *err) {
    lmb_model *m;
    if (lmb_model_open(model_dir, &m, err)) return -1;
    if (lmb_engine_open_model(cfg, m, out, err)) {
        lmb_model_close(m);
        return -1;
    }
    (*out)->owned_model = m;
    return 0;
}

void lmb_engine_close(lmb_engine *e) {
    if (!e) return;
    for (int i = 0; i < e->table_cap; i++) seq_free(e->table[i]);
    for (int i = 0; i < e->n_graveyard; i++) seq_free(e->graveyard[i]);
    for (int i = 0; i < e->n_rejected; i++) seq_free(e->rejected[i]);
    free(e->table);
    free(e->graveyard);
    free(e->rejected);
    free(e->events);
    lmb_scheduler_free(&e->sched);
    lmb_kv_blocks_free(&e->kv);
    if (e->backend) e->backend->ops->destroy(e->backend);
    if (e->owned_model) lmb_model_close(e->owned_model);
    free(e->items);
    free(e->b_tokens), free(e->b_pos), free(e->b_qstart), free(e->b_ctx), free(e->b_tables), free(e->b_rows);
    free(e->b_out), free(e->b_sample);
    free(e);
}

const lmb_model_config *lmb_engine_model_config(const lmb_engine *e) { return &e->model->cfg; }

int lmb_engine_pending(const lmb_engine *e) { return e->table_n + e->n_rejected; }

void lmb_engine_get_stats(const lmb_engine *e, lmb_engine_stats *s) {
    *s = e->stats;
    s->kv_blocks_peak = e->kv.peak_used;
    s->preemptions = e->sched.preemptions;
    e->backend->ops->stats(e->backend, s);
}

void lmb_engine_reset_stats(lmb_engine *e) {
    e->stats.steps = e->stats.prompt_tokens = e->stats.generated_tokens = 0;
    e->kv.peak_used = e->kv.n_blocks - e->kv.n_free;
    e->sched.preemptions = 0;
}

/* ---- submit / abort ----------------------------------------------------------------------------------- */

static const char *check_request(const lmb_engine *e, const lmb_request *r, char *buf, size_t cap) {
    const lmb_sampling *p = &r->sampling;
    int vocab = e->model->cfg.vocab;
    if (r->n_prompt == 0) return "the prompt is empty";
    if ((long)r->n_prompt >= e->ctx_limit) {
        snprintf(buf, cap, "the prompt has %zu tokens; the limit is %d (model context %d, KV cache %d tokens)",
                 r->n_prompt, e->ctx_limit - 1, e->model->cfg.max_pos, e->kv.n_blocks * e->kv.block_size);
        return buf;
    }
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= vocab) {
            snprintf(buf, cap, "prompt token %zu is %d, outside the vocabulary [0, %d)", i, r->prompt[i], vocab);
            return buf;
        }
    if (p->max_tokens < 1) return "max_tokens must be at least 1";
    if (!(p->temperature >= 0)) return "temperature must be >= 0";
    if (!(p->top_p > 0 && p->top_p <= 1)) return "top_p must be in (0, 1]";
    if (p->top_k < 0) return "top_k must be >= 0 (0 = off)";
    if (!(p->min_p >= 0 && p->min_p <= 1)) return "min_p must be in [0, 1]";
    if (!(p->repetition_penalty > 0)) return "repetition_penalty must be > 0";
    if (p->n_stop_ids < 0 || p->n_stop_ids > LMB_MAX_STOP_IDS) return "too many stop token ids";
    return NULL;
}

int lmb_engine_submit(lmb_engine *e, const lmb_request *r, lmb_error *err) {
    if (table_find(e, r->id)) return lmb_fail(err, "request id %" PRIu64 " is already in flight", r->id);
    lmb_seq *s = calloc(1, sizeof *s);
    if (!s) return lmb_fail(err, "out of memory");
    s->id = r->id;
    s->arrival = e->next_arrival++;
    s->sampling = r->sampling;
    s->n_prompt = (int)r->n_prompt;
    char buf[256];
    const char *why = check_request(e, r, buf, sizeof buf);
    if (why) {
        snprintf(s->message, sizeof s->message, "%s", why);
        s->finish = LMB_FINISH_ERROR;
        if (push_ptr(&e->rejected, &e->n_rejected, &e->cap_rejected, s, err)) {
            free(s);
            return -1;
        }
        return 0;
    }
    s->cap_tokens = (int)r->n_prompt + (r->sampling.max_tokens < 64 ? r->sampling.max_tokens : 64) + 1;
    s->tokens = malloc(sizeof(int32_t) * (size_t)s->cap_tokens);
    if (!s->tokens) {
        free(s);
        return lmb_fail(err, "out of memory for a prompt of %zu tokens", r->n_prompt);
    }
    memcpy(s->tokens, r->prompt, sizeof(int32_t) * r->n_prompt);
    s->n_tokens = (int)r->n_prompt;
    if (table_put(e, s, err) || lmb_scheduler_add(&e->sched, s, err)) {
        table_del(e, s->id);
        seq_free(s);
        return -1;
    }
    return 0;
}

void lmb_engine_abort(lmb_engine *e, uint64_t id) {
    lmb_seq *s = table_find(e, id);
    if (s) s->abort_requested = true;
}

/* ---- step --------------------------------------------------------------------------------------------- */

static int ensure_batch(lmb_engine *e, int n_tokens, int n_seqs, int max_blocks, lmb_error *err) {
    if (n_tokens > e->cap_tokens) {
        size_t n = (size_t)n_tokens;
        free(e->b_tokens), free(e->b_pos), free(e->b_rows), free(e->b_out), free(e->b_sample);
        free(e->b_qstart), free(e->b_ctx);
        e->b_tokens = malloc(sizeof(int32_t) * n);
        e->b_pos = malloc(sizeof(int32_t) * n);
        e->b_rows = malloc(sizeof(int32_t) * n);
        e->b_out = malloc(sizeof(int32_t) * n);
        e->b_sample = malloc(sizeof(lmb_sample_row) * n);
        e->b_qstart = malloc(sizeof(int32_t) * (n + 1));
        e->b_ctx = malloc(sizeof(int32_t) * n);
        if (!e->b_tokens || !e->b_pos || !e->b_rows || !e->b_out || !e->b_sample || !e->b_qstart || !e->b_ctx) {
            e->cap_tokens = 0;
            return lmb_fail(err, "out of memory for a batch of %d tokens", n_tokens);
        }
        e->cap_tokens = n_tokens;
    }
    if (n_seqs * max_blocks > e->cap_tables) {
        free(e->b_tables);
        e->b_tables = malloc(sizeof(int32_t) * (size_t)n_seqs * (size_t)max_blocks);
        if (!e->b_tables) {
            e->cap_tables = 0;
            return lmb_fail(err, "out of memory for block tables");
        }
        e->cap_tables = n_seqs * max_blocks;
    }
    return 0;
}

static bool is_stop_token(const lmb_engine *e, const lmb_seq *s, int32_t tok) {
    for (int i = 0; i < s->sampling.n_stop_ids; i++)
        if (s->sampling.stop_ids[i] == tok) return true;
    if (!s->sampling.ignore_eos)
        for (int i = 0; i < e->model->cfg.n_eos; i++)
            if (e->model->cfg.eos_ids[i] == tok) return true;
    return false;
}

int lmb_engine_step(lmb_engine *e, const lmb_event **events, int *n_events, lmb_error *err) {
    *events = NULL;
    *n_events = 0;
    e->n_events = 0;
    for (int i = 0; i < e->n_graveyard; i++) seq_free(e->graveyard[i]);
    e->n_graveyard = 0;

    for (int i = 0; i < e->n_rejected; i++) {
        if (push_event(e, e->rejected[i], false, 0, err)) return -1;
        if (push_ptr(&e->graveyard, &e->n_graveyard, &e->cap_graveyard, e->rejected[i], err)) return -1;
    }
    e->n_rejected = 0;
    for (int i = 0; i < e->table_cap; i++) {
        lmb_seq *s = e->table[i];
        if (s && s->abort_requested) {
            if (finish(e, s, LMB_FINISH_ABORT, err) || push_event(e, s, false, 0, err)) return -1;
            i--; /* table_del may have moved another entry into slot i */
        }
    }

    int n = lmb_scheduler_plan(&e->sched, &e->kv, e->cfg.max_batch_tokens, e->cfg.max_seqs, e->items, err);
    if (n < 0) return -1;
    if (n > 0) {
        int T = 0, max_blocks = 1;
        for (int i = 0; i < n; i++) {
            T += e->items[i].n_new;
            if (e->items[i].seq->blocks.n > max_blocks) max_blocks = e->items[i].seq->blocks.n;
        }
        if (ensure_batch(e, T, n, max_blocks, err)) return -1;
        int t = 0, n_rows = 0;
        for (int i = 0; i < n; i++) {
            lmb_seq *s = e->items[i].seq;
            e->b_qstart[i] = t;
            for (int j = 0; j < e->items[i].n_new; j++, t++) {
                e->b_tokens[t] = s->tokens[s->n_computed + j];
                e->b_pos[t] = s->n_computed + j;
            }
            e->b_ctx[i] = s->n_computed + e->items[i].n_new;
            memcpy(e->b_tables + (size_t)i * max_blocks, s->blocks.ids, sizeof(int32_t) * (size_t)s->blocks.n);
            if (e->items[i].sample) {
                e->b_rows[n_rows] = t - 1;
                e->b_sample[n_rows] = (lmb_sample_row){
                    .params = s->sampling,
                    .counter = (uint64_t)lmb_seq_generated(s),
                    .history = s->sampling.repetition_penalty != 1.0f ? s->tokens : NULL,
                    .n_history = s->n_tokens,
                };
                n_rows++;
            }
        }
        e->b_qstart[n] = t;
        lmb_batch batch = {
            .n_tokens = T, .tokens = e->b_tokens, .positions = e->b_pos, .n_seqs = n, .q_start = e->b_qstart,
            .ctx_len = e->b_ctx, .block_tables = e->b_tables, .max_blocks = max_blocks, .n_logits = n_rows,
            .logit_rows = e->b_rows, .sample = e->b_sample,
        };
        if (e->backend->ops->forward(e->backend, &batch, NULL, e->b_out, err)) return -1;
        e->stats.steps++;
        int r = 0;
        for (int i = 0; i < n; i++) {
            lmb_seq *s = e->items[i].seq;
            s->n_computed += e->items[i].n_new;
            e->stats.prompt_tokens += e->items[i].sample ? e->items[i].n_new - 1 : e->items[i].n_new;
            if (!e->items[i].sample) continue;
            int32_t tok = e->b_out[r++];
            if (seq_append(s, tok, err)) return -1;
            e->stats.generated_tokens++;
            lmb_finish why = LMB_FINISH_NONE;
            if (is_stop_token(e, s, tok)) {
                why = LMB_FINISH_STOP;
            } else if (lmb_seq_generated(s) >= s->sampling.max_tokens || s->n_tokens >= e->ctx_limit) {
                why = LMB_FINISH_LENGTH;
            }
            if (why != LMB_FINISH_NONE && finish(e, s, why, err)) return -1;
            if (push_event(e, s, true, tok, err)) return -1;
        }
    }
    *events = e->events;
    *n_events = e->n_events;
    return 0;
}

/* ---- teacher-forced logits ---------------------------------------------------------------------------- */

int lmb_engine_logits(lmb_engine *e, const int32_t *ids, int n, int first, float *logits, lmb_error *err) {
    if (lmb_engine_pending(e) > 0) return lmb_fail(err, "lmb_engine_logits needs an idle engine");
    if (n < 1 || first < 0 || first >= n) return lmb_fail(err, "bad logits range [%d, %d)", first, n);
    if (n > e->ctx_limit) return lmb_fail(err, "%d tokens exceed the context limit of %d", n, e->ctx_limit);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= e->model->cfg.vocab)
            return lmb_fail(err, "token %d is %d, outside the vocabulary [0, %d)", i, ids[i], e->model->cfg.vocab);
    lmb_block_table bt = {0};
    int rc = lmb_kv_blocks_reserve(&e->kv, &bt, n, err);
    if (rc != 0) {
        lmb_block_table_free(&bt);
        return rc < 0 ? -1 : lmb_fail(err, "the KV cache cannot hold %d tokens", n);
    }
    int chunk_max = e->cfg.max_batch_tokens;
    rc = ensure_batch(e, chunk_max < n ? chunk_max : n, 1, bt.n, err);
    if (rc == 0) memcpy(e->b_tables, bt.ids, sizeof(int32_t) * (size_t)bt.n);
    for (int start = 0; rc == 0 && start < n; start += chunk_max) {
        int len = n - start < chunk_max ? n - start : chunk_max, n_rows = 0;
        for (int j = 0; j < len; j++) {
            e->b_tokens[j] = ids[start + j];
            e->b_pos[j] = start + j;
            if (start + j >= first) e->b_rows[n_rows++] = j;
        }
        e->b_qstart[0] = 0;
        e->b_qstart[1] = len;
        e->b_ctx[0] = start + len;
        lmb_batch batch = {
            .n_tokens = len, .tokens = e->b_tokens, .positions = e->b_pos, .n_seqs = 1, .q_start = e->b_qstart,
            .ctx_len = e->b_ctx, .block_tables = e->b_tables, .max_blocks = bt.n, .n_logits = n_rows,
            .logit_rows = e->b_rows, .sample = NULL,
        };
        size_t row0 = (size_t)(start + len - n_rows - first);
        if (n_rows > 0)
            rc = e->backend->ops->forward(e->backend, &batch, logits + row0 * (size_t)e->model->cfg.vocab, NULL, err);
        else /* nothing to read here: still run it to fill the cache */
            rc = e->backend->ops->forward(e->backend, &batch, NULL, NULL, err);
    }
    lmb_kv_blocks_release(&e->kv, &bt);
    lmb_block_table_free(&bt);
    return rc;
}
