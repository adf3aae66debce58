/* scheduler.h — continuous batching: which sequences run in the next step and with how many tokens.
 *
 * Each step: running sequences first, oldest first (a decode takes 1 token, an unfinished prefill its next
 * chunk), then waiting sequences are admitted in arrival order while the token budget, the sequence cap and
 * the free KV blocks allow.  When a running sequence needs a block and none is free, the youngest running
 * sequence is preempted (blocks freed, back to the waiting queue for recomputation).  The scheduler knows
 * nothing about backends or CUDA.
 */
#ifndef LMB_SCHEDULER_H
#define LMB_SCHEDULER_H

#include <stdbool.h>

#include "kv_cache.h"
#include "sequence.h"

typedef struct lmb_sched_item {
    lmb_seq *seq;
    int n_new;   /* tokens computed this step: seq->tokens[n_computed, n_computed + n_new) */
    bool sample; /* the chunk reaches the end of the known tokens: sample the next one */
} lmb_sched_item;

typedef struct lmb_scheduler {
    lmb_seq **waiting; /* sorted by arrival */
    int n_waiting, cap_waiting;
    lmb_seq **running; /* sorted by arrival */
    int n_running, cap_running;
    long preemptions;
} lmb_scheduler;

void lmb_scheduler_init(lmb_scheduler *s);
void lmb_scheduler_free(lmb_scheduler *s);
int lmb_scheduler_add(lmb_scheduler *s, lmb_seq *seq, lmb_error *err);
/* Removes seq from whichever queue holds it (finished or aborted); the caller releases its blocks. */
void lmb_scheduler_remove(lmb_scheduler *s, lmb_seq *seq);

/* Plans one step into items (capacity max_seqs); returns the number of items or -1 on error. */
int lmb_scheduler_plan(lmb_scheduler *s, lmb_kv_blocks *kv, int max_batch_tokens, int max_seqs,
                       lmb_sched_item *items, lmb_error *err);

#endif
