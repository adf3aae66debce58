/* test_tokenizer.c — the tokenizer against HF tokenizers' own outputs.
 *
 * References: ../shared/tokenizers/{llama2,gpt2-style,llama3-style,qwen2-style} vectors and the whole of
 * ../shared/data encoded with each (HF's ids hashed in tests/fixtures/shared_parity.json), all skipped when
 * ../shared is absent; the committed byte-level fixture (tests/fixtures/bytelevel: text cases, decode cases
 * whose bytes are not UTF-8, raw input bytes that are not UTF-8); the 37 small tokenizers of
 * tests/fixtures/variants.  For every case: encode without and with special tokens, decode with and without
 * skip_special, and lmb_detok's claim (ids pushed one by one, then flushed, give chunks of valid UTF-8 that add
 * up to the full decode), then the same claim on random texts and random ids.  Last, encoding from several
 * OpenMP threads at once gives the single-threaded ids.  Malformed files: test_tokenizer_errors.c; the CLI:
 * test_cli_tokenize.c.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/fileio.h"
#include "../pipeline/tokenizer.h"
#include "../pipeline/utf8.h"
#include "support/fixtures.h"
#include "support/tok_vectors.h"

#define BYTELEVEL "tests/fixtures/bytelevel"
#define VARIANTS "tests/fixtures/variants/variants.json"
#define SHARED_PARITY "tests/fixtures/shared_parity.json"

/* How a vectors file spells its expectations. */
typedef struct vec_rules {
    bool decoded_skips_special; /* "decoded" was made with skip_special_tokens=True */
    bool absent_means_same;     /* variants.json leaves out ids_with_bos / decoded_skip_special when equal */
    bool unstable_ok;           /* the decoder may not be prefix-stable (then streaming is not checked exactly) */
} vec_rules;

/* ---- helpers ------------------------------------------------------------------------------------------------ */

/* A JSON array of ids as a heap int32 array. */
static int32_t *ids_of(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    cr_assert(v);
    for (size_t i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return v;
}

/* "where case i ("text...")" for messages (static buffer). */
static const char *label(const char *where, size_t i, json_t *c) {
    static char buf[256];
    json_t *text = json_object_get(c, "text");
    if (!text) text = json_object_get(c, "bytes_hex");
    char *q = text ? json_dumps(text, JSON_ENCODE_ANY) : NULL;
    snprintf(buf, sizeof buf, "%s case %zu (%.120s)", where, i, q ? q : "ids only");
    free(q);
    return buf;
}

/* s[0..n) as a JSON string literal, non-ASCII escaped, for messages (first 200 bytes; caller frees). */
static char *quote(const char *s, size_t n) {
    json_t *j = json_stringn_nocheck(s, n < 200 ? n : 200);
    char *q = json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    json_decref(j);
    return q;
}

static void expect_encode(const lmb_tokenizer *t, const char *s, size_t n, int flags, json_t *want, const char *lab) {
    lmb_ids got = {0};
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_encode(t, s, n, flags, &got, &err), 0, "%s: encode failed: %s", lab, err.msg);
    if (!lmb_test_ids_eq(want, got.ids, got.n)) {
        char *w = json_dumps(want, JSON_COMPACT);
        cr_expect_fail("%s, %s: got %s, want %s", lab, flags ? "with special tokens" : "without special tokens",
                       lmb_test_ids_str(got.ids, got.n), w);
        free(w);
    }
    lmb_ids_free(&got);
}

static char *decode(const lmb_tokenizer *t, const int32_t *ids, size_t n, bool skip, size_t *len, const char *lab) {
    char *s;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_decode(t, ids, n, skip, &s, len, &err), 0, "%s: decode failed: %s", lab, err.msg);
    cr_expect(lmb_utf8_valid(s, *len), "%s: decode gave invalid UTF-8", lab);
    return s;
}

/* Streams ids through lmb_detok: each chunk must be valid UTF-8 and, when `exact`, their concatenation the full
 * decode. */
