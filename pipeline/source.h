/* source.h — input lines from one or more inputs, read as one stream of lines, never extracted to disk.
 *
 * An input is a file or stdin ("-"), plain or compressed (gzip, zstd, xz, bzip2: detected by content), or an
 * archive (tar, tar.gz, tar.zst, ..., zip) whose regular `.jsonl` members are read in byte-wise name order
 * (`LC_ALL=C sort`; from stdin, in archive order, since a pipe cannot be read twice).  All of it goes through
 * libarchive, streamed.  Each file or member is a "stream": lines carry the stream's origin ("prompts.jsonl",
 * "batch.tar.gz:day3.jsonl": the input's file name, or its absolute path when two inputs share a file name,
 * so origins do not change with the working folder) and their 1-based line number within it; a final line
 * without '\n' is a line.
 */
#ifndef LMB_SOURCE_H
#define LMB_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "../engine/error.h"

typedef struct lmb_source lmb_source;

typedef struct lmb_line {
    const char *origin; /* e.g. "prompts.jsonl", "batch.tar.gz:day3.jsonl"; valid until lmb_source_close */
    long number;
    const char *text; /* without the trailing newline (and '\r'); valid until the next call */
    size_t len;
    int stream; /* 0, 1, ...: which file or member the line comes from */
} lmb_line;

int lmb_source_open(const char *path, lmb_source **out, lmb_error *err);
/* Opens paths[0..n) to be read one after the other.  Archives are listed here (a missing file, an unreadable
 * archive or an archive without .jsonl members fails now, not half-way). */
int lmb_source_open_list(const char *const *paths, int n, lmb_source **out, lmb_error *err);
/* 1 = a line, 0 = end of input, -1 = error. */
int lmb_source_next(lmb_source *s, lmb_line *line, lmb_error *err);
void lmb_source_close(lmb_source *s);
/* More than one stream can come out of this source: several inputs, or an archive. */
bool lmb_source_multi(const lmb_source *s);

/* Counts the non-blank lines (those for which keep(line, ctx) returns 1, when keep is given) of the inputs:
 * the quick first pass for progress totals.  -1 when it cannot (stdin, an unreadable input) or when keep
 * returns -1 (cancelled). */
typedef int (*lmb_line_filter)(const lmb_line *l, void *ctx);
long lmb_source_count_list(const char *const *paths, int n, lmb_line_filter keep, void *ctx);
long lmb_source_count_lines(const char *path);

/* Expands shell-style patterns (*, ?, [...]) into the sorted list of matching paths; other names are kept as
 * they are.  A pattern that matches nothing fails.  Free the result with lmb_source_paths_free. */
int lmb_source_expand(const char *const *patterns, int n, char ***paths, int *n_paths, lmb_error *err);
void lmb_source_paths_free(char **paths, int n);

bool lmb_line_blank(const char *text, size_t len);

#endif
