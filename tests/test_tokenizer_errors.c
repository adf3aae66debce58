/* test_tokenizer_errors.c — malformed tokenizer.json / tokenizer_config.json files fail to load with a message
 * that names the file and the problem, and never crash.
 *
 * Three layers: a table of hand-made faults (bad JSON, unknown model / normalizer / pre-tokenizer / decoder /
 * post-processor types, merges naming absent tokens, bad fields...), each with the words its message must
 * contain; the committed byte-level tokenizer.json cut short at many points; and a walk over every field of
 * the variant tokenizers that puts a value of the wrong type (or a surprising one) in its place: each such
 * file must either load, and then encode, decode and stream without harm, or fail with a message.
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

#define NAME "faulty/tokenizer.json"
#define VARIANTS "tests/fixtures/variants/variants.json"

/* ---- hand-made faults ------------------------------------------------------------------------------------------ */

/* A small valid tokenizer.json with each part replaceable (NULL: the default below). */
static const char *tok_json(const char *model, const char *norm, const char *pre, const char *post, const char *dec,
                            const char *added) {
    static char buf[8192];
    snprintf(
        buf, sizeof buf,
        "{\"version\": \"1.0\", \"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s,"
        " \"post_processor\": %s, \"decoder\": %s, \"model\": %s}",
        added ? added : "[{\"id\": 0, \"content\": \"<s>\", \"special\": true}]", norm ? norm : "null",
        pre ? pre : "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}", post ? post : "null",
        dec ? dec : "{\"type\": \"ByteLevel\"}",
        model ? model
              : "{\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3}, \"merges\": [\"a b\"]}");
    return buf;
}

static void loads(const char *json) {
    lmb_tokenizer *t = NULL;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_load_json(json, strlen(json), NAME, &t, &err), 0, "should load: %s\n%s", err.msg, json);
    lmb_ids ids = {0};
    cr_assert_eq(lmb_tokenizer_encode(t, "abba", 4, 0, &ids, &err), 0, "%s", err.msg);
    cr_expect_eq(ids.n, 3, "abba -> ab, b, a: got %s", lmb_test_ids_str(ids.ids, ids.n));
    lmb_ids_free(&ids);
    lmb_tokenizer_free(t);
}

/* Loading must fail, leave *out NULL, and say NAME plus each of the (up to two) fragments. */
static void fails(const char *json, const char *frag1, const char *frag2) {
    lmb_tokenizer *t = (lmb_tokenizer *)&t; /* not NULL, to see that a failed load sets it */
    lmb_error err = {{0}};
    cr_expect_neq(lmb_tokenizer_load_json(json, strlen(json), NAME, &t, &err), 0, "should fail: %s", json);
    cr_expect_null(t, "a failed load must leave *out NULL");
    cr_expect(strstr(err.msg, NAME), "the message should name the file: %s", err.msg);
    cr_expect(strstr(err.msg, frag1), "the message should mention '%s': %s", frag1, err.msg);
    if (frag2) cr_expect(strstr(err.msg, frag2), "the message should mention '%s': %s", frag2, err.msg);
}

Test(tokenizer_errors, base_loads) { loads(tok_json(NULL, NULL, NULL, NULL, NULL, NULL)); }

Test(tokenizer_errors, json_syntax) {
    fails("", "invalid JSON", NULL);
    fails("{\"model\": {\"type\": \"BPE\",", "invalid JSON", NULL);
    fails("{\"model\": {}} trailing", "invalid JSON", NULL);
    fails("[1, 2]", "expected a JSON object", NULL);
    fails("\"tokenizer\"", "invalid JSON", NULL); /* jansson wants an array or object at the top level */
    fails("{}", "no \"model\"", NULL);
}