static void expect_stream(const lmb_tokenizer *t, const int32_t *ids, size_t n, bool skip, const char *full,
                          size_t full_len, bool exact, const char *lab) {
    lmb_detok d;
    lmb_detok_init(&d);
    d.skip_special = skip;
    lmb_error err = {{0}};
    char *acc = malloc(full_len + 1);
    size_t acc_len = 0, cap = full_len + 1;
    cr_assert(acc);
    for (size_t i = 0; i <= n; i++) {
        char *chunk;
        size_t cl;
        int rc = i < n ? lmb_detok_push(&d, t, ids[i], &chunk, &cl, &err) : lmb_detok_flush(&d, t, &chunk, &cl, &err);
        cr_assert_eq(rc, 0, "%s: detok failed at id %zu: %s", lab, i, err.msg);
        cr_expect(lmb_utf8_valid(chunk, cl), "%s (skip_special=%d): chunk after id %zu is not valid UTF-8", lab, skip,
                  i);
        if (acc_len + cl + 1 > cap) {
            cap = (acc_len + cl + 1) * 2;
            acc = realloc(acc, cap);
            cr_assert(acc);
        }
        memcpy(acc + acc_len, chunk, cl);
        acc_len += cl;
        free(chunk);
    }
    if (exact && (acc_len != full_len || memcmp(acc, full, full_len) != 0)) {
        char *a = quote(acc, acc_len), *f = quote(full, full_len);
        cr_expect_fail("%s (skip_special=%d): streamed %s, decoded %s", lab, skip, a, f);
        free(a);
        free(f);
    }
    free(acc);
    lmb_detok_free(&d);
}

/* Whether the text of every first k ids, less a trailing U+FFFD (an unfinished character), begins the text of
 * all n.  Without this no stream can add up to the full decode, since emitted text cannot be taken back:
 * HF's ByteFallback turns a whole run of byte tokens into U+FFFDs once it proves invalid, and a BPEDecoder
 * with an empty suffix spaces out every token but the last. */
static bool prefix_stable(const lmb_tokenizer *t, const int32_t *ids, size_t n, bool skip, const char *full,
                          size_t full_len) {
    bool ok = true;
    for (size_t k = 1; k < n && ok; k++) {
        char *s;
        size_t len;
        lmb_error err;
        cr_assert_eq(lmb_tokenizer_decode(t, ids, k, skip, &s, &len, &err), 0, "%s", err.msg);
        while (len >= 3 && memcmp(s + len - 3, "\xEF\xBF\xBD", 3) == 0) len -= 3;
        ok = len <= full_len && memcmp(s, full, len) == 0;
        free(s);
    }
    return ok;
}

static char *unhex(const char *hex, size_t *n) {
    size_t len = strlen(hex) / 2;
    char *b = malloc(len + 1);
    cr_assert(b);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1, "bad bytes_hex \"%s\"", hex);
        b[i] = (char)v;
    }
    *n = len;
    return b;
}

/* One reference case: every field it has (text or bytes_hex, ids, ids_with_bos, decoded, decoded_skip_special,
 * ids_sentencepiece), plus streaming in both skip modes. */
