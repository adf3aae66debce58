/* writer.h — finished work becomes output lines, in completion order or (`--order input`) in input order.
 *
 * Input order holds each finished line until every line admitted before it is written: a ring indexed by
 * the admission number.  The reader admits a line only while admitted - written < window, so the ring (and
 * the memory held) never exceeds `window` lines; a slow line at the head stalls admission, not memory.
 */
#ifndef LMB_WRITER_H
#define LMB_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "sink.h"
#include "work.h"

#define LMB_MAX_DEVICES 64

typedef struct lmb_writer {
    lmb_sink *sink; /* borrowed */
    bool in_order;
    const char *model_name; /* echoed in OpenAI responses */
    size_t window;
    lmb_work **ring; /* input order: ring[seq % window] */
    uint64_t next;   /* input order: the next seq to write */
    long written, ok, errors, duplicates;
    long prompt_tokens, completion_tokens;
    long dev_lines[LMB_MAX_DEVICES];
} lmb_writer;

int lmb_writer_init(lmb_writer *w, lmb_sink *sink, bool in_order, size_t window, const char *model_name,
                    lmb_error *err);
/* Takes ownership of wk and writes every line whose turn has come. */
int lmb_writer_put(lmb_writer *w, lmb_work *wk, lmb_error *err);
void lmb_writer_free(lmb_writer *w);

#endif
