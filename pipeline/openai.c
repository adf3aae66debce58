/* openai.c — OpenAI Batch API lines (see openai.h).  The body's sampling fields share the plain format's
 * parser (request.c), so both formats accept the same ranges; OpenAI-only fields that would change the
 * answer and that lmbatch does not implement (logprobs, non-zero penalties, tools) are rejected, not ignored. */
#include "openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int reject_unsupported(json_t *body, lmb_error *err) {
    static const char *penalties[] = {"frequency_penalty", "presence_penalty"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, penalties[i]);
        if (v && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0))
            return lmb_fail(err, "body field \"%s\" is not supported (only 0)", penalties[i]);
    }
    json_t *best_of = json_object_get(body, "best_of");
    if (best_of && !json_is_null(best_of) && !(json_is_integer(best_of) && json_integer_value(best_of) == 1))
        return lmb_fail(err, "body field \"best_of\" is not supported (only 1)");
    static const char *unsupported[] = {"logprobs", "top_logprobs", "tools", "functions", "logit_bias", "echo", "suffix"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        json_t *v = json_object_get(body, unsupported[i]);
        if (v && !json_is_null(v) && !json_is_false(v))
            return lmb_fail(err, "body field \"%s\" is not supported", unsupported[i]);
    }
    json_t *stream = json_object_get(body, "stream");
    if (json_is_true(stream)) return lmb_fail(err, "body field \"stream\" must be false in a batch");
    return 0;
}

int lmb_openai_parse(json_t *o, json_t *id, long line_no, const lmb_item_defaults *d, lmb_item *it, lmb_error *err) {
    lmb_item_free(it);
    if (lmb_item_init(it, line_no, d, err)) return -1;
    it->id = json_incref(id);
    it->format = LMB_FMT_OPENAI;
    json_t *method = json_object_get(o, "method"), *url = json_object_get(o, "url"), *body = json_object_get(o, "body");
    if (method && !(json_is_string(method) && strcmp(json_string_value(method), "POST") == 0))
        return lmb_fail(err, "field \"method\" must be \"POST\"");
    if (!json_is_string(url)) return lmb_fail(err, "field \"url\" is required: \"/v1/chat/completions\" or \"/v1/completions\"");
    const char *u = json_string_value(url);
    if (strcmp(u, "/v1/chat/completions") == 0)
        it->endpoint = LMB_EP_CHAT;
    else if (strcmp(u, "/v1/completions") == 0)
        it->endpoint = LMB_EP_COMPLETIONS;
    else
        return lmb_fail(err, "field \"url\" must be \"/v1/chat/completions\" or \"/v1/completions\", got \"%s\"", u);
    if (!json_is_object(body)) return lmb_fail(err, "field \"body\" must be an object");
    json_t *model = json_object_get(body, "model");
    if (json_is_string(model) && !(it->model = dup_str(json_string_value(model)))) return lmb_fail(err, "out of memory");
    if (reject_unsupported(body, err)) return -1;
    if (it->endpoint == LMB_EP_CHAT) {
        json_t *m = json_object_get(body, "messages");
        if (!m) return lmb_fail(err, "body field \"messages\" is required for %s", u);
        if (lmb_item_parse_messages(m, it, err)) return lmb_error_prefix(err, "body");
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (!json_is_string(p))
            return lmb_fail(err, "body field \"prompt\" must be a string (or an array of one string) for %s", u);
        if (!(it->prompt = dup_str(json_string_value(p)))) return lmb_fail(err, "out of memory");
    }
    json_t *n = json_object_get(body, "n");
    if (n && !json_is_null(n)) {
        if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > LMB_MAX_CHOICES)
            return lmb_fail(err, "body field \"n\" must be an integer in [1, %d]", LMB_MAX_CHOICES);
        it->n = (int)json_integer_value(n);
    }
    if (lmb_item_parse_sampling(body, it, err)) return lmb_error_prefix(err, "body");
    return 0;
}

/* A stable hex tag for the generated ids: from the FNV-1a hash of the custom_id (or of the position). */
static void tag_of(json_t *custom_id, const char *origin, long line, char out[17]) {
    uint64_t h = custom_id ? lmb_shard_hash_id(custom_id) : lmb_shard_hash_pos(origin, line);
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL; /* spread FNV's similar hashes of similar ids */
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    h ^= h >> 31;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

json_t *lmb_openai_result_line(const lmb_item *it, const lmb_choice *ch, int n, int prompt_tokens, const char *model,
                               time_t created) {
    char tag[17], bid[48], rid[48];
    tag_of(it->id, NULL, it->line, tag);
    bool chat = it->endpoint == LMB_EP_CHAT;
    snprintf(bid, sizeof bid, "batch_req_%s", tag);
    snprintf(rid, sizeof rid, "%s-%s", chat ? "chatcmpl" : "cmpl", tag);
    json_t *choices = json_array();
    int completion = 0;
    for (int i = 0; i < n; i++) {
        json_t *text = json_stringn(ch[i].text ? ch[i].text : "", ch[i].len);
        if (!text) text = json_string("\xef\xbf\xbd");
        json_t *c = chat ? json_pack("{s:i,s:{s:s,s:o},s:n,s:s}", "index", i, "message", "role", "assistant",
                                     "content", text, "logprobs", "finish_reason", ch[i].finish_reason)
                         : json_pack("{s:i,s:o,s:n,s:s}", "index", i, "text", text, "logprobs", "finish_reason",
                                     ch[i].finish_reason);
        json_array_append_new(choices, c);
        completion += ch[i].completion_tokens;
    }
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:i,s:i,s:i}}", "id", rid, "object",
                             chat ? "chat.completion" : "text_completion", "created", (json_int_t)created, "model",
                             it->model ? it->model : model ? model : "", "choices", choices, "usage", "prompt_tokens",
                             prompt_tokens, "completion_tokens", completion, "total_tokens", prompt_tokens + completion);
    return json_pack("{s:s,s:O,s:{s:i,s:s,s:o},s:n}", "id", bid, "custom_id", it->id, "response", "status_code", 200,
                     "request_id", tag, "body", body, "error");
}

json_t *lmb_openai_error_line(json_t *custom_id, const char *origin, long line, const char *code, const char *message) {
    char tag[17], bid[48];
    bool dup = code && strcmp(code, LMB_ERR_DUPLICATE) == 0; /* its own id: the first line already has this one */
    tag_of(dup ? NULL : custom_id, origin, line, tag);
    snprintf(bid, sizeof bid, "batch_req_%s", tag);
    json_t *e = json_pack("{s:s,s:s,s:s,s:I}", "code", code ? code : LMB_ERR_INVALID, "message", message, "source",
                          origin ? origin : "", "line", (json_int_t)line);
    return json_pack("{s:s,s:O,s:n,s:o}", "id", bid, "custom_id", custom_id ? custom_id : json_null(), "response",
                     "error", e);
}
