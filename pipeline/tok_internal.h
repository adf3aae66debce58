/* tok_internal.h — the tokenizer's private data structures, shared by pipeline/tok_*.c and tokenizer.c.
 *
 * A loaded tokenizer is immutable except for the BPE word cache, which has its own locks: encode and
 * decode may run concurrently on one lmb_tokenizer.  Sequence components are flattened at load time into
 * arrays of steps (a Sequence of Sequences applies its leaves in order, so nothing is lost).  Every text
 * buffer the pipeline passes around is valid UTF-8: encode replaces invalid input first.
 */
#ifndef LMB_TOK_INTERNAL_H
#define LMB_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- small containers -------------------------------------------------------------------------------- */

typedef struct lmb_buf {
    char *p;
    size_t n, cap;
} lmb_buf;
int lmb_buf_reserve(lmb_buf *b, size_t extra); /* room for n + extra + 1 bytes */
int lmb_buf_append(lmb_buf *b, const void *s, size_t n);
void lmb_buf_free(lmb_buf *b);

/* ---- tokenizer.json components (tok_json.c) ---------------------------------------------------------- */

/* j[key] when it is a boolean, else dflt. */
bool lmb_tok_json_bool(json_t *j, const char *key, bool dflt);
/* The "type" of component j (an object with a string "type"), or NULL after filling err. */
const char *lmb_tok_json_type(json_t *j, const char *where, lmb_error *err);
/* A "Sequence" component: each(element, ctx, "where.list_key[i]", err) for the elements of j[list_key], in
 * order; the first failure stops it. */
typedef int (*lmb_tok_json_each)(json_t *element, void *ctx, const char *where, lmb_error *err);
int lmb_tok_json_sequence(json_t *j, const char *list_key, lmb_tok_json_each each, void *ctx, const char *where,
                          lmb_error *err);

/* A run of bytes [off, off+len) of some buffer; id >= 0 marks an added token already resolved. */
typedef struct lmb_span {
    size_t off, len;
    int32_t id;
    bool at_origin; /* starts at byte 0 of the original input (Metaspace prepend_scheme "first") */
} lmb_span;
typedef struct lmb_spans {
    lmb_span *v;
    size_t n, cap;
} lmb_spans;
int lmb_spans_push(lmb_spans *s, size_t off, size_t len, int32_t id, bool at_origin);

uint64_t lmb_hash_bytes(const void *p, size_t n);

/* String -> int32 map.  Keys are copied into an arena; lmb_strmap_key() pointers stay valid until the
 * next put (so take them only once loading is done). */
typedef struct lmb_strmap_entry {
    uint64_t hash;
    size_t off;
    uint32_t len;
    int32_t val;
} lmb_strmap_entry;
typedef struct lmb_strmap {
    uint32_t *slots; /* entry index + 1, 0 = empty */
    size_t mask;
    lmb_strmap_entry *e;
    size_t n, cap;
    lmb_buf keys;
} lmb_strmap;
int lmb_strmap_put(lmb_strmap *m, const char *k, size_t n, int32_t v); /* overwrites; -1 on OOM */
int32_t lmb_strmap_get(const lmb_strmap *m, const char *k, size_t n);   /* -1 if absent */
void lmb_strmap_free(lmb_strmap *m);

/* ---- patterns (Split, Replace) --------------------------------------------------------------------- */

typedef enum { LMB_PAT_LITERAL, LMB_PAT_REGEX, LMB_PAT_WHITESPACE } lmb_pat_kind;
typedef struct lmb_pattern {
    lmb_pat_kind kind;
    char *lit; /* LITERAL */
    size_t lit_len;
    pcre2_code *re; /* REGEX (JIT-compiled when available) */
} lmb_pattern;
/* Parses {"String": s} or {"Regex": r}; `where` names the JSON field for messages. */
int lmb_pattern_parse(json_t *j, lmb_pattern *p, const char *where, lmb_error *err);
int lmb_pattern_compile(lmb_pattern *p, const char *regex, const char *where, lmb_error *err);
void lmb_pattern_free(lmb_pattern *p);
/* Finds the next match starting at or after `from`; 1 found ([*ms, *me)), 0 none, -1 regex failure. */
int lmb_pattern_next(const lmb_pattern *p, const char *s, size_t n, size_t from, pcre2_match_data *md,
                     size_t *ms, size_t *me);

/* ---- normalizers (tok_normalize.c) ------------------------------------------------------------------ */

