/* tok_detok.c — incremental detokenization for streaming (see lmb_detok in tokenizer.h).
 *
 * Invariants: ids[0..read_offset) have had their text emitted; the text of ids[prefix_offset..read_offset)
 * is the context, decoded again each step so that decoders that look at neighbours (Metaspace's leading
 * space, Strip, ByteFallback runs, split UTF-8 bytes) see the same tokens.  Text is cut by characters, not
 * bytes, so a chunk never starts or ends inside a UTF-8 sequence.
 *
 * The window is only sound when stripping at its start removes what it would remove anywhere: true for
 * Metaspace and a one-character Strip (the text before the window is never empty where it matters), false
 * for a Strip of two or more leading characters or of trailing ones, e.g. ids for "▁", "▁", "▁" after text
 * with Strip(start=2): the window "  " strips to nothing where the full text keeps a space.  For those
 * tokenizers (t->detok_from_start) the window always starts at the first id: quadratic, but exact.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "utf8.h"

void lmb_detok_init(lmb_detok *d) { memset(d, 0, sizeof *d); }

void lmb_detok_free(lmb_detok *d) {
    lmb_ids_free(&d->ids);
    memset(d, 0, sizeof *d);
}

static bool ends_with_replacement(const char *s, size_t n) {
    return n >= 3 && memcmp(s + n - 3, "\xEF\xBF\xBD", 3) == 0;
}

static int step(lmb_detok *d, const lmb_tokenizer *t, bool final, char **out, size_t *out_len, lmb_error *err) {
    *out = NULL;
    *out_len = 0;
    char *prefix = NULL, *text = NULL;
    size_t pl, tl;
    const int32_t *ids = d->ids.ids;
    if (lmb_tokenizer_decode(t, ids + d->prefix_offset, d->read_offset - d->prefix_offset, d->skip_special, &prefix,
                             &pl, err) ||
        lmb_tokenizer_decode(t, ids + d->prefix_offset, d->ids.n - d->prefix_offset, d->skip_special, &text, &tl, err)) {
        free(prefix);
        return -1;
    }
    size_t pc = lmb_utf8_count(prefix, pl), tc = lmb_utf8_count(text, tl);
    free(prefix);
    if (tc > pc && (final || !ends_with_replacement(text, tl))) {
        size_t cut = lmb_utf8_skip(text, tl, pc);
        memmove(text, text + cut, tl - cut);
        text[tl - cut] = '\0';
        *out = text;
        *out_len = tl - cut;
        d->prefix_offset = t->detok_from_start ? 0 : d->read_offset;
        d->read_offset = d->ids.n;
        return 0;
    }
    if (final) {
        d->read_offset = d->ids.n;
        d->prefix_offset = t->detok_from_start ? 0 : d->ids.n;
    }
    text[0] = '\0';
    *out = text;
    return 0;
}

int lmb_detok_push(lmb_detok *d, const lmb_tokenizer *t, int32_t id, char **out, size_t *out_len, lmb_error *err) {
    if (lmb_ids_push(&d->ids, id)) {
        *out = NULL;
        *out_len = 0;
        return lmb_fail(err, "out of memory");
    }
    return step(d, t, false, out, out_len, err);
}

int lmb_detok_flush(lmb_detok *d, const lmb_tokenizer *t, char **out, size_t *out_len, lmb_error *err) {
    return step(d, t, true, out, out_len, err);
}
