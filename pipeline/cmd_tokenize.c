/* cmd_tokenize.c — `lmbatch tokenize`: text -> ids (or ids -> text) with a model's tokenizer, like
 * llama.cpp's llama-tokenize, plus a --bench mode that measures encode speed on one core.
 *
 * Text comes from the positional argument, or from stdin when it is "-" (read as raw bytes, no trailing
 * newline stripped).  Exit codes: 0 ok, 1 failure (tokenizer cannot load, bad ids), 2 usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../engine/fileio.h"
#include "args.h"
#include "commands.h"
#include "tokenizer.h"

static const char SYNOPSIS[] = "lmbatch tokenize --model DIR|tokenizer.json [--json] [--no-bos] [--decode] [--ids-only] "
                               "[--bench FILE] TEXT|-";

static int read_stdin(char **out, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (;;) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return -1;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int load_any(const char *model, lmb_tokenizer **t, lmb_error *err) {
    struct stat st;
    if (stat(model, &st) == 0 && S_ISREG(st.st_mode)) return lmb_tokenizer_load(model, t, err);
    return lmb_tokenizer_load_dir(model, t, err);
}

/* "1 15043 3186", "[1,15043]", "1, 2\n3" */
static int parse_ids(const char *s, lmb_ids *out, lmb_error *err) {
    const char *p = s;
    while (*p) {
        if (strchr(" \t\r\n,[]", *p)) {
            p++;
            continue;
        }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || !strchr(" \t\r\n,[]", *end))
            return lmb_fail(err, "--decode: expected token ids like \"1 15043 3186\" or [1,15043], got \"%.20s\"", p);
        if (lmb_ids_push(out, (int32_t)v)) return lmb_fail(err, "out of memory");
        p = end;
    }
    return 0;
}

static void print_json_string(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    printf("%s\n", d ? d : "null");
    free(d);
    json_decref(j);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Encodes FILE as one text (first pass cold, then warm passes for >= 2 s) and line by line. */
static int bench(const lmb_tokenizer *t, const char *file, int flags, lmb_error *err) {
    char *text;
    size_t len;
    if (lmb_file_read_all(file, &text, &len, err)) return -1;
    lmb_ids ids = {0};
    int rc = -1;
    double t0 = now_s();
    if (lmb_tokenizer_encode(t, text, len, flags, &ids, err)) goto done;
    double cold = now_s() - t0;
    size_t ntok = ids.n;
    int reps = 0;
    double warm = 0;
    while (warm < 2.0 || reps < 3) {
        ids.n = 0;
        double a = now_s();
        if (lmb_tokenizer_encode(t, text, len, flags, &ids, err)) goto done;
        warm += now_s() - a;
        reps++;
    }
    size_t lines = 0, line_tok = 0;
    double a = now_s();
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) + 1 : len;
        ids.n = 0;
        if (lmb_tokenizer_encode(t, text + i, e - i, flags, &ids, err)) goto done;
        line_tok += ids.n;
        lines++;
        i = e;
    }
    double per_line = now_s() - a;
    double mb = (double)len / 1e6, mtok = (double)ntok / 1e6;
    printf("file: %s (%zu bytes, %zu tokens, %.2f bytes/token)\n", file, len, ntok, ntok ? (double)len / (double)ntok : 0.0);
    printf("whole text, first pass (cold cache): %.3f s  %.2f MB/s  %.2f M tok/s\n", cold, mb / cold, mtok / cold);
    printf("whole text, %d warm passes:          %.3f s each  %.2f MB/s  %.2f M tok/s\n", reps, warm / reps,
           mb * reps / warm, mtok * reps / warm);
    printf("line by line (%zu lines):           %.3f s  %.2f MB/s  %.2f M tok/s\n", lines, per_line, mb / per_line,
           (double)line_tok / 1e6 / per_line);
    rc = 0;
done:
    lmb_ids_free(&ids);
    free(text);
    return rc;
}

