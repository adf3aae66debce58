/* engine_util.h — driving an engine to completion in tests: submit a set of requests, step until all
 * finish, collect each request's tokens and finish reason. */
#ifndef LMB_TEST_ENGINE_UTIL_H
#define LMB_TEST_ENGINE_UTIL_H

#include "../../engine/engine.h"

#define LMB_TEST_MAX_GEN 256

typedef struct lmb_test_result {
    int32_t tokens[LMB_TEST_MAX_GEN];
    int n;
    lmb_finish finish;
    char message[256];
} lmb_test_result;

/* Submits reqs[i] with id i and steps until every one has finished; out[i] gets request i's result.
 * Returns 0, or -1 with err set. */
int lmb_test_run_all(lmb_engine *e, const lmb_request *reqs, int n, lmb_test_result *out, lmb_error *err);

/* The sampling of test request i: greedy, or seeded sampling (temperature 0.9, top-p 0.9, top-k 50, seed
 * 1000 + i); max_tokens new tokens, EOS ignored. */
void lmb_test_sampling(lmb_sampling *s, bool sampled, int max_tokens, int i);

/* Reads ../shared/reference/NAME.greedy.json's entries: prompt ids and greedy ids (heap arrays). */
typedef struct lmb_test_greedy {
    int32_t *prompt, *greedy;
    int n_prompt, n_greedy;
} lmb_test_greedy;
int lmb_test_load_greedy(const char *path, lmb_test_greedy **out, int *n, lmb_error *err);
void lmb_test_free_greedy(lmb_test_greedy *g, int n);

#endif
