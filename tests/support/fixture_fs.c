/* fixture_fs.c — scratch folders under /tmp, crafted files, and the location of ../shared (see fixtures.h).
 * Tests make a folder with lmb_test_tmpdir and remove it with lmb_test_rmtree in the same test. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../engine/fileio.h"
#include "fixtures.h"

/* Folders made by lmb_test_tmpdir in this process, removed at exit too: a skipped or failed Criterion test
 * does not run its suite's .fini. */
#define MAX_TMPDIRS 16
static char made[MAX_TMPDIRS][32];
static int n_made;

static void remove_made(void) {
    for (int i = 0; i < n_made; i++) lmb_test_rmtree(made[i], NULL);
    n_made = 0;
}

int lmb_test_tmpdir(char *buf, size_t cap, lmb_error *err) {
    if (cap < 32) return lmb_fail(err, "tmpdir: buffer too small");
    snprintf(buf, cap, "/tmp/lmb-test-XXXXXX");
    if (!mkdtemp(buf)) return lmb_fail(err, "tmpdir: mkdtemp failed: %s", strerror(errno));
    if (n_made == 0) atexit(remove_made);
    if (n_made < MAX_TMPDIRS) snprintf(made[n_made++], sizeof made[0], "%s", buf);
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int lmb_test_rmtree(const char *path, lmb_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) return lmb_fail(err, "rmtree %s: %s", path, strerror(errno));
    return 0;
}

int lmb_test_write_file(const char *dir, const char *name, const void *data, size_t n, char *path_out, size_t cap) {
    char path[4096];
    if (lmb_path_join(path, sizeof path, dir, name, NULL)) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int rc = (fclose(f) == 0 && w == n) ? 0 : -1;
    if (path_out) snprintf(path_out, cap, "%s", path);
    return rc;
}

bool lmb_test_shared_path(char *buf, size_t cap, const char *rel) {
    const char *root = getenv("LMB_TEST_SHARED");
    if (!root || !*root) root = "../shared";
    snprintf(buf, cap, "%s/%s", root, rel);
    return lmb_file_exists(buf);
}

char *lmb_test_join(const char *dir, const char *name) {
    static char buf[64][256];
    static int k;
    char *b = buf[k++ % 64];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}
