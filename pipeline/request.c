/* request.c — parsing and validating one JSONL input line (see request.h). */
#include "request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lmb_item_free(lmb_item *it) {
    json_decref(it->id);
    free(it->prompt);
    for (int i = 0; i < it->n_messages; i++) {
        free((char *)it->messages[i].role);
        free((char *)it->messages[i].content);
    }
    free(it->messages);
    for (int i = 0; i < it->n_stop; i++) free(it->stop[i]);
    free(it->model);
    memset(it, 0, sizeof *it);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int get_number(json_t *o, const char *key, double lo, double hi, bool lo_open, double *out, bool *found,
                      lmb_error *err) {
    json_t *v = json_object_get(o, key);
    *found = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return lmb_fail(err, "field \"%s\" must be a number", key);
    double x = json_number_value(v);
    if (!isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
        return lmb_fail(err, "field \"%s\" must be in %s%g, %g], got %g", key, lo_open ? "(" : "[", lo, hi, x);
    *out = x;
    *found = true;
    return 0;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, bool *found,
                   lmb_error *err) {
    json_t *v = json_object_get(o, key);
    *found = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        if (json_is_string(v))
            return lmb_fail(err, "field \"%s\" must be an integer, got \"%s\"", key, json_string_value(v));
        return lmb_fail(err, "field \"%s\" must be an integer", key);
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return lmb_fail(err, "field \"%s\" must be in [%lld, %lld], got %lld", key, lo, hi, x);
    *out = x;
    *found = true;
    return 0;
}

int lmb_item_parse_sampling(json_t *o, lmb_item *it, lmb_error *err) {
    lmb_sampling *s = &it->sampling;
    double d;
    long long i;
    bool f;
    if (get_int(o, "max_tokens", 1, 1 << 30, &i, &f, err)) return -1;
    if (f) s->max_tokens = (int)i;
    if (get_int(o, "max_completion_tokens", 1, 1 << 30, &i, &f, err)) return -1; /* OpenAI's newer name */
    if (f) s->max_tokens = (int)i;
    if (get_number(o, "temperature", 0, 100, false, &d, &f, err)) return -1;
    if (f) s->temperature = (float)d;
    if (get_number(o, "top_p", 0, 1, true, &d, &f, err)) return -1;
    if (f) s->top_p = (float)d;
    if (get_int(o, "top_k", -1, 1 << 30, &i, &f, err)) return -1;
    if (f) s->top_k = i < 0 ? 0 : (int)i; /* -1 = off, as in vLLM */
    if (get_number(o, "min_p", 0, 1, false, &d, &f, err)) return -1;
    if (f) s->min_p = (float)d;
    if (get_number(o, "repetition_penalty", 0, 100, true, &d, &f, err)) return -1;
    if (f) s->repetition_penalty = (float)d;
    if (get_int(o, "seed", 0, INT64_MAX, &i, &f, err)) return -1;
    if (f) {
        s->seed = (uint64_t)i;
        it->has_seed = true;
    }
    json_t *v = json_object_get(o, "ignore_eos");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return lmb_fail(err, "field \"ignore_eos\" must be true or false");
        s->ignore_eos = json_is_true(v);
    }
    v = json_object_get(o, "stop_token_ids");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > LMB_MAX_STOP_IDS)
            return lmb_fail(err, "field \"stop_token_ids\" must be an array of at most %d integers", LMB_MAX_STOP_IDS);
        s->n_stop_ids = 0;
        for (size_t k = 0; k < json_array_size(v); k++) {
            json_t *e = json_array_get(v, k);
            if (!json_is_integer(e) || json_integer_value(e) < 0)
                return lmb_fail(err, "field \"stop_token_ids\"[%zu] must be a non-negative integer", k);
            s->stop_ids[s->n_stop_ids++] = (int32_t)json_integer_value(e);
        }
    }
    v = json_object_get(o, "stop");
    if (v && !json_is_null(v)) {
        for (int k = 0; k < it->n_stop; k++) free(it->stop[k]);
        it->n_stop = 0;
        if (json_is_string(v)) {
            if (json_string_length(v) == 0) return lmb_fail(err, "field \"stop\" must not be an empty string");
            if (!(it->stop[it->n_stop++] = dup_str(json_string_value(v)))) return lmb_fail(err, "out of memory");
        } else if (json_is_array(v) && json_array_size(v) <= LMB_MAX_STOP_STRINGS) {
            for (size_t k = 0; k < json_array_size(v); k++) {
                json_t *e = json_array_get(v, k);
                if (!json_is_string(e) || json_string_length(e) == 0)
                    return lmb_fail(err, "field \"stop\"[%zu] must be a non-empty string", k);
                if (!(it->stop[it->n_stop++] = dup_str(json_string_value(e)))) return lmb_fail(err, "out of memory");
            }
        } else {
            return lmb_fail(err, "field \"stop\" must be a string or an array of at most %d strings",
                            LMB_MAX_STOP_STRINGS);
        }
    }
    return 0;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts joined together. */
