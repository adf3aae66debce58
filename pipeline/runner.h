/* runner.h — `lmbatch run`: every input line becomes exactly one output line (a result or an error line).
 *
 * The loop keeps a bounded window of requests in flight: read a line -> parse -> chat template -> tokenize
 * -> submit; step the engine; write each finished request's line as it completes.  A bad line or a request
 * the engine rejects produces an error line and the run goes on.
 */
#ifndef LMB_RUNNER_H
#define LMB_RUNNER_H

#include <stdint.h>

#include "../engine/engine.h"
#include "request.h"

typedef struct lmb_run_options {
    const char *model_dir;
    const char *input;  /* path or "-" */
    const char *output; /* path or "-" */
    lmb_engine_config engine;
    lmb_item_defaults defaults;
    uint64_t seed;     /* run seed: requests without "seed" get one derived from it and their id */
    int chat_template; /* lmb_chat_template, or -1 to detect from tokenizer_config.json */
    double progress_interval;
    bool quiet;
} lmb_run_options;

typedef struct lmb_run_summary {
    long lines, ok, errors;
    long prompt_tokens, completion_tokens;
    double seconds;
} lmb_run_summary;

int lmb_run(const lmb_run_options *o, lmb_run_summary *sum, lmb_error *err);

/* splitmix64 of the run seed and the id hash: the default seed of a request without one. */
uint64_t lmb_derive_seed(uint64_t run_seed, uint64_t id_hash);

#endif
