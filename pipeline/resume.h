/* resume.h — picking up an interrupted output (`--resume`).
 *
 * The earlier output is "<out>.partial" (a run that did not finish), else "<out>" (a finished one, copied to
 * "<out>.partial" so the finished file stays intact until the new one replaces it).  Its lines are read back:
 * every line that is a whole, valid output line answers a key (ids.h); the first line that is not — a torn
 * last line after a kill, zeros after a crash — and everything after it is cut off, so those inputs are
 * redone.  The run then appends to "<out>.partial" and skips every input whose key is already answered.
 */
#ifndef LMB_RESUME_H
#define LMB_RESUME_H

#include <stdbool.h>

#include "ids.h"

typedef struct lmb_resume {
    lmb_keyset done;   /* keys answered by the kept lines */
    bool found;        /* there was an earlier output */
    long lines, ok, errors;
    long prompt_tokens, completion_tokens;
    long repeated;     /* kept lines answering a key already answered (not written by lmbatch) */
    long long cut_bytes; /* bytes cut off the end */
} lmb_resume;

/* Prepares "<output>.partial" for appending (see above) and fills r.  With no earlier output, r is empty. */
int lmb_resume_load(const char *output, lmb_resume *r, lmb_error *err);
/* Reads the output lines of path into r without changing the file; cut_bytes says how much would be cut. */
int lmb_resume_scan(const char *path, bool truncate, lmb_resume *r, lmb_error *err);
void lmb_resume_free(lmb_resume *r);

#endif
