/* exec.h — one batch run the way cron and Slurm need it, shared by `lmbatch run` and `lmbatch job run`:
 * expand input patterns, pick the shard (--shard or Slurm's environment) and its output name, take the lock,
 * write the manifest, run (stopping cleanly and resumably on SIGINT/SIGTERM), report, and turn the outcome
 * into an exit code (commands.h).
 */
#ifndef LMB_EXEC_H
#define LMB_EXEC_H

#include <jansson.h>
#include <stdbool.h>

#include "../pipeline/runner.h"

typedef struct lmb_exec {
    lmb_run_options run;      /* run.inputs, run.output, run.shard_* and run.interrupt are set here */
    const char *const *input_patterns; /* files, "-", archives, glob patterns */
    int n_patterns;
    const char *output;        /* as given (a shard's name is derived from it) */
    const char *shard;         /* "K/N"; NULL: from Slurm's environment, else all lines */
    const char *lock_path;     /* NULL: "<output>.lock"; "-": no lock */
    const char *manifest_path; /* NULL: no manifest; "": "<output>.manifest.json" */
    bool hash_inputs;          /* SHA-256 of each input in the manifest */
    const char *who;           /* "lmbatch run", "lmbatch job run": the prefix of messages */
    json_t *manifest_extra;    /* fields added to the manifest (borrowed), e.g. the job and its quantize stage */
} lmb_exec;

/* Returns the exit code. */
int lmb_exec_batch(lmb_exec *e);

#endif
