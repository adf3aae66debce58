/* exec.c — see exec.h. */
#include "exec.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../pipeline/commands.h"
#include "../pipeline/shard.h"
#include "../pipeline/source.h"
#include "lock.h"
#include "manifest.h"

#ifndef LMB_VERSION
#define LMB_VERSION "0.1.0-dev"
#endif

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

static void set_status(json_t *m, const char *status, int code, time_t finished, const char *error) {
    char when[32];
    lmb_iso8601(finished, when, sizeof when);
    json_object_set_new(m, "status", json_string(status));
    json_object_set_new(m, "exit_code", code < 0 ? json_null() : json_integer(code));
    json_object_set_new(m, "finished", finished ? json_string(when) : json_null());
    json_object_set_new(m, "error", error ? json_string(error) : json_null());
}

int lmb_exec_batch(lmb_exec *e) {
    const char *who = e->who ? e->who : "lmbatch";
    lmb_error err;
    int code = LMB_EXIT_USAGE;
    char **paths = NULL;
    int n_paths = 0;
    lmb_lock *lock = NULL;
    json_t *m = NULL;
    char out[4096], lock_buf[4200], man_buf[4200];
    const char *man_path = NULL;
    struct sigaction old_int, old_term;
    bool handlers = false;

    /* the shard and its output name */
    int k = 0, n = 1;
    const char *shard_from = "--shard";
    if (e->shard) {
        if (lmb_shard_parse(e->shard, &k, &n, &err)) goto fail;
    } else {
        int r = lmb_shard_from_env(&k, &n, &shard_from, &err);
        if (r < 0) goto fail;
        if (r == 0) k = 0, n = 1;
    }
    if (lmb_shard_output(e->output, k, n, out, sizeof out, &err)) goto fail;
    bool to_file = strcmp(out, "-") != 0;
    if (e->run.resume && !to_file) {
        lmb_fail(&err, "--resume needs an output file, not stdout");
        goto fail;
    }
    if (n > 1 && !e->run.quiet) fprintf(stderr, "%s: shard %d of %d (%s): output %s\n", who, k, n, shard_from, out);

    code = LMB_EXIT_IO;
    if (lmb_source_expand(e->input_patterns, e->n_patterns, &paths, &n_paths, &err)) goto fail;

    /* the lock */
    if (to_file && !(e->lock_path && strcmp(e->lock_path, "-") == 0)) {
        const char *lp = e->lock_path;
        if (!lp) {
            snprintf(lock_buf, sizeof lock_buf, "%s.lock", out);
            lp = lock_buf;
        }
        char note[512];
        int r = lmb_lock_acquire(lp, &lock, note, sizeof note, &err);
        if (r == LMB_LOCK_HELD) {
            code = LMB_EXIT_LOCKED;
            goto fail;
        }
        if (r < 0) goto fail;
        if (note[0] && !e->run.quiet) fprintf(stderr, "%s: %s\n", who, note);
    }

    /* the manifest, as the run starts */
    time_t started = time(NULL);
    if (e->manifest_path && to_file) {
        if (e->manifest_path[0]) {
            man_path = e->manifest_path;
        } else {
            snprintf(man_buf, sizeof man_buf, "%s.manifest.json", out);
            man_path = man_buf;
        }
        json_t *inputs;
        if (lmb_manifest_inputs((const char *const *)paths, n_paths, e->hash_inputs, &inputs, &err)) goto fail;
        char when[32], host[256] = "";
        lmb_iso8601(started, when, sizeof when);
        gethostname(host, sizeof host - 1);
        m = json_pack("{s:s,s:s,s:s,s:I,s:s,s:o,s:{s:i,s:i}}", "lmbatch_version", LMB_VERSION, "model", e->run.model_dir,
                      "host", host, "pid", (json_int_t)getpid(), "output", out, "inputs", inputs, "shard", "index", k,
                      "count", n);
        json_object_set_new(m, "started", json_string(when));
        if (e->manifest_extra) json_object_update(m, e->manifest_extra);
        set_status(m, "running", -1, 0, NULL);
        if (lmb_manifest_write(man_path, m, &err)) goto fail;
    }

    /* the run, stopping at SIGINT/SIGTERM (a second one kills) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers = true;
    e->run.inputs = (const char *const *)paths;
    e->run.n_inputs = n_paths;
    e->run.output = out;
    e->run.shard_k = k;
    e->run.shard_n = n;
    e->run.interrupt = &interrupted;
    lmb_run_summary sum;
    int rc = lmb_run(&e->run, &sum, &err);
    code = rc ? sum.exit_code : sum.total_errors ? LMB_EXIT_PARTIAL : LMB_EXIT_OK;
    if (m) {
        json_t *r = lmb_manifest_run(&sum);
        json_object_update(m, r);
        json_decref(r);
        const char *status = rc == 0 ? (code ? "partial" : "ok") : code >= 128 ? "interrupted" : "failed";
        set_status(m, status, code, time(NULL), rc ? err.msg : NULL);
        lmb_error merr;
        if (lmb_manifest_write(man_path, m, &merr)) fprintf(stderr, "%s: %s\n", who, merr.msg);
    }
    if (rc) goto fail;
    if (!e->run.quiet) {
        fprintf(stderr, "%s: %ld lines, %ld ok, %ld errors", who, sum.ok + sum.errors, sum.ok, sum.errors);
        if (sum.duplicates) fprintf(stderr, " (%ld duplicate ids)", sum.duplicates);
        if (sum.resumed) fprintf(stderr, ", %ld already done", sum.resumed);
        if (sum.other_shard) fprintf(stderr, ", %ld in other shards", sum.other_shard);
        fprintf(stderr, "; %ld prompt + %ld generated tokens in %.1f s (%.1f tok/s)\n", sum.prompt_tokens,
                sum.completion_tokens, sum.seconds, sum.seconds > 0 ? sum.completion_tokens / sum.seconds : 0);
        if (sum.n_devices > 1)
            for (int i = 0; i < sum.n_devices; i++)
                fprintf(stderr, "%s: device %d: %ld lines, %ld generated tokens\n", who, sum.dev[i].device,
                        sum.dev[i].lines, sum.dev[i].completion_tokens);
    }
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", who, err.msg);
done:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    json_decref(m);
    lmb_lock_release(lock);
    lmb_source_paths_free(paths, n_paths);
    return code;
}
