/* cmd_merge.c — `lmbatch merge --output OUT.jsonl [SHARD.jsonl ...] [--input FILE ...]`: joins the outputs of
 * the N shards of a batch (shard.h) into OUT, and refuses (exit 6, no OUT written) unless they are complete:
 *   - every shard 0..N-1 is there as a finished file (not only its .partial);
 *   - every line is an output line, of the shard its id hashes to, and no key is answered twice;
 *   - with --input (the inputs the shards ran on): every input line of every shard is answered.
 * Without shard files on the command line, the shards of OUT (OUT.shard-K-of-N.jsonl) are found by name.
 * The merged output lists the shards one after the other, or, with --input, follows the input order.
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "ids.h"
#include "shard.h"
#include "sink.h"
#include "source.h"

typedef struct mline {
    char *text;
    size_t len;
    bool used; /* written in input order already */
} mline;

typedef struct merge {
    mline *lines;
    size_t n, cap;
    lmb_keyset keys; /* key -> index in lines */
    long ok, errors, problems;
} merge;

#define MAX_REPORTED 10

static void problem(merge *m, const char *fmt, const char *a, long b, const char *c) {
    if (m->problems++ < MAX_REPORTED) {
        fprintf(stderr, "lmbatch merge: ");
        fprintf(stderr, fmt, a, b, c);
        fputc('\n', stderr);
    }
}

static int read_shard(merge *m, const char *path, int k, int n, lmb_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        char partial[4200];
        snprintf(partial, sizeof partial, "%s.partial", path);
        if (access(partial, F_OK) == 0)
            problem(m, "%s: shard %ld is unfinished (only its .partial exists): rerun it with --resume%s", path, k, "");
        else
            problem(m, "%s: shard %ld is missing%s", path, k, "");
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        no++;
        if (line[len - 1] == '\n') line[--len] = '\0';
        lmb_output_ident id;
        if (lmb_ident_output(line, (size_t)len, &id)) {
            problem(m, "%s:%ld: not an lmbatch output line%s", path, no, "");
            continue;
        }
        if (n > 1 && id.shard_hash % (uint64_t)n != (uint64_t)k) {
            problem(m, "%s:%ld: this line belongs to another shard%s", path, no, " (were the shards run with different N?)");
            continue;
        }
        bool added;
        if (lmb_keyset_put(&m->keys, id.key, m->n, &added, err)) {
            rc = -1;
            break;
        }
        if (!added) {
            problem(m, "%s:%ld: %s", path, no, "this id is answered twice");
            continue;
        }
        if (m->n == m->cap) {
            size_t nc = m->cap ? m->cap * 2 : 1024;
            mline *nl = realloc(m->lines, sizeof *nl * nc);
            if (!nl) {
                rc = lmb_fail(err, "out of memory");
                break;
            }
            m->lines = nl;
            m->cap = nc;
        }
        char *copy = malloc((size_t)len + 1);
        if (!copy) {
            rc = lmb_fail(err, "out of memory");
            break;
        }
        memcpy(copy, line, (size_t)len + 1);
        m->lines[m->n++] = (mline){copy, (size_t)len, false};
        if (id.ok)
            m->ok++;
        else
            m->errors++;
    }
    free(line);
    fclose(f);
    return rc;
}

/* Writes the lines in input order, checking that each input line is answered. */
static int write_in_input_order(merge *m, const char *const *inputs, int n_inputs, lmb_format fmt, lmb_sink *sink,
                                lmb_error *err) {
    lmb_source *src;
    if (lmb_source_open_list(inputs, n_inputs, &src, err)) return -1;
    lmb_keyer k;
    lmb_keyer_init(&k, fmt, lmb_source_multi(src), 0, 1);
    lmb_line l;
    int r, rc = 0;
    long missing = 0;
    while ((r = lmb_source_next(src, &l, err)) == 1) {
        if (lmb_line_blank(l.text, l.len)) continue;
        lmb_line_key lk;
        if (lmb_keyer_line(&k, l.text, l.len, l.origin, l.number, l.stream, &lk, err)) {
            rc = -1;
            break;
        }
        lmb_input_ident_free(&lk.ident);
        uint64_t idx;
        if (!lmb_keyset_get(&m->keys, lk.key, &idx)) {
            missing++;
            problem(m, "%s:%ld: this input line has no answer in any shard%s", l.origin, l.number, "");
            continue;
        }
        if (m->lines[idx].used) continue; /* cannot happen: keys are unique per line */
        m->lines[idx].used = true;
        if (lmb_sink_write_text(sink, m->lines[idx].text, m->lines[idx].len, err)) {
            rc = -1;
            break;
        }
    }
    if (r < 0) rc = -1;
    long extra = 0;
    for (size_t i = 0; !rc && i < m->n; i++)
        if (!m->lines[i].used) {
            extra++;
            if (lmb_sink_write_text(sink, m->lines[i].text, m->lines[i].len, err)) rc = -1;
        }
    if (extra) fprintf(stderr, "lmbatch merge: note: %ld lines answer no line of the given inputs (kept at the end)\n", extra);
    if (missing) fprintf(stderr, "lmbatch merge: %ld input lines are not answered\n", missing);
    lmb_keyer_free(&k);
    lmb_source_close(src);
    return rc;
}