static void check_case(const lmb_tokenizer *t, json_t *c, const vec_rules *r, const char *lab) {
    json_t *jids = json_object_get(c, "ids");
    cr_assert(json_is_array(jids), "%s: no \"ids\"", lab);
    json_t *jtext = json_object_get(c, "text"), *jhex = json_object_get(c, "bytes_hex");
    const char *text = NULL;
    char *raw = NULL;
    size_t text_len = 0;
    if (json_is_string(jtext)) {
        text = json_string_value(jtext);
        text_len = json_string_length(jtext);
    } else if (json_is_string(jhex)) {
        text = raw = unhex(json_string_value(jhex), &text_len);
    }
    if (text) {
        expect_encode(t, text, text_len, 0, jids, lab);
        json_t *with = json_object_get(c, "ids_with_bos");
        if (!with && r->absent_means_same) with = jids;
        if (with) expect_encode(t, text, text_len, LMB_TOK_ADD_SPECIAL, with, lab);
    }

    /* want[skip]: the expected decode with skip_special = skip, or NULL where the vectors give none (a JSON
     * null in "decoded" marks a case where HF itself panics; we only require a clean decode there). */
    json_t *dec = json_object_get(c, "decoded"), *dskip = json_object_get(c, "decoded_skip_special");
    if (!dskip && r->absent_means_same) dskip = dec;
    json_t *want[2] = {r->decoded_skips_special ? NULL : dec, r->decoded_skips_special ? dec : dskip};
    size_t n;
    int32_t *ids = ids_of(jids, &n);
    for (int skip = 0; skip < 2; skip++) {
        size_t len;
        char *got = decode(t, ids, n, skip, &len, lab);
        if (json_is_string(want[skip]) &&
            (len != json_string_length(want[skip]) || memcmp(got, json_string_value(want[skip]), len) != 0)) {
            char *g = quote(got, len), *w = json_dumps(want[skip], JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
            cr_expect_fail("%s: decode(skip_special=%d) gave %s, want %s", lab, skip, g, w);
            free(g);
            free(w);
        }
        bool stable = prefix_stable(t, ids, n, skip, got, len);
        cr_expect(stable || r->unstable_ok, "%s (skip_special=%d): decode is not prefix-stable", lab, skip);
        expect_stream(t, ids, n, skip, got, len, stable, lab);
        free(got);
    }

    /* llama2: sentencepiece's own ids, which differ from HF's on runs of spaces and on special-token text.
     * We follow HF (checked above); sentencepiece's ids are another spelling of the same text. */
    json_t *sp = json_object_get(c, "ids_sentencepiece");
    if (sp && text && !lmb_test_ids_eq(sp, ids, n)) {
        size_t sn, len;
        int32_t *sids = ids_of(sp, &sn);
        char *got = decode(t, sids, sn, false, &len, lab);
        cr_expect(len == text_len && memcmp(got, text, len) == 0,
                  "%s: sentencepiece's ids decode to \"%s\", not to the text", lab, got);
        free(got);
        free(sids);
    }
    free(ids);
    free(raw);
}

/* Checks every case of a JSON array; returns how many there were. */
static size_t check_cases(const lmb_tokenizer *t, json_t *cases, const vec_rules *r, const char *where) {
    for (size_t i = 0; i < json_array_size(cases); i++)
        check_case(t, json_array_get(cases, i), r, label(where, i, json_array_get(cases, i)));
    return json_array_size(cases);
}

static lmb_tokenizer *load_dir(const char *dir) {
    lmb_tokenizer *t;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_load_dir(dir, &t, &err), 0, "%s", err.msg);
    return t;
}

/* ---- ../shared/tokenizers --------------------------------------------------------------------------------- */

/* Parameters are copied into each test's process, which may be a fresh exec: no pointers in them. */
typedef struct shared_tok {
    char name[16];
    size_t n_cases;
    bool decoded_skips_special; /* checked with HF: llama2's "decoded" skips special tokens, the others keep them */
} shared_tok;

ParameterizedTestParameters(tokenizer, shared_vectors) {
    static shared_tok toks[] = {
        {"llama2", 23, true}, {"gpt2-style", 44, false}, {"llama3-style", 44, false}, {"qwen2-style", 44, false}};
    return cr_make_param_array(shared_tok, toks, sizeof toks / sizeof toks[0]);
}

ParameterizedTest(shared_tok *p, tokenizer, shared_vectors) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tokenizers/%s/vectors.json", p->name);
    LMB_TEST_NEED_SHARED(path, rel);
    json_t *v = lmb_test_json(path);
    cr_assert(v);
    *strrchr(path, '/') = '\0';
    lmb_tokenizer *t = load_dir(path);
    vec_rules r = {.decoded_skips_special = p->decoded_skips_special};
    cr_expect_eq(check_cases(t, json_object_get(v, "cases"), &r, p->name), p->n_cases, "%s: case count", p->name);
    lmb_tokenizer_free(t);
    json_decref(v);
}

