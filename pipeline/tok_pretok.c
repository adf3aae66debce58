/* tok_pretok.c — tokenizer.json pre-tokenizers: Split, Metaspace, ByteLevel, Digits, Whitespace,
 * WhitespaceSplit, CharDelimiterSplit, Punctuation and Sequence (flattened into steps at load).
 *
 * A pre-tokenizer step maps a list of pieces to a new list of pieces; the pieces left after the last step
 * are the words the BPE model sees.  Steps write into two ping-pong buffers of the encode scratch, so the
 * input of a step is never moved while the step reads it.  Digits, Whitespace and friends are expressed
 * as Split steps with the equivalent pattern and behavior, so there is one splitting routine to trust.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "utf8.h"

/* GPT-2's pre-tokenization regex, used by ByteLevel when use_regex is set. */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void lmb_bytelevel_init(lmb_bytelevel *bl) {
    for (int i = 0; i < 512; i++) bl->dec[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
        char tmp[4];
        int len = lmb_utf8_put(cp, tmp);
        memcpy(bl->enc[b], tmp, (size_t)len);
        bl->enc_len[b] = (uint8_t)len;
        bl->dec[cp] = (int16_t)b;
    }
}

static int push_step(lmb_pretok **steps, size_t *n, lmb_pretok s, lmb_error *err) {
    lmb_pretok *v = realloc(*steps, (*n + 1) * sizeof *v);
    if (!v) {
        lmb_pattern_free(&s.pat);
        return lmb_fail(err, "out of memory");
    }
    *steps = v;
    v[(*n)++] = s;
    return 0;
}