/* The shard files of out: "<stem>.shard-*-of-*.jsonl" (and their .partial files, to name unfinished ones). */
static int find_shards(const char *out, char ***paths, int *n, lmb_error *err) {
    char pattern[4200], stem_buf[4096];
    size_t len = strlen(out);
    bool jsonl = len > 6 && strcmp(out + len - 6, ".jsonl") == 0;
    snprintf(stem_buf, sizeof stem_buf, "%.*s", (int)(jsonl ? len - 6 : len), out);
    snprintf(pattern, sizeof pattern, "%s.shard-*-of-*%s", stem_buf, jsonl ? ".jsonl" : "");
    glob_t g = {0};
    int r = glob(pattern, 0, NULL, &g);
    *paths = NULL;
    *n = 0;
    if (r == GLOB_NOMATCH) {
        /* only partial files? */
        char pp[4300];
        snprintf(pp, sizeof pp, "%s.partial", pattern);
        glob_t g2 = {0};
        bool partial = glob(pp, 0, NULL, &g2) == 0;
        globfree(&g2);
        return lmb_fail(err, "no shard outputs match %s%s", pattern,
                        partial ? " (only .partial files: the shards are unfinished; rerun them with --resume)" : "");
    }
    if (r != 0) return lmb_fail(err, "cannot list %s", pattern);
    char **p = calloc(g.gl_pathc, sizeof *p);
    if (!p) {
        globfree(&g);
        return lmb_fail(err, "out of memory");
    }
    for (size_t i = 0; i < g.gl_pathc; i++) p[(*n)++] = strdup(g.gl_pathv[i]);
    globfree(&g);
    *paths = p;
    return 0;
}