Test(tokenizer_errors, model) {
    fails(tok_json("{\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}", 0, 0, 0, 0, 0), "unsupported model type",
          "\"WordPiece\"");
    fails(tok_json("{\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}", 0, 0, 0, 0, 0), "\"Unigram\"", NULL);
    fails(tok_json("{\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}", 0, 0, 0, 0, 0), "\"WordLevel\"", NULL);
    fails(tok_json("{\"vocab\": {\"a\": 0}}", 0, 0, 0, 0, 0), "not a BPE model", NULL);
    fails(tok_json("\"BPE\"", 0, 0, 0, 0, 0), "model", "expected an object");
    fails(tok_json("{\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {}, \"merges\": []}", 0, 0, 0, 0, 0), "dropout",
          NULL);
    fails(tok_json("{\"type\": \"BPE\", \"vocab\": [\"a\"], \"merges\": []}", 0, 0, 0, 0, 0), "model.vocab", NULL);
    fails(tok_json("{\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}", 0, 0, 0, 0, 0), "model.vocab[\"a\"]",
          "non-negative integer");
    fails(tok_json("{\"type\": \"BPE\", \"vocab\": {\"a\": \"1\"}, \"merges\": []}", 0, 0, 0, 0, 0),
          "model.vocab[\"a\"]", NULL);
    fails(tok_json("{\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}, \"merges\": []}", 0, 0, 0, 0, 0), "model.vocab[\"a\"]",
          NULL);
    fails(
        tok_json("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}", 0, 0, 0, 0, 0),
        "unk_token", "\"<unk>\" is not in model.vocab");
}

Test(tokenizer_errors, merges) {
    const char *fmt = "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": %s}";
    char m[512];
    snprintf(m, sizeof m, fmt, "[\"a zz\"]");
    fails(tok_json(m, 0, 0, 0, 0, 0), "merges[0]", "token \"zz\" is not in model.vocab");
    snprintf(m, sizeof m, fmt, "[\"a b\", [\"q\", \"a\"]]");
    fails(tok_json(m, 0, 0, 0, 0, 0), "merges[1]", "token \"q\" is not in model.vocab");
    snprintf(m, sizeof m, fmt, "[\"a b\", \"b a\"]");
    fails(tok_json(m, 0, 0, 0, 0, 0), "merges[1]", "merged token \"ba\" is not in model.vocab");
    snprintf(m, sizeof m, fmt, "[\"ab\"]");
    fails(tok_json(m, 0, 0, 0, 0, 0), "merges[0]", "expected \"a b\"");
    snprintf(m, sizeof m, fmt, "[[\"a\"]]");
    fails(tok_json(m, 0, 0, 0, 0, 0), "merges[0]", NULL);
    snprintf(m, sizeof m, fmt, "[7]");
    fails(tok_json(m, 0, 0, 0, 0, 0), "merges[0]", NULL);
    snprintf(m, sizeof m, fmt, "\"a b\"");
    fails(tok_json(m, 0, 0, 0, 0, 0), "model.merges", "expected an array");
    /* the pair form ["a", "b"] and tokens with spaces in it are fine */
    loads(tok_json(
        "{\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3}, \"merges\": [[\"a\", \"b\"]]}", 0,
        0, 0, 0, 0));
}

