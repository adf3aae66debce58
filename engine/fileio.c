/* fileio.c — mmap, whole-file reads (with transparent decompression) and atomic writes. See fileio.h. */
#include "fileio.h"

#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int lmb_file_map(const char *path, lmb_mapped_file *out, lmb_error *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmb_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lmb_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lmb_fail(err, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return lmb_fail(err, "%s: cannot mmap %lld bytes: %s", path, (long long)st.st_size, strerror(e));
        }
        out->data = p;
        out->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void lmb_file_unmap(lmb_mapped_file *f) {
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

bool lmb_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int lmb_path_join(char *buf, size_t cap, const char *dir, const char *name, lmb_error *err) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return lmb_fail(err, "path too long: %s/%s", dir, name);
    return 0;
}

int lmb_file_read_all(const char *path, char **out, size_t *size, lmb_error *err) {
    *out = NULL;
    *size = 0;
    struct archive *a = archive_read_new();
    if (!a) return lmb_fail(err, "%s: out of memory", path);
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    archive_read_support_format_empty(a);
    int rc = -1;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        lmb_fail(err, "%s: cannot open: %s", path, archive_error_string(a));
        goto done;
    }
    struct archive_entry *entry;
    int hr = archive_read_next_header(a, &entry);
    if (hr == ARCHIVE_OK) {
        for (;;) {
            if (cap - len < (1 << 16) + 1) {
                size_t ncap = cap ? cap * 2 : (1 << 17);
                char *nb = realloc(buf, ncap);
                if (!nb) {
                    lmb_fail(err, "%s: out of memory reading %zu bytes", path, ncap);
                    goto done;
                }
                buf = nb;
                cap = ncap;
            }
            la_ssize_t n = archive_read_data(a, buf + len, cap - len - 1);
            if (n < 0) {
                lmb_fail(err, "%s: read error: %s", path, archive_error_string(a));
                goto done;
            }
            if (n == 0) break;
            len += (size_t)n;
        }
    } else if (hr != ARCHIVE_EOF) {
        lmb_fail(err, "%s: cannot read: %s", path, archive_error_string(a));
        goto done;
    }
    if (!buf) {
        buf = malloc(1);
        if (!buf) {
            lmb_fail(err, "%s: out of memory", path);
            goto done;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *size = len;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    archive_read_free(a);
    return rc;
}

int lmb_file_write_atomic(const char *path, const void *data, size_t size, lmb_error *err) {
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return lmb_fail(err, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return lmb_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return lmb_fail(err, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return lmb_fail(err, "%s: fsync/close failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lmb_fail(err, "%s: rename to %s failed: %s", tmp, path, strerror(e));
    }
    return 0;
}
