/* test_cli_tokenize.c — `lmbatch tokenize` run as a user would: the binary named by $LMB_BIN (set by `make test`)
 * on a scratch model folder holding the committed byte-level fixture (tests/fixtures/bytelevel).
 *
 * Checked against the fixture's HF vectors: ids with and without BOS (--json, --ids-only, --no-bos), text
 * given as an argument and as raw bytes on stdin (every case, including bytes that are not UTF-8), the
 * per-token listing, --decode (plain, --json, --skip-special, ids on stdin), a tokenizer.json path instead of
 * a folder, --bench, and the exit codes and messages of bad usage, a missing or broken tokenizer, bad ids.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/fileio.h"
#include "support/fixtures.h"
#include "support/tok_vectors.h"

#define FIXTURE "tests/fixtures/bytelevel"

static char tmp[64];

static const char *bin(void) {
    const char *b = getenv("LMB_BIN");
    if (b && *b) return b;
    return lmb_file_exists("build/lmbatch") ? "build/lmbatch" : NULL;
}

static void copy_file(const char *from, const char *dir, const char *name) {
    char *data;
    size_t n;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_file_read_all(from, &data, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_write_file(dir, name, data, n, NULL, 0), 0, "cannot write %s/%s", dir, name);
    free(data);
}

/* tmp/model: the fixture's tokenizer.json and tokenizer_config.json. */
static void setup(void) {
    if (!bin()) cr_skip_test("LMB_BIN is not set and build/lmbatch is absent");
    lmb_error err = {{0}};
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    char model[128];
    snprintf(model, sizeof model, "%s/model", tmp);
    cr_assert_eq(mkdir(model, 0755), 0);
    copy_file(FIXTURE "/tokenizer.json", model, "tokenizer.json");
    copy_file(FIXTURE "/tokenizer_config.json", model, "tokenizer_config.json");
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(cli_tokenize, .init = setup, .fini = teardown);

typedef struct result {
    int code;
    char *out, *err; /* NUL-terminated */
    size_t out_len;
} result;

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

/* Runs `lmbatch tokenize ARGS...` (NULL-terminated, "MODEL" replaced by the scratch folder) with `in` on stdin. */
static result run_in(const char *in, size_t in_len, const char *const *args) {
    char model[128], inp[128], outp[128], errp[128];
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(inp, sizeof inp, "%s/stdin", tmp);
    snprintf(outp, sizeof outp, "%s/stdout", tmp);
    snprintf(errp, sizeof errp, "%s/stderr", tmp);
    cr_assert_eq(lmb_test_write_file(tmp, "stdin", in ? in : "", in ? in_len : 0, NULL, 0), 0);
    const char *argv[32] = {bin(), "tokenize"};
    int n = 2;
    for (; *args && n < 31; args++) argv[n++] = strcmp(*args, "MODEL") == 0 ? model : *args;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        int fi = open(inp, O_RDONLY), fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fi < 0 || fo < 0 || fe < 0 || dup2(fi, 0) < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "lmbatch tokenize did not exit normally (signal %d)", WTERMSIG(st));
    result r = {.code = WEXITSTATUS(st)};
    size_t n_err;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_file_read_all(outp, &r.out, &r.out_len, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_file_read_all(errp, &r.err, &n_err, &err), 0, "%s", err.msg);
    return r;
}

#define RUN(...) run_in(NULL, 0, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_IN(in, len, ...) run_in(in, len, (const char *const[]){__VA_ARGS__, NULL})

/* The ids printed as "[1, 2, 3]\n" must be the JSON array `want`. */
static void expect_ids(const result *r, json_t *want, const char *what) {
    cr_expect_eq(r->code, 0, "%s: exit %d, stderr: %s", what, r->code, r->err);
    json_error_t je;
    json_t *got = json_loads(r->out, 0, &je);
    char *w = json_dumps(want, JSON_COMPACT);
    cr_expect(got && json_equal(got, want), "%s: printed %s, want %s", what, r->out, w);
    cr_expect(r->out_len > 0 && r->out[r->out_len - 1] == '\n', "%s: output should end with a newline", what);
    free(w);
    json_decref(got);
}

static json_t *vectors(void) {
    json_t *v = lmb_test_json(FIXTURE "/vectors.json");
    cr_assert(v);
    return v;
}

/* ---- encode ------------------------------------------------------------------------------------------------ */

