/* shard.c — shard specs, Slurm's environment, shard output names (see shard.h). */
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool parse_long(const char *s, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

int lmb_shard_parse(const char *text, int *k, int *n, lmb_error *err) {
    const char *slash = strchr(text, '/');
    char kbuf[32];
    long kv, nv;
    if (!slash || (size_t)(slash - text) >= sizeof kbuf) goto bad;
    memcpy(kbuf, text, (size_t)(slash - text));
    kbuf[slash - text] = '\0';
    if (!parse_long(kbuf, &kv) || !parse_long(slash + 1, &nv) || nv < 1 || nv > 1000000 || kv < 0 || kv >= nv) goto bad;
    *k = (int)kv;
    *n = (int)nv;
    return 0;
bad:
    return lmb_fail(err, "--shard expects K/N with 0 <= K < N (e.g. 3/8), got \"%s\"", text);
}

int lmb_shard_from_env(int *k, int *n, const char **what, lmb_error *err) {
    long id, count, min = 0;
    if (parse_long(getenv("SLURM_ARRAY_TASK_COUNT"), &count) && parse_long(getenv("SLURM_ARRAY_TASK_ID"), &id)) {
        if (getenv("SLURM_ARRAY_TASK_MIN") && !parse_long(getenv("SLURM_ARRAY_TASK_MIN"), &min))
            return lmb_fail(err, "SLURM_ARRAY_TASK_MIN is not a number");
        if (count < 1 || id - min < 0 || id - min >= count)
            return lmb_fail(err, "SLURM_ARRAY_TASK_ID %ld - SLURM_ARRAY_TASK_MIN %ld is not in [0, %ld): use a "
                                 "contiguous --array=0-%ld, or give --shard K/N", id, min, count, count - 1);
        *k = (int)(id - min);
        *n = (int)count;
        *what = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT";
        return 1;
    }
    if (parse_long(getenv("SLURM_NTASKS"), &count) && parse_long(getenv("SLURM_PROCID"), &id) && count > 1) {
        if (id < 0 || id >= count) return lmb_fail(err, "SLURM_PROCID %ld is not in [0, %ld)", id, count);
        *k = (int)id;
        *n = (int)count;
        *what = "SLURM_PROCID/SLURM_NTASKS";
        return 1;
    }
    return 0;
}

int lmb_shard_output(const char *out, int k, int n, char *buf, size_t cap, lmb_error *err) {
    int w;
    size_t len = strlen(out);
    if (n <= 1 || strcmp(out, "-") == 0) {
        w = snprintf(buf, cap, "%s", out);
    } else if (len > 6 && strcmp(out + len - 6, ".jsonl") == 0) {
        w = snprintf(buf, cap, "%.*s.shard-%d-of-%d.jsonl", (int)(len - 6), out, k, n);
    } else {
        w = snprintf(buf, cap, "%s.shard-%d-of-%d", out, k, n);
    }
    if (w < 0 || (size_t)w >= cap) return lmb_fail(err, "output path too long: %s", out);
    return 0;
}

bool lmb_shard_of_path(const char *path, int *k, int *n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *p = NULL;
    for (const char *s = base; (s = strstr(s, ".shard-")); s++) p = s; /* the last one */
    if (!p) return false;
    int kk, nn, used = 0;
    if (sscanf(p, ".shard-%d-of-%d%n", &kk, &nn, &used) != 2 || nn < 1 || kk < 0 || kk >= nn) return false;
    const char *rest = p + used;
    if (*rest && strcmp(rest, ".jsonl") != 0) return false;
    *k = kk;
    *n = nn;
    return true;
}
