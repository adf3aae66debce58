/* job.h — a job file: everything one batch needs, in one JSON file that cron can run night after night.
 *
 *   {"name": "nightly-stories", "model": "models/llama", "quantize": {...}, "inputs": ["prompts.tar.gz"],
 *    "output": "out/stories-{date}.jsonl", "defaults": {"max_tokens": 256, ...}, "engine": {...}, ...}
 *
 * Relative paths are relative to the job file's folder; "{date}" in output, lock and manifest becomes the
 * local date (YYYY-MM-DD) when the job starts.  Unknown fields are errors (a typo in a nightly job should
 * fail `job check`, not be ignored for months).  docs/FORMATS.md lists every field.
 */
#ifndef LMB_JOB_H
#define LMB_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "../pipeline/cli_common.h"
#include "../pipeline/runner.h"

typedef struct lmb_job_quantize {
    char *output;      /* folder of the quantized model (and of the stamp) */
    char *calibration; /* calibration input, or NULL */
    bool hash;         /* "check": "hash" (SHA-256) rather than "mtime" (size + mtime) */
    json_t *awq, *kv;  /* parameters of each stage (borrowed from the job), NULL when the stage is absent */
    char *kv_params;   /* kv stage: output/kv_params.json, which the run reads (--kv int8|int4 --kv-params) */
} lmb_job_quantize;

typedef struct lmb_job {
    json_t *root;
    char *file, *dir; /* the job file and its folder */
    char *name;
    char *model;
    lmb_job_quantize *quantize; /* NULL: none */
    char **inputs;              /* patterns, resolved against dir */
    int n_inputs;
    char *output, *lock, *manifest; /* resolved; lock and manifest have their defaults filled in */
    char *shard;                    /* "K/N", or NULL: from Slurm's environment */
    lmb_format format;
    lmb_order order;
    int chat_template; /* -1: detect */
    bool resume, hash_inputs;
    double progress_interval;
    lmb_cli_engine engine;
    lmb_cli_sampling sampling;
    int devices[LMB_MAX_DEVICES];
    int n_devices;
} lmb_job;

/* Reads and validates the job file (fields, types, ranges); touches no other file. */
int lmb_job_load(const char *path, lmb_job *job, lmb_error *err);
void lmb_job_free(lmb_job *job);
/* Checks what the run will need: the model folder, the inputs (patterns match), a writable output folder (or
 * the nearest existing folder above it). */
int lmb_job_check_files(const lmb_job *job, lmb_error *err);
/* Creates the folders of the output, the lock and the manifest (mkdir -p). */
int lmb_job_make_dirs(const lmb_job *job, lmb_error *err);
/* The run options of the job (model_dir is the quantized folder when there is a quantize stage). */
int lmb_job_run_options(const lmb_job *job, lmb_run_options *o, lmb_error *err);

#endif