Test(cli_tokenize, json_and_bos) {
    json_t *want = json_pack("[iiiii]", 0, 877, 579, 950, 1837), *nobos = json_pack("[iiii]", 877, 579, 950, 1837);
    result r = RUN("--model", "MODEL", "--json", "Hello world");
    expect_ids(&r, want, "--json");
    cr_expect_str_eq(r.out, "[0, 877, 579, 950, 1837]\n");
    result_free(&r);
    r = RUN("--model", "MODEL", "--ids-only", "Hello world");
    expect_ids(&r, want, "--ids-only");
    result_free(&r);
    r = RUN("--json", "--no-bos", "--model", "MODEL", "Hello world");
    expect_ids(&r, nobos, "--no-bos");
    result_free(&r);
    /* a tokenizer.json file instead of a folder */
    char path[256];
    snprintf(path, sizeof path, "%s/model/tokenizer.json", tmp);
    r = RUN("--model", path, "--json", "Hello world");
    expect_ids(&r, want, "--model tokenizer.json");
    result_free(&r);
    json_decref(want);
    json_decref(nobos);
}

/* Every case of the fixture, its text as raw bytes on stdin (nothing stripped, NULs and all). */
Test(cli_tokenize, every_case_on_stdin) {
    json_t *v = vectors(), *cases = json_object_get(v, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i), *text = json_object_get(c, "text");
        char what[64];
        snprintf(what, sizeof what, "case %zu on stdin", i);
        result r =
            RUN_IN(json_string_value(text), json_string_length(text), "--model", "MODEL", "--json", "--no-bos", "-");
        expect_ids(&r, json_object_get(c, "ids"), what);
        result_free(&r);
        if (i % 8 == 0) { /* with BOS too, for some */
            r = RUN_IN(json_string_value(text), json_string_length(text), "--model", "MODEL", "--json", "-");
            expect_ids(&r, json_object_get(c, "ids_with_bos"), what);
            result_free(&r);
        }
    }
    json_decref(v);
}

/* Bytes that are not UTF-8 on stdin: the ids of the text with each bad sequence replaced by U+FFFD. */
Test(cli_tokenize, invalid_utf8_on_stdin) {
    json_t *v = vectors(), *cases = json_object_get(v, "byte_cases");
    cr_assert_gt(json_array_size(cases), 5);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *hex = json_string_value(json_object_get(c, "bytes_hex"));
        char raw[256];
        size_t n = strlen(hex) / 2;
        cr_assert_lt(n, sizeof raw);
        for (size_t k = 0; k < n; k++) {
            unsigned b;
            sscanf(hex + 2 * k, "%2x", &b);
            raw[k] = (char)b;
        }
        char what[300];
        snprintf(what, sizeof what, "bytes %s on stdin", hex);
        result r = RUN_IN(raw, n, "--model", "MODEL", "--json", "-");
        expect_ids(&r, json_object_get(c, "ids_with_bos"), what);
        result_free(&r);
    }
    json_decref(v);
}

/* Without --json: one "%6d -> '%s'" line per id, each token's own text. */
Test(cli_tokenize, listing) {
    result r = RUN("--model", "MODEL", "Hello world");
    cr_assert_eq(r.code, 0, "%s", r.err);
    int want[] = {0, 877, 579, 950, 1837}, k = 0;
    char text[256] = "";
    for (char *save = NULL, *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), k++) {
        int id, used = 0;
        cr_assert_eq(sscanf(line, "%d -> '%n", &id, &used), 1, "bad line \"%s\"", line);
        cr_assert(used > 0 && line[strlen(line) - 1] == '\'', "bad line \"%s\"", line);
        cr_assert_lt(k, 5, "too many lines");
        cr_expect_eq(id, want[k], "line %d: id %d, want %d", k, id, want[k]);
        size_t tl = strlen(text), pl = strlen(line + used) - 1; /* the piece, less its closing quote */
        if (k == 0)
            cr_expect_str_eq(line + used, "<|begin_of_text|>'");
        else if (tl + pl < sizeof text)
            memcpy(text + tl, line + used, pl), text[tl + pl] = '\0';
    }
    cr_expect_eq(k, 5, "%d lines, want 5", k);
    cr_expect_str_eq(text, "Hello world", "the pieces should spell the text");
    result_free(&r);
}

/* ---- decode ------------------------------------------------------------------------------------------------ */

Test(cli_tokenize, decode) {
    result r = RUN("--model", "MODEL", "--decode", "877 579 950 1837");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "Hello world\n");
    result_free(&r);
    r = RUN("--model", "MODEL", "--decode", "[0,877, 579,\n950,1837]");
    cr_expect_str_eq(r.out, "<|begin_of_text|>Hello world\n");
    result_free(&r);
    r = RUN("--model", "MODEL", "--decode", "--skip-special", "0 877 579 950 1837 1");
    cr_expect_str_eq(r.out, "Hello world\n");
    result_free(&r);
    r = RUN("--model", "MODEL", "--decode", "--json", "[0, 877, 579]");
    cr_expect_str_eq(r.out, "\"<|begin_of_text|>Hello\"\n");
    result_free(&r);
}

