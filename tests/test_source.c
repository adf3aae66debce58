/* test_source.c — input lines: plain, CRLF, no final newline, .gz/.zst by content, archives (tar, tar.gz,
 * tar.zst, zip) read member by member in name order with origins "archive:member", several inputs in turn,
 * stdin (plain and archive), failures found at open, glob expansion, and the counting first pass.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../pipeline/source.h"
#include "support/fixtures.h"
#include "support/pipeline_util.h"

static char tmp[64];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(source, .init = setup, .fini = teardown);

static const char *p(const char *name) {
    return lmb_test_join(tmp, name);
}

/* All lines of the inputs as "origin|number|stream|text\n". */
static char *dump(const char *const *paths, int n) {
    lmb_source *s;
    lmb_error err;
    cr_assert_eq(lmb_source_open_list(paths, n, &s, &err), 0, "%s", err.msg);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    lmb_line l;
    int r;
    while ((r = lmb_source_next(s, &l, &err)) == 1) {
        size_t tl = strlen(tmp);
        const char *o = strncmp(l.origin, tmp, tl) == 0 ? l.origin + tl + 1 : l.origin;
        len += (size_t)snprintf(out + len, cap - len, "%s|%ld|%d|%.*s\n", o, l.number, l.stream, (int)l.len, l.text);
    }
    cr_assert_eq(r, 0, "%s", err.msg);
    lmb_source_close(s);
    return out;
}

Test(source, plain_file_line_endings) {
    const char *t = "a\r\nb\n\nc";
    cr_assert_eq(lmb_test_write_file(tmp, "x.jsonl", t, strlen(t), NULL, 0), 0);
    const char *in[] = {p("x.jsonl")};
    char *d = dump(in, 1);
    cr_assert_str_eq(d, "x.jsonl|1|0|a\nx.jsonl|2|0|b\nx.jsonl|3|0|\nx.jsonl|4|0|c\n");
    free(d);
    cr_assert_eq(lmb_source_count_lines(in[0]), 3, "blank lines are not counted");
}

