/* tok_json.c — what the tokenizer.json component parsers (normalizer, pre-tokenizer, decoder) share: the
 * component's "type", a "Sequence"'s list walked with a path for error messages, optional booleans.
 */
#include <stdio.h>

#include "tok_internal.h"

bool lmb_tok_json_bool(json_t *j, const char *key, bool dflt) {
    json_t *v = json_object_get(j, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

const char *lmb_tok_json_type(json_t *j, const char *where, lmb_error *err) {
    json_t *type = json_object_get(j, "type");
    if (!json_is_object(j) || !json_is_string(type)) {
        lmb_fail(err, "%s: expected an object with a string \"type\"", where);
        return NULL;
    }
    return json_string_value(type);
}

int lmb_tok_json_sequence(json_t *j, const char *list_key, lmb_tok_json_each each, void *ctx, const char *where,
                          lmb_error *err) {
    json_t *list = json_object_get(j, list_key);
    if (!json_is_array(list)) return lmb_fail(err, "%s.%s: expected an array", where, list_key);
    char sub[512];
    for (size_t i = 0; i < json_array_size(list); i++) {
        snprintf(sub, sizeof sub, "%s.%s[%zu]", where, list_key, i);
        if (each(json_array_get(list, i), ctx, sub, err)) return -1;
    }
    return 0;
}
