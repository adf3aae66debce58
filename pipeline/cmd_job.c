/* cmd_job.c — `lmbatch job run JOB.json` and `lmbatch job check JOB.json` (jobs/job.h).
 *
 * run:   lock (one run of a job at a time; exit 3 when held) -> quantize stage when stale -> the batch, with
 *        resume on by default (a cron rerun after a crash finishes the output) -> manifest -> exit code.
 * check: validates the job file and the files it names, says what a run would do; exit 0 or 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../jobs/exec.h"
#include "../jobs/job.h"
#include "../jobs/lock.h"
#include "../jobs/manifest.h"
#include "../jobs/quantize_stage.h"
#include "args.h"
#include "commands.h"
#include "shard.h"

#ifndef LMB_VERSION
#define LMB_VERSION "0.1.0-dev"
#endif

static const char *synopsis = "lmbatch job run|check JOB.json [--quiet] [--quantize-only]";

/* The shard this task takes (job's "shard", else Slurm's environment). */
static int job_shard(const lmb_job *job, int *k, int *n, lmb_error *err) {
    *k = 0;
    *n = 1;
    if (job->shard) return lmb_shard_parse(job->shard, k, n, err);
    const char *what;
    return lmb_shard_from_env(k, n, &what, err) < 0 ? -1 : 0;
}

static int check(const char *path) {
    lmb_job job;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    if (lmb_job_load(path, &job, &err) || lmb_job_check_files(&job, &err)) {
        fprintf(stderr, "lmbatch job check: %s\n", err.msg);
        goto done;
    }
    int k, n;
    char out[4096];
    if (job_shard(&job, &k, &n, &err) || lmb_shard_output(job.output, k, n, out, sizeof out, &err)) {
        fprintf(stderr, "lmbatch job check: %s\n", err.msg);
        goto done;
    }
    printf("job        %s\nmodel      %s\n", job.name, job.model);
    if (job.quantize) {
        char reason[512];
        int stale = lmb_quantize_stale(&job, reason, sizeof reason, &err);
        if (stale < 0) {
            fprintf(stderr, "lmbatch job check: %s\n", err.msg);
            goto done;
        }
        printf("quantize   %s%s -> %s: %s%s\n", job.quantize->awq ? "awq" : "", job.quantize->kv ? (job.quantize->awq ? "+kv" : "kv") : "",
               job.quantize->output, stale ? "would run: " : "up to date", stale ? reason : "");
        if (stale && !lmb_quantize_available())
            printf("           warning: this build has no quantize command; the run would fail (exit 4)\n");
    }
    for (int i = 0; i < job.n_inputs; i++) printf("input      %s\n", job.inputs[i]);
    printf("output     %s%s\n", out, n > 1 ? " (a shard)" : "");
    printf("lock       %s\n", job.lock);
    printf("manifest   %s\n", job.manifest ? job.manifest : "<output>.manifest.json");
    printf("ok\n");
    rc = LMB_EXIT_OK;
done:
    lmb_job_free(&job);
    return rc;
}

/* A manifest for a run that ended before the batch started (quantize stage failed). */
static void early_manifest(const lmb_job *job, const char *path, time_t started, int code, const char *msg) {
    char s[32], f[32];
    lmb_iso8601(started, s, sizeof s);
    lmb_iso8601(time(NULL), f, sizeof f);
    json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s}", "lmbatch_version", LMB_VERSION, "job", job->name,
                          "job_file", job->file, "started", s, "finished", f, "status", "failed", "exit_code", code,
                          "error", msg);
    lmb_error err;
    if (m && lmb_manifest_write(path, m, &err)) fprintf(stderr, "lmbatch job run: %s\n", err.msg);
    json_decref(m);
}

