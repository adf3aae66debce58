/* test_unicode.c — pipeline/unicode.c against Python's unicodedata (tests/fixtures/unicode/vectors.json, made
 * by tests/tools/make_unicode_vectors.py): NFC/NFD/NFKC/NFKD and per-character lowercasing of strings built
 * to stress the algorithm, then every code point one at a time, checked as one FNV-1a hash per form and per
 * block of 4096 code points (so a failure names the block to look at).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/unicode.h"
#include "../pipeline/utf8.h"
#include "support/tok_vectors.h"

#define VECTORS "tests/fixtures/unicode/vectors.json"

/* The five mappings under test; "lower" is lmb_uc_lowercase, the others lmb_uc_normalize. */
static const char *const FORMS[] = {"NFC", "NFD", "NFKC", "NFKD", "lower"};
static const lmb_uc_form FORM_OF[] = {LMB_UC_NFC, LMB_UC_NFD, LMB_UC_NFKC, LMB_UC_NFKD, 0};

static int apply(int form, const char *s, size_t n, char **buf, size_t *cap, size_t *out_len) {
    if (form == 4) return lmb_uc_lowercase(s, n, buf, cap, out_len);
    return lmb_uc_normalize(FORM_OF[form], s, n, buf, cap, out_len);
}

static json_t *load(void) {
    json_t *j = lmb_test_json(VECTORS);
    cr_assert(j, "cannot read %s", VECTORS);
    return j;
}

Test(unicode, version_matches_tables) {
    json_t *j = load();
    const char *v = json_string_value(json_object_get(j, "unicode_version"));
    cr_assert(v, "%s: no unicode_version", VECTORS);
    cr_expect_str_eq(lmb_uc_version, v, "tables (gen_unicode_tables.py) and vectors use different Unicode versions");
    json_decref(j);
}

Test(unicode, cases) {
    json_t *j = load(), *cases = json_object_get(j, "cases");
    cr_assert(json_array_size(cases) > 400, "%s: expected the 449 cases", VECTORS);
    char *buf = NULL;
    size_t cap = 0, n_checked = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *s = json_string_value(json_object_get(c, "s"));
        size_t sn = json_string_length(json_object_get(c, "s"));
        for (int f = 0; f < 5; f++) {
            json_t *want = json_object_get(c, FORMS[f]);
            cr_assert(json_is_string(want), "case %zu has no \"%s\"", i, FORMS[f]);
            size_t len;
            cr_assert_eq(apply(f, s, sn, &buf, &cap, &len), 0);
            cr_expect(len == json_string_length(want) && memcmp(buf, json_string_value(want), len) == 0,
                      "case %zu, %s(\"%s\"): got \"%.*s\", want \"%s\"", i, FORMS[f], s, (int)len, buf,
                      json_string_value(want));
            cr_expect(lmb_utf8_valid(buf, len), "case %zu, %s: output is not valid UTF-8", i, FORMS[f]);
            n_checked++;
        }
    }
    cr_expect_eq(n_checked, 5 * json_array_size(cases));
    free(buf);
    json_decref(j);
}

/* FNV-1a over mapping(chr(cp)) + b"\xff" for each code point of a block (surrogates left out), as the
 * generator computes it. */
static uint64_t fnv(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

ParameterizedTestParameters(unicode, block_hashes) {
    static int forms[] = {0, 1, 2, 3, 4};
    return cr_make_param_array(int, forms, sizeof forms / sizeof forms[0]);
}

ParameterizedTest(int *form, unicode, block_hashes) {
    json_t *j = load(), *hashes = json_object_get(json_object_get(j, "block_hashes"), FORMS[*form]);
    cr_assert_eq(json_array_size(hashes), 0x110, "%s: block_hashes.%s should list 272 blocks", VECTORS, FORMS[*form]);
    char *buf = NULL, in[4];
    size_t cap = 0;
    int bad = 0;
    for (uint32_t blk = 0; blk < 0x110; blk++) {
        uint64_t h = 0xCBF29CE484222325ull;
        for (uint32_t cp = blk << 12; cp < (blk + 1) << 12; cp++) {
            if (cp >= 0xD800 && cp < 0xE000) continue;
            size_t len;
            int n = lmb_utf8_put(cp, in);
            cr_assert_eq(apply(*form, in, (size_t)n, &buf, &cap, &len), 0);
            h = fnv(fnv(h, buf, len), "\xff", 1);
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        const char *want = json_string_value(json_array_get(hashes, blk));
        if (!want || strcmp(hex, want) != 0) {
            cr_expect_fail("%s differs from Python in code points U+%04X..U+%04X", FORMS[*form], blk << 12,
                           ((blk + 1) << 12) - 1);
            bad++;
        }
    }
    cr_expect_eq(bad, 0, "%s: %d blocks differ", FORMS[*form], bad);
    free(buf);
    json_decref(j);
}
