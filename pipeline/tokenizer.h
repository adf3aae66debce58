/* tokenizer.h — HF `tokenizer.json` (BPE family) with exact parity with HF tokenizers.
 *
 * Encoding runs: added/special tokens split out first, then normalizer, pre-tokenizer, BPE model, then the
 * post-processor (BOS insertion) when LMB_TOK_ADD_SPECIAL is set.  Decoding runs the declared decoders.
 * lmb_detok streams text token by token and never emits a broken UTF-8 sequence.
 */
#ifndef LMB_TOKENIZER_H
#define LMB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/error.h"

typedef struct lmb_tokenizer lmb_tokenizer;

/* A growable id array owned by the caller (free with lmb_ids_free). */
typedef struct lmb_ids {
    int32_t *ids;
    size_t n, cap;
} lmb_ids;
int lmb_ids_push(lmb_ids *v, int32_t id);
void lmb_ids_free(lmb_ids *v);

/* Loads a tokenizer.json file. */
int lmb_tokenizer_load(const char *tokenizer_json_path, lmb_tokenizer **out, lmb_error *err);
/* Loads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json (add_bos_token, chat_template). */
int lmb_tokenizer_load_dir(const char *dir, lmb_tokenizer **out, lmb_error *err);
void lmb_tokenizer_free(lmb_tokenizer *t);

enum {
    LMB_TOK_ADD_SPECIAL = 1, /* apply the post-processor (e.g. BOS), as HF add_special_tokens=True */
};

/* Appends the ids of text[0..len) to out.  Added tokens in the text are matched (as HF does). */
int lmb_tokenizer_encode(const lmb_tokenizer *t, const char *text, size_t len, int flags, lmb_ids *out,
                         lmb_error *err);
/* Decodes ids into a NUL-terminated heap string (invalid UTF-8 becomes U+FFFD, as HF does). */
int lmb_tokenizer_decode(const lmb_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                         size_t *out_len, lmb_error *err);

int lmb_tokenizer_vocab_size(const lmb_tokenizer *t);     /* highest id + 1, added tokens included */
const char *lmb_tokenizer_id_to_token(const lmb_tokenizer *t, int32_t id); /* NULL if out of range */
int32_t lmb_tokenizer_token_to_id(const lmb_tokenizer *t, const char *token); /* -1 if absent */
bool lmb_tokenizer_is_special(const lmb_tokenizer *t, int32_t id);
/* The raw chat_template string from tokenizer_config.json, or NULL. */
const char *lmb_tokenizer_chat_template(const lmb_tokenizer *t);
/* The bos/eos token strings from tokenizer_config.json (NULL if not declared). */
const char *lmb_tokenizer_bos_token(const lmb_tokenizer *t);
const char *lmb_tokenizer_eos_token(const lmb_tokenizer *t);

/* Incremental detokenizer for streaming: feed ids one at a time; each call appends only complete new text. */
typedef struct lmb_detok {
    lmb_ids ids;
    size_t prefix_offset; /* start of the window decoded for context */
    size_t read_offset;   /* ids before this have had their text emitted */
} lmb_detok;
void lmb_detok_init(lmb_detok *d);
void lmb_detok_free(lmb_detok *d);
/* Appends id and writes the newly complete text (possibly empty) to a heap string *out. */
int lmb_detok_push(lmb_detok *d, const lmb_tokenizer *t, int32_t id, char **out, size_t *out_len,
                   lmb_error *err);

#endif