Test(tokenizer, llama2_config_and_lookups) {
    char path[4096];
    LMB_TEST_NEED_SHARED(path, "tokenizers/llama2/tokenizer.json");
    *strrchr(path, '/') = '\0';
    lmb_tokenizer *t = load_dir(path);
    cr_expect_eq(lmb_tokenizer_vocab_size(t), 32000);
    cr_expect_str_eq(lmb_tokenizer_bos_token(t), "<s>");
    cr_expect_str_eq(lmb_tokenizer_eos_token(t), "</s>");
    cr_expect_eq(lmb_tokenizer_config_add_bos(t), 1);
    cr_expect_null(lmb_tokenizer_chat_template(t));
    cr_expect_eq(lmb_tokenizer_token_to_id(t, "<s>"), 1);
    cr_expect_eq(lmb_tokenizer_token_to_id(t, "▁Hello"), 15043);
    cr_expect_eq(lmb_tokenizer_token_to_id(t, "<0x0A>"), 13);
    cr_expect_eq(lmb_tokenizer_token_to_id(t, "no such token"), -1);
    cr_expect_str_eq(lmb_tokenizer_id_to_token(t, 3186), "▁world");
    cr_expect_null(lmb_tokenizer_id_to_token(t, 32000));
    cr_expect_null(lmb_tokenizer_id_to_token(t, -1));
    cr_expect(lmb_tokenizer_is_special(t, 1) && lmb_tokenizer_is_special(t, 2) && !lmb_tokenizer_is_special(t, 15043));
    lmb_tokenizer_free(t);
}

/* Whole texts: ../shared/data encoded in one piece (3.4 MB, ~1M ids each) against HF's ids, summarized in
 * tests/fixtures/shared_parity.json (tests/tools/make_shared_parity.py) as a count and an FNV-1a hash of the
 * ids (little-endian int32) and of HF's decode of them. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001B3ull;
    return h;
}

ParameterizedTestParameters(tokenizer, shared_whole_texts) {
    static int idx[] = {0, 1, 2, 3, 4, 5, 6, 7};
    return cr_make_param_array(int, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(int *i, tokenizer, shared_whole_texts) {
    json_t *all = lmb_test_json(SHARED_PARITY), *c = json_array_get(json_object_get(all, "cases"), (size_t)*i);
    cr_assert(c, "%s: no case %d", SHARED_PARITY, *i);
    const char *tk = json_string_value(json_object_get(c, "tokenizer"));
    char rel[256], text_path[4096], dir[4096];
    snprintf(rel, sizeof rel, "data/%s", json_string_value(json_object_get(c, "text")));
    bool have = lmb_test_shared_path(text_path, sizeof text_path, rel);
    snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", tk);
    have = lmb_test_shared_path(dir, sizeof dir, rel) && have;
    if (!have) {
        json_decref(all);
        cr_skip_test("%s or %s not found (../shared is absent; set LMB_TEST_SHARED to point at it)", text_path, dir);
        return;
    }
    *strrchr(dir, '/') = '\0';
    char *text;
    size_t len, dl;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_file_read_all(text_path, &text, &len, &err), 0, "%s", err.msg); /* .gz is decompressed */
    cr_assert_eq((json_int_t)len, json_integer_value(json_object_get(c, "bytes")), "%s: size differs", text_path);
    lmb_tokenizer *t = load_dir(dir);
    lmb_ids ids = {0};
    cr_assert_eq(lmb_tokenizer_encode(t, text, len, 0, &ids, &err), 0, "%s", err.msg);
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a(0xCBF29CE484222325ull, ids.ids, ids.n * 4));
    cr_expect_eq((json_int_t)ids.n, json_integer_value(json_object_get(c, "n_ids")), "%s on %s: %zu ids, HF %lld", tk,
                 text_path, ids.n, (long long)json_integer_value(json_object_get(c, "n_ids")));
    cr_expect_str_eq(hash, json_string_value(json_object_get(c, "ids_fnv")), "%s on %s: the ids differ from HF's", tk,
                     text_path);
    char *dec = decode(t, ids.ids, ids.n, false, &dl, tk);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a(0xCBF29CE484222325ull, dec, dl));
    cr_expect_str_eq(hash, json_string_value(json_object_get(c, "decoded_fnv")),
                     "%s on %s: the decode differs from HF's", tk, text_path);
    free(dec);
    lmb_ids_free(&ids);
    lmb_tokenizer_free(t);
    free(text);
    json_decref(all);
}

