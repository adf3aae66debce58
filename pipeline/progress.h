/* progress.h — progress on stderr: on a TTY a bar redrawn in place (done/total, errors, tok/s, ETA);
 * otherwise one JSON line every `interval` seconds ({"progress": {...}}), and a last one at the end.
 * Lines skipped because an earlier run answered them (--resume) count as done but not toward the rate. */
#ifndef LMB_PROGRESS_H
#define LMB_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct lmb_progress {
    long total; /* -1 if unknown (yet): the first pass may fill it in later */
    double interval;
    bool tty, quiet;
    FILE *out;
    double t0, last;
    long done, skipped, errors, tokens;
} lmb_progress;

void lmb_progress_init(lmb_progress *p, long total, double interval, bool quiet);
/* As lmb_progress_init, drawing to out as a TTY (bar) or not (JSON lines). */
void lmb_progress_init_to(lmb_progress *p, long total, double interval, bool quiet, FILE *out, bool tty);
/* Updates the counters and redraws when due. */
void lmb_progress_update(lmb_progress *p, long done, long errors, long tokens);
void lmb_progress_finish(lmb_progress *p);
double lmb_now(void); /* monotonic seconds */

#endif
