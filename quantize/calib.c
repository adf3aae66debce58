/* calib.c — see calib.h: calibration text -> token stream -> evenly spaced windows. */
#include "calib.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/fileio.h"

int lmb_calib_from_stream(const int32_t *ids, long n, int n_samples, int seqlen, lmb_calib_set *out, lmb_error *err) {
    memset(out, 0, sizeof *out);
    if (n_samples < 1 || seqlen < 2) return lmb_fail(err, "calibration needs at least 1 sample of 2 or more tokens");
    if (n < 2) return lmb_fail(err, "the calibration text has %ld token(s); at least 2 are needed", n);
    int len = n < seqlen ? (int)n : seqlen;
    long fit = n / len;
    int count = fit < n_samples ? (int)fit : n_samples;
    out->tokens = malloc(sizeof(int32_t) * (size_t)count * (size_t)len);
    if (!out->tokens) return lmb_fail(err, "out of memory for %d x %d calibration tokens", count, len);
    for (int i = 0; i < count; i++) {
        /* evenly spaced starts over [0, n - len]: since n >= count * len the step is >= len (no overlap) */
        long start = count == 1 ? 0 : (long)((double)i * (double)(n - len) / (double)(count - 1));
        memcpy(out->tokens + (size_t)i * len, ids + start, sizeof(int32_t) * (size_t)len);
    }
    out->n_seqs = count;
    out->seqlen = len;
    out->stream_tokens = n;
    return 0;
}

/* The "text" (else "prompt") string of one JSONL line. */
static int jsonl_text(const char *line, size_t len, const char *path, long line_no, json_t **root, const char **text,
                      size_t *text_len, lmb_error *err) {
    json_error_t je;
    *root = json_loadb(line, len, JSON_ALLOW_NUL, &je);
    if (!*root) return lmb_fail(err, "%s:%ld: not valid JSON: %s", path, line_no, je.text);
    const json_t *t = json_object_get(*root, "text");
    if (!json_is_string(t)) t = json_object_get(*root, "prompt");
    if (!json_is_object(*root) || !json_is_string(t))
        return lmb_fail(err, "%s:%ld: a calibration JSONL line needs a \"text\" or \"prompt\" string field", path,
                        line_no);
    *text = json_string_value(t);
    *text_len = json_string_length(t);
    return 0;
}

/* JSONL when the first non-blank line is a JSON object (a text file may well start with '{'). */
static bool looks_like_jsonl(const char *p, size_t n) {
    if (n == 0 || *p != '{') return false;
    size_t end = 0;
    while (end < n && p[end] != '\n') end++;
    json_error_t je;
    json_t *o = json_loadb(p, end, JSON_ALLOW_NUL, &je);
    bool ok = json_is_object(o);
    json_decref(o);
    return ok;
}

int lmb_calib_load(const char *path, const lmb_tokenizer *tok, int n_samples, int seqlen, lmb_calib_set *out,
                   lmb_error *err) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t size;
    if (lmb_file_read_all(path, &data, &size, err)) return -1;
    size_t first = 0;
    while (first < size && (data[first] == ' ' || data[first] == '\t' || data[first] == '\r' || data[first] == '\n'))
        first++;
    if (first == size) {
        free(data);
        return lmb_fail(err, "%s: the calibration file is empty", path);
    }
    lmb_ids ids = {0};
    long records = 0;
    int rc = 0;
    if (!looks_like_jsonl(data + first, size - first)) { /* plain text: one document */
        rc = lmb_tokenizer_encode(tok, data, size, LMB_TOK_ADD_SPECIAL, &ids, err);
    } else { /* JSONL: record by record, until the windows are covered */
        long line_no = 0, want = (long)n_samples * seqlen;
        for (size_t pos = 0; pos < size && !rc && (long)ids.n < want;) {
            size_t end = pos;
            while (end < size && data[end] != '\n') end++;
            line_no++;
            size_t b = pos, e = end;
            while (b < e && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r')) b++;
            while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r')) e--;
            if (e > b) {
                json_t *root = NULL;
                const char *text = NULL;
                size_t tl = 0;
                rc = jsonl_text(data + b, e - b, path, line_no, &root, &text, &tl, err);
                if (!rc && tl > 0) {
                    rc = lmb_tokenizer_encode(tok, text, tl, LMB_TOK_ADD_SPECIAL, &ids, err);
                    records++;
                }
                json_decref(root);
            }
            pos = end + 1;
        }
    }
    free(data);
    if (!rc) rc = lmb_calib_from_stream(ids.ids, (long)ids.n, n_samples, seqlen, out, err);
    if (rc && !strstr(err->msg, path)) lmb_error_prefix(err, "%s", path);
    out->records = records;
    lmb_ids_free(&ids);
    return rc;
}

void lmb_calib_free(lmb_calib_set *c) {
    free(c->tokens);
    memset(c, 0, sizeof *c);
}
