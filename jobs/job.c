/* job.c — reading and checking job files (see job.h).  Engine and sampling fields go through the same
 * validators as the command-line options (pipeline/cli_common.c), so a job accepts exactly what `run` does. */
#include "job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../engine/fileio.h"
#include "../pipeline/shard.h"
#include "../pipeline/source.h"

static int check_keys(json_t *o, const char *where, const char *const *known, const char *file, lmb_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++) ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            char list[512] = "";
            for (int i = 0; known[i]; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, known[i], sizeof list - strlen(list) - 1);
            }
            return lmb_fail(err, "%s: unknown field \"%s%s\" (known: %s)", file, where, key, list);
        }
    }
    return 0;
}

static int get_string(json_t *o, const char *key, const char *where, const char *file, const char **out, lmb_error *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return lmb_fail(err, "%s: field \"%s%s\" must be a non-empty string", file, where, key);
    *out = json_string_value(v);
    return 0;
}

static int get_long(json_t *o, const char *key, const char *where, const char *file, long *out, lmb_error *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return lmb_fail(err, "%s: field \"%s%s\" must be an integer", file, where, key);
    *out = (long)json_integer_value(v);
    return 0;
}

static int get_double(json_t *o, const char *key, const char *where, const char *file, double *out, lmb_error *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return lmb_fail(err, "%s: field \"%s%s\" must be a number", file, where, key);
    *out = json_number_value(v);
    return 0;
}

static int get_bool(json_t *o, const char *key, const char *where, const char *file, bool *out, lmb_error *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return lmb_fail(err, "%s: field \"%s%s\" must be true or false", file, where, key);
    *out = json_is_true(v);
    return 0;
}

