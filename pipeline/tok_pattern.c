/* tok_pattern.c — the patterns of tokenizer.json ({"String": ...} / {"Regex": ...}) and HF's generic
 * "split by pattern with a delimiter behavior".
 *
 * Regexes are Oniguruma syntax in tokenizer.json; we compile them with PCRE2 (UTF + UCP) after rewriting
 * the escapes whose meaning differs: Oniguruma's \s is the White_Space property (PCRE2's lacks U+0085),
 * its \w is Alphabetic + marks + decimal digits + connector punctuation (+ a few Latin-1 digits such as
 * "½"; PCRE2's lacks marks), and its \h is a hex digit.  Checked against HF in the variants fixture
 * (split_removed_whitespace, split_removed_word).  Subjects are always valid UTF-8
 * (encode sanitizes its input), so matching skips PCRE2's UTF check.  An empty match splits the text
 * there and the search resumes one character later, as Oniguruma's find_iter does.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "utf8.h"

#define WS_SET "\\p{White_Space}"
#define WORD_SET "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}"
#define HEX_SET "0-9a-fA-F"

/* Oniguruma -> PCRE2: rewrites \s \S \w \W \h \H (see the file comment), in and out of [...] classes.
 * A negated class escape inside a class (\W, \H within [...]) has no union form; PCRE2's own is kept. */
static int translate(const char *re, lmb_buf *out) {
    int depth = 0; /* nesting of [...] */
    for (size_t i = 0; re[i]; i++) {
        char c = re[i];
        const char *rep = NULL;
        if (c == '\\' && re[i + 1]) {
            char e = re[i + 1];
            bool in = depth > 0;
            switch (e) {
            case 's': rep = in ? WS_SET : "[" WS_SET "]"; break;
            case 'S': rep = in ? "\\P{White_Space}" : "[^" WS_SET "]"; break;
            case 'w': rep = in ? WORD_SET : "[" WORD_SET "]"; break;
            case 'W': rep = in ? NULL : "[^" WORD_SET "]"; break;
            case 'h': rep = in ? HEX_SET : "[" HEX_SET "]"; break;
            case 'H': rep = in ? NULL : "[^" HEX_SET "]"; break;
            }
            if (rep) {
                if (lmb_buf_append(out, rep, strlen(rep))) return -1;
            } else if (lmb_buf_append(out, re + i, 2)) {
                return -1;
            }
            i++;
            continue;
        }
        if (c == '[') {
            depth++;
            if (lmb_buf_append(out, &c, 1)) return -1;
            /* a ']' right after '[' or '[^' is a literal */
            if (re[i + 1] == '^') {
                if (lmb_buf_append(out, "^", 1)) return -1;
                i++;
            }
            if (re[i + 1] == ']') {
                if (lmb_buf_append(out, "\\]", 2)) return -1;
                i++;
            }
            continue;
        }
        if (c == ']' && depth > 0) depth--;
        if (lmb_buf_append(out, &c, 1)) return -1;
    }
    return lmb_buf_append(out, "", 0);
}

int lmb_pattern_compile(lmb_pattern *p, const char *regex, const char *where, lmb_error *err) {
    memset(p, 0, sizeof *p);
    p->kind = LMB_PAT_REGEX;
    int ecode;
    PCRE2_SIZE eoff;
    lmb_buf tr = {0};
    if (translate(regex, &tr)) {
        lmb_buf_free(&tr);
        return lmb_fail(err, "out of memory");
    }
    p->re = pcre2_compile((PCRE2_SPTR)tr.p, tr.n, PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, NULL);
    lmb_buf_free(&tr);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        return lmb_fail(err, "%s: cannot compile regex \"%s\" at offset %zu: %s", where, regex, (size_t)eoff,
                        (const char *)msg);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    return 0;
}

int lmb_pattern_parse(json_t *j, lmb_pattern *p, const char *where, lmb_error *err) {
    memset(p, 0, sizeof *p);
    json_t *s = json_is_object(j) ? json_object_get(j, "String") : NULL;
    json_t *r = json_is_object(j) ? json_object_get(j, "Regex") : NULL;
    if (json_is_string(s)) {
        p->kind = LMB_PAT_LITERAL;
        p->lit_len = json_string_length(s);
        p->lit = malloc(p->lit_len + 1);
        if (!p->lit) return lmb_fail(err, "out of memory");
        memcpy(p->lit, json_string_value(s), p->lit_len + 1);
        if (p->lit_len == 0) return lmb_fail(err, "%s: empty String pattern", where);
        return 0;
    }
    if (json_is_string(r)) return lmb_pattern_compile(p, json_string_value(r), where, err);
    return lmb_fail(err, "%s: expected {\"String\": ...} or {\"Regex\": ...}", where);
}

