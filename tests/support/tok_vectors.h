/* tok_vectors.h — helpers shared by the tokenizer tests: where ../shared is, reading JSON reference
 * vectors, comparing id lists, and assembling the tokenizers of tests/fixtures/variants. */
#ifndef LMB_TEST_TOK_VECTORS_H
#define LMB_TEST_TOK_VECTORS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../pipeline/tokenizer.h"

/* $LMB_TEST_SHARED, else "../shared"; NULL when that folder does not exist. */
const char *lmb_test_shared(void);
/* Parses a JSON file; NULL (after printing why) when it cannot. */
json_t *lmb_test_json(const char *path);
/* Whether the JSON array of integers equals ids[0..n). */
bool lmb_test_ids_eq(json_t *arr, const int32_t *ids, size_t n);
/* "[1, 2, 3]" for messages (static buffer, truncated). */
const char *lmb_test_ids_str(const int32_t *ids, size_t n);
/* The tokenizer.json text of variant v of tests/fixtures/variants/variants.json (caller frees). */
char *lmb_test_variant_json(json_t *all, json_t *v);

#endif
