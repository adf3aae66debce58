/* test_resume.c — reading an interrupted output back: whole lines answer keys, a torn last line or garbage
 * (zeros after a crash) is cut off with everything after it, a finished output is copied to .partial and kept
 * intact, repeated keys are counted; and the sink's append mode, whole-line writes, commit and abandon.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/fileio.h"
#include "../pipeline/resume.h"
#include "../pipeline/sink.h"
#include "support/fixtures.h"

static char tmp[64];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(resume, .init = setup, .fini = teardown);

static const char *p(const char *name) {
    return lmb_test_join(tmp, name);
}

static const char *L1 = "{\"id\":\"a\",\"text\":\"x\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n";
static const char *L2 = "{\"id\":\"b\",\"error\":{\"code\":\"invalid_request\",\"message\":\"m\",\"line\":2,\"source\":\"f\"}}\n";
static const char *L3 = "{\"error\":{\"code\":\"invalid_request\",\"message\":\"m\",\"line\":3,\"source\":\"f\"}}\n";

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

Test(resume, whole_lines_are_kept_the_torn_tail_is_cut) {
    char text[2048];
    snprintf(text, sizeof text, "%s%s%s{\"id\":\"c\",\"te", L1, L2, L3);
    cr_assert_eq(lmb_test_write_file(tmp, "o.jsonl.partial", text, strlen(text), NULL, 0), 0);
    lmb_resume r;
    lmb_error err;
    cr_assert_eq(lmb_resume_load(p("o.jsonl"), &r, &err), 0, "%s", err.msg);
    cr_assert(r.found);
    cr_assert_eq(r.lines, 3);
    cr_assert_eq(r.ok, 1);
    cr_assert_eq(r.errors, 2);
    cr_assert_eq(r.completion_tokens, 3);
    cr_assert_eq(r.cut_bytes, 13);
    cr_assert_eq(file_size(p("o.jsonl.partial")), (long)(strlen(L1) + strlen(L2) + strlen(L3)));
    json_t *a = json_string("a");
    cr_assert(lmb_keyset_get(&r.done, lmb_key_of_id(a), NULL));
    cr_assert(lmb_keyset_get(&r.done, lmb_key_of_pos("f", 3), NULL));
    json_decref(a);
    lmb_resume_free(&r);
}

Test(resume, garbage_cuts_everything_after_it) {
    char text[2048];
    size_t n1 = strlen(L1);
    memcpy(text, L1, n1);
    memset(text + n1, 0, 40); /* a crash can leave zeros where data never reached the disk */
    text[n1 + 39] = '\n';
    memcpy(text + n1 + 40, L2, strlen(L2));
    size_t n = n1 + 40 + strlen(L2);
    cr_assert_eq(lmb_test_write_file(tmp, "o.jsonl.partial", text, n, NULL, 0), 0);
    lmb_resume r;
    lmb_error err;
    cr_assert_eq(lmb_resume_load(p("o.jsonl"), &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.lines, 1);
    cr_assert_eq(file_size(p("o.jsonl.partial")), (long)n1);
    lmb_resume_free(&r);
}

Test(resume, a_finished_output_is_copied_and_kept) {
    char text[2048];
    snprintf(text, sizeof text, "%s%s", L1, L2);
    cr_assert_eq(lmb_test_write_file(tmp, "o.jsonl", text, strlen(text), NULL, 0), 0);
    lmb_resume r;
    lmb_error err;
    cr_assert_eq(lmb_resume_load(p("o.jsonl"), &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.lines, 2);
    cr_assert_eq(file_size(p("o.jsonl")), (long)strlen(text), "the finished file is untouched");
    cr_assert_eq(file_size(p("o.jsonl.partial")), (long)strlen(text));
    lmb_resume_free(&r);
    cr_assert_eq(lmb_resume_load(p("none.jsonl"), &r, &err), 0);
    cr_assert_not(r.found);
    cr_assert_eq(r.lines, 0);
    lmb_resume_free(&r);
}

Test(resume, repeated_keys_are_counted) {
    char text[2048];
    snprintf(text, sizeof text, "%s%s", L1, L1);
    cr_assert_eq(lmb_test_write_file(tmp, "o.jsonl", text, strlen(text), NULL, 0), 0);
    lmb_resume r = {0};
    lmb_error err;
    cr_assert_eq(lmb_resume_scan(p("o.jsonl"), false, &r, &err), 0);
    cr_assert_eq(r.lines, 2);
    cr_assert_eq(r.repeated, 1);
    cr_assert_eq(r.ok, 1);
    lmb_resume_free(&r);
}

Test(resume, sink_append_commit_abandon) {
    lmb_error err;
    lmb_sink *s;
    cr_assert_eq(lmb_sink_open(p("o.jsonl"), &s, &err), 0);
    json_t *l = json_pack("{s:s}", "id", "x");
    cr_assert_eq(lmb_sink_write(s, l, &err), 0);
    lmb_sink_abandon(s);
    cr_assert(!lmb_file_exists(p("o.jsonl")), "an abandoned output has no final name");
    cr_assert_eq(file_size(p("o.jsonl.partial")), 11);
    cr_assert_eq(lmb_sink_open_append(p("o.jsonl"), &s, &err), 0);
    cr_assert_eq(lmb_sink_write_text(s, "{\"id\":\"y\"}", 10, &err), 0);
    cr_assert_eq(lmb_sink_commit(s, &err), 0, "%s", err.msg);
    cr_assert(!lmb_file_exists(p("o.jsonl.partial")));
    char *all;
    size_t n;
    cr_assert_eq(lmb_file_read_all(p("o.jsonl"), &all, &n, &err), 0);
    cr_assert_str_eq(all, "{\"id\":\"x\"}\n{\"id\":\"y\"}\n");
    free(all);
    cr_assert_eq(lmb_sink_open(p("o.jsonl"), &s, &err), 0, "a fresh start truncates");
    cr_assert_eq(lmb_sink_commit(s, &err), 0);
    cr_assert_eq(file_size(p("o.jsonl")), 0);
    json_decref(l);
    cr_assert_eq(lmb_sink_open(p("nodir/o.jsonl"), &s, &err), -1);
    cr_assert(strstr(err.msg, "nodir"));
}
