/* engine_util.c — see engine_util.h. */
#include "engine_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lmb_test_run_all(lmb_engine *e, const lmb_request *reqs, int n, lmb_test_result *out, lmb_error *err) {
    memset(out, 0, sizeof *out * (size_t)n);
    for (int i = 0; i < n; i++) {
        lmb_request r = reqs[i];
        r.id = (uint64_t)i;
        if (lmb_engine_submit(e, &r, err)) return -1;
    }
    int left = n;
    for (int guard = 0; left > 0; guard++) {
        if (guard > 1000000) return lmb_fail(err, "engine did not finish");
        const lmb_event *ev;
        int ne;
        if (lmb_engine_step(e, &ev, &ne, err)) return -1;
        for (int k = 0; k < ne; k++) {
            lmb_test_result *r = &out[ev[k].id];
            if (ev[k].has_token && r->n < LMB_TEST_MAX_GEN) r->tokens[r->n++] = ev[k].token;
            if (ev[k].finish != LMB_FINISH_NONE) {
                r->finish = ev[k].finish;
                if (ev[k].message) snprintf(r->message, sizeof r->message, "%s", ev[k].message);
                left--;
            }
        }
    }
    return 0;
}

static int32_t *ints(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return v;
}

int lmb_test_load_greedy(const char *path, lmb_test_greedy **out, int *n, lmb_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return lmb_fail(err, "%s: %s", path, je.text);
    json_t *g = json_object_get(root, "greedy");
    *n = (int)json_array_size(g);
    *out = calloc((size_t)*n, sizeof **out);
    for (int i = 0; i < *n; i++) {
        json_t *e = json_array_get(g, (size_t)i);
        (*out)[i].prompt = ints(json_object_get(e, "prompt_ids"), &(*out)[i].n_prompt);
        (*out)[i].greedy = ints(json_object_get(e, "greedy_ids"), &(*out)[i].n_greedy);
    }
    json_decref(root);
    return 0;
}

void lmb_test_free_greedy(lmb_test_greedy *g, int n) {
    for (int i = 0; i < n; i++) free(g[i].prompt), free(g[i].greedy);
    free(g);
}

void lmb_test_sampling(lmb_sampling *s, bool sampled, int max_tokens, int i) {
    lmb_sampling_default(s);
    s->max_tokens = max_tokens;
    s->ignore_eos = true;
    if (sampled) {
        s->temperature = 0.9f;
        s->top_p = 0.9f;
        s->top_k = 50;
        s->seed = 1000 + (uint64_t)i;
    } else {
        s->temperature = 0;
    }
}
