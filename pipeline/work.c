/* work.c — work items and the queue between reader, workers and writer (see work.h). */
#include "work.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lmb_work *lmb_work_new(void) {
    lmb_work *w = calloc(1, sizeof *w);
    if (w) w->device = -1;
    return w;
}

void lmb_work_free(lmb_work *w) {
    if (!w) return;
    if (w->choices)
        for (int i = 0; i < w->it.n; i++) free(w->choices[i].text);
    free(w->choices);
    free(w->err_msg);
    lmb_item_free(&w->it);
    free(w);
}

int lmb_work_fail(lmb_work *w, const char *code, const char *msg) {
    if (w->err_code) return 0; /* the first error of a request is the one reported */
    w->err_code = code;
    w->err_msg = strdup(msg ? msg : "request failed");
    return w->err_msg ? 0 : -1;
}

int lmb_workq_init(lmb_workq *q, lmb_error *err) {
    memset(q, 0, sizeof *q);
    pthread_condattr_t ca;
    if (pthread_mutex_init(&q->mu, NULL) || pthread_condattr_init(&ca) ||
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) || pthread_cond_init(&q->cv_work, NULL) ||
        pthread_cond_init(&q->cv_main, &ca))
        return lmb_fail(err, "cannot set up the work queue");
    pthread_condattr_destroy(&ca);
    atomic_init(&q->tokens, 0);
    return 0;
}

static void free_list(lmb_work *w) {
    while (w) {
        lmb_work *n = w->next;
        lmb_work_free(w);
        w = n;
    }
}

void lmb_workq_destroy(lmb_workq *q) {
    free_list(q->todo);
    free_list(q->done);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_work);
    pthread_cond_destroy(&q->cv_main);
}

void lmb_workq_push_todo(lmb_workq *q, lmb_work *first, lmb_work *last) {
    if (!first) return;
    last->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->todo_tail)
        q->todo_tail->next = first;
    else
        q->todo = first;
    q->todo_tail = last;
    pthread_cond_broadcast(&q->cv_work);
    pthread_mutex_unlock(&q->mu);
}

void lmb_workq_push_done(lmb_workq *q, lmb_work *first, lmb_work *last) {
    if (!first) return;
    last->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->done_tail)
        q->done_tail->next = first;
    else
        q->done = first;
    q->done_tail = last;
    pthread_cond_signal(&q->cv_main);
    pthread_mutex_unlock(&q->mu);
}

lmb_work *lmb_workq_take_done(lmb_workq *q) {
    pthread_mutex_lock(&q->mu);
    lmb_work *w = q->done;
    q->done = q->done_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    return w;
}

void lmb_workq_close(lmb_workq *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->cv_work);
    pthread_mutex_unlock(&q->mu);
}

void lmb_workq_stop(lmb_workq *q) {
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv_work);
    pthread_cond_broadcast(&q->cv_main);
    pthread_mutex_unlock(&q->mu);
}

void lmb_workq_fail(lmb_workq *q, int code, const lmb_error *err) {
    pthread_mutex_lock(&q->mu);
    if (!q->failed) {
        q->failed = true;
        q->fatal = *err;
        q->fatal_code = code;
    }
    q->stop = true;
    pthread_cond_broadcast(&q->cv_work);
    pthread_cond_broadcast(&q->cv_main);
    pthread_mutex_unlock(&q->mu);
}

bool lmb_workq_failed(lmb_workq *q, lmb_error *err, int *code) {
    pthread_mutex_lock(&q->mu);
    bool f = q->failed;
    if (f) {
        *err = q->fatal;
        *code = q->fatal_code;
    }
    pthread_mutex_unlock(&q->mu);
    return f;
}

void lmb_workq_wait_done(lmb_workq *q, double timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ns = ts.tv_nsec + (long)(timeout_s * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&q->mu);
    while (!q->done && !q->failed && !q->stop)
        if (pthread_cond_timedwait(&q->cv_main, &q->mu, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&q->mu);
}
