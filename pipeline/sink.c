/* sink.c — see sink.h. */
#include "sink.h"

#include "ids.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct lmb_sink {
    int fd;
    char *path, *partial; /* NULL for stdout */
    double last_sync;
};

/* A file sink's data reaches the disk at least this often (a kill -9 loses nothing written: the page cache
 * survives it; this bounds what a power loss can take). */
#define SYNC_INTERVAL_S 5.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int sink_open(const char *path, bool append, lmb_sink **out, lmb_error *err) {
    *out = NULL;
    lmb_sink *s = calloc(1, sizeof *s);
    if (!s) return lmb_fail(err, "out of memory");
    if (strcmp(path, "-") == 0) {
        s->fd = 1;
        *out = s;
        return 0;
    }
    size_t n = strlen(path);
    s->path = strdup(path);
    s->partial = malloc(n + sizeof ".partial");
    if (!s->path || !s->partial) {
        s->fd = -1;
        lmb_sink_abandon(s);
        return lmb_fail(err, "out of memory");
    }
    memcpy(s->partial, path, n);
    memcpy(s->partial + n, ".partial", sizeof ".partial");
    s->fd = open(s->partial, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (s->fd < 0) {
        int e = errno;
        lmb_fail(err, "%s: cannot create: %s", s->partial, strerror(e));
        s->fd = -1;
        lmb_sink_abandon(s);
        return -1;
    }
    s->last_sync = now_s();
    *out = s;
    return 0;
}

int lmb_sink_open(const char *path, lmb_sink **out, lmb_error *err) { return sink_open(path, false, out, err); }

int lmb_sink_open_append(const char *path, lmb_sink **out, lmb_error *err) { return sink_open(path, true, out, err); }

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int after_write(lmb_sink *s, int rc, lmb_error *err) {
    if (rc) return lmb_fail(err, "%s: write failed: %s", s->partial ? s->partial : "<stdout>", strerror(errno));
    if (s->path) {
        double t = now_s();
        if (t - s->last_sync >= SYNC_INTERVAL_S) {
            s->last_sync = t;
            if (fdatasync(s->fd) != 0) return lmb_fail(err, "%s: fdatasync failed: %s", s->partial, strerror(errno));
        }
    }
    return 0;
}

int lmb_sink_write(lmb_sink *s, json_t *obj, lmb_error *err) {
    char *line = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!line) return lmb_fail(err, "cannot encode an output line as JSON");
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps leaves room: overwrite the NUL, write n + 1 bytes */
    int rc = write_all(s->fd, line, n + 1);
    free(line);
    return after_write(s, rc, err);
}

int lmb_sink_write_text(lmb_sink *s, const char *text, size_t len, lmb_error *err) {
    char *line = malloc(len + 1);
    if (!line) return lmb_fail(err, "out of memory");
    memcpy(line, text, len);
    line[len] = '\n';
    int rc = write_all(s->fd, line, len + 1);
    free(line);
    return after_write(s, rc, err);
}

int lmb_sink_commit(lmb_sink *s, lmb_error *err) {
    int rc = 0;
    if (s->path) {
        if (fsync(s->fd) != 0 || close(s->fd) != 0) {
            rc = lmb_fail(err, "%s: fsync/close failed: %s", s->partial, strerror(errno));
        } else if (rename(s->partial, s->path) != 0) {
            rc = lmb_fail(err, "%s: rename to %s failed: %s", s->partial, s->path, strerror(errno));
        }
        s->fd = -1;
    }
    lmb_sink_abandon(s);
    return rc;
}

void lmb_sink_abandon(lmb_sink *s) {
    if (!s) return;
    if (s->path && s->fd >= 0) close(s->fd);
    free(s->path);
    free(s->partial);
    free(s);
}

json_t *lmb_result_line(json_t *id, const char *text, size_t text_len, const char *finish_reason, int prompt_tokens,
                        int completion_tokens) {
    json_t *t = json_stringn(text, text_len);
    if (!t) t = json_string("\xef\xbf\xbd"); /* unreachable: the detokenizer only emits valid UTF-8 */
    return json_pack("{s:O,s:o,s:s,s:{s:i,s:i}}", "id", id, "text", t, "finish_reason", finish_reason, "usage",
                     "prompt_tokens", prompt_tokens, "completion_tokens", completion_tokens);
}

json_t *lmb_error_line_code(json_t *id, const char *origin, long line, const char *code, const char *message) {
    json_t *o = json_object(), *e = json_pack("{s:s,s:s,s:I}", "code", code ? code : LMB_ERR_INVALID, "message", message,
                                              "line", (json_int_t)line);
    if (!o || !e) {
        json_decref(o);
        json_decref(e);
        return NULL;
    }
    if (origin) json_object_set_new(e, "source", json_string(origin));
    if (id) json_object_set(o, "id", id);
    json_object_set_new(o, "error", e);
    return o;
}

json_t *lmb_error_line(json_t *id, const char *origin, long line, const char *message) {
    return lmb_error_line_code(id, origin, line, NULL, message);
}
