/* test_shard.c — shard specs ("K/N"), the shard Slurm assigns (array tasks, with a non-zero first index;
 * multi-task steps), shard output names and reading K and N back from them.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/shard.h"

static void clear_env(void) {
    const char *vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_PROCID",
                          "SLURM_NTASKS"};
    for (int i = 0; i < 5; i++) unsetenv(vars[i]);
}

TestSuite(shard, .init = clear_env);

Test(shard, parse) {
    int k, n;
    lmb_error err;
    cr_assert_eq(lmb_shard_parse("3/8", &k, &n, &err), 0);
    cr_assert(k == 3 && n == 8);
    cr_assert_eq(lmb_shard_parse("0/1", &k, &n, &err), 0);
    const char *bad[] = {"8/8", "-1/4", "1/0", "3", "a/b", "1/2/3", "/2", "1/"};
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(lmb_shard_parse(bad[i], &k, &n, &err), -1, "accepted %s", bad[i]);
        cr_assert(strstr(err.msg, "K/N"));
    }
}

Test(shard, slurm_environment) {
    int k, n;
    const char *what;
    lmb_error err;
    cr_assert_eq(lmb_shard_from_env(&k, &n, &what, &err), 0, "no Slurm: no shard");
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_PROCID", "2", 1);
    cr_assert_eq(lmb_shard_from_env(&k, &n, &what, &err), 1);
    cr_assert(k == 2 && n == 4 && strstr(what, "PROCID"));
    setenv("SLURM_ARRAY_TASK_COUNT", "8", 1);
    setenv("SLURM_ARRAY_TASK_ID", "5", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    cr_assert_eq(lmb_shard_from_env(&k, &n, &what, &err), 1, "an array job wins over the task id");
    cr_assert(k == 4 && n == 8, "--array=1-8: task 5 is shard 4, got %d/%d", k, n);
    setenv("SLURM_ARRAY_TASK_ID", "9", 1);
    cr_assert_eq(lmb_shard_from_env(&k, &n, &what, &err), -1);
    cr_assert(strstr(err.msg, "--shard"), "%s", err.msg);
    clear_env();
    setenv("SLURM_NTASKS", "1", 1);
    setenv("SLURM_PROCID", "0", 1);
    cr_assert_eq(lmb_shard_from_env(&k, &n, &what, &err), 0, "one task: no sharding");
}

Test(shard, output_names) {
    char buf[256];
    lmb_error err;
    cr_assert_eq(lmb_shard_output("out/res.jsonl", 3, 8, buf, sizeof buf, &err), 0);
    cr_assert_str_eq(buf, "out/res.shard-3-of-8.jsonl");
    lmb_shard_output("res.out", 0, 2, buf, sizeof buf, &err);
    cr_assert_str_eq(buf, "res.out.shard-0-of-2");
    lmb_shard_output("res.jsonl", 0, 1, buf, sizeof buf, &err);
    cr_assert_str_eq(buf, "res.jsonl");
    lmb_shard_output("-", 1, 2, buf, sizeof buf, &err);
    cr_assert_str_eq(buf, "-");
    int k, n;
    cr_assert(lmb_shard_of_path("out/res.shard-3-of-8.jsonl", &k, &n) && k == 3 && n == 8);
    cr_assert(lmb_shard_of_path("res.out.shard-0-of-2", &k, &n) && k == 0 && n == 2);
    cr_assert_not(lmb_shard_of_path("res.jsonl", &k, &n));
    cr_assert_not(lmb_shard_of_path("res.shard-9-of-8.jsonl", &k, &n));
    cr_assert_eq(lmb_shard_output("x.jsonl", 1, 2, buf, 8, &err), -1, "too long for the buffer");
}
