/* source.c — see source.h.  Every input goes through one libarchive reader with the tar, zip, raw and empty
 * formats and every decompression filter enabled: a plain or compressed JSONL file comes out as one "raw"
 * entry, an archive as its members.  Archives on disk are listed once at open; their .jsonl members are then
 * read in name order, reopening the archive only when the next member lies behind the reader (an archive
 * written in name order, the usual case, is read in one pass). */
#include "source.h"

#include <archive.h>
#include <archive_entry.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    char *name;
    long index; /* position among the archive's entries */
} member;

typedef struct input {
    char *path;
    char *name; /* in origins: the file name, or the whole path when two inputs share a file name */
    bool is_stdin, archive;
    member *members; /* file archives: the .jsonl members, sorted by name */
    int n_members;
} input;

struct lmb_source {
    input *in;
    int n_in;
    int cur_in;     /* input being read; n_in when done */
    int cur_member; /* file archives: position in in[cur_in].members */
    struct archive *a;
    long a_index; /* index of the entry whose header was read last, -1 before the first */
    bool reading; /* a stream is open (its data is being read) */
    char **origins;
    int n_origins;
    int stream;
    long line_no;
    char *buf; /* bytes read but not yet returned as lines */
    size_t start, len, cap;
    char *line; /* the current line, NUL-terminated copy */
    size_t line_cap;
    bool eof; /* end of the current stream */
};

bool lmb_line_blank(const char *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r", t[i])) return false;
    return true;
}

static bool is_jsonl_member(struct archive_entry *e) {
    if (archive_entry_filetype(e) != AE_IFREG) return false;
    const char *name = archive_entry_pathname(e);
    if (!name) return false;
    size_t n = strlen(name);
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "._", 2) == 0 || strncmp(name, "__MACOSX/", 9) == 0) return false; /* macOS resource forks */
    return n > 6 && strcmp(name + n - 6, ".jsonl") == 0;
}

