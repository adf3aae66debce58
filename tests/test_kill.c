/* test_kill.c — exactly once across kill -9: the lmbatch binary ($LMB_BIN) runs a batch of short greedy
 * requests on a tiny CPU model and is SIGKILLed at random moments, then rerun with --resume until it finishes
 * on its own.  The final output must have exactly one line per input key (results, the bad line's error, the
 * duplicate's error) with the same greedy text as an uninterrupted run, no leftover .partial or lock file;
 * and after every kill the partial output must never answer a key twice.
 *
 * Four scenarios, 13 kills in all: plain lines in completion order, in input order, two CPU engines
 * (--devices 0,1, compared with a one-engine run), and OpenAI batch lines read from a tar.gz archive.
 * Kill delays are uniform over [0, 1.1 x the uninterrupted run's time], from a fixed seed ($LMB_TEST_SEED
 * overrides it), so the kills land during start-up, mid-batch and after the end alike.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../pipeline/progress.h"
#include "../pipeline/resume.h"
#include "support/fixtures.h"
#include "support/pipeline_util.h"

#define N_LINES 40

static char tmp[64];
static char model[128];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    snprintf(model, sizeof model, "%s/model", tmp);
    cr_assert_eq(mkdir(model, 0755), 0);
    cr_assert_eq(lmb_test_make_pipeline_model(model, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(kill, .init = setup, .fini = teardown, .timeout = 300);

#define NEED_BIN()                                                                                                     \
    do {                                                                                                               \
        if (!lmb_test_bin()) cr_skip_test("LMB_BIN is not set and build/lmbatch is absent");                            \
    } while (0)

/* 40 greedy requests of different lengths, a line that is not JSON, and a duplicate id. */
static char *plain_lines(int first, int n, bool extras) {
    size_t cap = 256 * (size_t)(n + 2);
    char *s = malloc(cap), *w = s;
    for (int i = first; i < first + n; i++) {
        w += sprintf(w, "{\"id\": \"q%d\", \"prompt\": \"Story %d: once upon a time\", \"max_tokens\": %d}\n", i, i,
                     12 + (i * 7) % 24);
        if (extras && i == first + 5) w += sprintf(w, "{\"id\": \"q%d\", \"prompt\": oops}\n", 1000 + i);
        if (extras && i == first + 20) w += sprintf(w, "{\"id\": \"q%d\", \"prompt\": \"again\"}\n", first);
    }
    return s;
}

static char *openai_lines(int first, int n) {
    char *s = malloc(400 * (size_t)n), *w = s;
    for (int i = first; i < first + n; i++)
        w += sprintf(w,
                     "{\"custom_id\": \"r%d\", \"method\": \"POST\", \"url\": \"%s\", \"body\": {\"%s\": %s, "
                     "\"max_tokens\": %d, \"temperature\": 0}}\n",
                     i, i % 2 ? "/v1/chat/completions" : "/v1/completions", i % 2 ? "messages" : "prompt",
                     i % 2 ? "[{\"role\": \"user\", \"content\": \"Tell me a story\"}]" : "\"A story:\"",
                     12 + (i * 5) % 24);
    return s;
}

static uint64_t seed(void) {
    const char *e = getenv("LMB_TEST_SEED");
    return e ? strtoull(e, NULL, 10) : 42;
}

/* argv for `run` on input into out with extra options (NULL-terminated); resume adds --resume. */
static void build_args(const char **a, const char *input, const char *out, const char *const *extra, bool resume) {
    int n = 0;
    const char *base[] = {"run", "--model", model, "--input", input, "--output", out, "--temperature", "0",
                          "--threads", "1", "--max-seqs", "4", "--kv-cache-mb", "8", "--quiet"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) a[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++) a[n++] = extra[i];
    if (resume) a[n++] = "--resume";
    a[n] = NULL;
}