typedef enum {
    LMB_NORM_PREPEND, LMB_NORM_REPLACE, LMB_NORM_NFC, LMB_NORM_NFKC, LMB_NORM_NFD, LMB_NORM_NFKD,
    LMB_NORM_LOWERCASE, LMB_NORM_STRIP,
} lmb_norm_kind;
typedef struct lmb_norm {
    lmb_norm_kind kind;
    char *str; /* PREPEND: the prefix; REPLACE: the replacement */
    size_t str_len;
    lmb_pattern pat; /* REPLACE */
    bool left, right; /* STRIP */
} lmb_norm;

/* ---- pre-tokenizers (tok_pretok.c) ------------------------------------------------------------------ */

typedef enum {
    LMB_SPLIT_REMOVED, LMB_SPLIT_ISOLATED, LMB_SPLIT_MERGED_PREV, LMB_SPLIT_MERGED_NEXT, LMB_SPLIT_CONTIGUOUS,
} lmb_split_behavior;
typedef enum { LMB_PT_SPLIT, LMB_PT_METASPACE, LMB_PT_BYTELEVEL } lmb_pretok_kind;
enum { LMB_PREPEND_ALWAYS, LMB_PREPEND_FIRST, LMB_PREPEND_NEVER };
typedef struct lmb_pretok {
    lmb_pretok_kind kind;
    lmb_pattern pat; /* SPLIT (Digits, Whitespace... are Splits too); BYTELEVEL with use_regex */
    lmb_split_behavior behavior;
    bool invert;
    char repl[8]; /* METASPACE replacement character, UTF-8 */
    int repl_len;
    int prepend_scheme;
    bool split;            /* METASPACE */
    bool add_prefix_space; /* BYTELEVEL */
    bool use_regex;
} lmb_pretok;

/* GPT-2's bytes<->unicode table: byte b is written as the code point `enc` (1 or 2 UTF-8 bytes). */
typedef struct lmb_bytelevel {
    char enc[256][2];
    uint8_t enc_len[256];
    int16_t dec[512]; /* code point -> byte, -1 if the code point is not one of the 256 */
} lmb_bytelevel;
void lmb_bytelevel_init(lmb_bytelevel *bl);

/* ---- BPE model (tok_bpe.c) ------------------------------------------------------------------------ */

typedef struct lmb_pairmap_slot {
    uint64_t key; /* (left id << 32 | right id) + 1; 0 = empty */
    uint32_t rank;
    int32_t new_id;
} lmb_pairmap_slot;
typedef struct lmb_pairmap {
    lmb_pairmap_slot *s;
    size_t mask, n;
} lmb_pairmap;

typedef struct lmb_bpe_cache lmb_bpe_cache;

typedef struct lmb_bpe {
    lmb_strmap vocab;
    int32_t max_id; /* highest model id */
    lmb_pairmap merges;
    int32_t unk_id; /* -1: none */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL if absent) */
    size_t prefix_len, suffix_len;
    int32_t byte_id[256];    /* ids of <0xXX> for byte_fallback (-1 if absent) */
    int32_t *small_char_id;  /* id of each code point < 0x800 as a whole token, -1 if absent */
    bool split_meta;         /* words may be cut before each U+2581 that follows another character */
    lmb_bpe_cache *cache;
} lmb_bpe;

typedef struct lmb_bpe_scratch {
    int32_t *id, *prev, *next;
    uint32_t *len;
    size_t cap;
    struct lmb_bpe_merge *heap;
    size_t heap_n, heap_cap;
} lmb_bpe_scratch;

int lmb_bpe_parse(json_t *model, lmb_bpe *m, const char *path, lmb_error *err);
void lmb_bpe_free(lmb_bpe *m);
/* Appends the ids of one pre-tokenized word. */
int lmb_bpe_encode_word(const lmb_bpe *m, const char *w, size_t n, lmb_bpe_scratch *s, lmb_ids *out);
void lmb_bpe_scratch_free(lmb_bpe_scratch *s);

/* ---- added tokens (tok_added.c) -------------------------------------------------------------------- */

typedef struct lmb_added {
    char *content;
    size_t len;
    char *norm; /* normalized=true: the normalized content, what HF's id_to_token and decode give */
    size_t norm_len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} lmb_added;

typedef struct lmb_trie_node {
    int32_t child, sibling; /* first child, next sibling (-1 = none) */
    int32_t added;          /* index into lmb_tokenizer.added of the token ending here, -1 if none */
    unsigned char byte;
} lmb_trie_node;
typedef struct lmb_trie {
    lmb_trie_node *v;
    size_t n, cap;
    int32_t root_child[256]; /* children of the root, by byte */
    bool empty;
} lmb_trie;
int lmb_trie_add(lmb_trie *t, const char *s, size_t n, int32_t added);
void lmb_trie_init(lmb_trie *t);
void lmb_trie_free(lmb_trie *t);

