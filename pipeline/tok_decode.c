/* tok_decode.c — ids back to text: tokenizer.json decoders (ByteFallback, Metaspace, ByteLevel, Fuse,
 * Strip, Replace, BPEDecoder, Sequence) and lmb_tokenizer_decode.
 *
 * As in HF, each decoder maps a list of token strings to a new list, and the final list is concatenated
 * (joined with spaces when there is no decoder at all).  Added tokens go through the decoders like any
 * other token.  Invalid UTF-8 from byte tokens becomes U+FFFD: ByteFallback replaces every byte of an
 * invalid run, ByteLevel one U+FFFD per maximal invalid subpart (Rust's from_utf8_lossy).  The result is
 * always valid UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "utf8.h"

static int push_step(lmb_decoder **steps, size_t *n, lmb_decoder s, lmb_error *err) {
    lmb_decoder *v = realloc(*steps, (*n + 1) * sizeof *v);
    if (!v) {
        free(s.content);
        lmb_pattern_free(&s.pat);
        return lmb_fail(err, "out of memory");
    }
    *steps = v;
    v[(*n)++] = s;
    return 0;
}

static int dup_string(json_t *j, char **out, size_t *len) {
    *len = json_string_length(j);
    if (!(*out = malloc(*len + 1))) return -1;
    memcpy(*out, json_string_value(j), *len + 1);
    return 0;
}

static bool one_char(const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    return n > 0 && lmb_utf8_next(s, n, &i, &cp) && i == n;
}

typedef struct decoder_list {
    lmb_decoder **steps;
    size_t *n;
} decoder_list;

static int parse_into(json_t *e, void *ctx, const char *where, lmb_error *err) {
    decoder_list *l = ctx;
    return lmb_decoder_parse(e, l->steps, l->n, where, err);
}

int lmb_decoder_parse(json_t *j, lmb_decoder **steps, size_t *n, const char *where, lmb_error *err) {
    const char *ty = lmb_tok_json_type(j, where, err);
    if (!ty) return -1;
    if (strcmp(ty, "Sequence") == 0)
        return lmb_tok_json_sequence(j, "decoders", parse_into, &(decoder_list){steps, n}, where, err);
    char sub[512];
    lmb_decoder s = {0};
    if (strcmp(ty, "ByteFallback") == 0) {
        s.kind = LMB_DEC_BYTEFALLBACK;
    } else if (strcmp(ty, "Fuse") == 0) {
        s.kind = LMB_DEC_FUSE;
    } else if (strcmp(ty, "ByteLevel") == 0) {
        s.kind = LMB_DEC_BYTELEVEL;
    } else if (strcmp(ty, "Metaspace") == 0) {
        s.kind = LMB_DEC_METASPACE;
        json_t *r = json_object_get(j, "replacement");
        const char *rep = json_is_string(r) ? json_string_value(r) : "\xE2\x96\x81";
        if (!one_char(rep, strlen(rep))) return lmb_fail(err, "%s.replacement: expected a single character", where);
        memcpy(s.repl, rep, strlen(rep));
        s.repl_len = (int)strlen(rep);
        json_t *ps = json_object_get(j, "prepend_scheme");
        if (json_is_string(ps))
            s.strip_first = strcmp(json_string_value(ps), "never") != 0;
        else
            s.strip_first = !json_is_false(json_object_get(j, "add_prefix_space"));
    } else if (strcmp(ty, "Strip") == 0) {
        s.kind = LMB_DEC_STRIP;
        json_t *c = json_object_get(j, "content"), *a = json_object_get(j, "start"), *b = json_object_get(j, "stop");
        if (!json_is_string(c) || !one_char(json_string_value(c), json_string_length(c)))
            return lmb_fail(err, "%s.content: expected a one-character string", where);
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 || json_integer_value(b) < 0)
            return lmb_fail(err, "%s: expected non-negative integers \"start\" and \"stop\"", where);
        if (dup_string(c, &s.content, &s.content_len)) return lmb_fail(err, "out of memory");
        s.start = (size_t)json_integer_value(a);
        s.stop = (size_t)json_integer_value(b);
    } else if (strcmp(ty, "Replace") == 0) {
        s.kind = LMB_DEC_REPLACE;
        json_t *c = json_object_get(j, "content");
        if (!json_is_string(c)) return lmb_fail(err, "%s.content: expected a string", where);
        snprintf(sub, sizeof sub, "%s.pattern", where);
        if (lmb_pattern_parse(json_object_get(j, "pattern"), &s.pat, sub, err)) {
            lmb_pattern_free(&s.pat);
            return -1;
        }
        if (dup_string(c, &s.content, &s.content_len)) {
            lmb_pattern_free(&s.pat);
            return lmb_fail(err, "out of memory");
        }
    } else if (strcmp(ty, "BPEDecoder") == 0) {
        s.kind = LMB_DEC_BPE_SUFFIX;
        json_t *c = json_object_get(j, "suffix");
        if (!json_is_string(c)) return lmb_fail(err, "%s.suffix: expected a string", where);
        if (dup_string(c, &s.content, &s.content_len)) return lmb_fail(err, "out of memory");
    } else {
        return lmb_fail(err, "%s: unsupported decoder type \"%s\" (supported: Sequence, ByteFallback, Metaspace, "
                        "ByteLevel, Fuse, Strip, Replace, BPEDecoder)", where, ty);
    }
    return push_step(steps, n, s, err);
}

void lmb_decoder_free(lmb_decoder *steps, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(steps[i].content);
        lmb_pattern_free(&steps[i].pat);
    }
    free(steps);
}

/* A token list: spans into one arena. */
typedef struct toklist {
    lmb_buf arena;
    lmb_spans tok;
} toklist;

