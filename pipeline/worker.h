/* worker.h — one engine on one device, in its own thread, pulling requests from the shared queue (data
 * parallel: `--devices 0,1,...` starts one worker per device).  A worker opens its engine in its own thread
 * (the CUDA device and the OpenMP thread count are per-thread settings), keeps at most `cap` requests in
 * flight, renders and tokenizes them, steps the engine and hands finished work back to the writer.
 */
#ifndef LMB_WORKER_H
#define LMB_WORKER_H

#include <pthread.h>

#include "../engine/engine.h"
#include "chat_template.h"
#include "tokenizer.h"
#include "work.h"

typedef struct lmb_worker {
    /* set by the caller */
    int index;
    const char *model_dir;
    lmb_engine_config cfg; /* cfg.device is this worker's device */
    const lmb_tokenizer *tok;
    lmb_chat_template tpl;
    const char *tpl_system; /* the template's default system prompt (chatml), or NULL */
    int32_t tpl_stop_id; /* end-of-turn token of the template, -1 if none */
    uint64_t run_seed;
    int cap;
    bool label_errors; /* prefix fatal errors with "device N: " (several workers) */
    lmb_workq *q;
    /* filled by the worker, read after lmb_worker_join */
    long served, prompt_tokens, completion_tokens;
    lmb_engine_stats stats;
    /* private */
    pthread_t thread;
    bool started;
} lmb_worker;

int lmb_worker_start(lmb_worker *w, lmb_error *err);
void lmb_worker_join(lmb_worker *w);

/* Requests a worker keeps in flight for an engine of max_seqs sequences: enough to refill the batch as
 * sequences finish, few enough that several workers share a short input. */
int lmb_worker_cap(int max_seqs);

#endif