/* "{date}" -> today's local date; then relative to dir. */
static char *resolve(const char *dir, const char *path, lmb_error *err) {
    char date[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    size_t cap = strlen(path) + strlen(dir) + 64;
    for (const char *p = path; (p = strstr(p, "{date}")); p++) cap += sizeof date;
    char *sub = malloc(cap), *out = malloc(cap + 2);
    if (!sub || !out) {
        free(sub);
        free(out);
        lmb_fail(err, "out of memory");
        return NULL;
    }
    char *w = sub;
    for (const char *p = path; *p;) {
        if (strncmp(p, "{date}", 6) == 0) {
            w += sprintf(w, "%s", date);
            p += 6;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    if (sub[0] == '/' || strcmp(sub, "-") == 0 || strcmp(dir, ".") == 0)
        snprintf(out, cap + 2, "%s", sub);
    else
        snprintf(out, cap + 2, "%s/%s", dir, sub);
    free(sub);
    return out;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int load_quantize(lmb_job *job, json_t *q, lmb_error *err) {
    const char *f = job->file;
    static const char *const known[] = {"output", "calibration", "check", "awq", "kv", NULL};
    if (!json_is_object(q)) return lmb_fail(err, "%s: field \"quantize\" must be an object", f);
    if (check_keys(q, "quantize.", known, f, err)) return -1;
    lmb_job_quantize *jq = calloc(1, sizeof *jq);
    if (!jq) return lmb_fail(err, "out of memory");
    job->quantize = jq;
    const char *out = NULL, *calib = NULL, *check = "mtime";
    if (get_string(q, "output", "quantize.", f, &out, err) || get_string(q, "calibration", "quantize.", f, &calib, err) ||
        get_string(q, "check", "quantize.", f, &check, err))
        return -1;
    if (!out) return lmb_fail(err, "%s: field \"quantize.output\" is required (the folder of the quantized model)", f);
    if (strcmp(check, "mtime") && strcmp(check, "hash"))
        return lmb_fail(err, "%s: field \"quantize.check\" must be \"mtime\" (size + mtime) or \"hash\" (SHA-256)", f);
    jq->hash = strcmp(check, "hash") == 0;
    static const char *const stages[] = {"awq", "kv"};
    for (int i = 0; i < 2; i++) {
        json_t *s = json_object_get(q, stages[i]);
        if (!s || json_is_null(s)) continue;
        if (!json_is_object(s)) return lmb_fail(err, "%s: field \"quantize.%s\" must be an object of parameters", f, stages[i]);
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v) {
            if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
                return lmb_fail(err, "%s: field \"quantize.%s.%s\" must be a string, a number or a boolean", f, stages[i], k);
        }
        if (i == 0) jq->awq = s;
        else jq->kv = s;
    }
    if (!jq->awq && !jq->kv) return lmb_fail(err, "%s: field \"quantize\" needs \"awq\" and/or \"kv\"", f);
    if (!(jq->output = resolve(job->dir, out, err))) return -1;
    if (calib && !(jq->calibration = resolve(job->dir, calib, err))) return -1;
    if (jq->kv) {
        /* The run uses what the kv stage made: its params file, at the width the stage names (8 by default). */
        json_t *b = json_object_get(jq->kv, "bits");
        if (b && !(json_is_integer(b) && (json_integer_value(b) == 8 || json_integer_value(b) == 4)))
            return lmb_fail(err, "%s: field \"quantize.kv.bits\" must be 8 or 4", f);
        bool engine_kv = json_object_get(json_object_get(job->root, "engine"), "kv") != NULL; /* else the default */
        if (engine_kv && strcmp(job->engine.kv, b && json_integer_value(b) == 4 ? "int4" : "int8"))
            return lmb_fail(err, "%s: field \"engine.kv\" (\"%s\") disagrees with the quantize.kv stage's bits", f,
                            job->engine.kv);
        job->engine.kv = b && json_integer_value(b) == 4 ? "int4" : "int8";
        size_t cap = strlen(jq->output) + 32;
        if (!(jq->kv_params = malloc(cap))) return lmb_fail(err, "out of memory");
        snprintf(jq->kv_params, cap, "%s/kv_params.json", jq->output);
        job->engine.kv_params = jq->kv_params;
    }
    return 0;
}

static int load_defaults(lmb_job *job, json_t *d, lmb_error *err) {
    const char *f = job->file, *w = "defaults.";
    static const char *const known[] = {"max_tokens", "temperature", "top_p", "top_k", "min_p",
                                        "repetition_penalty", "stop", "ignore_eos", NULL};
    if (!json_is_object(d)) return lmb_fail(err, "%s: field \"defaults\" must be an object", f);
    if (check_keys(d, w, known, f, err)) return -1;
    lmb_cli_sampling *s = &job->sampling;
    if (get_long(d, "max_tokens", w, f, &s->max_tokens, err) || get_double(d, "temperature", w, f, &s->temperature, err) ||
        get_double(d, "top_p", w, f, &s->top_p, err) || get_long(d, "top_k", w, f, &s->top_k, err) ||
        get_double(d, "min_p", w, f, &s->min_p, err) ||
        get_double(d, "repetition_penalty", w, f, &s->repetition_penalty, err) ||
        get_bool(d, "ignore_eos", w, f, &s->ignore_eos, err))
        return -1;
    json_t *stop = json_object_get(d, "stop");
    if (stop && !json_is_null(stop)) {
        size_t n = json_is_array(stop) ? json_array_size(stop) : 1;
        if (!(s->stop.items = calloc(n ? n : 1, sizeof *s->stop.items))) return lmb_fail(err, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_is_array(stop) ? json_array_get(stop, i) : stop;
            if (!json_is_string(e)) return lmb_fail(err, "%s: field \"defaults.stop\" must be a string or an array of strings", f);
            s->stop.items[s->stop.n++] = json_string_value(e);
        }
    }
    return 0;
}

static int load_engine(lmb_job *job, json_t *e, lmb_error *err) {
    const char *f = job->file, *w = "engine.";
    static const char *const known[] = {"backend", "max_batch_tokens", "max_seqs", "block_size", "kv_cache_mb",
                                        "cache_fraction", "threads", "device", "devices", "kv", "embedding", NULL};
    if (!json_is_object(e)) return lmb_fail(err, "%s: field \"engine\" must be an object", f);
    if (check_keys(e, w, known, f, err)) return -1;
    lmb_cli_engine *c = &job->engine;
    if (get_string(e, "backend", w, f, &c->backend, err) || get_string(e, "kv", w, f, &c->kv, err) ||
        get_string(e, "embedding", w, f, &c->embedding, err) ||
        get_long(e, "max_batch_tokens", w, f, &c->max_batch_tokens, err) ||
        get_long(e, "max_seqs", w, f, &c->max_seqs, err) || get_long(e, "block_size", w, f, &c->block_size, err) ||
        get_double(e, "kv_cache_mb", w, f, &c->kv_cache_mb, err) ||
        get_double(e, "cache_fraction", w, f, &c->cache_fraction, err) || get_long(e, "threads", w, f, &c->threads, err) ||
        get_long(e, "device", w, f, &c->device, err))
        return -1;
    json_t *dv = json_object_get(e, "devices");
    if (dv && !json_is_null(dv)) {
        if (json_is_string(dv)) {
            if (lmb_parse_devices(json_string_value(dv), job->devices, LMB_MAX_DEVICES, &job->n_devices, err))
                return lmb_error_prefix(err, "%s: engine.devices", f);
        } else if (json_is_array(dv) && json_array_size(dv) > 0 && json_array_size(dv) <= LMB_MAX_DEVICES) {
            for (size_t i = 0; i < json_array_size(dv); i++) {
                json_t *d = json_array_get(dv, i);
                if (!json_is_integer(d) || json_integer_value(d) < 0)
                    return lmb_fail(err, "%s: field \"engine.devices\" must list device numbers", f);
                for (int j = 0; j < job->n_devices; j++)
                    if (job->devices[j] == (int)json_integer_value(d))
                        return lmb_fail(err, "%s: field \"engine.devices\" names a device twice", f);
                job->devices[job->n_devices++] = (int)json_integer_value(d);
            }
        } else {
            return lmb_fail(err, "%s: field \"engine.devices\" must be an array of device numbers (at most %d)", f,
                            LMB_MAX_DEVICES);
        }
    }
    return 0;
}

int lmb_job_load(const char *path, lmb_job *job, lmb_error *err) {
    memset(job, 0, sizeof *job);
    job->chat_template = -1;
    job->resume = true;
    job->hash_inputs = true;
    job->progress_interval = 60;
    lmb_cli_engine_init(&job->engine);
    lmb_cli_sampling_init(&job->sampling);
    json_error_t je;
    if (!(job->file = strdup(path)) || !(job->dir = dir_of(path))) return lmb_fail(err, "out of memory");
    job->root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!job->root) {
        if (access(path, R_OK) != 0) return lmb_fail(err, "%s: cannot read the job file: %s", path, strerror(errno));
        return lmb_fail(err, "%s:%d:%d: not valid JSON: %s", path, je.line, je.column, je.text);
    }
    json_t *r = job->root;
    const char *f = path;
    if (!json_is_object(r)) return lmb_fail(err, "%s: a job file is a JSON object", f);
    static const char *const known[] = {"name", "description", "model", "quantize", "inputs", "output", "format",
                                        "order", "chat_template", "resume", "hash_inputs", "progress_interval",
                                        "seed", "defaults", "engine", "shard", "lock", "manifest", NULL};
    if (check_keys(r, "", known, f, err)) return -1;
    const char *name = NULL, *model = NULL, *output = NULL, *format = "auto", *order = "completion", *tpl = NULL;
    const char *shard = NULL, *lock = NULL, *manifest = NULL;
    if (get_string(r, "name", "", f, &name, err) || get_string(r, "model", "", f, &model, err) ||
        get_string(r, "output", "", f, &output, err) || get_string(r, "format", "", f, &format, err) ||
        get_string(r, "order", "", f, &order, err) || get_string(r, "chat_template", "", f, &tpl, err) ||
        get_string(r, "shard", "", f, &shard, err) || get_string(r, "lock", "", f, &lock, err) ||
        get_string(r, "manifest", "", f, &manifest, err) || get_bool(r, "resume", "", f, &job->resume, err) ||
        get_bool(r, "hash_inputs", "", f, &job->hash_inputs, err) ||
        get_double(r, "progress_interval", "", f, &job->progress_interval, err) ||
        get_long(r, "seed", "", f, &job->sampling.seed, err))
        return -1;
    if (!model) return lmb_fail(err, "%s: field \"model\" is required (a model folder)", f);
    if (!output) return lmb_fail(err, "%s: field \"output\" is required (the JSONL results file)", f);
    if (strcmp(output, "-") == 0) return lmb_fail(err, "%s: field \"output\" must be a file (a job cannot resume stdout)", f);
    int fm = lmb_format_parse(format);
    if (fm < 0) return lmb_fail(err, "%s: field \"format\" must be \"auto\", \"plain\" or \"openai\"", f);
    job->format = (lmb_format)fm;
    if (strcmp(order, "completion") && strcmp(order, "input"))
        return lmb_fail(err, "%s: field \"order\" must be \"completion\" or \"input\"", f);
    job->order = strcmp(order, "input") == 0 ? LMB_ORDER_INPUT : LMB_ORDER_COMPLETION;
    if (tpl && (job->chat_template = lmb_chat_template_parse(tpl)) < 0)
        return lmb_fail(err, "%s: field \"chat_template\": unknown template \"%s\"", f, tpl);
    if (!(job->progress_interval > 0)) return lmb_fail(err, "%s: field \"progress_interval\" must be > 0", f);
    int k, n;
    if (shard && lmb_shard_parse(shard, &k, &n, err)) return lmb_error_prefix(err, "%s: field \"shard\"", f);
    json_t *in = json_object_get(r, "inputs");
    if (json_is_string(in)) {
        job->inputs = calloc(1, sizeof *job->inputs);
        if (!job->inputs || !(job->inputs[0] = resolve(job->dir, json_string_value(in), err))) return lmb_fail(err, "out of memory");
        job->n_inputs = 1;
    } else if (json_is_array(in) && json_array_size(in) > 0) {
        if (!(job->inputs = calloc(json_array_size(in), sizeof *job->inputs))) return lmb_fail(err, "out of memory");
        for (size_t i = 0; i < json_array_size(in); i++) {
            json_t *e = json_array_get(in, i);
            if (!json_is_string(e) || json_string_length(e) == 0)
                return lmb_fail(err, "%s: field \"inputs\"[%zu] must be a file name or pattern", f, i);
            if (!(job->inputs[job->n_inputs] = resolve(job->dir, json_string_value(e), err))) return -1;
            job->n_inputs++;
        }
    } else {
        return lmb_fail(err, "%s: field \"inputs\" is required: a file, pattern or archive, or an array of them", f);
    }
    json_t *q = json_object_get(r, "quantize"), *d = json_object_get(r, "defaults"), *e = json_object_get(r, "engine");
    if (d && !json_is_null(d) && load_defaults(job, d, err)) return -1;
    if (e && !json_is_null(e) && load_engine(job, e, err)) return -1;
    if (q && !json_is_null(q) && load_quantize(job, q, err)) return -1; /* after engine: a kv stage sets engine.kv */
    if (job->engine.device && job->n_devices) return lmb_fail(err, "%s: give engine.device or engine.devices, not both", f);
    /* the shared validators, with the job's spelling of where */
    lmb_engine_config ec;
    lmb_item_defaults idef;
    uint64_t seed;
    if (lmb_cli_engine_config(&job->engine, &ec, err)) return lmb_error_prefix(err, "%s: engine", f);
    if (lmb_cli_sampling_defaults(&job->sampling, &idef, &seed, err)) return lmb_error_prefix(err, "%s: defaults", f);
    /* names and paths */
    if (name) {
        job->name = strdup(name);
    } else {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        size_t bl = strlen(b);
        job->name = strndup(b, bl > 5 && strcmp(b + bl - 5, ".json") == 0 ? bl - 5 : bl);
    }
    if (!job->name) return lmb_fail(err, "out of memory");
    for (const char *p = job->name; *p; p++)
        if (*p == '/') return lmb_fail(err, "%s: field \"name\" must not contain '/'", f);
    if (!(job->model = resolve(job->dir, model, err)) || !(job->output = resolve(job->dir, output, err))) return -1;
    if (shard && !(job->shard = strdup(shard))) return lmb_fail(err, "out of memory");
    if (lock) {
        if (!(job->lock = resolve(job->dir, lock, err))) return -1;
    } else {
        char *od = dir_of(job->output);
        size_t cap = (od ? strlen(od) : 0) + strlen(job->name) + 8;
        if (!od || !(job->lock = malloc(cap))) {
            free(od);
            return lmb_fail(err, "out of memory");
        }
        snprintf(job->lock, cap, "%s/%s.lock", od, job->name);
        free(od);
    }
    if (manifest && !(job->manifest = resolve(job->dir, manifest, err))) return -1;
    return 0;
}

void lmb_job_free(lmb_job *job) {
    if (job->quantize) {
        free(job->quantize->output);
        free(job->quantize->calibration);
        free(job->quantize->kv_params);
        free(job->quantize);
    }
    for (int i = 0; i < job->n_inputs; i++) free(job->inputs[i]);
    free(job->inputs);
    free(job->sampling.stop.items);
    free(job->file);
    free(job->dir);
    free(job->name);
    free(job->model);
    free(job->output);
    free(job->lock);
    free(job->manifest);
    free(job->shard);
    json_decref(job->root);
    memset(job, 0, sizeof *job);
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int lmb_job_check_files(const lmb_job *job, lmb_error *err) {
    const char *f = job->file;
    char p[4200];
    if (!is_dir(job->model)) return lmb_fail(err, "%s: model folder %s does not exist", f, job->model);
    if (!job->quantize) {
        snprintf(p, sizeof p, "%s/config.json", job->model);
        if (!lmb_file_exists(p)) return lmb_fail(err, "%s: model folder %s has no config.json", f, job->model);
    }
    if (job->quantize && job->quantize->calibration && !lmb_file_exists(job->quantize->calibration))
        return lmb_fail(err, "%s: calibration input %s does not exist", f, job->quantize->calibration);
    char **paths;
    int n;
    if (lmb_source_expand((const char *const *)job->inputs, job->n_inputs, &paths, &n, err))
        return lmb_error_prefix(err, "%s", f);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (strcmp(paths[i], "-") && !lmb_file_exists(paths[i]))
            rc = lmb_fail(err, "%s: input %s does not exist", f, paths[i]);
    lmb_source_paths_free(paths, n);
    if (rc) return -1;
    /* the output's folder, or the nearest folder above it that exists (job run creates the rest) */
    char *od = dir_of(job->output);
    while (od && !is_dir(od) && strcmp(od, ".") && strcmp(od, "/")) {
        char *up = dir_of(od);
        free(od);
        od = up;
    }
    bool ok = od && is_dir(od) && access(od, W_OK) == 0;
    if (!ok) rc = lmb_fail(err, "%s: the output folder %s is not writable", f, od ? od : "?");
    free(od);
    return rc;
}

static int mkdir_p(const char *dir, lmb_error *err) {
    if (is_dir(dir)) return 0;
    char *up = dir_of(dir);
    int rc = up && strcmp(up, dir) ? mkdir_p(up, err) : 0;
    free(up);
    if (rc) return -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return lmb_fail(err, "%s: cannot create the folder: %s", dir, strerror(errno));
    return 0;
}

int lmb_job_make_dirs(const lmb_job *job, lmb_error *err) {
    const char *paths[] = {job->output, job->lock, job->manifest};
    for (int i = 0; i < 3; i++) {
        if (!paths[i]) continue;
        char *d = dir_of(paths[i]);
        int rc = d ? mkdir_p(d, err) : lmb_fail(err, "out of memory");
        free(d);
        if (rc) return -1;
    }
    return 0;
}

int lmb_job_run_options(const lmb_job *job, lmb_run_options *o, lmb_error *err) {
    memset(o, 0, sizeof *o);
    if (lmb_cli_engine_config(&job->engine, &o->engine, err) ||
        lmb_cli_sampling_defaults(&job->sampling, &o->defaults, &o->seed, err))
        return -1;
    o->model_dir = job->quantize && job->quantize->awq ? job->quantize->output : job->model;
    o->chat_template = job->chat_template;
    o->progress_interval = job->progress_interval;
    o->quiet = job->engine.quiet;
    o->format = job->format;
    o->order = job->order;
    o->resume = job->resume;
    o->devices = job->n_devices ? job->devices : NULL;
    o->n_devices = job->n_devices;
    return 0;
}
