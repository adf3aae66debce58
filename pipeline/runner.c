/* runner.c — see runner.h.  The main thread owns the source, the identity sets, the writer and the sink;
 * workers own their engines.  A background thread counts the input's lines for the progress total. */
#include "runner.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "chat_template.h"
#include "commands.h"
#include "openai.h"
#include "progress.h"
#include "resume.h"
#include "sink.h"
#include "source.h"
#include "tokenizer.h"
#include "work.h"
#include "worker.h"

uint64_t lmb_derive_seed(uint64_t run_seed, uint64_t id_hash) {
    uint64_t z = run_seed ^ (id_hash + 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- the first pass: how many lines this shard has ---------------------------------------------------- */

typedef struct counter {
    pthread_t thread;
    bool started;
    const char *const *paths;
    int n;
    lmb_keyer keyer;
    atomic_long total;
    atomic_bool cancel;
} counter;

static int count_keep(const lmb_line *l, void *ctx) {
    counter *c = ctx;
    if (atomic_load(&c->cancel)) return -1;
    if (c->keyer.shard_n <= 1) return 1;
    lmb_line_key lk;
    if (lmb_keyer_line(&c->keyer, l->text, l->len, l->origin, l->number, l->stream, &lk, NULL)) return -1;
    lmb_input_ident_free(&lk.ident);
    return lk.in_shard;
}

static void *count_main(void *arg) {
    counter *c = arg;
    atomic_store(&c->total, lmb_source_count_list(c->paths, c->n, count_keep, c));
    return NULL;
}

/* ---- reading: from an input line to a work item ------------------------------------------------------- */

typedef struct run_state {
    const lmb_run_options *o;
    lmb_run_summary *sum;
    lmb_source *src;
    lmb_keyer keyer;
    const char **origins; /* origin of each stream, for duplicate messages */
    int n_origins;
    lmb_resume res;
    uint64_t seq; /* admitted so far */
    lmb_work *local, *local_tail; /* read, not yet queued */
    int n_local;
} run_state;

static int note_origin(run_state *st, const lmb_line *l, lmb_error *err) {
    if (l->stream < st->n_origins) return 0;
    int n = l->stream + 1;
    const char **no = realloc(st->origins, sizeof *no * (size_t)n);
    if (!no) return lmb_fail(err, "out of memory");
    for (int i = st->n_origins; i < n; i++) no[i] = NULL;
    no[l->stream] = l->origin;
    st->origins = no;
    st->n_origins = n;
    return 0;
}

static int answer_now(lmb_work *wk, const char *code, const char *msg, lmb_error *err) {
    return lmb_work_fail(wk, code, msg) ? lmb_fail(err, "out of memory") : 0;
}

/* Takes one non-blank line: skipped (other shard, already answered), answered at once (*direct), or parsed
 * and kept on the local list for the workers.  -1 only when out of memory. */
static int admit(run_state *st, const lmb_line *l, lmb_work **direct, lmb_error *err) {
    const lmb_run_options *o = st->o;
    *direct = NULL;
    if (note_origin(st, l, err)) return -1;
    lmb_line_key lk;
    if (lmb_keyer_line(&st->keyer, l->text, l->len, l->origin, l->number, l->stream, &lk, err)) return -1;
    int rc = 0;
    if (!lk.in_shard) {
        st->sum->other_shard++;
        goto done;
    }
    st->sum->lines++;
    if (o->resume && lmb_keyset_get(&st->res.done, lk.key, NULL)) {
        st->sum->resumed++;
        goto done;
    }
    lmb_work *wk = lmb_work_new();
    if (!wk || lmb_item_init(&wk->it, l->number, &o->defaults, err)) {
        lmb_work_free(wk);
        rc = lmb_fail(err, "out of memory");
        goto done;
    }
    wk->seq = st->seq++;
    wk->origin = l->origin;
    wk->line = l->number;
    lmb_error le;
    json_t *id = lk.ident.id;
    if (lk.dup) {
        char *idt = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
        const char *fo = lk.first_stream < st->n_origins && st->origins[lk.first_stream] ? st->origins[lk.first_stream] : "?";
        snprintf(le.msg, sizeof le.msg, "duplicate id %s: first seen at %s:%ld; this line is not served", idt ? idt : "?",
                 fo, lk.first_line);
        free(idt);
        wk->it.id = json_incref(id);
        rc = answer_now(wk, LMB_ERR_DUPLICATE, le.msg, err);
    } else if (!id) {
        rc = answer_now(wk, LMB_ERR_INVALID, lk.ident.why, err);
    } else if ((lk.fmt == LMB_FMT_OPENAI ? lmb_openai_parse(lk.ident.root, id, l->number, &o->defaults, &wk->it, &le)
                                         : lmb_item_parse_object(lk.ident.root, id, l->number, &o->defaults, &wk->it, &le))) {
        rc = answer_now(wk, LMB_ERR_INVALID, le.msg, err);
    } else {
        wk->it.format = lk.fmt;
        if (st->local_tail)
            st->local_tail->next = wk;
        else
            st->local = wk;
        st->local_tail = wk;
        st->n_local++;
        goto done;
    }
    wk->it.format = lk.fmt;
    *direct = wk;
done:
    lmb_input_ident_free(&lk.ident);
    return rc;
}

static void flush_local(run_state *st, lmb_workq *q) {
    lmb_workq_push_todo(q, st->local, st->local_tail);
    st->local = st->local_tail = NULL;
    st->n_local = 0;
}

/* ---- the run ------------------------------------------------------------------------------------------ */

static const char *base_name(const char *dir, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", dir);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    const char *b = strrchr(buf, '/');
    return b ? b + 1 : buf;
}

int lmb_run(const lmb_run_options *o, lmb_run_summary *sum, lmb_error *err) {
    memset(sum, 0, sizeof *sum);
    sum->input_total = -1;
    run_state st = {.o = o, .sum = sum};
    const char *single[1] = {o->input};
    const char *const *paths = o->inputs ? o->inputs : single;
    int n_paths = o->inputs ? o->n_inputs : 1;
    int n_dev = o->devices && o->n_devices > 0 ? o->n_devices : 1;
    lmb_tokenizer *tok = NULL;
    char *tpl_system = NULL; /* the template's default system prompt (chatml), or NULL */
    lmb_sink *sink = NULL;
    lmb_worker *workers = NULL;
    lmb_workq q;
    bool q_ready = false, writer_ready = false;
    lmb_writer wr;
    counter cnt = {.paths = paths, .n = n_paths};
    atomic_init(&cnt.total, -1);
    atomic_init(&cnt.cancel, false);
    int rc = -1, code = LMB_EXIT_IO;
    double t0 = lmb_now();
    char name_buf[4096];
    const char *model_name = o->model_name ? o->model_name : base_name(o->model_dir, name_buf, sizeof name_buf);
    if (n_dev > LMB_MAX_DEVICES) {
        lmb_fail(err, "at most %d devices", LMB_MAX_DEVICES);
        goto done;
    }

    code = LMB_EXIT_MODEL;
    if (lmb_tokenizer_load_dir(o->model_dir, &tok, err)) goto done;
    lmb_chat_template tpl = o->chat_template >= 0 ? (lmb_chat_template)o->chat_template
                                                  : lmb_chat_template_detect(lmb_tokenizer_chat_template(tok));
    if (tpl == LMB_TPL_CHATML || tpl == LMB_TPL_INTERNLM2)
        tpl_system = lmb_chat_template_default_system(lmb_tokenizer_chat_template(tok));
    const char *stop_tok = lmb_chat_template_stop_token(tpl);
    int32_t tpl_stop_id = stop_tok ? lmb_tokenizer_token_to_id(tok, stop_tok) : -1;

    code = LMB_EXIT_IO;
    if (lmb_source_open_list(paths, n_paths, &st.src, err)) goto done;
    bool multi = lmb_source_multi(st.src);
    lmb_keyer_init(&st.keyer, o->format, multi, o->shard_k, o->shard_n);
    lmb_keyer_init(&cnt.keyer, o->format, multi, o->shard_k, o->shard_n);
    bool to_file = strcmp(o->output, "-") != 0;
    if (o->resume && to_file) {
        if (lmb_resume_load(o->output, &st.res, err) || lmb_sink_open_append(o->output, &sink, err)) goto done;
        sum->resume_cut_bytes = (long)st.res.cut_bytes;
        if (!o->quiet && st.res.found)
            fprintf(stderr, "lmbatch: resuming %s: %ld lines already written%s\n", o->output, st.res.lines,
                    st.res.cut_bytes ? ", torn tail cut off" : "");
    } else {
        char partial[4200];
        snprintf(partial, sizeof partial, "%s.partial", o->output);
        if (to_file && !o->quiet && access(partial, F_OK) == 0)
            fprintf(stderr, "lmbatch: starting %s afresh (--resume would continue it)\n", partial);
        if (lmb_sink_open(o->output, &sink, err)) goto done;
    }
    if (!o->quiet)
        fprintf(stderr, "lmbatch: chat template %s%s%s%s%s\n", lmb_chat_template_name(tpl),
                o->chat_template >= 0 ? "" : " (detected)", tpl_system ? ", default system prompt \"" : "",
                tpl_system ? tpl_system : "", tpl_system ? "\"" : "");

    if (lmb_workq_init(&q, err)) goto done;
    q_ready = true;
    if (!(workers = calloc((size_t)n_dev, sizeof *workers))) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    int threads = o->engine.threads;
    if (n_dev > 1 && threads == 0 && strcmp(o->engine.backend, "cpu") == 0) {
        threads = omp_get_num_procs() / n_dev;
        if (threads < 1) threads = 1;
    }
    size_t total_cap = 0;
    for (int i = 0; i < n_dev; i++) {
        lmb_worker *w = &workers[i];
        w->index = i;
        w->model_dir = o->model_dir;
        w->cfg = o->engine;
        w->cfg.threads = threads;
        if (o->devices) w->cfg.device = o->devices[i];
        w->tok = tok;
        w->tpl = tpl;
        w->tpl_system = tpl_system;
        w->tpl_stop_id = tpl_stop_id;
        w->run_seed = o->seed;
        w->cap = lmb_worker_cap(o->engine.max_seqs);
        w->label_errors = n_dev > 1;
        w->q = &q;
        total_cap += (size_t)w->cap;
        if (lmb_worker_start(w, err)) goto done;
    }
    size_t window = (o->order == LMB_ORDER_INPUT ? 4 : 2) * total_cap;
    if (lmb_writer_init(&wr, sink, o->order == LMB_ORDER_INPUT, window, model_name, err)) goto done;
    writer_ready = true;
    bool countable = true;
    for (int i = 0; i < n_paths; i++) countable &= strcmp(paths[i], "-") != 0;
    if (countable && !o->quiet && pthread_create(&cnt.thread, NULL, count_main, &cnt) == 0) cnt.started = true;

    lmb_progress prog;
    lmb_progress_init(&prog, -1, o->progress_interval, o->quiet);
    bool input_done = false;
    for (;;) {
        if (o->interrupt && *o->interrupt) {
            code = 128 + (int)*o->interrupt;
            lmb_fail(err, "interrupted (signal %d); rerun with --resume to finish", (int)*o->interrupt);
            goto done;
        }
        if (lmb_workq_failed(&q, err, &code)) goto done;
        code = LMB_EXIT_IO;
        bool progressed = false;
        while (!input_done && st.seq - (uint64_t)wr.written < window) {
            lmb_line l;
            int r = lmb_source_next(st.src, &l, err);
            if (r < 0) goto done;
            if (r == 0) {
                input_done = true;
                break;
            }
            progressed = true;
            if (lmb_line_blank(l.text, l.len)) continue;
            lmb_work *direct;
            if (admit(&st, &l, &direct, err)) goto done;
            if (direct && lmb_writer_put(&wr, direct, err)) goto done;
            if (st.n_local >= 64) flush_local(&st, &q);
        }
        flush_local(&st, &q);
        if (input_done) lmb_workq_close(&q);
        for (lmb_work *d = lmb_workq_take_done(&q), *next; d; d = next) {
            next = d->next;
            progressed = true;
            if (lmb_writer_put(&wr, d, err)) {
                for (d = next; d; d = next) {
                    next = d->next;
                    lmb_work_free(d);
                }
                goto done;
            }
        }
        prog.total = atomic_load(&cnt.total);
        prog.skipped = sum->resumed;
        lmb_progress_update(&prog, sum->resumed + wr.written, wr.errors, atomic_load(&q.tokens));
        if (input_done && (uint64_t)wr.written == st.seq) break;
        if (!progressed) lmb_workq_wait_done(&q, 0.25);
    }
    prog.total = sum->lines; /* every line of this shard has been read */
    lmb_progress_finish(&prog);
    for (int i = 0; i < n_dev; i++) lmb_worker_join(&workers[i]);
    if (lmb_workq_failed(&q, err, &code)) goto done;
    code = LMB_EXIT_IO;
    if (lmb_sink_commit(sink, err)) {
        sink = NULL;
        goto done;
    }
    sink = NULL;
    rc = 0;
done:
    if (q_ready) {
        lmb_workq_stop(&q);
        for (int i = 0; workers && i < n_dev; i++) lmb_worker_join(&workers[i]);
    }
    atomic_store(&cnt.cancel, true);
    if (cnt.started) pthread_join(cnt.thread, NULL);
    if (rc == 0) sum->input_total = sum->lines;
    sum->seconds = lmb_now() - t0;
    sum->exit_code = rc ? code : 0;
    if (writer_ready) {
        sum->ok = wr.ok;
        sum->errors = wr.errors;
        sum->duplicates = wr.duplicates;
        sum->prompt_tokens = wr.prompt_tokens;
        sum->completion_tokens = wr.completion_tokens;
    }
    sum->total_ok = st.res.ok + sum->ok;
    sum->total_errors = st.res.errors + sum->errors;
    sum->n_devices = workers ? n_dev : 0;
    for (int i = 0; workers && i < n_dev; i++) {
        sum->dev[i].device = workers[i].cfg.device;
        sum->dev[i].lines = writer_ready ? wr.dev_lines[i] : 0;
        sum->dev[i].prompt_tokens = workers[i].prompt_tokens;
        sum->dev[i].completion_tokens = workers[i].completion_tokens;
        sum->dev[i].peak_device_bytes = workers[i].stats.peak_device_bytes;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) sum->peak_rss_kb = ru.ru_maxrss;
    for (lmb_work *w = st.local, *n; w; w = n) {
        n = w->next;
        lmb_work_free(w);
    }
    if (writer_ready) lmb_writer_free(&wr);
    if (q_ready) lmb_workq_destroy(&q);
    free(workers);
    lmb_sink_abandon(sink);
    lmb_keyer_free(&st.keyer);
    lmb_keyer_free(&cnt.keyer);
    lmb_resume_free(&st.res);
    free(st.origins);
    lmb_source_close(st.src);
    lmb_tokenizer_free(tok);
    free(tpl_system);
    return rc;
}
