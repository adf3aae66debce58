/* source.c — see source.h.  One libarchive reader in "raw" mode: the decompression filters detect the
 * compression from the content, so plain, .gz and .zst files take the same path. */
#include "source.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

struct lmb_source {
    struct archive *a;
    char *origin;
    long line_no;
    char *buf; /* bytes read but not yet returned as lines */
    size_t start, len, cap;
    char *line; /* the current line, NUL-terminated copy */
    size_t line_cap;
    bool eof;
};

int lmb_source_open(const char *path, lmb_source **out, lmb_error *err) {
    *out = NULL;
    lmb_source *s = calloc(1, sizeof *s);
    if (!s) return lmb_fail(err, "out of memory");
    const char *base = strrchr(path, '/');
    s->origin = strdup(strcmp(path, "-") == 0 ? "<stdin>" : base ? base + 1 : path);
    s->a = archive_read_new();
    if (!s->origin || !s->a) {
        lmb_source_close(s);
        return lmb_fail(err, "out of memory");
    }
    archive_read_support_filter_all(s->a);
    archive_read_support_format_raw(s->a);
    archive_read_support_format_empty(s->a);
    int rc = strcmp(path, "-") == 0 ? archive_read_open_fd(s->a, 0, 1 << 16)
                                    : archive_read_open_filename(s->a, path, 1 << 16);
    struct archive_entry *e;
    if (rc != ARCHIVE_OK) {
        lmb_fail(err, "%s: cannot open: %s", path, archive_error_string(s->a));
        lmb_source_close(s);
        return -1;
    }
    rc = archive_read_next_header(s->a, &e);
    if (rc == ARCHIVE_EOF) {
        s->eof = true;
    } else if (rc != ARCHIVE_OK) {
        lmb_fail(err, "%s: cannot read: %s", path, archive_error_string(s->a));
        lmb_source_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void lmb_source_close(lmb_source *s) {
    if (!s) return;
    if (s->a) archive_read_free(s->a);
    free(s->origin);
    free(s->buf);
    free(s->line);
    free(s);
}

static int fill(lmb_source *s, lmb_error *err) {
    if (s->start > 0) {
        memmove(s->buf, s->buf + s->start, s->len);
        s->start = 0;
    }
    if (s->cap - s->len < (1 << 16)) {
        size_t nc = s->cap ? s->cap * 2 : (1 << 17);
        char *nb = realloc(s->buf, nc);
        if (!nb) return lmb_fail(err, "%s: out of memory for a line longer than %zu bytes", s->origin, s->len);
        s->buf = nb;
        s->cap = nc;
    }
    la_ssize_t n = archive_read_data(s->a, s->buf + s->len, s->cap - s->len);
    if (n < 0) return lmb_fail(err, "%s: read error after line %ld: %s", s->origin, s->line_no, archive_error_string(s->a));
    if (n == 0) s->eof = true;
    s->len += (size_t)n;
    return 0;
}

int lmb_source_next(lmb_source *s, lmb_line *line, lmb_error *err) {
    for (;;) {
        char *nl = s->len ? memchr(s->buf + s->start, '\n', s->len) : NULL;
        if (nl || (s->eof && s->len > 0)) {
            size_t n = nl ? (size_t)(nl - (s->buf + s->start)) : s->len;
            size_t consumed = nl ? n + 1 : n;
            if (n + 1 > s->line_cap) {
                char *nb = realloc(s->line, n + 1);
                if (!nb) return lmb_fail(err, "%s: out of memory", s->origin);
                s->line = nb;
                s->line_cap = n + 1;
            }
            memcpy(s->line, s->buf + s->start, n);
            if (n > 0 && s->line[n - 1] == '\r') n--;
            s->line[n] = '\0';
            s->start += consumed;
            s->len -= consumed;
            s->line_no++;
            *line = (lmb_line){s->origin, s->line_no, s->line, n};
            return 1;
        }
        if (s->eof) return 0;
        if (fill(s, err)) return -1;
    }
}

static bool blank(const char *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r", t[i])) return false;
    return true;
}

long lmb_source_count_lines(const char *path) {
    if (strcmp(path, "-") == 0) return -1;
    lmb_source *s;
    if (lmb_source_open(path, &s, NULL)) return -1;
    long n = 0;
    lmb_line l;
    int rc;
    while ((rc = lmb_source_next(s, &l, NULL)) == 1)
        if (!blank(l.text, l.len)) n++;
    lmb_source_close(s);
    return rc < 0 ? -1 : n;
}