Test(source, compressed_files_by_content) {
    lmb_error err;
    const char *t[] = {"{\"a\": 1}\n{\"a\": 2}\n"};
    cr_assert_eq(lmb_test_write_archive(p("x.gz"), "gz", NULL, t, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(lmb_test_write_archive(p("y.data"), "zst", NULL, t, 1, &err), 0, "%s", err.msg);
    const char *in[] = {p("x.gz"), p("y.data")};
    char *d = dump(in, 2);
    cr_assert_str_eq(d, "x.gz|1|0|{\"a\": 1}\nx.gz|2|0|{\"a\": 2}\ny.data|1|1|{\"a\": 1}\ny.data|2|1|{\"a\": 2}\n");
    free(d);
}

static void archive_in_name_order(const char *kind) {
    lmb_error err;
    const char *names[] = {"b/day3.jsonl", "day10.jsonl", "dir/", "day1.jsonl", "notes.txt", "._day1.jsonl"};
    const char *texts[] = {"3a\n3b", "10a\n", "", "1a\n1b\n", "not read", "junk"};
    char name[64];
    snprintf(name, sizeof name, "batch.%s", kind);
    cr_assert_eq(lmb_test_write_archive(p(name), kind, names, texts, 6, &err), 0, "%s", err.msg);
    const char *in[] = {p(name)};
    char *d = dump(in, 1);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:b/day3.jsonl|1|0|3a\n%s:b/day3.jsonl|2|0|3b\n%s:day1.jsonl|1|1|1a\n%s:day1.jsonl|2|1|1b\n"
             "%s:day10.jsonl|1|2|10a\n",
             name, name, name, name, name);
    cr_assert_str_eq(d, want);
    free(d);
    lmb_source *s;
    cr_assert_eq(lmb_source_open_list(in, 1, &s, &err), 0);
    cr_assert(lmb_source_multi(s), "an archive has several streams");
    lmb_source_close(s);
    cr_assert_eq(lmb_source_count_list(in, 1, NULL, NULL), 5);
}

Test(source, tar_in_name_order) { archive_in_name_order("tar"); }
Test(source, tar_gz_in_name_order) { archive_in_name_order("tar.gz"); }
Test(source, tar_zst_in_name_order) { archive_in_name_order("tar.zst"); }
Test(source, zip_in_name_order) { archive_in_name_order("zip"); }

Test(source, several_inputs_in_the_order_given) {
    cr_assert_eq(lmb_test_write_file(tmp, "b.jsonl", "b1\n", 3, NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "a.jsonl", "a1\na2\n", 6, NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "empty.jsonl", "", 0, NULL, 0), 0);
    const char *in[] = {p("b.jsonl"), p("empty.jsonl"), p("a.jsonl")};
    char *d = dump(in, 3);
    cr_assert_str_eq(d, "b.jsonl|1|0|b1\na.jsonl|1|2|a1\na.jsonl|2|2|a2\n");
    free(d);
    lmb_source *s;
    lmb_error err;
    cr_assert_eq(lmb_source_open_list(in, 1, &s, &err), 0);
    cr_assert_not(lmb_source_multi(s), "one plain file is one stream");
    lmb_source_close(s);
}

static void as_stdin(const char *path) {
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(dup2(fd, 0), 0);
    close(fd);
}

Test(source, stdin_plain) {
    cr_assert_eq(lmb_test_write_file(tmp, "x.jsonl", "l1\nl2\n", 6, NULL, 0), 0);
    as_stdin(p("x.jsonl"));
    const char *in[] = {"-"};
    char *d = dump(in, 1);
    cr_assert_str_eq(d, "<stdin>|1|0|l1\n<stdin>|2|0|l2\n");
    free(d);
    cr_assert_eq(lmb_source_count_list(in, 1, NULL, NULL), -1, "stdin cannot be counted ahead");
}

Test(source, stdin_archive_in_archive_order) {
    lmb_error err;
    const char *names[] = {"z.jsonl", "a.jsonl"};
    const char *texts[] = {"z\n", "a\n"};
    cr_assert_eq(lmb_test_write_archive(p("s.tar.gz"), "tar.gz", names, texts, 2, &err), 0, "%s", err.msg);
    as_stdin(p("s.tar.gz"));
    const char *in[] = {"-"};
    lmb_source *s;
    cr_assert_eq(lmb_source_open_list(in, 1, &s, &err), 0, "%s", err.msg);
    cr_assert(lmb_source_multi(s));
    lmb_line l;
    cr_assert_eq(lmb_source_next(s, &l, &err), 1);
    cr_assert_str_eq(l.origin, "<stdin>:z.jsonl");
    cr_assert_eq(lmb_source_next(s, &l, &err), 1);
    cr_assert_str_eq(l.origin, "<stdin>:a.jsonl");
    cr_assert_eq(lmb_source_next(s, &l, &err), 0);
    lmb_source_close(s);
}

Test(source, failures_at_open) {
    lmb_error err;
    lmb_source *s;
    const char *missing[] = {p("nope.jsonl")};
    cr_assert_eq(lmb_source_open_list(missing, 1, &s, &err), -1);
    cr_assert(strstr(err.msg, "nope.jsonl"), "%s", err.msg);
    const char *names[] = {"readme.txt"};
    const char *texts[] = {"x"};
    cr_assert_eq(lmb_test_write_archive(p("empty.zip"), "zip", names, texts, 1, &err), 0);
    const char *nojsonl[] = {p("empty.zip")};
    cr_assert_eq(lmb_source_open_list(nojsonl, 1, &s, &err), -1);
    cr_assert(strstr(err.msg, "no .jsonl members"), "%s", err.msg);
    const char *twice[] = {"-", "-"};
    cr_assert_eq(lmb_source_open_list(twice, 2, &s, &err), -1);
    cr_assert(strstr(err.msg, "once"), "%s", err.msg);
}

Test(source, glob_expansion) {
    cr_assert_eq(lmb_test_write_file(tmp, "p2.jsonl", "x\n", 2, NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "p10.jsonl", "x\n", 2, NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "q.txt", "x\n", 2, NULL, 0), 0);
    char pat[256];
    snprintf(pat, sizeof pat, "%s/p*.jsonl", tmp);
    const char *pats[] = {pat, "-", p("literal.jsonl")};
    char **paths;
    int n;
    lmb_error err;
    cr_assert_eq(lmb_source_expand(pats, 3, &paths, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 4);
    cr_assert(strstr(paths[0], "p10.jsonl") && strstr(paths[1], "p2.jsonl"), "sorted by name");
    cr_assert_str_eq(paths[2], "-");
    cr_assert(strstr(paths[3], "literal.jsonl"), "a name without pattern characters is kept as it is");
    lmb_source_paths_free(paths, n);
    snprintf(pat, sizeof pat, "%s/none*.jsonl", tmp);
    const char *none[] = {pat};
    cr_assert_eq(lmb_source_expand(none, 1, &paths, &n, &err), -1);
    cr_assert(strstr(err.msg, "matches no file"), "%s", err.msg);
}

static int keep_odd(const lmb_line *l, void *ctx) {
    (void)ctx;
    return l->number % 2;
}

Test(source, origins_are_file_names_unless_two_share_one) {
    cr_assert_eq(mkdir(p("a"), 0755), 0);
    cr_assert_eq(mkdir(p("b"), 0755), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "a/x.jsonl", "1\n", 2, NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "b/x.jsonl", "2\n", 2, NULL, 0), 0);
    cr_assert_eq(lmb_test_write_file(tmp, "y.jsonl", "3\n", 2, NULL, 0), 0);
    const char *in[] = {p("a/x.jsonl"), p("b/x.jsonl"), p("y.jsonl")};
    lmb_source *s;
    lmb_error err;
    cr_assert_eq(lmb_source_open_list(in, 3, &s, &err), 0, "%s", err.msg);
    lmb_line l;
    char *real = realpath(in[0], NULL);
    cr_assert_eq(lmb_source_next(s, &l, &err), 1);
    cr_assert_str_eq(l.origin, real, "two x.jsonl: absolute paths");
    cr_assert_eq(lmb_source_next(s, &l, &err), 1);
    cr_assert_eq(lmb_source_next(s, &l, &err), 1);
    cr_assert_str_eq(l.origin, "y.jsonl");
    free(real);
    lmb_source_close(s);
}

Test(source, counting_with_a_filter) {
    cr_assert_eq(lmb_test_write_file(tmp, "x.jsonl", "1\n2\n3\n\n5\n", 10, NULL, 0), 0);
    const char *in[] = {p("x.jsonl")};
    cr_assert_eq(lmb_source_count_list(in, 1, keep_odd, NULL), 3);
}
