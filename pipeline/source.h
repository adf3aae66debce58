/* source.h — input lines from a file or stdin ("-"), plain or compressed (gzip, zstd, xz, bzip2: detected
 * by content, through libarchive), read in a stream and never decompressed to disk.  Each line comes with
 * its origin and 1-based line number for error messages; a final line without '\n' is still a line.
 */
#ifndef LMB_SOURCE_H
#define LMB_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "../engine/error.h"

typedef struct lmb_source lmb_source;

typedef struct lmb_line {
    const char *origin; /* e.g. "prompts.jsonl" */
    long number;
    const char *text; /* without the trailing newline (and '\r'); valid until the next call */
    size_t len;
} lmb_line;

int lmb_source_open(const char *path, lmb_source **out, lmb_error *err);
/* 1 = a line, 0 = end of input, -1 = error. */
int lmb_source_next(lmb_source *s, lmb_line *line, lmb_error *err);
void lmb_source_close(lmb_source *s);

/* Counts the non-blank lines of path (a quick first pass for progress totals); -1 if it cannot. */
long lmb_source_count_lines(const char *path);

#endif
