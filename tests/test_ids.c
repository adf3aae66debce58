/* test_ids.c — line identity: format detection, ids of input lines (explicit, default, unreadable), keys of
 * output lines (results, errors, duplicates; both formats) matching the keys of the inputs they answer, the
 * keyer's duplicates and shards, stable shard hashes, and the key set under growth.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../pipeline/ids.h"
#include "../pipeline/openai.h"
#include "../pipeline/sink.h"

TestSuite(ids);

static bool key_eq(lmb_key a, lmb_key b) { return a.a == b.a && a.b == b.b; }

Test(ids, format_detection) {
    const char *oa = "{\"custom_id\": \"x\", \"url\": \"/v1/completions\", \"body\": {}}";
    cr_assert_eq(lmb_format_detect(oa, strlen(oa)), LMB_FMT_OPENAI);
    cr_assert_eq(lmb_format_detect("{\"id\": 1}", 9), LMB_FMT_PLAIN);
    const char *broken = "{\"custom_id\": \"x\", oops";
    cr_assert_eq(lmb_format_detect(broken, strlen(broken)), LMB_FMT_OPENAI, "a broken line still says custom_id");
    cr_assert_eq(lmb_format_detect("garbage", 7), LMB_FMT_PLAIN);
    cr_assert_eq(lmb_format_parse("openai"), LMB_FMT_OPENAI);
    cr_assert_eq(lmb_format_parse("csv"), -1);
}

Test(ids, input_ids) {
    lmb_input_ident id;
    lmb_ident_input("{\"id\": \"q1\", \"prompt\": \"x\"}", 27, LMB_FMT_PLAIN, "f", 3, false, &id);
    cr_assert(json_is_string(id.id) && !id.id_default);
    lmb_input_ident_free(&id);
    lmb_ident_input("{\"prompt\": \"x\"}", 15, LMB_FMT_PLAIN, "f", 3, false, &id);
    cr_assert(json_is_integer(id.id) && json_integer_value(id.id) == 3 && id.id_default);
    lmb_input_ident_free(&id);
    lmb_ident_input("{\"prompt\": \"x\"}", 15, LMB_FMT_PLAIN, "a.tar:b.jsonl", 3, true, &id);
    cr_assert_str_eq(json_string_value(id.id), "a.tar:b.jsonl:3");
    lmb_input_ident_free(&id);
    lmb_ident_input("{\"id\": [1]}", 11, LMB_FMT_PLAIN, "f", 3, false, &id);
    cr_assert_null(id.id);
    cr_assert(strstr(id.why, "\"id\""));
    lmb_input_ident_free(&id);
    lmb_ident_input("[1, 2]", 6, LMB_FMT_PLAIN, "f", 3, false, &id);
    cr_assert_null(id.id);
    cr_assert_null(id.root);
    lmb_input_ident_free(&id);
    lmb_ident_input("{\"id\": 1, \"id\": 2}", 18, LMB_FMT_PLAIN, "f", 3, false, &id);
    cr_assert_null(id.id, "duplicate keys are rejected");
    lmb_input_ident_free(&id);
    lmb_ident_input("{\"id\": 5}", 9, LMB_FMT_OPENAI, "f", 3, false, &id);
    cr_assert_null(id.id, "OpenAI lines are known by custom_id only");
    cr_assert(strstr(id.why, "custom_id"));
    lmb_input_ident_free(&id);
}

Test(ids, shard_hash_is_fnv1a_of_the_compact_id) {
    json_t *id = json_string("q1");
    /* FNV-1a-64 of the 4 bytes "q1" with quotes: python3 -c 'h=0xcbf29ce484222325 ...' */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *s = "\"q1\""; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    cr_assert_eq(lmb_shard_hash_id(id), h);
    json_decref(id);
    cr_assert_eq(lmb_shard_hash_pos("f", 2), lmb_shard_hash_pos("f", 2));
    cr_assert_neq(lmb_shard_hash_pos("f", 2), lmb_shard_hash_pos("f", 3));
}

