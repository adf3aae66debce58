/* progress.h — progress on stderr: on a TTY a bar redrawn in place (done/total, errors, tok/s, ETA);
 * otherwise one JSON line every `interval` seconds ({"progress": {...}}), and a last one at the end. */
#ifndef LMB_PROGRESS_H
#define LMB_PROGRESS_H

#include <stdbool.h>

typedef struct lmb_progress {
    long total; /* -1 if unknown */
    double interval;
    bool tty, quiet;
    double t0, last;
    long done, errors, tokens;
} lmb_progress;

void lmb_progress_init(lmb_progress *p, long total, double interval, bool quiet);
/* Updates the counters and redraws when due. */
void lmb_progress_update(lmb_progress *p, long done, long errors, long tokens);
void lmb_progress_finish(lmb_progress *p);
double lmb_now(void); /* monotonic seconds */

#endif
