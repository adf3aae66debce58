/* resume.c — reading an earlier output back and cutting its torn tail (see resume.h). */
#include "resume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lmb_resume_free(lmb_resume *r) {
    lmb_keyset_free(&r->done);
    memset(r, 0, sizeof *r);
}

int lmb_resume_scan(const char *path, bool truncate_tail, lmb_resume *r, lmb_error *err) {
    FILE *f = fopen(path, truncate_tail ? "r+" : "r");
    if (!f) return lmb_fail(err, "%s: cannot open: %s", path, strerror(errno));
    r->found = true;
    char *line = NULL;
    size_t cap = 0;
    long long off = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lmb_output_ident id;
        if (line[n - 1] != '\n' || lmb_ident_output(line, (size_t)n - 1, &id) != 0) break;
        bool added;
        if (lmb_keyset_put(&r->done, id.key, 0, &added, err)) {
            rc = -1;
            break;
        }
        off += n;
        r->lines++;
        if (!added) {
            r->repeated++;
            continue;
        }
        if (id.ok) {
            r->ok++;
        } else {
            r->errors++;
        }
        r->prompt_tokens += id.prompt_tokens;
        r->completion_tokens += id.completion_tokens;
    }
    if (!rc && ferror(f)) rc = lmb_fail(err, "%s: read error: %s", path, strerror(errno));
    free(line);
    if (!rc) {
        fseeko(f, 0, SEEK_END);
        r->cut_bytes = (long long)ftello(f) - off;
        if (truncate_tail && r->cut_bytes > 0 && (ftruncate(fileno(f), (off_t)off) != 0 || fsync(fileno(f)) != 0))
            rc = lmb_fail(err, "%s: cannot cut the torn tail: %s", path, strerror(errno));
    }
    if (fclose(f) != 0 && !rc) rc = lmb_fail(err, "%s: close failed: %s", path, strerror(errno));
    return rc;
}

static int copy_file(const char *from, const char *to, lmb_error *err) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return lmb_fail(err, "%s: cannot open: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return lmb_fail(err, "%s: cannot create: %s", to, strerror(e));
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = lmb_fail(err, "%s: read error: %s", from, strerror(errno));
            break;
        }
        for (ssize_t w = 0, k; w < n; w += k)
            if ((k = write(out, buf + w, (size_t)(n - w))) < 0) {
                if (errno == EINTR) {
                    k = 0;
                    continue;
                }
                rc = lmb_fail(err, "%s: write error: %s", to, strerror(errno));
                break;
            }
        if (rc) break;
    }
    if (!rc && fsync(out) != 0) rc = lmb_fail(err, "%s: fsync failed: %s", to, strerror(errno));
    close(in);
    if (close(out) != 0 && !rc) rc = lmb_fail(err, "%s: close failed: %s", to, strerror(errno));
    return rc;
}

int lmb_resume_load(const char *output, lmb_resume *r, lmb_error *err) {
    memset(r, 0, sizeof *r);
    size_t n = strlen(output);
    char *partial = malloc(n + sizeof ".partial");
    if (!partial) return lmb_fail(err, "out of memory");
    memcpy(partial, output, n);
    memcpy(partial + n, ".partial", sizeof ".partial");
    int rc = 0;
    if (access(partial, F_OK) != 0) {
        if (access(output, F_OK) != 0) goto done; /* nothing to resume */
        if ((rc = copy_file(output, partial, err))) goto done;
    }
    rc = lmb_resume_scan(partial, true, r, err);
done:
    free(partial);
    return rc;
}