static void check_no_repeats(const char *partial) {
    lmb_resume r = {0};
    lmb_error err;
    FILE *f = fopen(partial, "r");
    if (!f) return; /* killed before the output was created, or after it was renamed */
    fclose(f);
    cr_assert_eq(lmb_resume_scan(partial, false, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.repeated, 0, "%s answers %ld keys twice after a kill", partial, r.repeated);
    lmb_resume_free(&r);
}

/* Runs the scenario: reference run, `kills` killed runs, then runs to completion; compares. */
static void scenario(const char *name, const char *input, const char *const *extra, const char *const *ref_extra,
                     int kills, int expect_lines, bool check_order) {
    NEED_BIN();
    char ref[256], out[256], partial[300], lock[300], log[256];
    snprintf(ref, sizeof ref, "%s/%s.ref.jsonl", tmp, name);
    snprintf(out, sizeof out, "%s/%s.jsonl", tmp, name);
    snprintf(partial, sizeof partial, "%s.partial", out);
    snprintf(lock, sizeof lock, "%s.lock", out);
    snprintf(log, sizeof log, "%s/%s.log", tmp, name);
    const char *args[64];

    build_args(args, input, ref, ref_extra, false);
    double t0 = lmb_now();
    int rc = lmb_test_lmbatch(args, NULL, log);
    double t_ref = lmb_now() - t0;
    cr_assert_eq(rc, 1, "%s: the reference run exits %d (want 1: it has error lines); see %s", name, rc, log);
    int n_ref, rep;
    json_t *want = lmb_test_read_output(ref, &n_ref, &rep);
    cr_assert(want, "%s: cannot read %s", name, ref);
    cr_assert_eq(n_ref, expect_lines, "%s: reference has %d lines, want %d", name, n_ref, expect_lines);

    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, seed() ^ (uint64_t)strlen(name) * 0x9E3779B97F4A7C15ULL);
    build_args(args, input, out, extra, true);
    int killed = 0, mid = 0;
    for (int attempt = 0; killed < kills && attempt < 4 * kills; attempt++) {
        /* aim at the work that is left: the partial output tells how much is done */
        lmb_resume r = {0};
        lmb_error err;
        double left = 1.0;
        if (lmb_resume_scan(partial, false, &r, &err) == 0) left = 1.0 - (double)r.lines / expect_lines;
        lmb_resume_free(&r);
        double delay = lmb_test_rng_uniform(&rng) * 1.1 * t_ref * (left > 0.1 ? left : 0.1);
        pid_t pid = lmb_test_spawn(args, NULL, log);
        cr_assert(pid > 0);
        lmb_test_sleep(delay);
        kill(pid, SIGKILL);
        int st = lmb_test_wait(pid, 120);
        cr_assert(st == 128 + SIGKILL || st == 1, "%s: run %d ended with %d; see %s", name, attempt, st, log);
        if (st == 128 + SIGKILL) {
            killed++;
            check_no_repeats(partial);
            lmb_resume r2 = {0};
            if (lmb_resume_scan(partial, false, &r2, &err) == 0 && r2.lines > 0 && r2.lines < expect_lines) mid++;
            lmb_resume_free(&r2);
        } else {
            remove(out); /* it finished before the kill: start the output over, to kill it mid-way */
        }
    }
    cr_assert_eq(killed, kills, "%s: only %d of the %d kills landed before the run finished", name, killed, kills);
    int final_rc = -1;
    for (int tries = 0; tries < 3 && final_rc != 1; tries++) final_rc = lmb_test_lmbatch(args, NULL, log);
    cr_assert_eq(final_rc, 1, "%s: the resumed run exits %d; see %s", name, final_rc, log);
    FILE *f = fopen(partial, "r");
    cr_assert_null(f, "%s: %s is left behind", name, partial);
    f = fopen(lock, "r");
    cr_assert_null(f, "%s: %s is left behind", name, lock);

    int n_got;
    json_t *got = lmb_test_read_output(out, &n_got, &rep);
    cr_assert(got, "%s: cannot read %s", name, out);
    cr_assert_eq(rep, 0, "%s: %d keys answered twice", name, rep);
    cr_assert_eq(n_got, n_ref, "%s: %d lines after %d kills, want %d", name, n_got, killed, n_ref);
    const char *key;
    json_t *line;
    json_object_foreach(want, key, line) {
        json_t *g = json_object_get(got, key);
        cr_assert(g, "%s: no line for %s", name, key);
        json_t *a = lmb_test_line_text(line), *b = lmb_test_line_text(g);
        cr_assert_eq(!a, !b, "%s: %s is an error in one run only", name, key);
        if (a)
            cr_assert(json_equal(a, b), "%s: %s: text \"%s\" differs from the uninterrupted run's \"%s\"", name, key,
                      json_string_value(b), json_string_value(a));
    }
    if (check_order) { /* input order: the ids come out as they went in (q1, q2, ...) */
        FILE *o = fopen(out, "r");
        char buf[8192];
        int last = 0;
        while (fgets(buf, sizeof buf, o)) {
            const char *p = strstr(buf, "\"id\":\"q");
            if (!p || strstr(buf, "duplicate_id")) continue;
            int q = atoi(p + 7);
            cr_assert_gt(q, last, "%s: q%d written after q%d", name, q, last);
            last = q;
        }
        fclose(o);
    }
    cr_log_info("%s: %d runs killed, %d of them with part of the output written (reference run %.2f s)", name, killed,
                mid, t_ref);
    json_decref(want);
    json_decref(got);
}

static void write_plain_input(const char *path) {
    char *text = plain_lines(1, N_LINES, true);
    const char *slash = strrchr(path, '/');
    char dir[256];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    cr_assert_eq(lmb_test_write_file(dir, slash + 1, text, strlen(text), NULL, 0), 0);
    free(text);
}

Test(kill, plain_completion_order) {
    char input[256];
    snprintf(input, sizeof input, "%s/in.jsonl", tmp);
    write_plain_input(input);
    scenario("plain", input, NULL, NULL, 4, N_LINES + 2, false);
}

Test(kill, plain_input_order) {
    char input[256];
    snprintf(input, sizeof input, "%s/in.jsonl", tmp);
    write_plain_input(input);
    const char *extra[] = {"--order", "input", NULL};
    scenario("ordered", input, extra, extra, 3, N_LINES + 2, true);
}

Test(kill, two_cpu_engines) {
    char input[256];
    snprintf(input, sizeof input, "%s/in.jsonl", tmp);
    write_plain_input(input);
    const char *extra[] = {"--devices", "0,1", "--max-seqs", "2", NULL};
    scenario("devices", input, extra, NULL, 3, N_LINES + 2, false);
}

Test(kill, openai_lines_in_an_archive) {
    char input[256];
    snprintf(input, sizeof input, "%s/batch.tar.gz", tmp);
    char *a = openai_lines(1, 20), *b = openai_lines(21, 20);
    char *bad = "{\"custom_id\": \"r3\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"x\"}}\n";
    char *b2 = malloc(strlen(b) + strlen(bad) + 1);
    sprintf(b2, "%s%s", b, bad);
    const char *names[] = {"part-b.jsonl", "README", "part-a.jsonl"};
    const char *texts[] = {b2, "not an input", a};
    lmb_error err;
    cr_assert_eq(lmb_test_write_archive(input, "tar.gz", names, texts, 3, &err), 0, "%s", err.msg);
    free(a);
    free(b);
    free(b2);
    scenario("openai", input, NULL, NULL, 3, 41, false);
}