int lmb_cmd_merge(int argc, char **argv) {
    const char *output = NULL, *format = "auto";
    lmb_arg_list inputs = {0};
    long shards = 0;
    bool help = false;
    lmb_arg opts[] = {
        {"--output", LMB_ARG_STRING, &output, "the merged JSONL (written only when the shards are complete)"},
        {"--input", LMB_ARG_STRING_LIST, &inputs,
         "the inputs the shards ran on (repeatable): check every input line is answered; write in input order"},
        {"--shards", LMB_ARG_INT, &shards, "N: the number of shards (default: read from the shard file names)"},
        {"--format", LMB_ARG_STRING, &format, "the inputs' format, as given to run: auto, plain or openai"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *synopsis = "lmbatch merge --output OUT.jsonl [SHARD.jsonl ...] [--input FILE ...]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    merge m = {0};
    char **found = NULL, **inputs_x = NULL;
    int n_found = 0, n_inputs_x = 0;
    lmb_sink *sink = NULL;
    if (lmb_args_parse(argc, argv, opts, n_opts, &pos, &err)) {
        fprintf(stderr, "lmbatch merge: %s\n", err.msg);
        goto done;
    }
    if (help) {
        lmb_args_usage(synopsis, opts, n_opts);
        rc = LMB_EXIT_OK;
        goto done;
    }
    int fmt = lmb_format_parse(format);
    if (!output || strcmp(output, "-") == 0 || fmt < 0 || shards < 0) {
        if (fmt < 0) fprintf(stderr, "lmbatch merge: --format must be auto, plain or openai\n");
        lmb_args_usage(synopsis, opts, n_opts);
        goto done;
    }
    rc = LMB_EXIT_IO;
    const char *const *files = pos.items;
    int n_files = pos.n;
    if (n_files == 0) {
        if (find_shards(output, &found, &n_found, &err)) {
            fprintf(stderr, "lmbatch merge: %s\n", err.msg);
            rc = LMB_EXIT_INCOMPLETE;
            goto done;
        }
        files = (const char *const *)found;
        n_files = n_found;
    }
    /* N and each file's K, from the names (or --shards with the files in shard order) */
    int N = (int)shards;
    int *file_k = calloc((size_t)n_files, sizeof *file_k);
    if (!file_k) goto done;
    for (int i = 0; i < n_files; i++) {
        int k, nn;
        if (lmb_shard_of_path(files[i], &k, &nn)) {
            if (N == 0) N = nn;
            if (nn != N) {
                fprintf(stderr, "lmbatch merge: %s is shard %d of %d, but the others are of %d\n", files[i], k, nn, N);
                rc = LMB_EXIT_INCOMPLETE;
                free(file_k);
                goto done;
            }
            file_k[i] = k;
        } else if (shards > 0) {
            file_k[i] = i;
        } else {
            fprintf(stderr, "lmbatch merge: %s: the name does not say which shard it is (NAME.shard-K-of-N.jsonl); "
                            "give --shards N and the files in shard order\n", files[i]);
            rc = LMB_EXIT_USAGE;
            free(file_k);
            goto done;
        }
    }
    /* read shard 0..N-1 in order */
    int read_rc = 0;
    for (int k = 0; k < N && !read_rc; k++) {
        int which = -1;
        for (int i = 0; i < n_files; i++)
            if (file_k[i] == k) {
                if (which >= 0) problem(&m, "%s: shard %ld is given twice%s", files[i], k, "");
                which = i;
            }
        char expected[4200];
        if (which < 0 && lmb_shard_output(output, k, N, expected, sizeof expected, &err)) read_rc = -1;
        if (!read_rc) read_rc = read_shard(&m, which < 0 ? expected : files[which], k, N, &err);
    }
    free(file_k);
    if (read_rc) {
        fprintf(stderr, "lmbatch merge: %s\n", err.msg);
        goto done;
    }
    if (m.problems) {
        if (m.problems > MAX_REPORTED) fprintf(stderr, "lmbatch merge: ... %ld problems in all\n", m.problems);
        fprintf(stderr, "lmbatch merge: the shards are incomplete or inconsistent; %s not written\n", output);
        rc = LMB_EXIT_INCOMPLETE;
        goto done;
    }
    if (lmb_sink_open(output, &sink, &err)) {
        fprintf(stderr, "lmbatch merge: %s\n", err.msg);
        goto done;
    }
    if (inputs.n > 0) {
        if (lmb_source_expand(inputs.items, inputs.n, &inputs_x, &n_inputs_x, &err) ||
            write_in_input_order(&m, (const char *const *)inputs_x, n_inputs_x, (lmb_format)fmt, sink, &err)) {
            fprintf(stderr, "lmbatch merge: %s\n", err.msg);
            goto done;
        }
        if (m.problems) {
            fprintf(stderr, "lmbatch merge: the shards do not answer every input line; %s not written\n", output);
            rc = LMB_EXIT_INCOMPLETE;
            goto done;
        }
    } else {
        for (size_t i = 0; i < m.n; i++)
            if (lmb_sink_write_text(sink, m.lines[i].text, m.lines[i].len, &err)) {
                fprintf(stderr, "lmbatch merge: %s\n", err.msg);
                goto done;
            }
    }
    if (lmb_sink_commit(sink, &err)) {
        sink = NULL;
        fprintf(stderr, "lmbatch merge: %s\n", err.msg);
        goto done;
    }
    sink = NULL;
    fprintf(stderr, "lmbatch merge: %d shards, %zu lines (%ld ok, %ld errors) -> %s\n", N, m.n, m.ok, m.errors, output);
    rc = m.errors ? LMB_EXIT_PARTIAL : LMB_EXIT_OK;
done:
    if (sink) { /* an unfinished merge leaves no output behind */
        char partial[4200];
        snprintf(partial, sizeof partial, "%s.partial", output);
        lmb_sink_abandon(sink);
        unlink(partial);
    }
    for (size_t i = 0; i < m.n; i++) free(m.lines[i].text);
    free(m.lines);
    lmb_keyset_free(&m.keys);
    lmb_source_paths_free(found, n_found);
    lmb_source_paths_free(inputs_x, n_inputs_x);
    lmb_args_free(opts, n_opts, &pos);
    return rc;
}