/* ---- the committed byte-level fixture ----------------------------------------------------------------------- */

static json_t *bytelevel_vectors(vec_rules *r) {
    json_t *v = lmb_test_json(BYTELEVEL "/vectors.json");
    cr_assert(v);
    json_t *flag = json_object_get(v, "decoded_uses_skip_special");
    cr_assert(json_is_boolean(flag), "vectors.json: no decoded_uses_skip_special");
    *r = (vec_rules){.decoded_skips_special = json_is_true(flag)};
    return v;
}

Test(tokenizer, bytelevel_cases) {
    vec_rules r;
    json_t *v = bytelevel_vectors(&r);
    lmb_tokenizer *t = load_dir(BYTELEVEL);
    cr_expect_eq(check_cases(t, json_object_get(v, "cases"), &r, "bytelevel"), 77);
    lmb_tokenizer_free(t);
    json_decref(v);
}

/* ids whose bytes are not UTF-8 (split characters, lone continuation bytes, a special token in between). */
Test(tokenizer, bytelevel_decode_cases) {
    vec_rules r;
    json_t *v = bytelevel_vectors(&r);
    lmb_tokenizer *t = load_dir(BYTELEVEL);
    cr_expect_eq(check_cases(t, json_object_get(v, "decode_cases"), &r, "bytelevel decode"), 14);
    lmb_tokenizer_free(t);
    json_decref(v);
}

/* Input bytes that are not UTF-8: tokenizer.h promises encode(bytes) == HF encode(bytes.decode("utf-8",
 * "replace")), and the decode of those ids is that replaced text. */
Test(tokenizer, bytelevel_invalid_utf8_input) {
    vec_rules r;
    json_t *v = bytelevel_vectors(&r), *cases = json_object_get(v, "byte_cases");
    lmb_tokenizer *t = load_dir(BYTELEVEL);
    cr_expect_eq(check_cases(t, cases, &r, "bytelevel bytes"), 11);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        size_t rn, sn, n, len;
        char *raw = unhex(json_string_value(json_object_get(c, "bytes_hex")), &rn), *clean;
        cr_assert_eq(lmb_utf8_sanitize(raw, rn, &clean, &sn), 0);
        int32_t *ids = ids_of(json_object_get(c, "ids"), &n);
        char *got = decode(t, ids, n, false, &len, label("bytes", i, c));
        cr_expect(len == sn && memcmp(got, clean, sn) == 0, "%s: decodes to \"%s\", want \"%s\"", label("bytes", i, c),
                  got, clean);
        free(got);
        free(ids);
        free(clean);
        free(raw);
    }
    lmb_tokenizer_free(t);
    json_decref(v);
}

