/* runner.h — the batch pipeline behind `lmbatch run` and `lmbatch job run`: every input line in this shard
 * becomes exactly one output line (a result or an error line), once, even across kills and resumes.
 *
 * The main thread reads lines (several inputs, archives), works out each line's identity (ids.h): lines of
 * other shards are skipped, duplicate ids and unreadable lines are answered at once, lines already answered
 * in the output being resumed are skipped, the rest are parsed and queued.  One worker per device (worker.h)
 * serves the queue; the writer (writer.h) writes each finished line in completion or input order.
 */
#ifndef LMB_RUNNER_H
#define LMB_RUNNER_H

#include <signal.h>
#include <stdint.h>

#include "../engine/engine.h"
#include "ids.h"
#include "request.h"
#include "writer.h"

typedef enum { LMB_ORDER_COMPLETION = 0, LMB_ORDER_INPUT } lmb_order;

typedef struct lmb_run_options {
    const char *model_dir;
    const char *input;         /* one input (path or "-"), when inputs is NULL */
    const char *const *inputs; /* several inputs (paths, archives, "-"), read one after the other */
    int n_inputs;
    const char *output;        /* path or "-" */
    lmb_engine_config engine;
    lmb_item_defaults defaults;
    uint64_t seed;     /* run seed: requests without "seed" get one derived from it and their id */
    int chat_template; /* lmb_chat_template, or -1 to detect from tokenizer_config.json */
    double progress_interval;
    bool quiet;
    lmb_format format;  /* AUTO: detected per stream */
    lmb_order order;
    bool resume;        /* skip what the output already answers (resume.h) */
    int shard_k, shard_n; /* this run takes the lines whose shard hash % shard_n == shard_k; n <= 1: all */
    const int *devices; /* one engine per device; NULL: just engine.device */
    int n_devices;
    const char *model_name; /* echoed in OpenAI responses; default: the model folder's name */
    volatile sig_atomic_t *interrupt; /* when it becomes nonzero, the run stops (resumable) */
} lmb_run_options;

typedef struct lmb_run_summary {
    long lines;       /* lines of this shard read (blank lines aside) */
    long ok, errors;  /* lines answered by this run */
    long duplicates;  /* of the errors: duplicate ids */
    long resumed;     /* lines skipped: already answered in the output */
    long other_shard; /* lines skipped: another shard's */
    long prompt_tokens, completion_tokens;
    long total_ok, total_errors; /* the complete output: lines kept by --resume included */
    long resume_cut_bytes;       /* torn tail cut off the resumed output */
    long input_total;            /* lines of this shard in the inputs; -1 when the run did not finish */
    double seconds;
    int n_devices;
    struct {
        int device;
        long lines, prompt_tokens, completion_tokens;
        size_t peak_device_bytes;
    } dev[LMB_MAX_DEVICES];
    long peak_rss_kb;
    int exit_code; /* on failure: LMB_EXIT_MODEL, LMB_EXIT_IO, or 128 + signal when interrupted */
} lmb_run_summary;

/* 0 when the output is complete (some lines may be error lines); -1 with err and sum->exit_code set. */
int lmb_run(const lmb_run_options *o, lmb_run_summary *sum, lmb_error *err);

/* splitmix64 of the run seed and the id hash: the default seed of a request without one. */
uint64_t lmb_derive_seed(uint64_t run_seed, uint64_t id_hash);

#endif
