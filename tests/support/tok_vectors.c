/* tok_vectors.c — see tok_vectors.h. */
#include "tok_vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *lmb_test_shared(void) {
    const char *d = getenv("LMB_TEST_SHARED");
    if (!d || !*d) d = "../shared";
    struct stat st;
    return stat(d, &st) == 0 && S_ISDIR(st.st_mode) ? d : NULL;
}

json_t *lmb_test_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!j) fprintf(stderr, "%s:%d: %s\n", path, je.line, je.text);
    return j;
}

bool lmb_test_ids_eq(json_t *arr, const int32_t *ids, size_t n) {
    if (!json_is_array(arr) || json_array_size(arr) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, i)) != ids[i]) return false;
    return true;
}

const char *lmb_test_ids_str(const int32_t *ids, size_t n) {
    static char buf[512];
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "[");
    for (size_t i = 0; i < n && o < sizeof buf - 16; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, i ? ", %d" : "%d", ids[i]);
    snprintf(buf + o, sizeof buf - o, "%s]", o >= sizeof buf - 16 ? "..." : "");
    return buf;
}

char *lmb_test_variant_json(json_t *all, json_t *v) {
    json_t *model = json_deep_copy(json_object_get(json_object_get(all, "models"), json_string_value(json_object_get(v, "model"))));
    json_object_update(model, json_object_get(v, "model_overrides"));
    json_t *tj = json_deep_copy(json_object_get(v, "tokenizer"));
    json_object_set_new(tj, "model", model);
    char *s = json_dumps(tj, JSON_COMPACT);
    json_decref(tj);
    return s;
}
