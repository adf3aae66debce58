/* request.h — one input line turned into a request: id, prompt or chat messages, sampling overrides.
 *
 * Lines look like {"id": ..., "prompt": "..."} or {"id": ..., "messages": [{"role","content"}...]} with
 * optional max_tokens, temperature, top_p, top_k, min_p, repetition_penalty, seed, stop, stop_token_ids,
 * ignore_eos.  A bad line yields a message naming the field and what was expected; the id, when it could
 * be read, is kept so the error line can carry it.  Unknown fields are ignored.
 */
#ifndef LMB_REQUEST_H
#define LMB_REQUEST_H

#include <jansson.h>
#include <stdbool.h>

#include "../engine/engine.h"
#include "chat_template.h"
#include "ids.h"

#define LMB_MAX_STOP_STRINGS 16

typedef struct lmb_item {
    long line;    /* 1-based line number in its input */
    json_t *id;   /* the id as given (string or integer), or the line number; owned reference */
    char *prompt; /* set for "prompt" lines */
    lmb_message *messages; /* set for "messages" lines (strings owned) */
    int n_messages;
    lmb_sampling sampling;
    bool has_seed;
    char *stop[LMB_MAX_STOP_STRINGS];
    int n_stop;
    lmb_format format; /* PLAIN or OPENAI: the shape of its output line */
    int n;             /* choices to generate (OpenAI "n"; 1 for plain lines) */
    int endpoint;      /* OpenAI: LMB_EP_CHAT or LMB_EP_COMPLETIONS */
    char *model;       /* OpenAI body "model", echoed in the response; may be NULL */
} lmb_item;

enum { LMB_EP_CHAT = 0, LMB_EP_COMPLETIONS = 1 };
#define LMB_MAX_CHOICES 64

/* Run-wide defaults every line starts from. */
typedef struct lmb_item_defaults {
    lmb_sampling sampling;
    const char *stop[LMB_MAX_STOP_STRINGS];
    int n_stop;
} lmb_item_defaults;

/* Parses one line.  On failure, returns -1 with err set; out->id is still set when the line had a
 * readable id (the caller frees out with lmb_item_free either way). */
int lmb_item_parse(const char *line, size_t len, long line_no, const lmb_item_defaults *d, lmb_item *out,
                   lmb_error *err);
/* As lmb_item_parse, on a line already parsed into the object o whose id was read by lmb_ident_input (id is
 * borrowed; the item takes a reference). */
int lmb_item_parse_object(json_t *o, json_t *id, long line_no, const lmb_item_defaults *d, lmb_item *out,
                          lmb_error *err);
void lmb_item_free(lmb_item *it);

/* The parts shared with the OpenAI format (openai.c): sampling fields of o applied to it; "messages" (content
 * a string or an array of {"type": "text", "text"} parts). */
int lmb_item_parse_sampling(json_t *o, lmb_item *it, lmb_error *err);
int lmb_item_parse_messages(json_t *v, lmb_item *it, lmb_error *err);
/* Starts an item: line number, the defaults, n = 1. */
int lmb_item_init(lmb_item *it, long line_no, const lmb_item_defaults *d, lmb_error *err);

/* A stable 64-bit hash of the id's JSON text (seeds, sharding). */
uint64_t lmb_item_id_hash(const lmb_item *it);

#endif
