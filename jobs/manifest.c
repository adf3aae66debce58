/* manifest.c — see manifest.h. */
#include "manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/fileio.h"
#include "sha256.h"

void lmb_iso8601(time_t t, char *buf, size_t cap) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int lmb_manifest_inputs(const char *const *paths, int n, bool hash, json_t **out, lmb_error *err) {
    json_t *a = json_array();
    if (!a) return lmb_fail(err, "out of memory");
    for (int i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s}", "path", paths[i]);
        json_array_append_new(a, o);
        if (strcmp(paths[i], "-") == 0) continue;
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            json_decref(a);
            return lmb_fail(err, "%s: cannot stat: %s", paths[i], strerror(errno));
        }
        char when[32], hex[65];
        lmb_iso8601(st.st_mtime, when, sizeof when);
        json_object_set_new(o, "size", json_integer((json_int_t)st.st_size));
        json_object_set_new(o, "mtime", json_string(when));
        if (hash) {
            if (lmb_sha256_file(paths[i], hex, err)) {
                json_decref(a);
                return -1;
            }
            json_object_set_new(o, "sha256", json_string(hex));
        }
    }
    *out = a;
    return 0;
}

json_t *lmb_manifest_run(const lmb_run_summary *s) {
    double sec = s->seconds > 0 ? s->seconds : 1e-9;
    size_t peak_dev = 0;
    json_t *devs = json_array();
    for (int i = 0; i < s->n_devices; i++) {
        json_array_append_new(devs, json_pack("{s:i,s:I,s:I,s:I,s:I}", "device", s->dev[i].device, "lines",
                                              (json_int_t)s->dev[i].lines, "prompt_tokens",
                                              (json_int_t)s->dev[i].prompt_tokens, "completion_tokens",
                                              (json_int_t)s->dev[i].completion_tokens, "peak_device_bytes",
                                              (json_int_t)s->dev[i].peak_device_bytes));
        if (s->dev[i].peak_device_bytes > peak_dev) peak_dev = s->dev[i].peak_device_bytes;
    }
    return json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:{s:I,s:I},s:{s:f,s:f,s:f},s:{s:I,s:I},s:o}",
                     "counts", "lines", (json_int_t)s->lines, "ok", (json_int_t)s->ok, "errors", (json_int_t)s->errors,
                     "duplicates", (json_int_t)s->duplicates, "resumed", (json_int_t)s->resumed, "other_shard",
                     (json_int_t)s->other_shard, "input_total", (json_int_t)s->input_total, "output_ok",
                     (json_int_t)s->total_ok, "output_errors", (json_int_t)s->total_errors, "tokens", "prompt",
                     (json_int_t)s->prompt_tokens, "completion", (json_int_t)s->completion_tokens, "throughput",
                     "seconds", s->seconds, "completion_tok_per_s", s->completion_tokens / sec, "lines_per_s",
                     (s->ok + s->errors) / sec, "peak_memory", "host_rss_bytes", (json_int_t)s->peak_rss_kb * 1024,
                     "device_bytes", (json_int_t)peak_dev, "devices", devs);
}

int lmb_manifest_write(const char *path, json_t *m, lmb_error *err) {
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) return lmb_fail(err, "cannot encode the manifest");
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return lmb_fail(err, "out of memory");
    }
    t2[n] = '\n';
    t2[n + 1] = '\0';
    int rc = lmb_file_write_atomic(path, t2, n + 1, err);
    free(t2);
    return rc;
}