/* The output lines lmbatch writes answer the keys of their inputs. */
Test(ids, output_lines_answer_their_input_keys) {
    json_t *id = json_string("q1"), *num = json_integer(7);
    lmb_output_ident o;
    json_t *res = lmb_result_line(id, "hi", 2, "stop", 3, 4);
    char *t = json_dumps(res, JSON_COMPACT);
    cr_assert_eq(lmb_ident_output(t, strlen(t), &o), 0);
    cr_assert(o.ok && !o.dup && key_eq(o.key, lmb_key_of_id(id)));
    cr_assert_eq(o.completion_tokens, 4);
    cr_assert_eq(o.shard_hash, lmb_shard_hash_id(id));
    free(t);
    json_decref(res);

    json_t *e = lmb_error_line_code(num, "f.jsonl", 9, LMB_ERR_INVALID, "bad");
    t = json_dumps(e, JSON_COMPACT);
    cr_assert_eq(lmb_ident_output(t, strlen(t), &o), 0);
    cr_assert(!o.ok && key_eq(o.key, lmb_key_of_id(num)), "an error line with an id answers the id");
    free(t);
    json_decref(e);

    e = lmb_error_line_code(id, "f.jsonl", 9, LMB_ERR_DUPLICATE, "dup");
    t = json_dumps(e, JSON_COMPACT);
    cr_assert_eq(lmb_ident_output(t, strlen(t), &o), 0);
    cr_assert(o.dup && key_eq(o.key, lmb_key_of_pos("f.jsonl", 9)), "a duplicate answers its position");
    cr_assert_eq(o.shard_hash, lmb_shard_hash_id(id), "but lives in its id's shard");
    free(t);
    json_decref(e);

    e = lmb_error_line_code(NULL, "f.jsonl", 10, LMB_ERR_INVALID, "not json");
    t = json_dumps(e, JSON_COMPACT);
    cr_assert_eq(lmb_ident_output(t, strlen(t), &o), 0);
    cr_assert(key_eq(o.key, lmb_key_of_pos("f.jsonl", 10)));
    free(t);
    json_decref(e);

    e = lmb_openai_error_line(NULL, "o.jsonl", 4, LMB_ERR_INVALID, "no custom_id");
    t = json_dumps(e, JSON_COMPACT);
    cr_assert_eq(lmb_ident_output(t, strlen(t), &o), 0);
    cr_assert(o.fmt == LMB_FMT_OPENAI && key_eq(o.key, lmb_key_of_pos("o.jsonl", 4)));
    free(t);
    json_decref(e);

    json_t *seven = json_string("7");
    cr_assert_neq(lmb_key_of_id(num).a, lmb_key_of_id(seven).a, "7 and \"7\" are different ids");
    json_decref(seven);
    const char *torn = "{\"id\":\"q1\",\"text\":\"h";
    cr_assert_eq(lmb_ident_output(torn, strlen(torn), &o), -1);
    cr_assert_eq(lmb_ident_output("{\"foo\": 1}", 10, &o), -1, "not an output line");
    json_decref(id);
    json_decref(num);
}

Test(ids, keyer_duplicates_and_shards) {
    lmb_keyer k;
    lmb_error err;
    lmb_keyer_init(&k, LMB_FMT_AUTO, false, 0, 1);
    lmb_line_key a, b, c;
    cr_assert_eq(lmb_keyer_line(&k, "{\"id\": 1}", 9, "f", 1, 0, &a, &err), 0);
    cr_assert_eq(lmb_keyer_line(&k, "{\"id\": 1}", 9, "f", 2, 0, &b, &err), 0);
    cr_assert(!a.dup && b.dup);
    cr_assert_eq(b.first_line, 1);
    cr_assert_eq(b.first_stream, 0);
    cr_assert(key_eq(b.key, lmb_key_of_pos("f", 2)));
    cr_assert_eq(lmb_keyer_line(&k, "{\"custom_id\": \"x\"}", 18, "g", 1, 1, &c, &err), 0);
    cr_assert_eq(c.fmt, LMB_FMT_OPENAI, "the format is detected per stream");
    lmb_input_ident_free(&a.ident);
    lmb_input_ident_free(&b.ident);
    lmb_input_ident_free(&c.ident);
    lmb_keyer_free(&k);
    /* every line lands in exactly one of 4 shards */
    int count[4] = {0};
    for (int s = 0; s < 4; s++) {
        lmb_keyer_init(&k, LMB_FMT_PLAIN, false, s, 4);
        for (int i = 0; i < 200; i++) {
            char line[64];
            int n = snprintf(line, sizeof line, "{\"id\": \"k%d\"}", i);
            cr_assert_eq(lmb_keyer_line(&k, line, (size_t)n, "f", i + 1, 0, &a, &err), 0);
            count[s] += a.in_shard;
            lmb_input_ident_free(&a.ident);
        }
        lmb_keyer_free(&k);
    }
    cr_assert_eq(count[0] + count[1] + count[2] + count[3], 200);
    for (int s = 0; s < 4; s++) cr_assert(count[s] > 20, "shard %d has %d of 200 lines", s, count[s]);
}

Test(ids, keyset_grows_and_keeps_values) {
    lmb_keyset s = {0};
    lmb_error err;
    for (int i = 0; i < 50000; i++) {
        bool added;
        cr_assert_eq(lmb_keyset_put(&s, lmb_key_of_pos("f", i), (uint64_t)i * 3, &added, &err), 0);
        cr_assert(added);
    }
    for (int i = 0; i < 50000; i += 7) {
        uint64_t v;
        bool added;
        cr_assert(lmb_keyset_get(&s, lmb_key_of_pos("f", i), &v));
        cr_assert_eq(v, (uint64_t)i * 3);
        cr_assert_eq(lmb_keyset_put(&s, lmb_key_of_pos("f", i), 1, &added, &err), 0);
        cr_assert(!added);
    }
    cr_assert_not(lmb_keyset_get(&s, lmb_key_of_pos("g", 1), NULL));
    cr_assert_eq(s.n, 50000);
    lmb_keyset_free(&s);
}