Test(tokenizer_errors, normalizer) {
    fails(tok_json(0, "{\"type\": \"BertNormalizer\"}", 0, 0, 0, 0), "normalizer",
          "unsupported normalizer type \"BertNormalizer\"");
    fails(tok_json(0, "{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}", 0, 0, 0, 0), "\"Precompiled\"",
          NULL);
    fails(tok_json(0, "{\"kind\": \"NFC\"}", 0, 0, 0, 0), "normalizer", "\"type\"");
    fails(tok_json(0, "\"NFC\"", 0, 0, 0, 0), "normalizer", "\"type\"");
    fails(tok_json(0, "{\"type\": \"Sequence\", \"normalizers\": {}}", 0, 0, 0, 0), "normalizers", "expected an array");
    fails(tok_json(0, "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"StripAccents\"}]}",
                   0, 0, 0, 0),
          "normalizer.normalizers[1]", "\"StripAccents\"");
    fails(tok_json(0, "{\"type\": \"Prepend\"}", 0, 0, 0, 0), "prepend", "expected a string");
    fails(tok_json(0, "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"(\"}, \"content\": \"x\"}", 0, 0, 0, 0),
          "cannot compile regex", NULL);
    fails(tok_json(0, "{\"type\": \"Replace\", \"pattern\": {\"Glob\": \"*\"}, \"content\": \"x\"}", 0, 0, 0, 0),
          "expected {\"String\": ...} or {\"Regex\": ...}", NULL);
    fails(tok_json(0, "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}}", 0, 0, 0, 0), "content", NULL);
}

Test(tokenizer_errors, pre_tokenizer) {
    fails(tok_json(0, 0, "{\"type\": \"BertPreTokenizer\"}", 0, 0, 0), "pre_tokenizer",
          "unsupported pre_tokenizer type \"BertPreTokenizer\"");
    fails(tok_json(0, 0, "{\"type\": \"UnicodeScripts\"}", 0, 0, 0), "\"UnicodeScripts\"", NULL);
    fails(tok_json(0, 0, "{\"type\": \"Sequence\"}", 0, 0, 0), "pretokenizers", "expected an array");
    fails(
        tok_json(0, 0, "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\"}", 0, 0, 0),
        "behavior", "Isolated");
    fails(
        tok_json(0, 0, "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[a-\"}, \"behavior\": \"Isolated\"}", 0, 0, 0),
        "cannot compile regex", "[a-");
    fails(tok_json(0, 0, "{\"type\": \"Split\", \"pattern\": {\"String\": \"\"}, \"behavior\": \"Isolated\"}", 0, 0, 0),
          "empty String pattern", NULL);
    fails(tok_json(0, 0, "{\"type\": \"Split\", \"pattern\": 5, \"behavior\": \"Isolated\"}", 0, 0, 0), "pattern",
          NULL);
    fails(tok_json(0, 0, "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"sometimes\"}",
                   0, 0, 0),
          "prepend_scheme", "\"sometimes\"");
    fails(tok_json(0, 0, "{\"type\": \"Metaspace\", \"replacement\": \"ab\"}", 0, 0, 0), "replacement",
          "single character");
    fails(tok_json(0, 0, "{\"type\": \"CharDelimiterSplit\", \"delimiter\": \"ab\"}", 0, 0, 0), "delimiter", NULL);
    fails(tok_json(0, 0, "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\"}, {}]}", 0, 0, 0),
          "pre_tokenizer.pretokenizers[1]", NULL);
}

Test(tokenizer_errors, decoder) {
    fails(tok_json(0, 0, 0, 0, "{\"type\": \"WordPiece\", \"prefix\": \"##\"}", 0), "decoder",
          "unsupported decoder type \"WordPiece\"");
    fails(tok_json(0, 0, 0, 0, "{\"type\": \"CTC\"}", 0), "\"CTC\"", NULL);
    fails(tok_json(0, 0, 0, 0, "{\"type\": \"Strip\", \"content\": \"ab\", \"start\": 1, \"stop\": 0}", 0), "content",
          "one-character");
    fails(tok_json(0, 0, 0, 0, "{\"type\": \"Strip\", \"content\": \" \", \"start\": -1, \"stop\": 0}", 0), "start",
          NULL);
    fails(tok_json(0, 0, 0, 0, "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"(?<\"}, \"content\": \" \"}", 0),
          "decoder.pattern", "cannot compile regex");
    fails(tok_json(0, 0, 0, 0, "{\"type\": \"BPEDecoder\"}", 0), "suffix", NULL);
    fails(
        tok_json(0, 0, 0, 0, "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"Nope\"}]}", 0),
        "decoder.decoders[1]", "\"Nope\"");
    fails(tok_json(0, 0, 0, 0, "[]", 0), "decoder", "\"type\"");
}

Test(tokenizer_errors, post_processor) {
    fails(tok_json(0, 0, 0, "{\"type\": \"Foo\"}", 0, 0), "post_processor", "unsupported post_processor type \"Foo\"");
    fails(tok_json(
              0, 0, 0,
              "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<bos>\", \"type_id\": 0}},"
              " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {}}",
              0, 0),
          "special_tokens", "\"<bos>\"");
    fails(tok_json(0, 0, 0,
                   "{\"type\": \"TemplateProcessing\", \"single\": [{\"Sequence\": {\"id\": \"A\"}}, {\"Sequence\": "
                   "{\"id\": \"A\"}}], \"special_tokens\": {}}",
                   0, 0),
          "a second Sequence", NULL);
    fails(tok_json(0, 0, 0, "{\"type\": \"TemplateProcessing\", \"single\": 3, \"special_tokens\": {}}", 0, 0),
          "single", NULL);
    fails(tok_json(0, 0, 0, "{\"type\": \"BertProcessing\", \"sep\": [\"</s>\", 2]}", 0, 0), "cls", NULL);
    fails(tok_json(0, 0, 0,
                   "{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, {\"type\": \"Bar\"}]}", 0, 0),
          "post_processor.processors[1]", "\"Bar\"");
}

Test(tokenizer_errors, added_tokens) {
    fails(tok_json(0, 0, 0, 0, 0, "{}"), "added_tokens", "expected an array");
    fails(tok_json(0, 0, 0, 0, 0, "[{\"id\": 0}]"), "added_tokens[0]", NULL);
    fails(tok_json(0, 0, 0, 0, 0, "[{\"id\": 0, \"content\": \"<s>\"}, {\"id\": \"1\", \"content\": \"x\"}]"),
          "added_tokens[1]", NULL);
    fails(tok_json(0, 0, 0, 0, 0, "[{\"id\": -4, \"content\": \"<s>\"}]"), "added_tokens[0].id", "out of range");
    fails(tok_json(0, 0, 0, 0, 0, "[3]"), "added_tokens[0]", NULL);
}

/* Files: a missing one, and the tokenizer_config.json that load_dir reads beside tokenizer.json. */
Test(tokenizer_errors, files) {
    char dir[64], path[4096];
    lmb_error err = {{0}};
    cr_assert_eq(lmb_test_tmpdir(dir, sizeof dir, &err), 0, "%s", err.msg);
    lmb_tokenizer *t = NULL;
    cr_expect_neq(lmb_tokenizer_load_dir(dir, &t, &err), 0);
    cr_expect(strstr(err.msg, dir) && strstr(err.msg, "no tokenizer.json"), "%s", err.msg);
    snprintf(path, sizeof path, "%s/absent.json", dir);
    cr_expect_neq(lmb_tokenizer_load(path, &t, &err), 0);
    cr_expect(strstr(err.msg, "absent.json"), "%s", err.msg);

    const char *tj = tok_json(NULL, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(lmb_test_write_file(dir, "tokenizer.json", tj, strlen(tj), NULL, 0), 0);
    static const struct {
        const char *config, *frag;
    } bad[] = {
        {"{\"add_bos_token\": true,", "invalid JSON"},
        {"[]", "expected a JSON object"},
        {"{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}", "without a \"default\""},
        {"{\"chat_template\": 7}", "chat_template"},
        {"{\"bos_token\": 1}", "\"bos_token\""},
        {"{\"eos_token\": {\"text\": \"</s>\"}}", "\"eos_token\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(lmb_test_write_file(dir, "tokenizer_config.json", bad[i].config, strlen(bad[i].config), NULL, 0),
                     0);
        t = (lmb_tokenizer *)&t;
        cr_expect_neq(lmb_tokenizer_load_dir(dir, &t, &err), 0, "should fail: %s", bad[i].config);
        cr_expect_null(t);
        cr_expect(strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, bad[i].frag),
                  "config %s: the message should name the file and say '%s': %s", bad[i].config, bad[i].frag, err.msg);
    }
    /* the good spellings: {"content": ...} tokens and a template list with a default */
    const char *good = "{\"bos_token\": {\"content\": \"<s>\"}, \"add_bos_token\": false, \"chat_template\": "
                       "[{\"name\": \"default\", \"template\": \"T\"}]}";
    cr_assert_eq(lmb_test_write_file(dir, "tokenizer_config.json", good, strlen(good), NULL, 0), 0);
    cr_assert_eq(lmb_tokenizer_load_dir(dir, &t, &err), 0, "%s", err.msg);
    cr_expect_str_eq(lmb_tokenizer_bos_token(t), "<s>");
    cr_expect_str_eq(lmb_tokenizer_chat_template(t), "T");
    cr_expect_eq(lmb_tokenizer_config_add_bos(t), 0);
    lmb_tokenizer_free(t);
    lmb_test_rmtree(dir, NULL);
}

/* ---- cut short ----------------------------------------------------------------------------------------------- */

Test(tokenizer_errors, truncated_file) {
    char *text;
    size_t len;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_file_read_all("tests/fixtures/bytelevel/tokenizer.json", &text, &len, &err), 0, "%s", err.msg);
    for (size_t k = 0; k < 200; k++) {
        size_t cut = k * (len - 1) / 200;
        lmb_tokenizer *t = (lmb_tokenizer *)&t;
        cr_expect_neq(lmb_tokenizer_load_json(text, cut, NAME, &t, &err), 0, "a file cut at byte %zu loaded", cut);
        cr_expect_null(t);
        cr_expect(strstr(err.msg, NAME) && strstr(err.msg, "invalid JSON"), "cut at %zu: %s", cut, err.msg);
    }
    free(text);
}

/* ---- every field given a wrong value ----------------------------------------------------------------------------- */

/* Loads a mutated tokenizer.json; if it loads, it must work on a few texts (encode, decode, stream). */
static void load_and_use(json_t *root, const char *what) {
    char *s = json_dumps(root, JSON_COMPACT);
    cr_assert(s);
    lmb_tokenizer *t = NULL;
    lmb_error err = {{0}};
    if (lmb_tokenizer_load_json(s, strlen(s), NAME, &t, &err) != 0) {
        cr_expect_null(t);
        cr_expect(err.msg[0] != '\0', "%s: failed without a message", what);
        free(s);
        return;
    }
    static const char *const texts[] = {"Hello world", "  <s>x</s> 数学 🙌 e\u0301 12345", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        lmb_ids ids = {0};
        if (lmb_tokenizer_encode(t, texts[i], strlen(texts[i]), LMB_TOK_ADD_SPECIAL, &ids, &err) != 0) {
            cr_expect(err.msg[0] != '\0', "%s: encode failed without a message", what);
            continue;
        }
        char *out;
        size_t n;
        if (lmb_tokenizer_decode(t, ids.ids, ids.n, false, &out, &n, &err) == 0) {
            cr_expect(lmb_utf8_valid(out, n), "%s: decode gave invalid UTF-8", what);
            free(out);
        }
        lmb_detok d;
        lmb_detok_init(&d);
        for (size_t k = 0; k <= ids.n; k++) {
            int rc =
                k < ids.n ? lmb_detok_push(&d, t, ids.ids[k], &out, &n, &err) : lmb_detok_flush(&d, t, &out, &n, &err);
            if (rc == 0) free(out);
        }
        lmb_detok_free(&d);
        lmb_ids_free(&ids);
    }
    lmb_tokenizer_free(t);
    free(s);
}

/* Replaces each value under `node` (only the first 3 entries of an object or array under the model, 2 of other
 * arrays) in turn with each of the values below, loads the whole document, and puts the original back. */
static int mutate_all(json_t *root, json_t *node, const char *path) {
    static const char *const values[] = {"null", "-1", "16777216", "\"\"", "\"x\"", "[]", "{}"};
    int n = 0;
    char sub[512], what[640];
    if (json_is_object(node)) {
        const char *key;
        json_t *child;
        int i = 0;
        void *tmp;
        json_object_foreach_safe(node, tmp, key, child) {
            if (!strncmp(path, "model.", 6) && i >= 3) break;
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            json_incref(child);
            for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
                json_object_set_new(node, key, json_loads(values[v], JSON_DECODE_ANY, NULL));
                snprintf(what, sizeof what, "%s = %s", sub, values[v]);
                load_and_use(root, what);
                n++;
            }
            json_object_set_new(node, key, child);
            n += mutate_all(root, child, sub);
            i++;
        }
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node) && i < (strncmp(path, "model", 5) ? 2u : 3u); i++) {
            json_t *child = json_incref(json_array_get(node, i));
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
                json_array_set_new(node, i, json_loads(values[v], JSON_DECODE_ANY, NULL));
                snprintf(what, sizeof what, "%s = %s", sub, values[v]);
                load_and_use(root, what);
                n++;
            }
            json_array_set_new(node, i, child);
            n += mutate_all(root, child, sub);
        }
    }
    return n;
}