int lmb_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *bench_file = NULL;
    bool json = false, no_bos = false, decode = false, ids_only = false, skip_special = false, help = false;
    lmb_arg opts[] = {
        {"--model", LMB_ARG_STRING, &model, "model folder (with tokenizer.json) or a tokenizer.json file", false},
        {"--json", LMB_ARG_FLAG, &json, "print ids as a JSON list (with --decode: the text as a JSON string)", false},
        {"--no-bos", LMB_ARG_FLAG, &no_bos, "encode without special tokens (no post-processor, e.g. no BOS)", false},
        {"--decode", LMB_ARG_FLAG, &decode, "TEXT is a list of ids (\"1 15043 3186\" or [1,15043]); print the text", false},
        {"--skip-special", LMB_ARG_FLAG, &skip_special, "with --decode: leave special tokens out", false},
        {"--ids-only", LMB_ARG_FLAG, &ids_only, "print only the list of ids, like [1, 15043, 3186]", false},
        {"--bench", LMB_ARG_STRING, &bench_file, "measure encode speed on FILE (one core) and exit", false},
        {"--help", LMB_ARG_FLAG, &help, "show this help", false},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    lmb_arg_list pos;
    lmb_error err = {{0}};
    int code = LMB_EXIT_USAGE;
    lmb_tokenizer *t = NULL;
    char *input = NULL;
    lmb_ids ids = {0};
    if (lmb_args_parse(argc, argv, opts, n_opts, &pos, &err)) {
        fprintf(stderr, "lmbatch tokenize: %s\n", err.msg);
        lmb_args_usage(SYNOPSIS, opts, n_opts);
        goto done;
    }
    if (help) {
        lmb_args_usage(SYNOPSIS, opts, n_opts);
        code = LMB_EXIT_OK;
        goto done;
    }
    if (!model || (!bench_file && pos.n != 1) || (bench_file && pos.n != 0)) {
        fprintf(stderr, "lmbatch tokenize: %s\n", !model ? "--model is required" : "expected exactly one TEXT (or - for stdin)");
        lmb_args_usage(SYNOPSIS, opts, n_opts);
        goto done;
    }
    code = LMB_EXIT_PARTIAL;
    if (load_any(model, &t, &err)) {
        fprintf(stderr, "lmbatch tokenize: %s\n", err.msg);
        goto done;
    }
    int flags = no_bos ? 0 : LMB_TOK_ADD_SPECIAL;
    if (bench_file) {
        if (bench(t, bench_file, flags, &err)) {
            fprintf(stderr, "lmbatch tokenize: %s\n", err.msg);
            goto done;
        }
        code = LMB_EXIT_OK;
        goto done;
    }
    size_t len;
    if (strcmp(pos.items[0], "-") == 0) {
        if (read_stdin(&input, &len)) {
            fprintf(stderr, "lmbatch tokenize: cannot read stdin\n");
            goto done;
        }
    } else {
        if (!(input = strdup(pos.items[0]))) goto done;
        len = strlen(input);
    }
    if (decode) {
        char *text;
        size_t tl;
        if (parse_ids(input, &ids, &err) || lmb_tokenizer_decode(t, ids.ids, ids.n, skip_special, &text, &tl, &err)) {
            fprintf(stderr, "lmbatch tokenize: %s\n", err.msg);
            goto done;
        }
        if (json)
            print_json_string(text, tl);
        else
            printf("%s\n", text);
        free(text);
        code = LMB_EXIT_OK;
        goto done;
    }
    if (lmb_tokenizer_encode(t, input, len, flags, &ids, &err)) {
        fprintf(stderr, "lmbatch tokenize: %s\n", err.msg);
        goto done;
    }
    if (json || ids_only) {
        printf("[");
        for (size_t i = 0; i < ids.n; i++) printf(i ? ", %d" : "%d", ids.ids[i]);
        printf("]\n");
    } else {
        for (size_t i = 0; i < ids.n; i++) {
            char *piece;
            size_t pl;
            if (lmb_tokenizer_decode(t, &ids.ids[i], 1, false, &piece, &pl, &err)) {
                fprintf(stderr, "lmbatch tokenize: %s\n", err.msg);
                goto done;
            }
            printf("%6d -> '%s'\n", ids.ids[i], piece);
            free(piece);
        }
    }
    code = LMB_EXIT_OK;
done:
    if (fflush(stdout) != 0 && code == LMB_EXIT_OK) code = LMB_EXIT_PARTIAL;
    lmb_ids_free(&ids);
    free(input);
    lmb_tokenizer_free(t);
    lmb_args_free(opts, n_opts, &pos);
    return code;
}
