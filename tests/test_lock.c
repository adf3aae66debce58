/* test_lock.c — one run of a job at a time: the lock file while held and after release, a second taker
 * refused with the holder named, a lock left by a killed process taken over (and said so), stale or garbled
 * lock files taken over.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/fileio.h"
#include "../jobs/lock.h"
#include "support/fixtures.h"

static char tmp[64], path[128];

static void setup(void) {
    lmb_error err;
    cr_assert_eq(lmb_test_tmpdir(tmp, sizeof tmp, &err), 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/job.lock", tmp);
}

static void teardown(void) { lmb_test_rmtree(tmp, NULL); }

TestSuite(lock, .init = setup, .fini = teardown);

Test(lock, acquire_and_release) {
    lmb_lock *l;
    lmb_error err;
    char note[256];
    cr_assert_eq(lmb_lock_acquire(path, &l, note, sizeof note, &err), LMB_LOCK_OK, "%s", err.msg);
    cr_assert_str_eq(note, "");
    char *text;
    size_t n;
    cr_assert_eq(lmb_file_read_all(path, &text, &n, &err), 0);
    char pid[32];
    snprintf(pid, sizeof pid, "\"pid\":%d", (int)getpid());
    cr_assert(strstr(text, pid), "%s", text);
    cr_assert(strstr(text, "\"started\""));
    free(text);
    lmb_lock_release(l);
    cr_assert_not(lmb_file_exists(path), "released: the file is gone");
}

/* A child holds the lock until killed. */
static pid_t holder(void) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        lmb_lock *l;
        lmb_error err;
        char c = lmb_lock_acquire(path, &l, NULL, 0, &err) == LMB_LOCK_OK ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
    }
    char c = 0;
    cr_assert_eq(read(fds[0], &c, 1), 1);
    cr_assert_eq(c, 'y');
    close(fds[0]);
    close(fds[1]);
    return pid;
}

Test(lock, a_second_run_is_refused_then_takes_over_after_a_kill) {
    pid_t pid = holder();
    lmb_lock *l;
    lmb_error err;
    char note[256];
    cr_assert_eq(lmb_lock_acquire(path, &l, note, sizeof note, &err), LMB_LOCK_HELD);
    char want[32];
    snprintf(want, sizeof want, "pid %d", (int)pid);
    cr_assert(strstr(err.msg, want), "the message names the holder: %s", err.msg);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert(lmb_file_exists(path), "a killed holder leaves its lock file");
    cr_assert_eq(lmb_lock_acquire(path, &l, note, sizeof note, &err), LMB_LOCK_OK, "%s", err.msg);
    cr_assert(strstr(note, "took over") && strstr(note, want), "%s", note);
    lmb_lock_release(l);
}

Test(lock, stale_and_garbled_files) {
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char text[512];
    snprintf(text, sizeof text, "{\"pid\":%d,\"host\":\"%s\",\"started\":\"2020-01-01T00:00:00Z\"}", (int)dead, host);
    cr_assert_eq(lmb_test_write_file(tmp, "job.lock", text, strlen(text), NULL, 0), 0);
    lmb_lock *l;
    lmb_error err;
    char note[256];
    cr_assert_eq(lmb_lock_acquire(path, &l, note, sizeof note, &err), LMB_LOCK_OK, "%s", err.msg);
    cr_assert(strstr(note, "stale"), "%s", note);
    lmb_lock_release(l);
    cr_assert_eq(lmb_test_write_file(tmp, "job.lock", "\x01garbage", 8, NULL, 0), 0);
    cr_assert_eq(lmb_lock_acquire(path, &l, note, sizeof note, &err), LMB_LOCK_OK, "%s", err.msg);
    lmb_lock_release(l);
    char bad[200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/job.lock", tmp);
    cr_assert_eq(lmb_lock_acquire(bad, &l, note, sizeof note, &err), -1);
    cr_assert(strstr(err.msg, "cannot create"), "%s", err.msg);
}