void lmb_pattern_free(lmb_pattern *p) {
    free(p->lit);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

int lmb_pattern_next(const lmb_pattern *p, const char *s, size_t n, size_t from, pcre2_match_data *md,
                     size_t *ms, size_t *me) {
    if (from > n) return 0;
    switch (p->kind) {
    case LMB_PAT_LITERAL: {
        const char *hit = memmem(s + from, n - from, p->lit, p->lit_len);
        if (!hit) return 0;
        *ms = (size_t)(hit - s);
        *me = *ms + p->lit_len;
        return 1;
    }
    case LMB_PAT_WHITESPACE:
        for (size_t i = from; i < n;) {
            size_t at = i;
            uint32_t cp;
            lmb_utf8_next(s, n, &i, &cp);
            if (lmb_uc_is_whitespace(cp)) {
                *ms = at;
                *me = i;
                return 1;
            }
        }
        return 0;
    case LMB_PAT_REGEX: {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        *ms = ov[0];
        *me = ov[1];
        return 1;
    }
    }
    return 0;
}

int lmb_split(const lmb_pattern *p, lmb_split_behavior behavior, bool invert, const char *s, size_t n,
              size_t base, bool at_origin, pcre2_match_data *md, lmb_spans *out, lmb_error *err) {
    if (n == 0) return 0;
    /* 1. segments covering s, each flagged match / no match (id holds the flag), appended to out */
    size_t first = out->n, prev = 0, from = 0, ms, me;
    for (;;) {
        int r = lmb_pattern_next(p, s, n, from, md, &ms, &me);
        if (r < 0) return lmb_fail(err, "regex matching failed (match limit?) on a %zu-byte piece", n);
        if (r == 0) break;
        if (ms > prev && lmb_spans_push(out, prev, ms - prev, invert, false)) goto oom;
        if (lmb_spans_push(out, ms, me - ms, !invert, false)) goto oom;
        prev = me;
        if (me > ms)
            from = me;
        else if (me >= n)
            break;
        else
            from = me + (size_t)lmb_utf8_seqlen((unsigned char)s[me]);
    }
    if (prev < n && lmb_spans_push(out, prev, n - prev, invert, false)) goto oom;

    /* 2. fold the segments into pieces, in place (the write index never passes the read index) */
    lmb_span *v = out->v + first;
    size_t nseg = out->n - first, w = 0;
    bool prev_match = false;
    for (size_t i = 0; i < nseg; i++) {
        bool is_match = v[i].id != 0;
        size_t off = v[i].off, end = v[i].off + v[i].len;
        bool extend = false, drop = false;
        switch (behavior) {
        case LMB_SPLIT_REMOVED: drop = is_match; break;
        case LMB_SPLIT_ISOLATED: break;
        case LMB_SPLIT_CONTIGUOUS: extend = w > 0 && is_match == prev_match; break;
        case LMB_SPLIT_MERGED_PREV: extend = w > 0 && is_match && !prev_match; break;
        case LMB_SPLIT_MERGED_NEXT:
            if (is_match && i + 1 < nseg && v[i + 1].id == 0) { /* absorb the next (non-match) segment */
                end = v[i + 1].off + v[i + 1].len;
                i++;
                is_match = false;
            }
            break;
        }
        prev_match = is_match;
        if (drop) continue;
        if (extend)
            v[w - 1].len = end - v[w - 1].off;
        else
            v[w++] = (lmb_span){off, end - off, -1, false};
    }
    /* 3. drop empty pieces, rebase offsets */
    size_t k = 0;
    for (size_t i = 0; i < w; i++) {
        if (v[i].len == 0) continue;
        v[k] = v[i];
        v[k].at_origin = at_origin && v[i].off == 0;
        v[k].off += base;
        k++;
    }
    out->n = first + k;
    return 0;
oom:
    return lmb_fail(err, "out of memory");
}
