/* lock.c — see lock.h.  After flock succeeds the file is checked to still be the one at `path` (a releasing
 * run unlinks it while holding the flock; a run that opened the old file just before would otherwise hold a
 * lock on a deleted file while a third run creates a new one). */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct lmb_lock {
    int fd;
    char *path;
};

typedef struct holder {
    long pid;
    char host[256], started[64];
} holder;

static void read_holder(int fd, holder *h) {
    memset(h, 0, sizeof *h);
    char buf[2048];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return;
    buf[n] = '\0';
    json_t *o = json_loads(buf, 0, NULL);
    if (!o) return;
    json_t *pid = json_object_get(o, "pid");
    if (json_is_integer(pid)) h->pid = (long)json_integer_value(pid);
    snprintf(h->host, sizeof h->host, "%s", json_string_value(json_object_get(o, "host")) ? json_string_value(json_object_get(o, "host")) : "?");
    snprintf(h->started, sizeof h->started, "%s",
             json_string_value(json_object_get(o, "started")) ? json_string_value(json_object_get(o, "started")) : "?");
    json_decref(o);
}

/* A live lmbatch process with this pid on this host. */
static bool live_lmbatch(const holder *h) {
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    if (h->pid <= 0 || h->pid == (long)getpid() || strcmp(h->host, me) != 0) return false;
    if (kill((pid_t)h->pid, 0) != 0 && errno == ESRCH) return false;
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", h->pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
    fclose(f);
    return strncmp(comm, "lmbatch", 7) == 0;
}

static int held(const char *path, const holder *h, lmb_error *err) {
    lmb_fail(err, "%s: another run holds this lock (pid %ld on %s, since %s); if no such run is alive, remove the file",
             path, h->pid, h->host[0] ? h->host : "?", h->started[0] ? h->started : "?");
    return LMB_LOCK_HELD;
}

int lmb_lock_acquire(const char *path, lmb_lock **out, char *note, size_t note_cap, lmb_error *err) {
    *out = NULL;
    if (note && note_cap) note[0] = '\0';
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return lmb_fail(err, "%s: cannot create the lock file: %s", path, strerror(errno));
        holder h;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            read_holder(fd, &h);
            close(fd);
            if (e == EWOULDBLOCK) return held(path, &h, err);
            return lmb_fail(err, "%s: cannot lock: %s", path, strerror(e));
        }
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd); /* the file was replaced or removed meanwhile: try again */
            continue;
        }
        read_holder(fd, &h);
        if (live_lmbatch(&h)) {
            close(fd);
            return held(path, &h, err);
        }
        if (h.pid > 0 && note)
            snprintf(note, note_cap, "took over the stale lock of pid %ld on %s (since %s), which is no longer running",
                     h.pid, h.host, h.started);
        char host[256] = "", started[64];
        gethostname(host, sizeof host - 1);
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_t *o = json_pack("{s:I,s:s,s:s}", "pid", (json_int_t)getpid(), "host", host, "started", started);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        size_t n = text ? strlen(text) : 0;
        bool ok = text && ftruncate(fd, 0) == 0 && pwrite(fd, text, n, 0) == (ssize_t)n;
        free(text);
        if (!ok) {
            int e = errno;
            close(fd);
            return lmb_fail(err, "%s: cannot write the lock file: %s", path, strerror(e));
        }
        lmb_lock *l = calloc(1, sizeof *l);
        if (!l || !(l->path = strdup(path))) {
            free(l);
            unlink(path);
            close(fd);
            return lmb_fail(err, "out of memory");
        }
        l->fd = fd;
        *out = l;
        return LMB_LOCK_OK;
    }
    return lmb_fail(err, "%s: the lock file keeps being replaced; is another run starting and stopping?", path);
}

void lmb_lock_release(lmb_lock *l) {
    if (!l) return;
    unlink(l->path); /* while the flock is held: see the note at the top */
    close(l->fd);
    free(l->path);
    free(l);
}
