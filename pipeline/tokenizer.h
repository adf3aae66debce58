/* tokenizer.h — HF `tokenizer.json` (BPE family) with exact parity with HF tokenizers.
 *
 * Encoding runs: added/special tokens split out first, then normalizer, pre-tokenizer, BPE model, then the
 * post-processor (BOS insertion) when LMB_TOK_ADD_SPECIAL is set.  Decoding runs the declared decoders.
 * lmb_detok streams text token by token and never emits a broken UTF-8 sequence.
 *
 * Supported: model BPE (merges as "a b" or ["a","b"], byte_fallback, unk_token with fuse_unk, ignore_merges,
 * continuing_subword_prefix / end_of_word_suffix); normalizers Sequence, Prepend, Replace, NFC, NFKC, NFD,
 * NFKD, Lowercase, Strip; pre-tokenizers Sequence, Split, Metaspace, ByteLevel, Digits, Whitespace,
 * WhitespaceSplit, CharDelimiterSplit, Punctuation; post-processors TemplateProcessing, ByteLevel,
 * BertProcessing, RobertaProcessing, Sequence, null; decoders Sequence, ByteFallback, Metaspace, ByteLevel,
 * Fuse, Strip, Replace, BPEDecoder.  Anything else fails to load with a message naming the type, as do ids
 * above 16,777,215 (the id tables are dense).
 *
 * Invalid UTF-8 input: HF tokenizers only ever sees valid Unicode strings, so there is no reference for
 * it.  lmb_tokenizer_encode replaces each invalid sequence with U+FFFD first, exactly as Python's
 * bytes.decode("utf-8", errors="replace") does (one U+FFFD per maximal invalid subpart), and encodes the
 * result: encode(bytes) == HF encode(bytes.decode("utf-8", "replace")).
 *
 * Thread safety: a loaded tokenizer may be used by several threads at once (encode, decode, detok).
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
/* Loads tokenizer.json text held in memory; `name` is used in error messages. */
int lmb_tokenizer_load_json(const char *json, size_t len, const char *name, lmb_tokenizer **out, lmb_error *err);
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
/* tokenizer_config.json's add_bos_token: 1, 0, or -1 when absent.  Informational: which special tokens
 * LMB_TOK_ADD_SPECIAL adds is decided by tokenizer.json's post_processor alone, as HF tokenizers and
 * transformers 5 do (they ignore add_bos_token when tokenizer.json is present). */
int lmb_tokenizer_config_add_bos(const lmb_tokenizer *t);

/* Incremental detokenizer for streaming: feed ids one at a time; each call appends only complete new text.
 * This is vLLM's / TGI's method: decode the window ids[prefix_offset..] and the context ids[prefix_offset..
 * read_offset]; when the window's text is longer and does not end in U+FFFD (an incomplete character),
 * emit the characters past the context and move the window.  Chunks are whole characters, so each is
 * valid UTF-8.  Their concatenation equals lmb_tokenizer_decode of all the ids whenever that decode is
 * prefix-stable (the text of the first k ids, less a trailing U+FFFD, begins the text of all of them), as
 * it is for well-formed output.  Where HF's own rules rewrite earlier text no stream can match, since text
 * once emitted stays: ByteFallback turns a whole run of byte tokens into U+FFFDs once the run proves not
 * to be UTF-8, and a BPEDecoder with an empty suffix spaces out every token but the last.  (Tokenizers with
 * a Strip decoder of two or more leading, or any trailing, characters are decoded from the first id at
 * each step, since their window's text depends on where the window starts.) */
typedef struct lmb_detok {
    lmb_ids ids;
    size_t prefix_offset; /* start of the window decoded for context */
    size_t read_offset;   /* ids before this have had their text emitted */
    bool skip_special;    /* decode with skip_special (false after lmb_detok_init; set it before pushing) */
} lmb_detok;
void lmb_detok_init(lmb_detok *d);
void lmb_detok_free(lmb_detok *d);
/* Appends id and writes the newly complete text (possibly empty) to a heap string *out. */
int lmb_detok_push(lmb_detok *d, const lmb_tokenizer *t, int32_t id, char **out, size_t *out_len,
                   lmb_error *err);
/* End of stream: writes whatever text is still held back (e.g. a trailing U+FFFD from bytes that never
 * formed a character) to a heap string *out, possibly empty. */
int lmb_detok_flush(lmb_detok *d, const lmb_tokenizer *t, char **out, size_t *out_len, lmb_error *err);

#endif
