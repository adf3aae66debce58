/* generate.h — text generation on top of the engine: token ids in, finished texts out.
 *
 * Adds what the engine leaves to its caller: incremental detokenization (never a broken UTF-8 sequence),
 * stop *strings* (matched on the text, trimmed from it; the request is aborted in the engine at once),
 * and hiding special tokens (EOS, stop ids, added specials) from the text, as vLLM's
 * skip_special_tokens=True does.  Each request is known by the caller's 64-bit handle.
 */
#ifndef LMB_GENERATE_H
#define LMB_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"
#include "tokenizer.h"

typedef struct lmb_gen_result {
    uint64_t handle;
    char *text; /* owned by the generator until the next step */
    size_t text_len;
    lmb_finish finish;
    const char *finish_reason; /* "stop", "length", "abort" or "error" */
    int prompt_tokens, completion_tokens;
    const char *error; /* for "error" */
} lmb_gen_result;

typedef struct lmb_gen lmb_gen;

int lmb_gen_create(lmb_engine *engine, const lmb_tokenizer *tok, lmb_gen **out, lmb_error *err);
void lmb_gen_free(lmb_gen *g);

/* stops: stop strings (copied). */
int lmb_gen_submit(lmb_gen *g, uint64_t handle, const int32_t *ids, size_t n, const lmb_sampling *s,
                   const char *const *stops, int n_stops, lmb_error *err);
/* One engine step; *done lists the requests that finished in it (valid until the next call). */
int lmb_gen_step(lmb_gen *g, const lmb_gen_result **done, int *n_done, lmb_error *err);
int lmb_gen_pending(const lmb_gen *g);
/* Tokens generated so far by all requests (for progress). */
long lmb_gen_tokens(const lmb_gen *g);

#endif