static char *content_text(json_t *c, size_t k, lmb_error *err) {
    if (json_is_string(c)) {
        char *s = dup_str(json_string_value(c));
        if (!s) lmb_fail(err, "out of memory");
        return s;
    }
    if (!json_is_array(c)) {
        lmb_fail(err, "messages[%zu] must be an object with string \"role\" and \"content\"", k);
        return NULL;
    }
    size_t total = 1;
    for (size_t j = 0; j < json_array_size(c); j++) {
        json_t *p = json_array_get(c, j), *type = json_object_get(p, "type"), *text = json_object_get(p, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
            lmb_fail(err, "messages[%zu].content[%zu] must be a {\"type\": \"text\", \"text\": ...} part (only text "
                     "content is supported)", k, j);
            return NULL;
        }
        total += json_string_length(text);
    }
    char *s = malloc(total), *w = s;
    if (!s) {
        lmb_fail(err, "out of memory");
        return NULL;
    }
    for (size_t j = 0; j < json_array_size(c); j++) {
        json_t *text = json_object_get(json_array_get(c, j), "text");
        memcpy(w, json_string_value(text), json_string_length(text));
        w += json_string_length(text);
    }
    *w = '\0';
    return s;
}

int lmb_item_parse_messages(json_t *v, lmb_item *it, lmb_error *err) {
    if (!json_is_array(v) || json_array_size(v) == 0)
        return lmb_fail(err, "field \"messages\" must be a non-empty array of {\"role\", \"content\"} objects");
    size_t n = json_array_size(v);
    it->messages = calloc(n, sizeof *it->messages);
    if (!it->messages) return lmb_fail(err, "out of memory");
    for (size_t k = 0; k < n; k++) {
        json_t *m = json_array_get(v, k);
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role) || !content)
            return lmb_fail(err, "messages[%zu] must be an object with string \"role\" and \"content\"", k);
        char *text = content_text(content, k, err);
        if (!text) return -1;
        it->messages[k].content = text;
        it->messages[k].role = dup_str(json_string_value(role));
        it->n_messages++;
        if (!it->messages[k].role) return lmb_fail(err, "out of memory");
    }
    return 0;
}

int lmb_item_init(lmb_item *it, long line_no, const lmb_item_defaults *d, lmb_error *err) {
    memset(it, 0, sizeof *it);
    it->line = line_no;
    it->sampling = d->sampling;
    it->format = LMB_FMT_PLAIN;
    it->n = 1;
    for (int k = 0; k < d->n_stop; k++)
        if (!(it->stop[it->n_stop++] = dup_str(d->stop[k]))) return lmb_fail(err, "out of memory");
    return 0;
}

int lmb_item_parse(const char *line, size_t len, long line_no, const lmb_item_defaults *d, lmb_item *it,
                   lmb_error *err) {
    if (lmb_item_init(it, line_no, d, err)) return -1;
    lmb_input_ident ident;
    lmb_ident_input(line, len, LMB_FMT_PLAIN, NULL, line_no, false, &ident);
    int rc = ident.root && ident.id ? lmb_item_parse_object(ident.root, ident.id, line_no, d, it, err)
                                    : lmb_fail(err, "%s", ident.why);
    lmb_input_ident_free(&ident);
    return rc;
}

int lmb_item_parse_object(json_t *o, json_t *id, long line_no, const lmb_item_defaults *d, lmb_item *it,
                          lmb_error *err) {
    lmb_item_free(it);
    if (lmb_item_init(it, line_no, d, err)) return -1;
    it->id = json_incref(id);
    json_t *prompt = json_object_get(o, "prompt"), *messages = json_object_get(o, "messages");
    if (prompt && messages) return lmb_fail(err, "a line has either \"prompt\" or \"messages\", not both");
    if (prompt) {
        if (!json_is_string(prompt)) return lmb_fail(err, "field \"prompt\" must be a string");
        if (!(it->prompt = dup_str(json_string_value(prompt)))) return lmb_fail(err, "out of memory");
    } else if (messages) {
        if (lmb_item_parse_messages(messages, it, err)) return -1;
    } else {
        return lmb_fail(err, "a line needs \"prompt\" (a string) or \"messages\" (an array)");
    }
    return lmb_item_parse_sampling(o, it, err);
}

uint64_t lmb_item_id_hash(const lmb_item *it) {
    char *s = json_dumps(it->id, JSON_ENCODE_ANY | JSON_COMPACT);
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const char *p = s; p && *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    free(s);
    return h;
}
