/* test_openai.c — OpenAI Batch API lines: chat and completions requests (content parts, n, sampling fields,
 * max_completion_tokens), the errors for what lmbatch does not serve, and the shape of the answer and error
 * lines (deterministic ids, usage, choices).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../pipeline/openai.h"

TestSuite(openai);

static int parse(const char *line, lmb_item *it, lmb_error *err) {
    lmb_item_defaults d;
    memset(&d, 0, sizeof d);
    lmb_sampling_default(&d.sampling);
    json_t *o = json_loads(line, 0, NULL);
    cr_assert(o, "test line is not JSON: %s", line);
    memset(it, 0, sizeof *it);
    int rc = lmb_openai_parse(o, json_object_get(o, "custom_id"), 1, &d, it, err);
    json_decref(o);
    return rc;
}

Test(openai, chat_request) {
    lmb_item it;
    lmb_error err;
    cr_assert_eq(parse("{\"custom_id\": \"a\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": "
                       "{\"model\": \"gpt\", \"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                       "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi \"}, {\"type\": "
                       "\"text\", \"text\": \"there\"}]}], \"max_completion_tokens\": 9, \"temperature\": 0.5, "
                       "\"top_p\": 0.9, \"seed\": 4, \"stop\": [\"\\n\", \"END\"], \"n\": 2, "
                       "\"frequency_penalty\": 0}}",
                       &it, &err),
                 0, "%s", err.msg);
    cr_assert_eq(it.format, LMB_FMT_OPENAI);
    cr_assert_eq(it.endpoint, LMB_EP_CHAT);
    cr_assert_eq(it.n_messages, 2);
    cr_assert_str_eq(it.messages[1].content, "Hi there");
    cr_assert_eq(it.sampling.max_tokens, 9);
    cr_assert_float_eq(it.sampling.temperature, 0.5f, 1e-6);
    cr_assert(it.has_seed && it.sampling.seed == 4);
    cr_assert_eq(it.n_stop, 2);
    cr_assert_eq(it.n, 2);
    cr_assert_str_eq(it.model, "gpt");
    lmb_item_free(&it);
}

Test(openai, completions_request) {
    lmb_item it;
    lmb_error err;
    cr_assert_eq(parse("{\"custom_id\": \"b\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": [\"Once\"], "
                       "\"max_tokens\": 3}}",
                       &it, &err),
                 0, "%s", err.msg);
    cr_assert_eq(it.endpoint, LMB_EP_COMPLETIONS);
    cr_assert_str_eq(it.prompt, "Once");
    cr_assert_eq(it.n, 1);
    lmb_item_free(&it);
}

Test(openai, what_is_not_served) {
    static const struct {
        const char *line, *expect;
    } cases[] = {
        {"{\"custom_id\": \"c\", \"url\": \"/v1/embeddings\", \"body\": {}}", "/v1/embeddings"},
        {"{\"custom_id\": \"c\", \"method\": \"GET\", \"url\": \"/v1/completions\", \"body\": {}}", "POST"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\"}", "body"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": [1, 2]}}", "prompt"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/chat/completions\", \"body\": {\"prompt\": \"x\"}}", "messages"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"x\", \"n\": 0}}", "\"n\""},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"x\", \"logprobs\": 2}}",
         "logprobs"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"x\", \"presence_penalty\": 1}}",
         "presence_penalty"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"x\", \"stream\": true}}",
         "stream"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"x\", \"max_tokens\": 0}}",
         "max_tokens"},
        {"{\"custom_id\": \"c\", \"url\": \"/v1/chat/completions\", \"body\": {\"messages\": [{\"role\": \"user\", "
         "\"content\": [{\"type\": \"image_url\"}]}]}}",
         "text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lmb_item it;
        lmb_error err;
        cr_assert_eq(parse(cases[i].line, &it, &err), -1, "accepted: %s", cases[i].line);
        cr_assert(strstr(err.msg, cases[i].expect), "message \"%s\" does not mention %s", err.msg, cases[i].expect);
        lmb_item_free(&it);
    }
}

Test(openai, answer_and_error_lines) {
    lmb_item it;
    lmb_error err;
    cr_assert_eq(parse("{\"custom_id\": \"a1\", \"url\": \"/v1/chat/completions\", \"body\": {\"messages\": "
                       "[{\"role\": \"user\", \"content\": \"x\"}], \"n\": 2}}",
                       &it, &err),
                 0);
    lmb_choice ch[2] = {{"one", 3, "stop", 4}, {"two", 3, "length", 5}};
    json_t *l = lmb_openai_result_line(&it, ch, 2, 10, "tiny", 1700000000);
    json_t *l2 = lmb_openai_result_line(&it, ch, 2, 10, "tiny", 1700000000);
    cr_assert(json_equal(l, l2), "the same request gives the same line (ids derive from the custom_id)");
    cr_assert_str_eq(json_string_value(json_object_get(l, "custom_id")), "a1");
    cr_assert(json_is_null(json_object_get(l, "error")));
    json_t *body = json_object_get(json_object_get(l, "response"), "body");
    cr_assert_str_eq(json_string_value(json_object_get(body, "model")), "tiny");
    cr_assert_eq(json_integer_value(json_object_get(body, "created")), 1700000000);
    json_t *c1 = json_array_get(json_object_get(body, "choices"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c1, "message"), "content")), "two");
    cr_assert_str_eq(json_string_value(json_object_get(c1, "finish_reason")), "length");
    json_t *u = json_object_get(body, "usage");
    cr_assert_eq(json_integer_value(json_object_get(u, "completion_tokens")), 9);
    cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")), 19);
    const char *rid = json_string_value(json_object_get(l, "id"));
    cr_assert(!strncmp(rid, "batch_req_", 10) && strlen(rid) == 26, "%s", rid);
    json_t *e = lmb_openai_error_line(it.id, "f.jsonl", 3, LMB_ERR_DUPLICATE, "dup");
    cr_assert(json_is_null(json_object_get(e, "response")));
    cr_assert_str_neq(json_string_value(json_object_get(e, "id")), rid, "a duplicate gets its own request id");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "code")), "duplicate_id");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(e, "error"), "line")), 3);
    json_decref(l);
    json_decref(l2);
    json_decref(e);
    lmb_item_free(&it);
}