Test(tokenizer, bytelevel_config_and_lookups) {
    lmb_tokenizer *t = load_dir(BYTELEVEL);
    cr_expect_eq(lmb_tokenizer_vocab_size(t), 2000);
    cr_expect_str_eq(lmb_tokenizer_bos_token(t), "<|begin_of_text|>");
    cr_expect_str_eq(lmb_tokenizer_eos_token(t), "<|im_end|>");
    cr_expect_eq(lmb_tokenizer_config_add_bos(t), 1);
    cr_expect(lmb_tokenizer_chat_template(t) && strstr(lmb_tokenizer_chat_template(t), "<|im_start|>"));
    cr_expect_eq(lmb_tokenizer_token_to_id(t, "<|im_end|>"), 3);
    cr_expect_str_eq(lmb_tokenizer_id_to_token(t, 0), "<|begin_of_text|>");
    for (int32_t id = 0; id < 4; id++) cr_expect(lmb_tokenizer_is_special(t, id), "id %d should be special", id);
    cr_expect(!lmb_tokenizer_is_special(t, 4) && !lmb_tokenizer_is_special(t, 2000) &&
              !lmb_tokenizer_is_special(t, -1));
    /* ids out of range decode to nothing, as in HF */
    int32_t odd[] = {-5, 877, 2000, 579, 1 << 30};
    size_t len;
    char *s = decode(t, odd, 5, false, &len, "out-of-range ids");
    cr_expect_str_eq(s, "Hello");
    free(s);
    /* tokenizer.json alone (no tokenizer_config.json) loads too, without the config's fields */
    lmb_tokenizer *u;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_load(BYTELEVEL "/tokenizer.json", &u, &err), 0, "%s", err.msg);
    cr_expect_null(lmb_tokenizer_bos_token(u));
    cr_expect_null(lmb_tokenizer_chat_template(u));
    cr_expect_eq(lmb_tokenizer_config_add_bos(u), -1);
    lmb_tokenizer_free(u);
    lmb_tokenizer_free(t);
}

/* ---- the variant tokenizers ------------------------------------------------------------------------------------ */

static size_t n_variants(void) {
    json_t *all = json_load_file(VARIANTS, 0, NULL);
    size_t n = json_array_size(json_object_get(all, "variants"));
    json_decref(all);
    return n;
}

ParameterizedTestParameters(tokenizer, variant) {
    size_t n = n_variants();
    int *idx = cr_malloc((n ? n : 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = (int)i;
    return cr_make_param_array(int, idx, n);
}

ParameterizedTest(int *i, tokenizer, variant) {
    json_t *all = lmb_test_json(VARIANTS);
    cr_assert(all);
    json_t *v = json_array_get(json_object_get(all, "variants"), (size_t)*i);
    const char *name = json_string_value(json_object_get(v, "name"));
    char *tj = lmb_test_variant_json(all, v);
    lmb_tokenizer *t;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_load_json(tj, strlen(tj), name, &t, &err), 0, "%s", err.msg);
    /* BPEDecoder with suffix "" changes a token's text once another follows it: no stream can match */
    vec_rules r = {.absent_means_same = true, .unstable_ok = strcmp(name, "bpe_decoder_empty_suffix") == 0};
    cr_expect_geq(check_cases(t, json_object_get(v, "cases"), &r, name), 22);
    lmb_tokenizer_free(t);
    free(tj);
    json_decref(all);
}

Test(tokenizer, variant_count) { cr_expect_eq(n_variants(), 37, "%s should hold 37 variants", VARIANTS); }

/* ---- thread safety ---------------------------------------------------------------------------------------------- */

/* Every text of `cases`, encoded from 4 threads at once (each in its own order, many times), gives the ids
 * a single thread gave; decoding them concurrently gives the same text too. */
static void expect_thread_safe(const lmb_tokenizer *t, json_t *cases, const char *what) {
    size_t n = json_array_size(cases);
    lmb_ids *ref = calloc(n, sizeof *ref);
    char **dec = calloc(n, sizeof *dec);
    cr_assert(ref && dec);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i), *text = json_object_get(c, "text");
        lmb_error err = {{0}};
        cr_assert_eq(lmb_tokenizer_encode(t, json_string_value(text), json_string_length(text), LMB_TOK_ADD_SPECIAL,
                                          &ref[i], &err),
                     0, "%s", err.msg);
        size_t len;
        dec[i] = decode(t, ref[i].ids, ref[i].n, false, &len, what);
    }
    int bad = 0;
