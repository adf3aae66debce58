/* openai.h — the OpenAI Batch API line format, in and out.
 *
 * In:  {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions" | "/v1/completions",
 *       "body": {"model", "messages" | "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "n", ...}}
 * Out: {"id": "batch_req_...", "custom_id", "response": {"status_code": 200, "request_id",
 *       "body": {"id", "object", "created", "model", "choices": [...], "usage"}}, "error": null}
 *   or {"id", "custom_id", "response": null, "error": {"code", "message", "source", "line"}}.
 * Ids are derived from the custom_id (or the line's position), so reruns write the same ids.
 */
#ifndef LMB_OPENAI_H
#define LMB_OPENAI_H

#include <jansson.h>
#include <time.h>

#include "request.h"
#include "sink.h"

/* Parses a batch line already read as the object o (custom_id id, borrowed) into it. */
int lmb_openai_parse(json_t *o, json_t *id, long line_no, const lmb_item_defaults *d, lmb_item *it, lmb_error *err);

/* The answer line for a served request: n choices; model is the name echoed when the body named none. */
json_t *lmb_openai_result_line(const lmb_item *it, const lmb_choice *choices, int n, int prompt_tokens,
                               const char *model, time_t created);
/* An error line (custom_id may be NULL); code is one of LMB_ERR_*. */
json_t *lmb_openai_error_line(json_t *custom_id, const char *origin, long line, const char *code, const char *message);

#endif