static struct archive *reader_open(const input *in, lmb_error *err) {
    struct archive *a = archive_read_new();
    if (!a) {
        lmb_fail(err, "out of memory");
        return NULL;
    }
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_raw(a);
    archive_read_support_format_empty(a);
    int rc = in->is_stdin ? archive_read_open_fd(a, 0, 1 << 16) : archive_read_open_filename(a, in->path, 1 << 16);
    if (rc != ARCHIVE_OK) {
        lmb_fail(err, "%s: cannot open: %s", in->is_stdin ? "<stdin>" : in->path, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

static bool raw_format(struct archive *a) {
    int f = archive_format(a);
    return f == ARCHIVE_FORMAT_RAW || f == ARCHIVE_FORMAT_EMPTY;
}

static int cmp_member(const void *x, const void *y) {
    return strcmp(((const member *)x)->name, ((const member *)y)->name);
}

/* Lists an on-disk input: plain stream or archive (then its .jsonl members, sorted). */
static int sniff(input *in, lmb_error *err) {
    struct archive *a = reader_open(in, err);
    if (!a) return -1;
    struct archive_entry *e;
    int rc = archive_read_next_header(a, &e);
    if (rc == ARCHIVE_EOF || (rc == ARCHIVE_OK && raw_format(a))) {
        archive_read_free(a);
        return 0;
    }
    in->archive = true;
    int cap = 0;
    for (long index = 0; rc == ARCHIVE_OK || rc == ARCHIVE_WARN; index++) {
        if (is_jsonl_member(e)) {
            if (in->n_members == cap) {
                cap = cap ? cap * 2 : 16;
                member *nm = realloc(in->members, sizeof *nm * (size_t)cap);
                if (!nm) {
                    archive_read_free(a);
                    return lmb_fail(err, "out of memory");
                }
                in->members = nm;
            }
            char *name = strdup(archive_entry_pathname(e));
            if (!name) {
                archive_read_free(a);
                return lmb_fail(err, "out of memory");
            }
            in->members[in->n_members++] = (member){name, index};
        }
        rc = archive_read_next_header(a, &e);
    }
    if (rc != ARCHIVE_EOF) {
        lmb_fail(err, "%s: cannot read: %s", in->path, archive_error_string(a));
        archive_read_free(a);
        return -1;
    }
    archive_read_free(a);
    if (in->n_members == 0) return lmb_fail(err, "%s: the archive has no .jsonl members", in->path);
    qsort(in->members, (size_t)in->n_members, sizeof *in->members, cmp_member);
    return 0;
}

static const char *add_origin(lmb_source *s, const char *path, const char *member_name, lmb_error *err) {
    char **no = realloc(s->origins, sizeof *no * (size_t)(s->n_origins + 1));
    if (!no) {
        lmb_fail(err, "out of memory");
        return NULL;
    }
    s->origins = no;
    size_t n = strlen(path) + (member_name ? strlen(member_name) + 1 : 0) + 1;
    char *o = malloc(n);
    if (!o) {
        lmb_fail(err, "out of memory");
        return NULL;
    }
    if (member_name)
        snprintf(o, n, "%s:%s", path, member_name);
    else
        snprintf(o, n, "%s", path);
    s->origins[s->n_origins++] = o;
    return o;
}

static void begin_stream(lmb_source *s) {
    s->reading = true;
    s->eof = false;
    s->start = s->len = 0;
    s->line_no = 0;
    s->stream++;
}

static void reader_close(lmb_source *s) {
    if (s->a) archive_read_free(s->a);
    s->a = NULL;
    s->a_index = -1;
}

/* Positions the reader on the data of the next stream.  1 = a stream is open, 0 = no more input. */
static int next_stream(lmb_source *s, lmb_error *err) {
    s->reading = false;
    while (s->cur_in < s->n_in) {
        input *in = &s->in[s->cur_in];
        const char *path = in->is_stdin ? "<stdin>" : in->name;
        struct archive_entry *e;
        if (!in->archive && !in->is_stdin) { /* plain file: one stream, once */
            if (s->a) { /* its stream has been read */
                reader_close(s);
                s->cur_in++;
                continue;
            }
            if (!(s->a = reader_open(in, err))) return -1;
            int rc = archive_read_next_header(s->a, &e);
            if (rc != ARCHIVE_OK && rc != ARCHIVE_EOF)
                return lmb_fail(err, "%s: cannot read: %s", path, archive_error_string(s->a));
            if (!add_origin(s, path, NULL, err)) return -1;
            begin_stream(s);
            if (rc == ARCHIVE_EOF) s->eof = true;
            return 1;
        }
        if (in->is_stdin) { /* a plain stream or an archive, found out on its first header; archive order */
            if (!s->a && !(s->a = reader_open(in, err))) return -1;
            for (;;) {
                int rc = archive_read_next_header(s->a, &e);
                if (rc == ARCHIVE_EOF) break;
                if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
                    return lmb_fail(err, "%s: cannot read: %s", path, archive_error_string(s->a));
                if (raw_format(s->a)) { /* the raw format has one entry: the next header is EOF */
                    if (!add_origin(s, path, NULL, err)) return -1;
                    begin_stream(s);
                    return 1;
                }
                in->archive = true;
                if (!is_jsonl_member(e)) continue;
                if (!add_origin(s, path, archive_entry_pathname(e), err)) return -1;
                begin_stream(s);
                return 1;
            }
            reader_close(s);
            s->cur_in++;
            continue;
        }
        /* file archive: the next member in name order */
        if (s->cur_member >= in->n_members) {
            reader_close(s);
            s->cur_in++;
            s->cur_member = 0;
            continue;
        }
        member *m = &in->members[s->cur_member++];
        if (s->a && s->a_index >= m->index) reader_close(s);
        if (!s->a && !(s->a = reader_open(in, err))) return -1;
        while (s->a_index < m->index) {
            int rc = archive_read_next_header(s->a, &e);
            if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
                return lmb_fail(err, "%s: cannot read member %s: %s", path, m->name,
                                rc == ARCHIVE_EOF ? "the archive changed while being read" : archive_error_string(s->a));
            s->a_index++;
        }
        if (strcmp(archive_entry_pathname(e), m->name) != 0)
            return lmb_fail(err, "%s: the archive changed while being read (member %s)", path, m->name);
        if (!add_origin(s, path, m->name, err)) return -1;
        begin_stream(s);
        return 1;
    }
    return 0;
}

int lmb_source_open_list(const char *const *paths, int n, lmb_source **out, lmb_error *err) {
    *out = NULL;
    if (n < 1) return lmb_fail(err, "no input");
    lmb_source *s = calloc(1, sizeof *s);
    if (!s || !(s->in = calloc((size_t)n, sizeof *s->in))) {
        free(s);
        return lmb_fail(err, "out of memory");
    }
    s->n_in = n;
    s->a_index = -1;
    s->stream = -1;
    int n_stdin = 0;
    for (int i = 0; i < n; i++) {
        input *in = &s->in[i];
        in->is_stdin = strcmp(paths[i], "-") == 0;
        n_stdin += in->is_stdin;
        if (!(in->path = strdup(paths[i]))) {
            lmb_source_close(s);
            return lmb_fail(err, "out of memory");
        }
        if (!in->is_stdin && sniff(in, err)) {
            lmb_source_close(s);
            return -1;
        }
    }
    if (n_stdin > 1) {
        lmb_source_close(s);
        return lmb_fail(err, "stdin (-) can be read only once");
    }
    /* origins name inputs by file name, which does not change with the working folder or the spelling of
     * the path (keys of lines without ids contain it, and must match across resumes); where two inputs share
     * a file name, by their absolute paths */
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        bool unique = true;
        for (int j = 0; j < n && unique; j++) {
            const char *b2 = strrchr(paths[j], '/') ? strrchr(paths[j], '/') + 1 : paths[j];
            unique = i == j || strcmp(base, b2) != 0;
        }
        char *real = unique ? NULL : realpath(paths[i], NULL);
        s->in[i].name = real ? real : strdup(unique ? base : paths[i]);
        if (!s->in[i].name) {
            lmb_source_close(s);
            return lmb_fail(err, "out of memory");
        }
    }
    if (next_stream(s, err) < 0) { /* opens the first stream: a stdin archive is known from here on */
        lmb_source_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int lmb_source_open(const char *path, lmb_source **out, lmb_error *err) {
    return lmb_source_open_list(&path, 1, out, err);
}

bool lmb_source_multi(const lmb_source *s) { return s->n_in > 1 || s->in[0].archive; }

void lmb_source_close(lmb_source *s) {
    if (!s) return;
    reader_close(s);
    for (int i = 0; i < s->n_in; i++) {
        free(s->in[i].path);
        free(s->in[i].name);
        for (int j = 0; j < s->in[i].n_members; j++) free(s->in[i].members[j].name);
        free(s->in[i].members);
    }
    free(s->in);
    for (int i = 0; i < s->n_origins; i++) free(s->origins[i]);
    free(s->origins);
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
        if (!nb) return lmb_fail(err, "%s: out of memory for a line longer than %zu bytes", s->origins[s->n_origins - 1], s->len);
        s->buf = nb;
        s->cap = nc;
    }
    la_ssize_t n = archive_read_data(s->a, s->buf + s->len, s->cap - s->len);
    if (n < 0)
        return lmb_fail(err, "%s: read error after line %ld: %s", s->origins[s->n_origins - 1], s->line_no,
                        archive_error_string(s->a));
    if (n == 0) s->eof = true;
    s->len += (size_t)n;
    return 0;
}

int lmb_source_next(lmb_source *s, lmb_line *line, lmb_error *err) {
    for (;;) {
        if (!s->reading) {
            int r = next_stream(s, err);
            if (r <= 0) return r;
        }
        char *nl = s->len ? memchr(s->buf + s->start, '\n', s->len) : NULL;
        if (nl || (s->eof && s->len > 0)) {
            size_t n = nl ? (size_t)(nl - (s->buf + s->start)) : s->len;
            size_t consumed = nl ? n + 1 : n;
            if (n + 1 > s->line_cap) {
                char *nb = realloc(s->line, n + 1);
                if (!nb) return lmb_fail(err, "%s: out of memory", s->origins[s->n_origins - 1]);
                s->line = nb;
                s->line_cap = n + 1;
            }
            memcpy(s->line, s->buf + s->start, n);
            if (n > 0 && s->line[n - 1] == '\r') n--;
            s->line[n] = '\0';
            s->start += consumed;
            s->len -= consumed;
            s->line_no++;
            *line = (lmb_line){s->origins[s->n_origins - 1], s->line_no, s->line, n, s->stream};
            return 1;
        }
        if (s->eof) {
            s->reading = false;
            continue;
        }
        if (fill(s, err)) return -1;
    }
}

long lmb_source_count_list(const char *const *paths, int n, lmb_line_filter keep, void *ctx) {
    for (int i = 0; i < n; i++)
        if (strcmp(paths[i], "-") == 0) return -1;
    lmb_source *s;
    if (lmb_source_open_list(paths, n, &s, NULL)) return -1;
    long count = 0;
    lmb_line l;
    int rc;
    while ((rc = lmb_source_next(s, &l, NULL)) == 1) {
        if (lmb_line_blank(l.text, l.len)) continue;
        int k = keep ? keep(&l, ctx) : 1;
        if (k < 0) {
            rc = -1;
            break;
        }
        count += k;
    }
    lmb_source_close(s);
    return rc < 0 ? -1 : count;
}

long lmb_source_count_lines(const char *path) { return lmb_source_count_list(&path, 1, NULL, NULL); }

int lmb_source_expand(const char *const *patterns, int n, char ***paths, int *n_paths, lmb_error *err) {
    *paths = NULL;
    *n_paths = 0;
    char **out = NULL;
    int cnt = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        glob_t g = {0};
        bool pattern = strpbrk(patterns[i], "*?[") != NULL;
        if (pattern) {
            int rc = glob(patterns[i], GLOB_ERR, NULL, &g);
            if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
                globfree(&g);
                lmb_source_paths_free(out, cnt);
                return lmb_fail(err, "input pattern \"%s\" matches no file", patterns[i]);
            }
            if (rc != 0) {
                globfree(&g);
                lmb_source_paths_free(out, cnt);
                return lmb_fail(err, "input pattern \"%s\": cannot read its folder", patterns[i]);
            }
        }
        size_t m = pattern ? g.gl_pathc : 1;
        for (size_t j = 0; j < m; j++) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 8;
                char **no = realloc(out, sizeof *no * (size_t)cap);
                if (!no) {
                    globfree(&g);
                    lmb_source_paths_free(out, cnt);
                    return lmb_fail(err, "out of memory");
                }
                out = no;
            }
            if (!(out[cnt] = strdup(pattern ? g.gl_pathv[j] : patterns[i]))) {
                globfree(&g);
                lmb_source_paths_free(out, cnt);
                return lmb_fail(err, "out of memory");
            }
            cnt++;
        }
        if (pattern) globfree(&g);
    }
    *paths = out;
    *n_paths = cnt;
    return 0;
}

void lmb_source_paths_free(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}