#pragma omp parallel num_threads(4) reduction(+ : bad)
    for (int rep = 0; rep < 20; rep++) {
        for (size_t k = 0; k < n; k++) {
            size_t i = (k * 7 + (size_t)rep) % n; /* threads interleave different texts */
            json_t *text = json_object_get(json_array_get(cases, i), "text");
            lmb_ids got = {0};
            lmb_error err;
            char *s = NULL;
            size_t len;
            if (lmb_tokenizer_encode(t, json_string_value(text), json_string_length(text), LMB_TOK_ADD_SPECIAL, &got,
                                     &err) ||
                got.n != ref[i].n || (got.n && memcmp(got.ids, ref[i].ids, got.n * sizeof *got.ids) != 0) ||
                lmb_tokenizer_decode(t, got.ids, got.n, false, &s, &len, &err) || strcmp(s, dec[i]) != 0)
                bad++;
            free(s);
            lmb_ids_free(&got);
        }
    }
    cr_expect_eq(bad, 0, "%s: %d encodes/decodes from 4 threads differed from the single-threaded result", what, bad);
    for (size_t i = 0; i < n; i++) {
        lmb_ids_free(&ref[i]);
        free(dec[i]);
    }
    free(ref);
    free(dec);
}

Test(tokenizer, threads_bytelevel) {
    vec_rules r;
    json_t *v = bytelevel_vectors(&r);
    lmb_tokenizer *t = load_dir(BYTELEVEL);
    expect_thread_safe(t, json_object_get(v, "cases"), "bytelevel");
    lmb_tokenizer_free(t);
    json_decref(v);
}

/* Metaspace + byte fallback + a normalizer with added tokens matched after normalization: other code paths. */
Test(tokenizer, threads_variants) {
    json_t *all = lmb_test_json(VARIANTS), *vs = json_object_get(all, "variants");
    cr_assert(all);
    const char *names[] = {"llama_unk_fuse", "nfkc_lower_strip_replace", "added_options", "split_removed_word"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        json_t *v = NULL;
        for (size_t i = 0; i < json_array_size(vs) && !v; i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(vs, i), "name")), names[k]) == 0)
                v = json_array_get(vs, i);
        cr_assert(v, "no variant %s", names[k]);
        char *tj = lmb_test_variant_json(all, v);
        lmb_tokenizer *t;
        lmb_error err = {{0}};
        cr_assert_eq(lmb_tokenizer_load_json(tj, strlen(tj), names[k], &t, &err), 0, "%s", err.msg);
        expect_thread_safe(t, json_object_get(v, "cases"), names[k]);
        lmb_tokenizer_free(t);
        free(tj);
    }
    json_decref(all);
}

/* ---- streaming beyond the vectors ------------------------------------------------------------------------------ */

static bool has_replacement(const char *s, size_t n) { return memmem(s, n, "\xEF\xBF\xBD", 3) != NULL; }

/* Random texts (pieces chosen to meet merges, byte fallback, added tokens and multi-byte characters), encoded
 * then streamed: well-formed output, so the chunks must add up to the decode exactly. */
