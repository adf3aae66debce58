/* test_merge.c — scale-out across machines with the binary: three `run --shard K/3` tasks (and one picking
 * its shard from SLURM_ARRAY_*), then `lmbatch merge`: the merged output equals an unsharded run; with
 * --input it follows the input order; a missing shard, an unfinished one (.partial only) or a line in the
 * wrong shard makes merge refuse (exit 6) without writing the output.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/fileio.h"
#include "support/fixtures.h"
#include "support/pipeline_util.h"

static char tmp[64], model[128], input[192], log_path[192];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    snprintf(model, sizeof model, "%s/model", tmp);
    cr_assert_eq(mkdir(model, 0755), 0);
    cr_assert_eq(lmb_test_make_pipeline_model(model, &err), 0, "%s", err.msg);
    snprintf(input, sizeof input, "%s/in.jsonl", tmp);
    snprintf(log_path, sizeof log_path, "%s/log.txt", tmp);
    char text[8192], *w = text;
    for (int i = 1; i <= 24; i++) w += sprintf(w, "{\"id\": \"m%d\", \"prompt\": \"Item %d\", \"max_tokens\": 6}\n", i, i);
    w += sprintf(w, "not json\n");
    cr_assert_eq(lmb_test_write_file(tmp, "in.jsonl", text, strlen(text), NULL, 0), 0);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(merge, .init = setup, .fini = teardown, .timeout = 120);

#define NEED_BIN()                                                                                                     \
    do {                                                                                                               \
        if (!lmb_test_bin()) cr_skip_test("LMB_BIN is not set and build/lmbatch is absent");                            \
    } while (0)

static const char *p(const char *name) {
    return lmb_test_join(tmp, name);
}

static int run_shard(const char *out, const char *shard, const char *const *env) {
    const char *args[] = {"run", "--model", model, "--input", input, "--output", out, "--temperature", "0",
                          "--threads", "1", "--kv-cache-mb", "8", "--quiet", shard ? "--shard" : NULL, shard, NULL};
    return lmb_test_lmbatch(args, env, log_path);
}

static int merge(const char *const *extra) {
    const char *args[16] = {"merge"};
    int n = 1;
    for (int i = 0; extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    return lmb_test_lmbatch(args, NULL, log_path);
}

static char *slurp(const char *path) {
    char *s;
    size_t n;
    lmb_error err;
    cr_assert_eq(lmb_file_read_all(path, &s, &n, &err), 0, "%s", err.msg);
    return s;
}

/* Three shards, the last from Slurm's array variables.  The "not json" line lands in one shard, which exits 1. */
static void three_shards(void) {
    int a = run_shard(p("out.jsonl"), "0/3", NULL), b = run_shard(p("out.jsonl"), "1/3", NULL);
    const char *env[] = {"SLURM_ARRAY_TASK_ID=12", "SLURM_ARRAY_TASK_MIN=10", "SLURM_ARRAY_TASK_COUNT=3", NULL};
    int c = run_shard(p("out.jsonl"), NULL, env);
    cr_assert(a >= 0 && a <= 1 && b >= 0 && b <= 1 && c >= 0 && c <= 1, "exit codes %d %d %d; see %s", a, b, c, log_path);
    cr_assert_eq(a + b + c, 1, "one shard has the error line");
    cr_assert(lmb_file_exists(p("out.shard-2-of-3.jsonl")), "Slurm's task 12 of 10..12 is shard 2");
}

Test(merge, shards_merge_into_the_unsharded_output) {
    NEED_BIN();
    cr_assert_eq(run_shard(p("all.jsonl"), NULL, NULL), 1);
    three_shards();
    const char *a1[] = {"--output", p("out.jsonl"), NULL}; /* finds out.shard-K-of-3.jsonl */
    cr_assert_eq(merge(a1), 1, "complete, with one error line: exit 1; see %s", log_path);
    int n1, n2, r;
    json_t *all = lmb_test_read_output(p("all.jsonl"), &n1, &r);
    json_t *m = lmb_test_read_output(p("out.jsonl"), &n2, &r);
    cr_assert_eq(n1, 25);
    cr_assert_eq(n2, 25);
    cr_assert_eq(r, 0);
    const char *key;
    json_t *v;
    json_object_foreach(all, key, v) {
        json_t *w = json_object_get(m, key);
        cr_assert(w, "merged output lacks %s", key);
        json_t *ta = lmb_test_line_text(v), *tb = lmb_test_line_text(w);
        cr_assert(ta ? json_equal(ta, tb) : !tb, "%s differs", key);
    }
    json_decref(all);
    json_decref(m);
    /* --input: checked against the inputs and written in their order */
    const char *a2[] = {"--output", p("ordered.jsonl"), "--input", input, p("out.shard-2-of-3.jsonl"),
                        p("out.shard-0-of-3.jsonl"), p("out.shard-1-of-3.jsonl"), NULL};
    cr_assert_eq(merge(a2), 1);
    char *text = slurp(p("ordered.jsonl"));
    char *line = text;
    for (int i = 1; i <= 24; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"id\":\"m%d\"", i);
        cr_assert(!strncmp(line, want, strlen(want)), "line %d: %.30s", i, line);
        line = strchr(line, '\n') + 1;
    }
    free(text);
}

Test(merge, refuses_incomplete_shards) {
    NEED_BIN();
    three_shards();
    /* shard 1 unfinished: only its .partial */
    cr_assert_eq(rename(p("out.shard-1-of-3.jsonl"), p("out.shard-1-of-3.jsonl.partial")), 0);
    const char *a[] = {"--output", p("out.jsonl"), NULL};
    cr_assert_eq(merge(a), 6, "see %s", log_path);
    cr_assert(!lmb_file_exists(p("out.jsonl")));
    char *log = slurp(log_path);
    cr_assert(strstr(log, "unfinished"), "%s", log);
    free(log);
    /* shard 1 missing altogether */
    remove(p("out.shard-1-of-3.jsonl.partial"));
    cr_assert_eq(merge(a), 6);
    cr_assert(!lmb_file_exists(p("out.jsonl")));
    /* a line in the wrong shard */
    char *s0 = slurp(p("out.shard-0-of-3.jsonl"));
    char *s2 = slurp(p("out.shard-2-of-3.jsonl"));
    char *both = malloc(strlen(s0) + strlen(s2) + 1);
    sprintf(both, "%s%s", s2, s0);
    cr_assert_eq(lmb_test_write_file(tmp, "out.shard-2-of-3.jsonl", both, strlen(both), NULL, 0), 0);
    const char *files[] = {"--output", p("m.jsonl"), p("out.shard-0-of-3.jsonl"), p("out.shard-2-of-3.jsonl"), NULL};
    cr_assert_eq(merge(files), 6);
    log = slurp(log_path);
    cr_assert(strstr(log, "another shard") || strstr(log, "twice"), "%s", log);
    free(log);
    free(s0);
    free(s2);
    free(both);
}

Test(merge, input_check_finds_unanswered_lines) {
    NEED_BIN();
    three_shards();
    /* the input grew after the shards ran */
    FILE *f = fopen(input, "a");
    fputs("{\"id\": \"late\", \"prompt\": \"x\"}\n", f);
    fclose(f);
    const char *a[] = {"--output", p("out.jsonl"), "--input", input, NULL};
    cr_assert_eq(merge(a), 6);
    cr_assert(!lmb_file_exists(p("out.jsonl")));
    char *log = slurp(log_path);
    cr_assert(strstr(log, "in.jsonl:26"), "the unanswered line is named: %s", log);
    free(log);
}