static int tl_push(toklist *l, const char *s, size_t n) {
    size_t off = l->arena.n;
    if (lmb_buf_append(&l->arena, s, n)) return -1;
    return lmb_spans_push(&l->tok, off, n, -1, false);
}

/* Appends to the last token of l (which must exist). */
static int tl_extend(toklist *l, const char *s, size_t n) {
    if (lmb_buf_append(&l->arena, s, n)) return -1;
    l->tok.v[l->tok.n - 1].len += n;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static int flush_bytes(toklist *out, lmb_buf *bytes) {
    if (bytes->n == 0) return 0;
    int rc = 0;
    if (lmb_utf8_valid(bytes->p, bytes->n))
        rc = tl_push(out, bytes->p, bytes->n);
    else
        for (size_t i = 0; i < bytes->n && !rc; i++) rc = tl_push(out, "\xEF\xBF\xBD", 3);
    bytes->n = 0;
    return rc;
}

/* Appends s with every occurrence of `what` replaced by `with` (and, if drop, removed). */
static int replace_into(lmb_buf *b, const char *s, size_t n, const char *what, size_t wl, const char *with, size_t rl) {
    if (wl == 0) { /* as Rust's str::replace with an empty pattern (BPEDecoder's suffix ""): `with` at every
                    * character boundary, both ends included ("ab" -> " a b ") */
        for (size_t i = 0; i < n;) {
            size_t j = i;
            uint32_t cp;
            lmb_utf8_next(s, n, &j, &cp);
            if (lmb_buf_append(b, with, rl) || lmb_buf_append(b, s + i, j - i)) return -1;
            i = j;
        }
        return lmb_buf_append(b, with, rl);
    }
    size_t done = 0;
    for (size_t i = 0; i + wl <= n;) {
        if (memcmp(s + i, what, wl) == 0) {
            if (lmb_buf_append(b, s + done, i - done) || lmb_buf_append(b, with, rl)) return -1;
            i += wl;
            done = i;
        } else {
            i++;
        }
    }
    return lmb_buf_append(b, s + done, n - done);
}

static int apply(const lmb_tokenizer *t, const lmb_decoder *d, const toklist *in, toklist *out, pcre2_match_data *md) {
    out->arena.n = 0;
    out->tok.n = 0;
    const char *A = in->arena.p;
    size_t n = in->tok.n;
    switch (d->kind) {
    case LMB_DEC_BYTEFALLBACK: {
        lmb_buf bytes = {0};
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            const lmb_span *k = &in->tok.v[i];
            int b = byte_token(A + k->off, k->len);
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                rc = lmb_buf_append(&bytes, &c, 1);
            } else {
                rc = flush_bytes(out, &bytes) || tl_push(out, A + k->off, k->len);
            }
        }
        if (!rc) rc = flush_bytes(out, &bytes);
        lmb_buf_free(&bytes);
        return rc;
    }
    case LMB_DEC_METASPACE:
        for (size_t i = 0; i < n; i++) {
            const lmb_span *k = &in->tok.v[i];
            bool drop = i == 0 && d->strip_first;
            if (tl_push(out, "", 0)) return -1;
            size_t before = out->arena.n;
            if (replace_into(&out->arena, A + k->off, k->len, d->repl, (size_t)d->repl_len, " ", drop ? 0 : 1))
                return -1;
            out->tok.v[out->tok.n - 1].len = out->arena.n - before;
        }
        return 0;
    case LMB_DEC_BYTELEVEL: {
        lmb_buf raw = {0};
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            const char *s = A + in->tok.v[i].off;
            size_t len = in->tok.v[i].len, at = raw.n;
            bool all = true;
            for (size_t j = 0; j < len && all;) {
                uint32_t cp;
                lmb_utf8_next(s, len, &j, &cp);
                int b = cp < 512 ? t->bl.dec[cp] : -1;
                if (b < 0) {
                    all = false;
                } else {
                    unsigned char c = (unsigned char)b;
                    rc = lmb_buf_append(&raw, &c, 1);
                }
            }
            if (!all) { /* not a byte-level token (e.g. an added token): its own bytes */
                raw.n = at;
                rc = lmb_buf_append(&raw, s, len);
            }
        }
        char *fixed = NULL;
        size_t fl = 0;
        if (!rc) rc = lmb_utf8_sanitize(raw.p ? raw.p : "", raw.n, &fixed, &fl);
        if (!rc) rc = tl_push(out, fixed, fl);
        free(fixed);
        lmb_buf_free(&raw);
        return rc;
    }
    case LMB_DEC_FUSE:
        if (tl_push(out, "", 0)) return -1;
        for (size_t i = 0; i < n; i++)
            if (tl_extend(out, A + in->tok.v[i].off, in->tok.v[i].len)) return -1;
        return 0;
    case LMB_DEC_STRIP:
        for (size_t i = 0; i < n; i++) {
            const char *s = A + in->tok.v[i].off;
            size_t len = in->tok.v[i].len, a = 0, b = len, cl = d->content_len;
            for (size_t k = 0; k < d->start && a + cl <= b && memcmp(s + a, d->content, cl) == 0; k++) a += cl;
            for (size_t k = 0; k < d->stop && b >= a + cl && memcmp(s + b - cl, d->content, cl) == 0; k++) b -= cl;
            if (tl_push(out, s + a, b - a)) return -1;
        }
        return 0;
    case LMB_DEC_REPLACE:
        for (size_t i = 0; i < n; i++) {
            const char *s = A + in->tok.v[i].off;
            size_t len = in->tok.v[i].len, done = 0, from = 0, ms, me;
            if (tl_push(out, "", 0)) return -1;
            for (;;) {
                int r = lmb_pattern_next(&d->pat, s, len, from, md, &ms, &me);
                if (r < 0) return -1;
                if (r == 0) break;
                if (me == ms) {
                    if (me >= len) break;
                    from = me + (size_t)lmb_utf8_seqlen((unsigned char)s[me]);
                    continue;
                }
                if (tl_extend(out, s + done, ms - done) || tl_extend(out, d->content, d->content_len)) return -1;
                done = from = me;
            }
            if (tl_extend(out, s + done, len - done)) return -1;
        }
        return 0;
    case LMB_DEC_BPE_SUFFIX:
        for (size_t i = 0; i < n; i++) {
            const lmb_span *k = &in->tok.v[i];
            if (tl_push(out, "", 0)) return -1;
            size_t before = out->arena.n;
            if (replace_into(&out->arena, A + k->off, k->len, d->content, d->content_len, " ", i + 1 == n ? 0 : 1))
                return -1;
            out->tok.v[out->tok.n - 1].len = out->arena.n - before;
        }
        return 0;
    }
    return 0;
}