/* ---- decoders (tok_decode.c) ----------------------------------------------------------------------- */

typedef enum {
    LMB_DEC_BYTEFALLBACK, LMB_DEC_METASPACE, LMB_DEC_BYTELEVEL, LMB_DEC_FUSE, LMB_DEC_STRIP, LMB_DEC_REPLACE,
    LMB_DEC_BPE_SUFFIX,
} lmb_dec_kind;
typedef struct lmb_decoder {
    lmb_dec_kind kind;
    char repl[8]; /* METASPACE */
    int repl_len;
    bool strip_first; /* METASPACE: prepend_scheme != never */
    lmb_pattern pat;  /* REPLACE */
    char *content;    /* REPLACE: replacement; STRIP: the character; BPE_SUFFIX: the suffix */
    size_t content_len;
    size_t start, stop; /* STRIP */
} lmb_decoder;

/* Token ids index dense tables (id -> text, special flags), so a file with an absurd id would make the loader
 * allocate gigabytes; real vocabularies stay far below this (the largest are ~260k). */
#define LMB_TOK_MAX_ID 16777215

/* ---- the tokenizer ---------------------------------------------------------------------------------- */

struct lmb_tokenizer {
    lmb_bpe bpe;
    lmb_added *added;
    size_t n_added;
    lmb_trie trie_raw, trie_norm; /* added tokens matched before / after normalization */
    lmb_norm *norm;
    size_t n_norm;
    lmb_pretok *pretok;
    size_t n_pretok;
    lmb_bytelevel bl;
    int32_t *post_prefix, *post_suffix; /* post-processor ids around the sequence (single template) */
    size_t n_post_prefix, n_post_suffix;
    bool has_decoder;
    lmb_decoder *dec;
    size_t n_dec;
    bool detok_from_start; /* lmb_detok decodes from the first id each step (see tok_detok.c) */
    /* id -> text, added tokens taking precedence over the model, as HF's decode does */
    const char **tok;
    uint32_t *tok_len;
    uint8_t *special;
    int32_t vocab_size;
    /* tokenizer_config.json */
    char *chat_template, *bos_token, *eos_token;
    int add_bos_token, add_eos_token; /* -1 = not declared */
};

/* Scratch for one encode call; everything is reused across the call's segments and words. */
typedef struct lmb_enc_scratch {
    lmb_buf nbuf, pa, pb, pc; /* normalized text; pre-tokenizer ping-pong buffers; a temporary */
    char *tmp;            /* normalizer temporaries */
    size_t tmp_cap;
    lmb_spans seg, sub, sa, sb, st;
    pcre2_match_data *md;
    lmb_bpe_scratch bpe;
} lmb_enc_scratch;

/* tok_normalize.c */
int lmb_norm_parse(json_t *j, lmb_norm **steps, size_t *n, const char *where, lmb_error *err);
void lmb_norm_free(lmb_norm *steps, size_t n);
/* Runs the steps over s[0..n) into out (replacing its contents). */
int lmb_normalize(const lmb_norm *steps, size_t n_steps, const char *s, size_t n, lmb_enc_scratch *sc,
                  lmb_buf *out, lmb_error *err);

/* tok_pretok.c */
int lmb_pretok_parse(json_t *j, lmb_pretok **steps, size_t *n, const char *where, lmb_error *err);
void lmb_pretok_free(lmb_pretok *steps, size_t n);
/* Splits s[0..n) into words; on return *words index into *buf (one of sc->pa / sc->pb). */
int lmb_pretokenize(const lmb_tokenizer *t, const char *s, size_t n, bool at_origin, lmb_enc_scratch *sc,
                    lmb_buf **buf, lmb_spans **words, lmb_error *err);
/* The generic HF split: cuts s into pieces by pattern matches, per behavior, appending spans (offsets
 * relative to s plus `base`) to out.  Empty pieces are dropped. */
int lmb_split(const lmb_pattern *p, lmb_split_behavior behavior, bool invert, const char *s, size_t n,
              size_t base, bool at_origin, pcre2_match_data *md, lmb_spans *out, lmb_error *err);

/* tok_added.c */
int lmb_added_parse(json_t *j, lmb_tokenizer *t, const char *path, lmb_error *err);
/* Cuts s into plain-text spans (id -1) and added-token spans (id >= 0), as HF's AddedVocabulary does. */
int lmb_added_split(const lmb_tokenizer *t, const lmb_trie *trie, const char *s, size_t n, lmb_spans *out);

/* tok_decode.c */
int lmb_decoder_parse(json_t *j, lmb_decoder **steps, size_t *n, const char *where, lmb_error *err);
void lmb_decoder_free(lmb_decoder *steps, size_t n);

#endif
