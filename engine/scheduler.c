/* scheduler.c — see scheduler.h for the policy. */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

void lmb_scheduler_init(lmb_scheduler *s) { memset(s, 0, sizeof *s); }

void lmb_scheduler_free(lmb_scheduler *s) {
    free(s->waiting);
    free(s->running);
    memset(s, 0, sizeof *s);
}

static int insert_sorted(lmb_seq ***arr, int *n, int *cap, lmb_seq *seq, lmb_error *err) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        lmb_seq **na = realloc(*arr, sizeof *na * (size_t)nc);
        if (!na) return lmb_fail(err, "out of memory for the request queue (%d entries)", nc);
        *arr = na;
        *cap = nc;
    }
    int i = *n;
    while (i > 0 && (*arr)[i - 1]->arrival > seq->arrival) {
        (*arr)[i] = (*arr)[i - 1];
        i--;
    }
    (*arr)[i] = seq;
    (*n)++;
    return 0;
}

static bool remove_from(lmb_seq **arr, int *n, lmb_seq *seq) {
    for (int i = 0; i < *n; i++)
        if (arr[i] == seq) {
            memmove(arr + i, arr + i + 1, sizeof *arr * (size_t)(*n - i - 1));
            (*n)--;
            return true;
        }
    return false;
}

int lmb_scheduler_add(lmb_scheduler *s, lmb_seq *seq, lmb_error *err) {
    return insert_sorted(&s->waiting, &s->n_waiting, &s->cap_waiting, seq, err);
}

void lmb_scheduler_remove(lmb_scheduler *s, lmb_seq *seq) {
    if (!remove_from(s->running, &s->n_running, seq)) remove_from(s->waiting, &s->n_waiting, seq);
}

/* Moves the youngest running sequence back to waiting, dropping its cache. */
static int preempt_youngest(lmb_scheduler *s, lmb_kv_blocks *kv, lmb_error *err) {
    lmb_seq *victim = s->running[--s->n_running];
    lmb_kv_blocks_release(kv, &victim->blocks);
    victim->n_computed = 0;
    s->preemptions++;
    return insert_sorted(&s->waiting, &s->n_waiting, &s->cap_waiting, victim, err);
}

int lmb_scheduler_plan(lmb_scheduler *s, lmb_kv_blocks *kv, int max_batch_tokens, int max_seqs,
                       lmb_sched_item *items, lmb_error *err) {
    int n = 0, budget = max_batch_tokens;
    /* 1. running sequences, oldest first; preempt from the young end when blocks run out */
    for (int i = 0; i < s->n_running && budget > 0;) {
        lmb_seq *q = s->running[i];
        int left = q->n_tokens - q->n_computed;
        int chunk = left < budget ? left : budget;
        int r = lmb_kv_blocks_reserve(kv, &q->blocks, q->n_computed + chunk, err);
        if (r < 0) return -1;
        if (r == 1) {
            bool self = (i == s->n_running - 1);
            if (preempt_youngest(s, kv, err)) return -1;
            if (self) break;
            continue; /* retry q with the freed blocks */
        }
        items[n++] = (lmb_sched_item){q, chunk, q->n_computed + chunk == q->n_tokens};
        budget -= chunk;
        i++;
    }
    /* 2. admit waiting sequences in arrival order while everything fits */
    while (s->n_waiting > 0 && s->n_running < max_seqs && budget > 0) {
        lmb_seq *q = s->waiting[0];
        int left = q->n_tokens - q->n_computed;
        int chunk = left < budget ? left : budget;
        int r = lmb_kv_blocks_reserve(kv, &q->blocks, q->n_computed + chunk, err);
        if (r < 0) return -1;
        if (r == 1) break;
        memmove(s->waiting, s->waiting + 1, sizeof *s->waiting * (size_t)(s->n_waiting - 1));
        s->n_waiting--;
        if (insert_sorted(&s->running, &s->n_running, &s->cap_running, q, err)) return -1;
        items[n++] = (lmb_sched_item){q, chunk, q->n_computed + chunk == q->n_tokens};
        budget -= chunk;
    }
    return n;
}
