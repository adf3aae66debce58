/* quantize_stage.c — see quantize_stage.h. */
#include "quantize_stage.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/fileio.h"
#include "../pipeline/commands.h"
#include "sha256.h"

#pragma weak lmb_cmd_quantize

static lmb_quantize_fn hook;

void lmb_quantize_set_hook(lmb_quantize_fn fn) { hook = fn; }

static lmb_quantize_fn command(void) { return hook ? hook : lmb_cmd_quantize ? lmb_cmd_quantize : NULL; }

bool lmb_quantize_available(void) { return command() != NULL; }

/* {"size", "mtime_ns"} or {"sha256"} of one file. */
static json_t *file_state(const char *path, bool hash, lmb_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        lmb_fail(err, "%s: cannot stat: %s", path, strerror(errno));
        return NULL;
    }
    json_t *o = json_pack("{s:I}", "size", (json_int_t)st.st_size);
    if (hash) {
        char hex[65];
        if (lmb_sha256_file(path, hex, err)) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "sha256", json_string(hex));
    } else {
        json_object_set_new(o, "mtime_ns", json_integer((json_int_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec));
    }
    return o;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The stamp the stage would write now. */
static json_t *current_stamp(const lmb_job *job, lmb_error *err) {
    const lmb_job_quantize *q = job->quantize;
    DIR *d = opendir(job->model);
    if (!d) {
        lmb_fail(err, "%s: cannot list the model folder: %s", job->model, strerror(errno));
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(names, sizeof *nn * cap);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    json_t *files = json_object(), *stamp = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", job->model, names[i]);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        json_t *fs = file_state(p, q->hash, err);
        if (!fs) rc = -1;
        else json_object_set_new(files, names[i], fs);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    json_t *calib = json_null();
    if (!rc && q->calibration && !(calib = file_state(q->calibration, q->hash, err))) rc = -1;
    if (rc) {
        json_decref(files);
        return NULL;
    }
    stamp = json_pack("{s:s,s:o,s:s?,s:o,s:O?,s:O?}", "model", job->model, "model_files", files, "calibration_path",
                      q->calibration, "calibration", calib, "awq", q->awq, "kv", q->kv);
    return stamp;
}

static void stamp_path(const lmb_job *job, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", job->quantize->output, LMB_QUANTIZE_STAMP);
}

int lmb_quantize_stale(const lmb_job *job, char *reason, size_t cap, lmb_error *err) {
    char p[4200];
    stamp_path(job, p, sizeof p);
    json_t *now = current_stamp(job, err);
    if (!now) return -1;
    json_t *old = json_load_file(p, 0, NULL);
    int stale = 1;
    if (!old)
        snprintf(reason, cap, "no stamp in %s (never quantized, or the last attempt did not finish)", job->quantize->output);
    else if (!json_equal(json_object_get(old, "model_files"), json_object_get(now, "model_files")) ||
             !json_equal(json_object_get(old, "model"), json_object_get(now, "model")))
        snprintf(reason, cap, "the model %s changed", job->model);
    else if (!json_equal(json_object_get(old, "calibration"), json_object_get(now, "calibration")) ||
             !json_equal(json_object_get(old, "calibration_path"), json_object_get(now, "calibration_path")))
        snprintf(reason, cap, "the calibration input changed");
    else if (!json_equal(old, now))
        snprintf(reason, cap, "the quantize parameters changed");
    else
        stale = 0;
    json_decref(old);
    json_decref(now);
    return stale;
}

/* argv for one stage: quantize STAGE --model IN --output OUT [--calib FILE] [--param value ...]. */
static int run_stage(const lmb_job *job, const char *stage, const char *in, json_t *params, lmb_error *err) {
    const lmb_job_quantize *q = job->quantize;
    size_t np = json_object_size(params);
    char **argv = calloc(8 + 2 * np + 1, sizeof *argv);
    char **owned = calloc(2 * np + 1, sizeof *owned);
    int argc = 0, n_owned = 0, rc = 0;
    if (!argv || !owned) {
        free(argv);
        free(owned);
        return lmb_fail(err, "out of memory");
    }
    argv[argc++] = "quantize";
    argv[argc++] = (char *)stage;
    argv[argc++] = "--model";
    argv[argc++] = (char *)in;
    argv[argc++] = "--output";
    argv[argc++] = q->output;
    if (q->calibration) {
        argv[argc++] = "--calib";
        argv[argc++] = q->calibration;
    }
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        if (json_is_false(v)) continue;
        char *flag = malloc(strlen(key) + 3);
        if (!flag) break;
        sprintf(flag, "--%s", key);
        for (char *c = flag + 2; *c; c++)
            if (*c == '_') *c = '-';
        owned[n_owned++] = argv[argc++] = flag;
        if (json_is_true(v)) continue;
        char buf[64], *val;
        if (json_is_string(v)) {
            val = strdup(json_string_value(v));
        } else {
            if (json_is_integer(v))
                snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            else
                snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
            val = strdup(buf);
        }
        if (!val) break;
        owned[n_owned++] = argv[argc++] = val;
    }
    argv[argc] = NULL;
    lmb_quantize_fn fn = command();
    int code = fn(argc, argv);
    if (code != 0) rc = lmb_fail(err, "quantize %s (model %s -> %s) failed with exit code %d", stage, in, q->output, code);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    free(argv);
    return rc;
}

int lmb_quantize_run(const lmb_job *job, lmb_error *err) {
    const lmb_job_quantize *q = job->quantize;
    if (!command())
        return lmb_fail(err, "the job asks for a quantize stage, and it is stale, but the quantize stage is not available "
                             "in this build (no `lmbatch quantize` command)");
    char p[4200];
    stamp_path(job, p, sizeof p);
    if (mkdir(q->output, 0755) != 0 && errno != EEXIST)
        return lmb_fail(err, "%s: cannot create the quantize output folder: %s", q->output, strerror(errno));
    if (unlink(p) != 0 && errno != ENOENT) return lmb_fail(err, "%s: cannot remove the old stamp: %s", p, strerror(errno));
    if (q->awq && run_stage(job, "awq", job->model, q->awq, err)) return -1;
    if (q->kv && run_stage(job, "kv", q->awq ? q->output : job->model, q->kv, err)) return -1;
    json_t *now = current_stamp(job, err);
    if (!now) return -1;
    char *text = json_dumps(now, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(now);
    if (!text) return lmb_fail(err, "cannot encode the stamp");
    int rc = lmb_file_write_atomic(p, text, strlen(text), err);
    free(text);
    return rc;
}
