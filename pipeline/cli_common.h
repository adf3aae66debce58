/* cli_common.h — the option groups several subcommands share (engine settings, sampling defaults), so
 * `run`, `ppl`, `bench` and job files spell and check them the same way. */
#ifndef LMB_CLI_COMMON_H
#define LMB_CLI_COMMON_H

#include "../engine/engine.h"
#include "args.h"
#include "request.h"

typedef struct lmb_cli_engine {
    const char *backend;
    const char *kv, *kv_params; /* --kv fp16|int8|int4, --kv-params FILE */
    const char *embedding;      /* --embedding auto|gpu|host */
    long max_batch_tokens, max_seqs, block_size, threads, device;
    double kv_cache_mb, cache_fraction;
    bool quiet, batch_invariant;
} lmb_cli_engine;

typedef struct lmb_cli_sampling {
    long max_tokens, top_k, seed;
    double temperature, top_p, min_p, repetition_penalty;
    lmb_arg_list stop;
    bool ignore_eos;
} lmb_cli_sampling;

void lmb_cli_engine_init(lmb_cli_engine *e);
/* Appends the engine options to opts (room for LMB_CLI_ENGINE_N more); returns the new count. */
#define LMB_CLI_ENGINE_N 14
int lmb_cli_engine_opts(lmb_arg *opts, int n, lmb_cli_engine *e);
int lmb_cli_engine_config(const lmb_cli_engine *e, lmb_engine_config *c, lmb_error *err);

void lmb_cli_sampling_init(lmb_cli_sampling *s);
#define LMB_CLI_SAMPLING_N 9
int lmb_cli_sampling_opts(lmb_arg *opts, int n, lmb_cli_sampling *s);
/* Validates and writes the run-wide defaults (seed goes to *seed). */
int lmb_cli_sampling_defaults(const lmb_cli_sampling *s, lmb_item_defaults *d, uint64_t *seed, lmb_error *err);

/* "0,1,3" (--devices) -> devices[0..*n); a device named twice fails. */
int lmb_parse_devices(const char *text, int *devices, int cap, int *n, lmb_error *err);

#endif
