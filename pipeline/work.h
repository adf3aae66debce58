/* work.h — one input line on its way to its output line, and the queue the reader, the engines and the
 * writer pass it through.
 *
 *   reader (main thread) ──todo──▶ workers (one engine per device, own threads) ──done──▶ writer (main thread)
 *
 * A line the reader can already answer (bad JSON, duplicate id) skips the workers and goes to the writer.  A
 * work item has exactly one owner at a time: the reader until queued, then the queue, then one worker, then
 * the queue, then the writer, who frees it.  One mutex guards both lists; workers wait on cv_work, the main
 * thread on cv_main.
 */
#ifndef LMB_WORK_H
#define LMB_WORK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "request.h"
#include "sink.h"

typedef struct lmb_work {
    struct lmb_work *next;
    uint64_t seq;       /* admission order (0, 1, ...): the output order under --order input */
    lmb_item it;        /* the request; it.id may be NULL for a line without a readable id */
    const char *origin; /* borrowed from the source, which outlives the run */
    long line;
    /* the answer */
    const char *err_code; /* NULL: served; else LMB_ERR_* and err_msg */
    char *err_msg;
    lmb_choice *choices; /* it.n of them */
    int n_finished;
    int prompt_tokens;
    int device; /* index of the worker that served it; -1 when answered by the reader */
} lmb_work;

lmb_work *lmb_work_new(void);
void lmb_work_free(lmb_work *w);
/* Marks w answered by an error (message copied); returns 0, or -1 when out of memory. */
int lmb_work_fail(lmb_work *w, const char *code, const char *msg);

typedef struct lmb_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* for workers: work queued, input closed, or stop */
    pthread_cond_t cv_main; /* for the main thread: results ready, or a worker failed */
    lmb_work *todo, *todo_tail;
    lmb_work *done, *done_tail;
    bool closed; /* the reader has queued its last work */
    bool stop;   /* abandon: workers return at once */
    bool failed; /* a worker hit a fatal error: fatal / fatal_code say which */
    lmb_error fatal;
    int fatal_code;
    atomic_long tokens; /* generated so far by all workers (progress) */
} lmb_workq;

int lmb_workq_init(lmb_workq *q, lmb_error *err);
/* Frees whatever is still queued. */
void lmb_workq_destroy(lmb_workq *q);
/* Appends the list first..last (linked by next) to todo and wakes the workers. */
void lmb_workq_push_todo(lmb_workq *q, lmb_work *first, lmb_work *last);
/* Appends to done and wakes the main thread; called by workers. */
void lmb_workq_push_done(lmb_workq *q, lmb_work *first, lmb_work *last);
/* Takes the whole done list (NULL if empty). */
lmb_work *lmb_workq_take_done(lmb_workq *q);
void lmb_workq_close(lmb_workq *q);
void lmb_workq_stop(lmb_workq *q);
/* Records a worker's fatal error (the first one wins) and stops everything. */
void lmb_workq_fail(lmb_workq *q, int code, const lmb_error *err);
/* true when a worker failed: *err and *code get its error. */
bool lmb_workq_failed(lmb_workq *q, lmb_error *err, int *code);
/* Waits until results are ready or timeout_s passes (or a failure). */
void lmb_workq_wait_done(lmb_workq *q, double timeout_s);

#endif