static int run(const char *path, bool quiet, bool quantize_only) {
    lmb_job job;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    lmb_lock *lock = NULL;
    json_t *extra = NULL;
    time_t started = time(NULL);
    if (lmb_job_load(path, &job, &err)) {
        fprintf(stderr, "lmbatch job run: %s\n", err.msg);
        goto done;
    }
    job.engine.quiet |= quiet;
    int k, n;
    char out[4096], lock_path[4200], man_path[4200];
    if (job_shard(&job, &k, &n, &err) || lmb_shard_output(job.output, k, n, out, sizeof out, &err)) {
        fprintf(stderr, "lmbatch job run: %s\n", err.msg);
        goto done;
    }
    if (job.manifest)
        snprintf(man_path, sizeof man_path, "%s", job.manifest);
    else
        snprintf(man_path, sizeof man_path, "%s.manifest.json", out);
    if (lmb_job_make_dirs(&job, &err)) {
        fprintf(stderr, "lmbatch job run: %s\n", err.msg);
        rc = LMB_EXIT_IO;
        goto done;
    }
    /* one lock per job and shard: the shards of an array job run side by side */
    if (n > 1)
        lmb_shard_output(job.lock, k, n, lock_path, sizeof lock_path, NULL);
    else
        snprintf(lock_path, sizeof lock_path, "%s", job.lock);
    char note[512];
    int lr = lmb_lock_acquire(lock_path, &lock, note, sizeof note, &err);
    if (lr != LMB_LOCK_OK) {
        fprintf(stderr, "lmbatch job run: %s: %s\n", job.name, err.msg);
        rc = lr == LMB_LOCK_HELD ? LMB_EXIT_LOCKED : LMB_EXIT_IO;
        goto done;
    }
    if (note[0] && !job.engine.quiet) fprintf(stderr, "lmbatch job run: %s\n", note);
    rc = LMB_EXIT_MODEL;
    if (lmb_job_check_files(&job, &err)) {
        fprintf(stderr, "lmbatch job run: %s\n", err.msg);
        rc = LMB_EXIT_IO;
        goto done;
    }
    json_t *qinfo = json_null();
    if (job.quantize) {
        char reason[512];
        int stale = lmb_quantize_stale(&job, reason, sizeof reason, &err);
        struct timespec ts0, ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts0);
        if (stale > 0 && n > 1 && !quantize_only) {
            lmb_fail(&err, "the quantize stage is stale (%s); a shard does not quantize on its own: run `lmbatch job run "
                           "--quantize-only %s` first (e.g. as the array job's dependency)", reason, path);
            stale = -1;
        }
        if (stale > 0 && !job.engine.quiet) fprintf(stderr, "lmbatch job run: quantize stage: %s; running it\n", reason);
        if (stale < 0 || (stale > 0 && lmb_quantize_run(&job, &err))) {
            fprintf(stderr, "lmbatch job run: %s\n", err.msg);
            if (!quantize_only) early_manifest(&job, man_path, started, LMB_EXIT_MODEL, err.msg);
            goto done;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        if (!stale && !job.engine.quiet)
            fprintf(stderr, "lmbatch job run: quantize stage up to date (%s)\n", job.quantize->output);
        qinfo = json_pack("{s:b,s:s,s:f,s:s}", "ran", stale > 0, "reason", stale > 0 ? reason : "up to date", "seconds",
                          (double)(ts1.tv_sec - ts0.tv_sec) + (ts1.tv_nsec - ts0.tv_nsec) * 1e-9, "model_used",
                          job.quantize->output);
    }
    if (quantize_only) {
        json_decref(qinfo);
        rc = LMB_EXIT_OK;
        goto done;
    }
    extra = json_pack("{s:s,s:s,s:o}", "job", job.name, "job_file", job.file, "quantize", qinfo);
    lmb_exec ex = {.who = "lmbatch job run", .hash_inputs = job.hash_inputs, .manifest_extra = extra};
    if (lmb_job_run_options(&job, &ex.run, &err)) {
        fprintf(stderr, "lmbatch job run: %s\n", err.msg);
        rc = LMB_EXIT_USAGE;
        goto done;
    }
    char shard[64];
    snprintf(shard, sizeof shard, "%d/%d", k, n);
    ex.input_patterns = (const char *const *)job.inputs;
    ex.n_patterns = job.n_inputs;
    ex.output = job.output;
    ex.shard = shard;
    ex.lock_path = "-"; /* held already */
    ex.manifest_path = man_path;
    rc = lmb_exec_batch(&ex);
done:
    json_decref(extra);
    lmb_lock_release(lock);
    lmb_job_free(&job);
    return rc;
}

int lmb_cmd_job(int argc, char **argv) {
    bool help = false, quiet = false, quantize_only = false;
    lmb_arg opts[] = {
        {"--quiet", LMB_ARG_FLAG, &quiet, "no start-up report or progress"},
        {"--quantize-only", LMB_ARG_FLAG, &quantize_only,
         "run: bring the quantize stage up to date and stop (before a Slurm array's shards)"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    if (lmb_args_parse(argc, argv, opts, n_opts, &pos, &err)) {
        fprintf(stderr, "lmbatch job: %s\n", err.msg);
        goto done;
    }
    if (help) {
        lmb_args_usage(synopsis, opts, n_opts);
        fprintf(stderr, "\nexit codes: 0 all lines ok, 1 some lines failed, 2 usage or invalid job file, 3 another run "
                        "holds the job's lock,\n4 model or quantize failure, 5 input/output failure, 128+N killed by "
                        "signal N (rerun to resume)\n");
        rc = LMB_EXIT_OK;
        goto done;
    }
    if (pos.n != 2 || (strcmp(pos.items[0], "run") && strcmp(pos.items[0], "check"))) {
        lmb_args_usage(synopsis, opts, n_opts);
        goto done;
    }
    rc = strcmp(pos.items[0], "run") == 0 ? run(pos.items[1], quiet, quantize_only) : check(pos.items[1]);
done:
    lmb_args_free(opts, n_opts, &pos);
    return rc;
}
