/* test_ppl.c — `lmbatch ppl` (CPU engine, fp32) reproduces HF transformers' fixed-length perplexity of
 * pycoder-22M over the start of pycode.valid.txt.gz (.gz read directly) within 0.1%: the reference was made by
 * tests/tools/make_ppl_reference.py (128-token windows every 64, so CI runs it in seconds; the full figure,
 * 66.21 at 1024/512 over 400,000 characters, is a command in docs/PERF.md).  Skips without ../shared. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/fixtures.h"

Test(ppl, pycoder_matches_hf, .timeout = 600) {
    char model[512], text[512];
    LMB_TEST_NEED_SHARED(model, "models/pycoder-22M");
    LMB_TEST_NEED_SHARED(text, "data/pycode.valid.txt.gz");
    json_error_t je;
    json_t *ref = json_load_file("tests/fixtures/ppl/pycoder-22M.json", 0, &je);
    cr_assert_not_null(ref, "tests/fixtures/ppl/pycoder-22M.json: %s", je.text);
    const char *bin = getenv("LMB_BIN");
    cr_assert_not_null(bin, "LMB_BIN is not set (run through make test)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' ppl --model '%s' --text '%s' --max-chars %lld --ctx %lld --stride %lld 2>&1", bin,
             model, text, json_integer_value(json_object_get(ref, "chars")),
             json_integer_value(json_object_get(ref, "ctx")), json_integer_value(json_object_get(ref, "stride")));
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[4096];
    double got = -1;
    long scored = -1;
    while (fgets(line, sizeof line, p)) {
        const char *s = strstr(line, "perplexity ");
        if (s) sscanf(s, "perplexity %lf over %ld", &got, &scored);
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
    double want = json_real_value(json_object_get(ref, "ppl"));
    cr_assert_eq(scored, (long)json_integer_value(json_object_get(ref, "scored")), "predictions scored");
    cr_assert_lt(fabs(got - want) / want, 1e-3, "lmbatch ppl %.5f, HF %.5f", got, want);
    json_decref(ref);
}
