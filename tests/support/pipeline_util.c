/* pipeline_util.c — see pipeline_util.h. */
#include "pipeline_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../engine/fileio.h"
#include "fixtures.h"

static int copy_fixture(const char *name, const char *dir, lmb_error *err) {
    char from[4096], to[4096];
    snprintf(from, sizeof from, "tests/fixtures/bytelevel/%s", name);
    char *data;
    size_t n;
    if (lmb_file_read_all(from, &data, &n, err)) return lmb_error_prefix(err, "run the tests from the repository root");
    snprintf(to, sizeof to, "%s/%s", dir, name);
    int rc = lmb_file_write_atomic(to, data, n, err);
    free(data);
    return rc;
}

int lmb_test_make_pipeline_model(const char *dir, lmb_error *err) {
    lmb_test_model_spec s;
    lmb_test_model_spec_default(&s, LMB_ARCH_LLAMA);
    s.vocab = 2000;
    s.max_pos = 512;
    if (lmb_test_make_model(dir, &s, err)) return -1;
    return copy_fixture("tokenizer.json", dir, err) || copy_fixture("tokenizer_config.json", dir, err) ? -1 : 0;
}

int lmb_test_write_archive(const char *path, const char *kind, const char *const *names, const char *const *texts,
                           int n, lmb_error *err) {
    struct archive *a = archive_write_new();
    bool raw = strcmp(kind, "gz") == 0 || strcmp(kind, "zst") == 0;
    if (raw)
        archive_write_set_format_raw(a);
    else if (strcmp(kind, "zip") == 0)
        archive_write_set_format_zip(a);
    else
        archive_write_set_format_pax_restricted(a);
    if (strstr(kind, "gz")) archive_write_add_filter_gzip(a);
    if (strstr(kind, "zst")) archive_write_add_filter_zstd(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
        lmb_fail(err, "%s: %s", path, archive_error_string(a));
        archive_write_free(a);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < (raw ? 1 : n) && !rc; i++) {
        struct archive_entry *e = archive_entry_new();
        const char *name = raw ? "data" : names[i];
        size_t len = strlen(name);
        bool dir = len > 0 && name[len - 1] == '/';
        size_t size = dir ? 0 : strlen(texts[i]);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, dir ? 0755 : 0644);
        archive_entry_set_size(e, (la_int64_t)size);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            (size && archive_write_data(a, texts[i], size) != (la_ssize_t)size))
            rc = lmb_fail(err, "%s: %s", path, archive_error_string(a));
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK && !rc) rc = lmb_fail(err, "%s: %s", path, archive_error_string(a));
    archive_write_free(a);
    return rc;
}

const char *lmb_test_bin(void) {
    const char *b = getenv("LMB_BIN");
    if (b && *b) return b;
    return lmb_file_exists("build/lmbatch") ? "build/lmbatch" : NULL;
}

pid_t lmb_test_spawn(const char *const *args, const char *const *env, const char *log) {
    const char *bin = lmb_test_bin();
    if (!bin) return -1;
    int n = 0;
    while (args[n]) n++;
    char **argv = calloc((size_t)n + 2, sizeof *argv);
    if (!argv) return -1;
    argv[0] = (char *)bin;
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) {
            dup2(in, 0);
            close(in);
        }
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        execv(bin, argv);
        _exit(127);
    }
    free(argv);
    return pid;
}

void lmb_test_sleep(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int lmb_test_wait(pid_t pid, double timeout_s) {
    if (pid < 0) return -1;
    int st;
    for (double waited = 0;; waited += 0.01) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (r < 0) return -1;
        if (waited > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        lmb_test_sleep(0.01);
    }
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

int lmb_test_lmbatch(const char *const *args, const char *const *env, const char *log) {
    return lmb_test_wait(lmb_test_spawn(args, env, log), 120);
}

static char *key_of_line(json_t *o) {
    json_t *id = json_object_get(o, "custom_id");
    if (!id || json_is_null(id)) id = json_object_get(o, "id");
    if (json_object_get(o, "custom_id") && json_is_null(json_object_get(o, "custom_id"))) id = NULL;
    json_t *err = json_object_get(o, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    char *buf = NULL;
    if (id && !(code && strcmp(code, "duplicate_id") == 0)) {
        char *t = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
        if (asprintf(&buf, "id:%s", t ? t : "?") < 0) buf = NULL;
        free(t);
    } else {
        const char *src = json_string_value(json_object_get(err, "source"));
        if (asprintf(&buf, "pos:%s:%lld", src ? src : "?", (long long)json_integer_value(json_object_get(err, "line"))) < 0)
            buf = NULL;
    }
    return buf;
}

json_t *lmb_test_read_output(const char *path, int *n_lines, int *repeated) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    json_t *all = json_object();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    *n_lines = 0;
    if (repeated) *repeated = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *o = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, NULL);
        if (!o) {
            json_decref(all);
            all = NULL;
            break;
        }
        (*n_lines)++;
        char *k = key_of_line(o);
        if (repeated && json_object_get(all, k)) (*repeated)++;
        json_object_set_new(all, k, o);
        free(k);
    }
    free(line);
    fclose(f);
    return all;
}

json_t *lmb_test_line_text(json_t *o) {
    if (json_is_string(json_object_get(o, "text"))) return json_object_get(o, "text");
    json_t *ch = json_array_get(json_object_get(json_object_get(json_object_get(o, "response"), "body"), "choices"), 0);
    if (!ch) return NULL;
    json_t *t = json_object_get(ch, "text");
    if (json_is_string(t)) return t;
    return json_object_get(json_object_get(ch, "message"), "content");
}
