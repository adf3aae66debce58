/* sink.h — JSONL results out.  Lines are written whole (one write per line, no user-space buffer), so a
 * killed run leaves at most one torn last line, which a resume cuts off.  A file output is written under
 * "<path>.partial" and renamed to its name only once complete (after fsync); "-" streams to stdout.
 */
#ifndef LMB_SINK_H
#define LMB_SINK_H

#include <jansson.h>
#include <stdbool.h>

#include "../engine/error.h"

typedef struct lmb_sink lmb_sink;

/* Starts "<path>.partial" afresh (or stdout for "-"). */
int lmb_sink_open(const char *path, lmb_sink **out, lmb_error *err);
/* Appends to "<path>.partial" (prepared by lmb_resume_load). */
int lmb_sink_open_append(const char *path, lmb_sink **out, lmb_error *err);
/* Writes obj as one compact JSON line. */
int lmb_sink_write(lmb_sink *s, json_t *obj, lmb_error *err);
/* Writes one line of text (a '\n' is added). */
int lmb_sink_write_text(lmb_sink *s, const char *text, size_t len, lmb_error *err);
/* Completes the output (fsync + rename) and frees the sink. */
int lmb_sink_commit(lmb_sink *s, lmb_error *err);
/* Frees the sink, leaving the partial file in place (for a later resume). */
void lmb_sink_abandon(lmb_sink *s);

/* One generated answer of a request (OpenAI "n" asks for several). */
typedef struct lmb_choice {
    char *text;
    size_t len;
    const char *finish_reason; /* "stop", "length" */
    int completion_tokens;
} lmb_choice;

/* Builders for the plain format's lines. */
json_t *lmb_result_line(json_t *id, const char *text, size_t text_len, const char *finish_reason, int prompt_tokens,
                        int completion_tokens);
/* {"id", "error": {"code", "message", "line", "source"}}; code NULL means LMB_ERR_INVALID. */
json_t *lmb_error_line(json_t *id /* may be NULL */, const char *origin, long line, const char *message);
json_t *lmb_error_line_code(json_t *id, const char *origin, long line, const char *code, const char *message);

#endif
