/* tok_normalize.c — tokenizer.json normalizers: Prepend, Replace, NFC/NFKC/NFD/NFKD, Lowercase, Strip and
 * Sequence (flattened into steps at load).
 *
 * Normalization maps one plain-text segment (the text between added tokens) to a new string; offsets
 * are not tracked, because encoding needs only the ids.  Prepend does nothing to an empty segment, as in
 * HF.  Unicode forms use the generated tables of unicode_tables.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "utf8.h"

static int push_step(lmb_norm **steps, size_t *n, lmb_norm s, lmb_error *err) {
    lmb_norm *v = realloc(*steps, (*n + 1) * sizeof *v);
    if (!v) return lmb_fail(err, "out of memory");
    *steps = v;
    v[(*n)++] = s;
    return 0;
}

static char *dup_json_string(json_t *s, size_t *len) {
    *len = json_string_length(s);
    char *p = malloc(*len + 1);
    if (p) memcpy(p, json_string_value(s), *len + 1);
    return p;
}

typedef struct norm_list {
    lmb_norm **steps;
    size_t *n;
} norm_list;

static int parse_into(json_t *e, void *ctx, const char *where, lmb_error *err) {
    norm_list *l = ctx;
    return lmb_norm_parse(e, l->steps, l->n, where, err);
}

int lmb_norm_parse(json_t *j, lmb_norm **steps, size_t *n, const char *where, lmb_error *err) {
    if (!j || json_is_null(j)) return 0;
    const char *ty = lmb_tok_json_type(j, where, err);
    if (!ty) return -1;
    if (strcmp(ty, "Sequence") == 0)
        return lmb_tok_json_sequence(j, "normalizers", parse_into, &(norm_list){steps, n}, where, err);
    char sub[512];
    lmb_norm s = {0};
    if (strcmp(ty, "Prepend") == 0) {
        json_t *p = json_object_get(j, "prepend");
        if (!json_is_string(p)) return lmb_fail(err, "%s.prepend: expected a string", where);
        s.kind = LMB_NORM_PREPEND;
        if (!(s.str = dup_json_string(p, &s.str_len))) return lmb_fail(err, "out of memory");
    } else if (strcmp(ty, "Replace") == 0) {
        json_t *c = json_object_get(j, "content");
        if (!json_is_string(c)) return lmb_fail(err, "%s.content: expected a string", where);
        s.kind = LMB_NORM_REPLACE;
        snprintf(sub, sizeof sub, "%s.pattern", where);
        if (lmb_pattern_parse(json_object_get(j, "pattern"), &s.pat, sub, err)) {
            lmb_pattern_free(&s.pat);
            return -1;
        }
        if (!(s.str = dup_json_string(c, &s.str_len))) {
            lmb_pattern_free(&s.pat);
            return lmb_fail(err, "out of memory");
        }
    } else if (strcmp(ty, "NFC") == 0) {
        s.kind = LMB_NORM_NFC;
    } else if (strcmp(ty, "NFKC") == 0) {
        s.kind = LMB_NORM_NFKC;
    } else if (strcmp(ty, "NFD") == 0) {
        s.kind = LMB_NORM_NFD;
    } else if (strcmp(ty, "NFKD") == 0) {
        s.kind = LMB_NORM_NFKD;
    } else if (strcmp(ty, "Lowercase") == 0) {
        s.kind = LMB_NORM_LOWERCASE;
    } else if (strcmp(ty, "Strip") == 0) {
        s.kind = LMB_NORM_STRIP;
        s.left = lmb_tok_json_bool(j, "strip_left", true);
        s.right = lmb_tok_json_bool(j, "strip_right", true);
    } else {
        return lmb_fail(err, "%s: unsupported normalizer type \"%s\" (supported: Sequence, Prepend, Replace, NFC, "
                        "NFKC, NFD, NFKD, Lowercase, Strip)", where, ty);
    }
    if (push_step(steps, n, s, err)) {
        free(s.str);
        lmb_pattern_free(&s.pat);
        return -1;
    }
    return 0;
}

void lmb_norm_free(lmb_norm *steps, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(steps[i].str);
        lmb_pattern_free(&steps[i].pat);
    }
    free(steps);
}

static int replace_all(const lmb_norm *st, const char *s, size_t n, pcre2_match_data *md, lmb_buf *out,
                       lmb_error *err) {
    size_t from = 0, done = 0, ms, me;
    for (;;) {
        int r = lmb_pattern_next(&st->pat, s, n, from, md, &ms, &me);
        if (r < 0) return lmb_fail(err, "normalizer Replace: regex matching failed");
        if (r == 0) break;
        if (me == ms) { /* empty matches replace nothing */
            if (me >= n) break;
            from = me + (size_t)lmb_utf8_seqlen((unsigned char)s[me]);
            continue;
        }
        if (lmb_buf_append(out, s + done, ms - done) || lmb_buf_append(out, st->str, st->str_len)) goto oom;
        done = from = me;
    }
    if (lmb_buf_append(out, s + done, n - done)) goto oom;
    return 0;
