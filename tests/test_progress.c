/* test_progress.c — progress reports: JSON lines every interval when not on a TTY (with a final one), and on
 * a TTY a bar with done/total, errors, tok/s and ETA redrawn in place; the total may arrive late.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/progress.h"
#include "support/pipeline_util.h"

TestSuite(progress);

Test(progress, json_lines_when_not_a_tty) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lmb_progress p;
    lmb_progress_init_to(&p, -1, 0.02, false, f, false);
    lmb_progress_update(&p, 1, 0, 5); /* too soon: nothing */
    lmb_test_sleep(0.03);
    p.total = 40; /* the first pass finished */
    p.skipped = 10;
    lmb_progress_update(&p, 20, 1, 50);
    lmb_progress_finish(&p);
    fclose(f);
    char *nl = strchr(buf, '\n');
    cr_assert(nl);
    json_t *first = json_loadb(buf, (size_t)(nl - buf), 0, NULL), *last = json_loads(nl + 1, 0, NULL);
    cr_assert(first && last, "not JSON lines: %s", buf);
    json_t *a = json_object_get(first, "progress"), *b = json_object_get(last, "progress");
    cr_assert_eq(json_integer_value(json_object_get(a, "done")), 20);
    cr_assert_eq(json_integer_value(json_object_get(a, "total")), 40);
    cr_assert_eq(json_integer_value(json_object_get(a, "errors")), 1);
    cr_assert_eq(json_integer_value(json_object_get(a, "skipped")), 10);
    cr_assert(json_is_false(json_object_get(a, "final")));
    cr_assert(json_number_value(json_object_get(a, "eta_s")) > 0, "ETA from the lines served, not those skipped");
    cr_assert(json_is_true(json_object_get(b, "final")));
    json_decref(first);
    json_decref(last);
    free(buf);
}

Test(progress, bar_on_a_tty) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lmb_progress p;
    lmb_progress_init_to(&p, 40, 10, false, f, true);
    lmb_test_sleep(0.21);
    lmb_progress_update(&p, 12, 2, 300);
    lmb_progress_finish(&p);
    fclose(f);
    cr_assert(buf[0] == '\r', "redrawn in place");
    cr_assert(strstr(buf, "[#########"), "%s", buf);
    cr_assert(strstr(buf, "12/40") && strstr(buf, "errors 2") && strstr(buf, "tok/s") && strstr(buf, "ETA 00:"), "%s", buf);
    cr_assert(buf[len - 1] == '\n', "the last draw ends the line");
    free(buf);
}

Test(progress, quiet_draws_nothing) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lmb_progress p;
    lmb_progress_init_to(&p, 4, 0.001, true, f, false);
    lmb_test_sleep(0.01);
    lmb_progress_update(&p, 2, 0, 5);
    lmb_progress_finish(&p);
    fclose(f);
    cr_assert_eq(len, 0);
    free(buf);
}