/* Every decode case (ids whose bytes are not UTF-8) and every 4th text case: ids on stdin, --json output. */
Test(cli_tokenize, decode_json_matches_vectors) {
    json_t *v = vectors();
    const char *sets[] = {"decode_cases", "cases"};
    for (int s = 0; s < 2; s++) {
        json_t *cases = json_object_get(v, sets[s]);
        for (size_t i = 0; i < json_array_size(cases); i += s ? 4 : 1) {
            json_t *c = json_array_get(cases, i);
            char *ids = json_dumps(json_object_get(c, "ids"), JSON_COMPACT);
            result r = RUN_IN(ids, strlen(ids), "--model", "MODEL", "--decode", "--json", "-");
            cr_expect_eq(r.code, 0, "%s %zu: %s", sets[s], i, r.err);
            json_t *got = json_loads(r.out, JSON_DECODE_ANY, NULL);
            json_t *want = json_object_get(c, "decoded");
            char *w = json_dumps(want, JSON_ENCODE_ANY);
            cr_expect(got && json_equal(got, want), "%s %zu: decoded %s, want %s", sets[s], i, r.out, w);
            free(w);
            json_decref(got);
            free(ids);
            result_free(&r);
        }
    }
    json_decref(v);
}

/* ---- failures ---------------------------------------------------------------------------------------------- */

static void expect_failure(result r, int code, const char *frag, const char *what) {
    cr_expect_eq(r.code, code, "%s: exit %d, want %d (stderr: %s)", what, r.code, code, r.err);
    cr_expect(strstr(r.err, frag), "%s: stderr should mention '%s': %s", what, frag, r.err);
    cr_expect_eq(r.out_len, 0, "%s: nothing on stdout, got %s", what, r.out);
    result_free(&r);
}

Test(cli_tokenize, usage_errors) {
    expect_failure(RUN("Hello"), 2, "--model is required", "no --model");
    expect_failure(RUN("--model", "MODEL"), 2, "exactly one TEXT", "no text");
    expect_failure(RUN("--model", "MODEL", "a", "b"), 2, "exactly one TEXT", "two texts");
    expect_failure(RUN("--model", "MODEL", "--frobnicate", "x"), 2, "unknown option --frobnicate", "unknown option");
    expect_failure(RUN("--model"), 2, "--model needs a value", "--model without a value");
    result r = RUN("--help");
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.err, "--decode") && strstr(r.err, "--bench"), "help (on stderr, as every command's): %s", r.err);
    result_free(&r);
}

Test(cli_tokenize, model_errors) {
    char path[256];
    snprintf(path, sizeof path, "%s/nowhere", tmp);
    expect_failure(RUN("--model", path, "x"), 1, "no tokenizer.json", "missing folder");
    snprintf(path, sizeof path, "%s/broken", tmp);
    cr_assert_eq(mkdir(path, 0755), 0);
    const char *bad = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    cr_assert_eq(lmb_test_write_file(path, "tokenizer.json", bad, strlen(bad), NULL, 0), 0);
    result r = RUN("--model", path, "x");
    cr_expect(strstr(r.err, "tokenizer.json"), "the message should name the file: %s", r.err);
    expect_failure(r, 1, "unsupported model type \"WordPiece\"", "WordPiece tokenizer");
    expect_failure(RUN("--model", "MODEL", "--decode", "12 abc"), 1, "expected token ids", "bad ids");
    expect_failure(RUN("--model", "MODEL", "--decode", "-3"), 1, "expected token ids", "negative id");
}

/* --bench runs (it encodes for about 2 s) and reports speeds. */
Test(cli_tokenize, bench) {
    const char *text = "Once upon a time, there was a little girl named Lily.\ndef f(x):\n    return x ** 2\n";
    char path[256];
    cr_assert_eq(lmb_test_write_file(tmp, "bench.txt", text, strlen(text), path, sizeof path), 0);
    result r = RUN("--model", "MODEL", "--bench", path);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "MB/s") && strstr(r.out, "tok/s") && strstr(r.out, "line by line (3 lines)"), "%s", r.out);
    result_free(&r);
    expect_failure(RUN("--model", "MODEL", "--bench", path, "extra"), 2, "exactly one TEXT", "--bench with a TEXT");
}