ParameterizedTestParameters(tokenizer_errors, wrong_values) {
    json_t *all = json_load_file(VARIANTS, 0, NULL);
    size_t n = json_array_size(json_object_get(all, "variants"));
    json_decref(all);
    int *idx = cr_malloc((n ? n : 1) * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = (int)i;
    return cr_make_param_array(int, idx, n);
}

/* A few dozen tokens of a trained model: the low ids (specials, the alphabet, byte tokens) and the first merges
 * whose parts are kept, so that each mutated file loads in a fraction of a millisecond. */
static json_t *small_model(json_t *model) {
    json_t *m = json_deep_copy(model), *vocab = json_object_get(model, "vocab"),
           *merges = json_object_get(model, "merges");
    json_t *sv = json_object(), *sm = json_array();
    const char *key, *prefix = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    json_t *val;
    json_object_foreach(vocab, key, val) if (json_integer_value(val) < 48) json_object_set(sv, key, val);
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk && json_object_get(vocab, unk)) json_object_set(sv, unk, json_object_get(vocab, unk));
    for (size_t i = 0; i < json_array_size(merges) && json_array_size(sm) < 24; i++) {
        json_t *mg = json_array_get(merges, i);
        char a[256], b[256], joined[512];
        if (json_is_array(mg))
            snprintf(a, sizeof a, "%s", json_string_value(json_array_get(mg, 0))),
                snprintf(b, sizeof b, "%s", json_string_value(json_array_get(mg, 1)));
        else if (sscanf(json_string_value(mg), "%255s %255s", a, b) != 2)
            continue;
        const char *rest = prefix && !strncmp(b, prefix, strlen(prefix)) ? b + strlen(prefix) : b;
        snprintf(joined, sizeof joined, "%s%s", a, rest);
        if (!json_object_get(sv, a) || !json_object_get(sv, b) || !json_object_get(vocab, joined)) continue;
        json_object_set(sv, joined, json_object_get(vocab, joined));
        json_array_append(sm, mg);
    }
    json_object_set_new(m, "vocab", sv);
    json_object_set_new(m, "merges", sm);
    return m;
}

