/* ids.h — what identifies a line, so that a run, a resumed run, a shard and `merge` all agree on it.
 *
 * Every input line has a key: its id when the id can be read (plain lines: "id", or the default id when the
 * line has none; OpenAI batch lines: "custom_id"), else its position ("origin:line").  A second line with an
 * id already seen is a duplicate: it is answered by an error line keyed by its position, so each key has
 * exactly one output line.  Keys are 128-bit hashes (two independent 64-bit lanes), kept in an open-addressing
 * set; the shard of a line is FNV-1a-64 of its id's compact JSON text (or of its position) modulo N.
 *
 * The same rules read output lines back (resume, merge): lmb_ident_output finds the key an output line
 * answers.  Invariant: lmb_ident_output(line written for input L).key == the key of L.
 */
#ifndef LMB_IDS_H
#define LMB_IDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/error.h"

typedef enum { LMB_FMT_AUTO = 0, LMB_FMT_PLAIN, LMB_FMT_OPENAI } lmb_format;

/* "auto", "plain", "openai" -> format; -1 if unknown. */
int lmb_format_parse(const char *name);
const char *lmb_format_name(lmb_format f);
/* The format of a stream from its first non-blank line: OpenAI when it is an object with "custom_id" (or,
 * for a line that is not valid JSON, when its text mentions "custom_id"); plain otherwise. */
lmb_format lmb_format_detect(const char *text, size_t len);

typedef struct lmb_key {
    uint64_t a, b;
} lmb_key;

/* ---- a set of keys, each with a 64-bit value ---------------------------------------------------------- */
typedef struct lmb_keyset {
    lmb_key *keys;
    uint64_t *vals;
    size_t cap, n;
} lmb_keyset;

/* Inserts k with val; *added (may be NULL) says whether it was new (an existing key keeps its value). */
int lmb_keyset_put(lmb_keyset *s, lmb_key k, uint64_t val, bool *added, lmb_error *err);
/* true when present; *val (may be NULL) gets its value. */
bool lmb_keyset_get(const lmb_keyset *s, lmb_key k, uint64_t *val);
void lmb_keyset_free(lmb_keyset *s);

lmb_key lmb_key_of_id(json_t *id);                         /* "i" + compact JSON of the id */
lmb_key lmb_key_of_pos(const char *origin, long line);      /* "p" + origin + ":" + line */
uint64_t lmb_shard_hash_id(json_t *id);                     /* FNV-1a-64 of the id's compact JSON */
uint64_t lmb_shard_hash_pos(const char *origin, long line); /* FNV-1a-64 of "origin:line" */

/* The identity of one input line. */
typedef struct lmb_input_ident {
    json_t *root;    /* the parsed line when it is a JSON object (owned), else NULL */
    json_t *id;      /* owned; NULL when the line has no readable id */
    bool id_default; /* plain line without "id": id is the line number, or "origin:line" when multi */
    char why[256];   /* when id is NULL: why (for the error line) */
} lmb_input_ident;

/* Reads the id of an input line of format fmt (PLAIN or OPENAI).  multi: the run reads several streams, so
 * default ids name their origin.  Never fails; free with lmb_input_ident_free. */
void lmb_ident_input(const char *text, size_t len, lmb_format fmt, const char *origin, long line, bool multi,
                     lmb_input_ident *out);
void lmb_input_ident_free(lmb_input_ident *id);
lmb_key lmb_input_key(const lmb_input_ident *id, const char *origin, long line);
uint64_t lmb_input_shard_hash(const lmb_input_ident *id, const char *origin, long line);

/* Keys of the lines of an input, in order: per-stream format, shard, duplicates.  The runner and `merge
 * --input` both go through it, so they agree on every key. */
typedef struct lmb_keyer {
    lmb_format forced; /* AUTO: detected per stream */
    bool multi;        /* lmb_source_multi of the input */
    int shard_k, shard_n;
    int stream;     /* current stream; start at -1 */
    lmb_format fmt; /* the current stream's format */
    lmb_keyset seen; /* ids read (this shard) -> first position: (stream << 40) | line */
} lmb_keyer;

typedef struct lmb_line_key {
    lmb_input_ident ident; /* owned: lmb_input_ident_free */
    lmb_format fmt;
    bool in_shard; /* false: another shard's line (nothing else below is set) */
    lmb_key key;   /* the key its output line answers */
    bool dup;      /* an id seen before: key is the line's position */
    int first_stream;
    long first_line;
} lmb_line_key;

void lmb_keyer_init(lmb_keyer *k, lmb_format forced, bool multi, int shard_k, int shard_n);
/* Classifies the next non-blank line.  -1 only when out of memory. */
int lmb_keyer_line(lmb_keyer *k, const char *text, size_t len, const char *origin, long number, int stream,
                   lmb_line_key *out, lmb_error *err);
void lmb_keyer_free(lmb_keyer *k);

/* What an output line answers. */
typedef struct lmb_output_ident {
    lmb_key key;
    uint64_t shard_hash;
    bool ok;  /* a result (not an error line) */
    bool dup; /* a duplicate-id error line */
    lmb_format fmt;
    long prompt_tokens, completion_tokens;
} lmb_output_ident;

/* 0, or -1 when text is not an output line lmbatch writes (torn, garbage). */
int lmb_ident_output(const char *text, size_t len, lmb_output_ident *out);

/* Error codes in error lines. */
#define LMB_ERR_INVALID "invalid_request"
#define LMB_ERR_DUPLICATE "duplicate_id"
#define LMB_ERR_ENGINE "request_failed"

#endif