oom:
    return lmb_fail(err, "out of memory");
}

static int strip(const lmb_norm *st, const char *s, size_t n, lmb_buf *out) {
    size_t a = 0, b = n;
    if (st->left)
        while (a < b) {
            size_t i = a;
            uint32_t cp;
            lmb_utf8_next(s, n, &i, &cp);
            if (!lmb_uc_is_whitespace(cp)) break;
            a = i;
        }
    if (st->right)
        while (b > a) {
            size_t i = b - 1;
            while (i > a && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
            size_t j = i;
            uint32_t cp;
            lmb_utf8_next(s, n, &j, &cp);
            if (!lmb_uc_is_whitespace(cp)) break;
            b = i;
        }
    return lmb_buf_append(out, s + a, b - a);
}

int lmb_normalize(const lmb_norm *steps, size_t n_steps, const char *s, size_t n, lmb_enc_scratch *sc,
                  lmb_buf *out, lmb_error *err) {
    out->n = 0;
    if (lmb_buf_append(out, s, n)) return lmb_fail(err, "out of memory");
    lmb_buf tmp = {0};
    for (size_t k = 0; k < n_steps; k++) {
        const lmb_norm *st = &steps[k];
        size_t len = 0;
        int rc = 0;
        tmp.n = 0;
        switch (st->kind) {
        case LMB_NORM_PREPEND:
            if (out->n == 0) continue;
            rc = lmb_buf_append(&tmp, st->str, st->str_len) || lmb_buf_append(&tmp, out->p, out->n);
            break;
        case LMB_NORM_REPLACE:
            if (replace_all(st, out->p, out->n, sc->md, &tmp, err)) {
                lmb_buf_free(&tmp);
                return -1;
            }
            break;
        case LMB_NORM_NFC: case LMB_NORM_NFKC: case LMB_NORM_NFD: case LMB_NORM_NFKD: {
            lmb_uc_form f = st->kind == LMB_NORM_NFC ? LMB_UC_NFC : st->kind == LMB_NORM_NFKC ? LMB_UC_NFKC
                          : st->kind == LMB_NORM_NFD ? LMB_UC_NFD : LMB_UC_NFKD;
            rc = lmb_uc_normalize(f, out->p, out->n, &sc->tmp, &sc->tmp_cap, &len) ||
                 lmb_buf_append(&tmp, sc->tmp, len);
            break;
        }
        case LMB_NORM_LOWERCASE:
            rc = lmb_uc_lowercase(out->p, out->n, &sc->tmp, &sc->tmp_cap, &len) || lmb_buf_append(&tmp, sc->tmp, len);
            break;
        case LMB_NORM_STRIP:
            rc = strip(st, out->p, out->n, &tmp);
            break;
        }
        if (rc) {
            lmb_buf_free(&tmp);
            return lmb_fail(err, "out of memory");
        }
        lmb_buf swap = *out;
        *out = tmp;
        tmp = swap;
    }
    lmb_buf_free(&tmp);
    return 0;
}