/* Each variant's parts that no earlier variant has (the same decoder, say, is walked once). */
ParameterizedTest(int *i, tokenizer_errors, wrong_values) {
    json_t *all = lmb_test_json(VARIANTS), *vs = json_object_get(all, "variants");
    cr_assert(all);
    json_t *parts[40];
    size_t n_parts = 0;
    for (int k = 0; k <= *i; k++) {
        char *text = lmb_test_variant_json(all, json_array_get(vs, (size_t)k));
        parts[n_parts++] = json_loads(text, 0, NULL);
        free(text);
    }
    json_t *root = parts[n_parts - 1];
    cr_assert(root);
    json_object_set_new(root, "model", small_model(json_object_get(root, "model")));
    char *base = json_dumps(root, JSON_COMPACT);
    lmb_tokenizer *t;
    lmb_error err = {{0}};
    cr_assert_eq(lmb_tokenizer_load_json(base, strlen(base), NAME, &t, &err), 0, "the shrunk tokenizer: %s", err.msg);
    lmb_tokenizer_free(t);
    free(base);
    int n = 0;
    const char *key;
    json_t *child;
    json_object_foreach(root, key, child) {
        bool seen = false;
        for (size_t k = 0; k + 1 < n_parts && !seen; k++) {
            json_t *other = json_object_get(parts[k], key);
            if (strcmp(key, "model") == 0) other = small_model(other); /* new reference */
            seen = json_equal(other, child);
            if (strcmp(key, "model") == 0) json_decref(other);
        }
        if (seen) continue;
        /* the value itself, then everything inside it */
        json_incref(child);
        static const char *const values[] = {"null", "\"x\"", "[]", "{}"};
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            char what[256];
            json_object_set_new(root, key, json_loads(values[v], JSON_DECODE_ANY, NULL));
            snprintf(what, sizeof what, "%s = %s", key, values[v]);
            load_and_use(root, what);
            n++;
        }
        json_object_set_new(root, key, child);
        n += mutate_all(root, child, key);
    }
    if (*i == 0) cr_expect_gt(n, 100, "the first variant walks all its parts");
    for (size_t k = 0; k < n_parts; k++) json_decref(parts[k]);
    json_decref(all);
}