static void tl_free(toklist *l) {
    lmb_buf_free(&l->arena);
    free(l->tok.v);
}

int lmb_tokenizer_decode(const lmb_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                         size_t *out_len, lmb_error *err) {
    *out = NULL;
    *out_len = 0;
    toklist a = {0}, b = {0};
    lmb_buf res = {0};
    pcre2_match_data *md = NULL;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab_size || !t->tok[id]) continue; /* unknown ids decode to nothing, as in HF */
        if (skip_special && t->special[id]) continue;
        if (tl_push(&a, t->tok[id], t->tok_len[id])) goto oom;
    }
    if (!(md = pcre2_match_data_create(1, NULL))) goto oom;
    toklist *cur = &a, *nxt = &b;
    for (size_t k = 0; k < t->n_dec; k++) {
        if (apply(t, &t->dec[k], cur, nxt, md)) {
            lmb_fail(err, "decoding failed (out of memory or regex error)");
            goto done;
        }
        toklist *tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    for (size_t i = 0; i < cur->tok.n; i++) {
        if (!t->has_decoder && i > 0 && lmb_buf_append(&res, " ", 1)) goto oom;
        if (lmb_buf_append(&res, cur->arena.p + cur->tok.v[i].off, cur->tok.v[i].len)) goto oom;
    }
    if (lmb_buf_append(&res, "", 0)) goto oom;
    if (!lmb_utf8_valid(res.p, res.n)) { /* cannot happen with well-formed vocabularies; keep the promise anyway */
        char *fixed;
        size_t fl;
        if (lmb_utf8_sanitize(res.p, res.n, &fixed, &fl)) goto oom;
        lmb_buf_free(&res);
        res.p = fixed;
        res.n = fl;
    }
    *out = res.p;
    *out_len = res.n;
    res.p = NULL;
    rc = 0;
    goto done;
oom:
    lmb_fail(err, "out of memory");
done:
    lmb_buf_free(&res);
    if (md) pcre2_match_data_free(md);
    tl_free(&a);
    tl_free(&b);
    return rc;
}