static int parse_behavior(json_t *j, lmb_split_behavior dflt, lmb_split_behavior *out, const char *where,
                          lmb_error *err) {
    json_t *b = json_object_get(j, "behavior");
    if (!b) {
        *out = dflt;
        return 0;
    }
    static const struct { const char *name; lmb_split_behavior b; } names[] = {
        {"Removed", LMB_SPLIT_REMOVED}, {"Isolated", LMB_SPLIT_ISOLATED},
        {"MergedWithPrevious", LMB_SPLIT_MERGED_PREV}, {"MergedWithNext", LMB_SPLIT_MERGED_NEXT},
        {"Contiguous", LMB_SPLIT_CONTIGUOUS},
    };
    for (size_t i = 0; json_is_string(b) && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(json_string_value(b), names[i].name) == 0) {
            *out = names[i].b;
            return 0;
        }
    return lmb_fail(err, "%s.behavior: expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                    "Contiguous", where);
}

static int literal(lmb_pattern *p, const char *s, size_t n, lmb_error *err) {
    memset(p, 0, sizeof *p);
    p->kind = LMB_PAT_LITERAL;
    if (!(p->lit = malloc(n + 1))) return lmb_fail(err, "out of memory");
    memcpy(p->lit, s, n);
    p->lit[n] = '\0';
    p->lit_len = n;
    return 0;
}

static int parse_metaspace(json_t *j, lmb_pretok *s, const char *where, lmb_error *err) {
    s->kind = LMB_PT_METASPACE;
    json_t *r = json_object_get(j, "replacement");
    const char *rep = json_is_string(r) ? json_string_value(r) : "\xE2\x96\x81";
    size_t i = 0, rl = strlen(rep);
    uint32_t cp;
    if (rl == 0 || !lmb_utf8_next(rep, rl, &i, &cp) || i != rl)
        return lmb_fail(err, "%s.replacement: expected a single character", where);
    memcpy(s->repl, rep, rl);
    s->repl_len = (int)rl;
    json_t *ps = json_object_get(j, "prepend_scheme");
    if (json_is_string(ps)) {
        const char *v = json_string_value(ps);
        if (strcmp(v, "always") == 0)
            s->prepend_scheme = LMB_PREPEND_ALWAYS;
        else if (strcmp(v, "first") == 0)
            s->prepend_scheme = LMB_PREPEND_FIRST;
        else if (strcmp(v, "never") == 0)
            s->prepend_scheme = LMB_PREPEND_NEVER;
        else
            return lmb_fail(err, "%s.prepend_scheme: expected \"always\", \"first\" or \"never\", got \"%s\"", where, v);
    } else { /* older files: add_prefix_space */
        s->prepend_scheme = lmb_tok_json_bool(j, "add_prefix_space", true) ? LMB_PREPEND_ALWAYS : LMB_PREPEND_NEVER;
    }
    s->split = lmb_tok_json_bool(j, "split", true);
    return literal(&s->pat, s->repl, rl, err);
}

typedef struct pretok_list {
    lmb_pretok **steps;
    size_t *n;
} pretok_list;

static int parse_into(json_t *e, void *ctx, const char *where, lmb_error *err) {
    pretok_list *l = ctx;
    return lmb_pretok_parse(e, l->steps, l->n, where, err);
}

int lmb_pretok_parse(json_t *j, lmb_pretok **steps, size_t *n, const char *where, lmb_error *err) {
    if (!j || json_is_null(j)) return 0;
    const char *ty = lmb_tok_json_type(j, where, err);
    if (!ty) return -1;
    if (strcmp(ty, "Sequence") == 0)
        return lmb_tok_json_sequence(j, "pretokenizers", parse_into, &(pretok_list){steps, n}, where, err);
    char sub[512];
    lmb_pretok s = {0};
    s.kind = LMB_PT_SPLIT;
    int rc = 0;
    if (strcmp(ty, "Split") == 0) {
        snprintf(sub, sizeof sub, "%s.pattern", where);
        rc = lmb_pattern_parse(json_object_get(j, "pattern"), &s.pat, sub, err) ||
             parse_behavior(j, LMB_SPLIT_ISOLATED, &s.behavior, where, err);
        s.invert = lmb_tok_json_bool(j, "invert", false);
    } else if (strcmp(ty, "Metaspace") == 0) {
        rc = parse_metaspace(j, &s, where, err);
    } else if (strcmp(ty, "ByteLevel") == 0) {
        s.kind = LMB_PT_BYTELEVEL;
        s.add_prefix_space = lmb_tok_json_bool(j, "add_prefix_space", true);
        s.use_regex = lmb_tok_json_bool(j, "use_regex", true);
        if (s.use_regex) rc = lmb_pattern_compile(&s.pat, GPT2_REGEX, where, err);
    } else if (strcmp(ty, "Digits") == 0) {
        /* per-digit matches; Contiguous merges runs, which one \p{N}+ match per run does already */
        rc = lmb_pattern_compile(&s.pat, lmb_tok_json_bool(j, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", where, err);
        s.behavior = LMB_SPLIT_ISOLATED;
    } else if (strcmp(ty, "Whitespace") == 0) {
        rc = lmb_pattern_compile(&s.pat, "\\w+|[^\\w\\s]+", where, err);
        s.behavior = LMB_SPLIT_REMOVED;
        s.invert = true;
    } else if (strcmp(ty, "WhitespaceSplit") == 0) {
        s.pat.kind = LMB_PAT_WHITESPACE;
        s.behavior = LMB_SPLIT_REMOVED;
    } else if (strcmp(ty, "CharDelimiterSplit") == 0) {
        json_t *d = json_object_get(j, "delimiter");
        size_t i = 0, dl = json_string_length(d);
        uint32_t cp;
        /* HF's delimiter is a Rust char: it refuses longer strings, and so do we */
        if (!json_is_string(d) || dl == 0 || !lmb_utf8_next(json_string_value(d), dl, &i, &cp) || i != dl)
            return lmb_fail(err, "%s.delimiter: expected a one-character string", where);
        rc = literal(&s.pat, json_string_value(d), json_string_length(d), err);
        s.behavior = LMB_SPLIT_REMOVED;
    } else if (strcmp(ty, "Punctuation") == 0) {
        rc = lmb_pattern_compile(&s.pat, "\\p{P}|[\\x{21}-\\x{2F}\\x{3A}-\\x{40}\\x{5B}-\\x{60}\\x{7B}-\\x{7E}]", where,
                                 err) ||
             parse_behavior(j, LMB_SPLIT_ISOLATED, &s.behavior, where, err);
    } else {
        return lmb_fail(err, "%s: unsupported pre_tokenizer type \"%s\" (supported: Sequence, Split, Metaspace, "
                        "ByteLevel, Digits, Whitespace, WhitespaceSplit, CharDelimiterSplit, Punctuation)", where, ty);
    }
    if (rc) {
        lmb_pattern_free(&s.pat);
        return -1;
    }
    return push_step(steps, n, s, err);
}

void lmb_pretok_free(lmb_pretok *steps, size_t n) {
    for (size_t i = 0; i < n; i++) lmb_pattern_free(&steps[i].pat);
    free(steps);
}

/* Metaspace: spaces become the replacement character, which is prepended per prepend_scheme; then the
 * piece is cut before each replacement character (split: true). */
static int metaspace(const lmb_pretok *st, const char *s, size_t n, bool at_origin, lmb_enc_scratch *sc, lmb_buf *nb,
                     lmb_spans *ns, lmb_error *err) {
    size_t start = nb->n;
    bool starts = (n > 0 && s[0] == ' ') || (n >= (size_t)st->repl_len && memcmp(s, st->repl, (size_t)st->repl_len) == 0);
    bool prepend = !starts && (st->prepend_scheme == LMB_PREPEND_ALWAYS ||
                               (st->prepend_scheme == LMB_PREPEND_FIRST && at_origin));
    if (lmb_buf_reserve(nb, n * (size_t)st->repl_len + (size_t)st->repl_len)) return lmb_fail(err, "out of memory");
    if (prepend) lmb_buf_append(nb, st->repl, (size_t)st->repl_len);
    size_t run = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ') {
            lmb_buf_append(nb, s + run, i - run);
            lmb_buf_append(nb, st->repl, (size_t)st->repl_len);
            run = i + 1;
        }
    lmb_buf_append(nb, s + run, n - run);
    size_t len = nb->n - start;
    if (!st->split) return lmb_spans_push(ns, start, len, -1, at_origin) ? lmb_fail(err, "out of memory") : 0;
    return lmb_split(&st->pat, LMB_SPLIT_MERGED_NEXT, false, nb->p + start, len, start, at_origin, sc->md, ns, err);
}

static int bytelevel_map(const lmb_bytelevel *bl, const char *s, size_t n, bool at_origin, lmb_buf *nb, lmb_spans *ns) {
    size_t start = nb->n;
    if (lmb_buf_reserve(nb, 2 * n)) return -1;
    char *o = nb->p + nb->n;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        o[0] = bl->enc[b][0];
        if (bl->enc_len[b] == 2) o[1] = bl->enc[b][1];
        o += bl->enc_len[b];
    }
    nb->n = (size_t)(o - nb->p);
    nb->p[nb->n] = '\0';
    return lmb_spans_push(ns, start, nb->n - start, -1, at_origin);
}

/* ByteLevel: optional prefix space, optional GPT-2 regex split, then each byte becomes its code point. */
static int bytelevel(const lmb_tokenizer *t, const lmb_pretok *st, const char *s, size_t n, bool at_origin,
                     lmb_enc_scratch *sc, lmb_buf *nb, lmb_spans *ns, lmb_error *err) {
    if (st->add_prefix_space && (n == 0 || s[0] != ' ')) {
        sc->pc.n = 0;
        if (lmb_buf_append(&sc->pc, " ", 1) || lmb_buf_append(&sc->pc, s, n)) return lmb_fail(err, "out of memory");
        s = sc->pc.p;
        n = sc->pc.n;
    }
    if (!st->use_regex) return bytelevel_map(&t->bl, s, n, at_origin, nb, ns) ? lmb_fail(err, "out of memory") : 0;
    sc->st.n = 0;
    if (lmb_split(&st->pat, LMB_SPLIT_ISOLATED, false, s, n, 0, at_origin, sc->md, &sc->st, err)) return -1;
    for (size_t k = 0; k < sc->st.n; k++) {
        const lmb_span *w = &sc->st.v[k];
        if (bytelevel_map(&t->bl, s + w->off, w->len, w->at_origin, nb, ns)) return lmb_fail(err, "out of memory");
    }
    return 0;
}

int lmb_pretokenize(const lmb_tokenizer *t, const char *s, size_t n, bool at_origin, lmb_enc_scratch *sc,
                    lmb_buf **buf, lmb_spans **words, lmb_error *err) {
    lmb_buf *cb = &sc->pa, *nb = &sc->pb;
    lmb_spans *cs = &sc->sa, *ns = &sc->sb;
    cb->n = 0;
    cs->n = 0;
    if (lmb_buf_append(cb, s, n) || (n > 0 && lmb_spans_push(cs, 0, n, -1, at_origin)))
        return lmb_fail(err, "out of memory");
    for (size_t k = 0; k < t->n_pretok; k++) {
        const lmb_pretok *st = &t->pretok[k];
        nb->n = 0;
        ns->n = 0;
        for (size_t i = 0; i < cs->n; i++) {
            const char *p = cb->p + cs->v[i].off;
            size_t len = cs->v[i].len;
            bool org = cs->v[i].at_origin;
            int rc = 0;
            switch (st->kind) {
            case LMB_PT_SPLIT: {
                size_t base = nb->n;
                if (lmb_buf_append(nb, p, len)) return lmb_fail(err, "out of memory");
                rc = lmb_split(&st->pat, st->behavior, st->invert, p, len, base, org, sc->md, ns, err);
                break;
            }
            case LMB_PT_METASPACE: rc = metaspace(st, p, len, org, sc, nb, ns, err); break;
            case LMB_PT_BYTELEVEL: rc = bytelevel(t, st, p, len, org, sc, nb, ns, err); break;
            }
            if (rc) return -1;
        }
        lmb_buf *tb = cb;
        cb = nb;
        nb = tb;
        lmb_spans *ts = cs;
        cs = ns;
        ns = ts;
    }
    *buf = cb;
    *words = cs;
    return 0;
}