static void stream_random_texts(const lmb_tokenizer *t, const char *what, bool unstable_ok, lmb_test_rng *rng) {
    /* ASCII words, spaces and digits; added-token text; and multi-byte characters that meet byte fallback,
     * normalizers and the Metaspace symbol */
    static const char *const pieces[] = {"a",      "b",       "the", "Hello", " world", "word",
                                         "'s",     ",",       "(x)", "1",     "234",    " ",
                                         "  ",     "\n",      "\t",  "<s>",   "</s>",   "<|endoftext|>",
                                         "é",      "e\u0301", "ÿ",   "İ",     "ﬁ",      "\u00a0",
                                         "\u3000", "▁",       "数",  "学",    "🙌",      "👨‍👩‍👧"};
    size_t np = sizeof pieces / sizeof pieces[0];
    for (int s = 0; s < 40; s++) {
        char text[512] = "";
        size_t k = 1 + lmb_test_rng_u64(rng) % 24;
        for (size_t i = 0; i < k; i++) strcat(text, pieces[lmb_test_rng_u64(rng) % np]);
        lmb_ids ids = {0};
        lmb_error err = {{0}};
        char lab[640];
        snprintf(lab, sizeof lab, "%s, random text \"%s\"", what, text);
        cr_assert_eq(lmb_tokenizer_encode(t, text, strlen(text), LMB_TOK_ADD_SPECIAL, &ids, &err), 0, "%s", err.msg);
        for (int skip = 0; skip < 2; skip++) {
            size_t fl;
            char *full = decode(t, ids.ids, ids.n, skip, &fl, lab);
            expect_stream(t, ids.ids, ids.n, skip, full, fl,
                          !unstable_ok || prefix_stable(t, ids.ids, ids.n, skip, full, fl), lab);
            free(full);
        }
        lmb_ids_free(&ids);
    }
}

/* Random ids, favouring the low ones (bytes, added tokens): the output is mostly not UTF-8.  Chunks stay valid
 * UTF-8 and add up to the decode, except where HF's ByteFallback rule applies: a run of byte tokens that is
 * not valid UTF-8 becomes U+FFFD as a whole, so bytes already streamed as characters may later turn into
 * U+FFFD in the full decode (tokenizer.h). */
static void stream_random_ids(const lmb_tokenizer *t, const char *what, bool byte_fallback, bool unstable_ok,
                              lmb_test_rng *rng) {
    enum { LEN = 30 };
    int32_t ids[LEN];
    uint64_t V = (uint64_t)lmb_tokenizer_vocab_size(t);
    for (int s = 0; s < 20; s++) {
        for (int i = 0; i < LEN; i++) {
            uint64_t r = lmb_test_rng_u64(rng);
            ids[i] = (int32_t)((r >> 8) % ((r & 3) ? 300 : V));
        }
        char lab[128];
        snprintf(lab, sizeof lab, "%s, random ids #%d", what, s);
        for (int skip = 0; skip < 2; skip++) {
            size_t fl;
            char *full = decode(t, ids, LEN, skip, &fl, lab);
            bool stable = prefix_stable(t, ids, LEN, skip, full, fl);
            cr_expect(stable || unstable_ok || (byte_fallback && has_replacement(full, fl)),
                      "%s (skip_special=%d): decode is not prefix-stable", lab, skip);
            expect_stream(t, ids, LEN, skip, full, fl, stable, lab);
            free(full);
        }
    }
}

Test(tokenizer, stream_random) {
    lmb_test_rng rng;
    lmb_test_rng_seed(&rng, 7);
    lmb_tokenizer *t = load_dir(BYTELEVEL);
    stream_random_texts(t, "bytelevel", false, &rng);
    stream_random_ids(t, "bytelevel", false, false, &rng);
    lmb_tokenizer_free(t);
    json_t *all = lmb_test_json(VARIANTS), *vs = json_object_get(all, "variants");
    cr_assert(all);
    for (size_t i = 0; i < json_array_size(vs); i++) {
        json_t *v = json_array_get(vs, i);
        char *tj = lmb_test_variant_json(all, v);
        lmb_error err = {{0}};
        const char *name = json_string_value(json_object_get(v, "name"));
        cr_assert_eq(lmb_tokenizer_load_json(tj, strlen(tj), name, &t, &err), 0, "%s", err.msg);
        bool unstable_ok = strcmp(name, "bpe_decoder_empty_suffix") == 0;
        stream_random_texts(t, name, unstable_ok, &rng);
        stream_random_ids(t, name, strstr(tj, "\"ByteFallback\"") != NULL, unstable_ok, &rng);
        lmb_tokenizer_free(t);
        free(tj);
    }
    json_decref(all);
}
