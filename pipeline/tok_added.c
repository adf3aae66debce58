/* tok_added.c — added tokens (tokenizer.json "added_tokens"): parsing, the byte tries they are matched
 * with, and HF's AddedVocabulary split of the input around them.
 *
 * Matching is leftmost-longest and non-overlapping (HF uses an Aho-Corasick automaton with that match
 * kind; scanning start positions left to right and walking a trie finds the same matches).  A match that
 * fails its single_word test is skipped and the scan resumes after it; lstrip/rstrip widen a kept match
 * over the whitespace beside it.  Tokens with normalized=false are matched in the raw input; those with
 * normalized=true in the normalized text, against their own normalized content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "utf8.h"

void lmb_trie_init(lmb_trie *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++) t->root_child[i] = -1;
    t->empty = true;
}

void lmb_trie_free(lmb_trie *t) {
    free(t->v);
    lmb_trie_init(t);
}

static int32_t new_node(lmb_trie *t, unsigned char byte) {
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        lmb_trie_node *v = realloc(t->v, nc * sizeof *v);
        if (!v) return -1;
        t->v = v;
        t->cap = nc;
    }
    t->v[t->n] = (lmb_trie_node){-1, -1, -1, byte};
    return (int32_t)t->n++;
}

int lmb_trie_add(lmb_trie *t, const char *s, size_t n, int32_t added) {
    if (n == 0) return 0;
    int32_t node = t->root_child[(unsigned char)s[0]];
    if (node < 0) {
        if ((node = new_node(t, (unsigned char)s[0])) < 0) return -1;
        t->root_child[(unsigned char)s[0]] = node;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = t->v[node].child;
        while (c >= 0 && t->v[c].byte != b) c = t->v[c].sibling;
        if (c < 0) {
            if ((c = new_node(t, b)) < 0) return -1;
            t->v[c].sibling = t->v[node].child;
            t->v[node].child = c;
        }
        node = c;
    }
    if (t->v[node].added < 0) t->v[node].added = added; /* first declared wins on duplicates */
    t->empty = false;
    return 0;
}

/* Longest token starting at s[i]; returns its added index (or -1) and sets *end. */
static int32_t longest_at(const lmb_trie *t, const char *s, size_t n, size_t i, size_t *end) {
    int32_t node = t->root_child[(unsigned char)s[i]], best = -1;
    size_t k = i + 1;
    while (node >= 0) {
        if (t->v[node].added >= 0) {
            best = t->v[node].added;
            *end = k;
        }
        if (k >= n) break;
        unsigned char b = (unsigned char)s[k++];
        int32_t c = t->v[node].child;
        while (c >= 0 && t->v[c].byte != b) c = t->v[c].sibling;
        node = c;
    }
    return best;
}

static uint32_t last_cp(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    lmb_utf8_next(s, n, &i, &cp);
    return cp;
}

static uint32_t first_cp(const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    lmb_utf8_next(s, n, &i, &cp);
    return cp;
}

int lmb_added_split(const lmb_tokenizer *t, const lmb_trie *trie, const char *s, size_t n, lmb_spans *out) {
    size_t done = 0; /* everything before `done` is already in out */
    if (!trie->empty)
        for (size_t i = 0; i < n;) {
            if (trie->root_child[(unsigned char)s[i]] < 0) {
                i++;
                continue;
            }
            size_t stop = 0;
            int32_t k = longest_at(trie, s, n, i, &stop);
            if (k < 0) {
                i++;
                continue;
            }
            const lmb_added *a = &t->added[k];
            size_t start = i;
            i = stop; /* non-overlapping: the scan resumes after this match whatever we do with it */
            if (a->single_word) {
                bool space_before = start == 0 || !lmb_uc_is_word(last_cp(s, start));
                bool space_after = stop == n || !lmb_uc_is_word(first_cp(s + stop, n - stop));
                if (!space_before || !space_after) continue;
            }
            if (a->lstrip) /* never back past the previous match (it may have taken the spaces already) */
                while (start > done && lmb_uc_is_whitespace(last_cp(s, start))) {
                    start--;
                    while (start > done && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
                }
            if (a->rstrip)
                while (stop < n) {
                    size_t j = stop;
                    uint32_t cp;
                    lmb_utf8_next(s, n, &j, &cp);
                    if (!lmb_uc_is_whitespace(cp)) break;
                    stop = j;
                }
            if (start > done && lmb_spans_push(out, done, start - done, -1, done == 0)) return -1;
            if (lmb_spans_push(out, start, stop - start, a->id, false)) return -1;
            done = i = stop;
        }
    if (done < n && lmb_spans_push(out, done, n - done, -1, done == 0)) return -1;
    return 0;
}


int lmb_added_parse(json_t *list, lmb_tokenizer *t, const char *path, lmb_error *err) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return lmb_fail(err, "%s: added_tokens: expected an array", path);
    size_t n = json_array_size(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return lmb_fail(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        json_t *id = json_object_get(o, "id"), *content = json_object_get(o, "content");
        if (!json_is_object(o) || !json_is_integer(id) || !json_is_string(content))
            return lmb_fail(err, "%s: added_tokens[%zu]: expected {\"id\": integer, \"content\": string, ...}", path, i);
        json_int_t v = json_integer_value(id);
        if (v < 0 || v > LMB_TOK_MAX_ID)
            return lmb_fail(err, "%s: added_tokens[%zu].id: %lld is out of range (0 to %d)", path, i, (long long)v,
                            LMB_TOK_MAX_ID);
        lmb_added *a = &t->added[t->n_added++];
        a->len = json_string_length(content);
        if (!(a->content = malloc(a->len + 1))) return lmb_fail(err, "out of memory");
        memcpy(a->content, json_string_value(content), a->len + 1);
        a->id = (int32_t)v;
        a->special = lmb_tok_json_bool(o, "special", false);
        a->lstrip = lmb_tok_json_bool(o, "lstrip", false);
        a->rstrip = lmb_tok_json_bool(o, "rstrip", false);
        a->single_word = lmb_tok_json_bool(o, "single_word", false);
        a->normalized = lmb_tok_json_bool(o, "normalized", !a->special);
    }
    return 0;
}
