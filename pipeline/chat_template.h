/* chat_template.h — built-in chat templates (no Jinja): llama2, llama3, chatml (Qwen2), internlm2, mistral,
 * raw.  Each renders messages + the generation prompt exactly as the model's HF template does with
 * add_generation_prompt=True; the rendered text carries its own BOS where the template has one, so it is
 * tokenized without the post-processor.  Detection reads tokenizer_config.json's chat_template.
 */
#ifndef LMB_CHAT_TEMPLATE_H
#define LMB_CHAT_TEMPLATE_H

#include <stddef.h>

#include "../engine/error.h"

typedef enum {
    LMB_TPL_RAW,
    LMB_TPL_LLAMA2,
    LMB_TPL_LLAMA3,
    LMB_TPL_CHATML,
    LMB_TPL_INTERNLM2,
    LMB_TPL_MISTRAL,
} lmb_chat_template;

typedef struct lmb_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} lmb_message;

/* "llama2" etc. -> template; -1 if unknown. */
int lmb_chat_template_parse(const char *name);
const char *lmb_chat_template_name(lmb_chat_template t);
/* Guesses the template from a Jinja chat_template string (NULL -> raw). */
lmb_chat_template lmb_chat_template_detect(const char *jinja);

/* The system prompt a ChatML template inserts when the conversation starts without one (Qwen2: "You are a
 * helpful assistant."; Qwen2.5 and SmolLM2 have their own), as a heap string; NULL when the template has none.
 * Read from the Jinja source: the first string literal that holds "<|im_start|>system\n" followed by literal
 * text up to "<|im_end|>" (Jinja's \n, \t, \', \" and \\ escapes undone). */
char *lmb_chat_template_default_system(const char *jinja);

/* Renders into a heap string.  bos/eos are the tokenizer's BOS/EOS strings (e.g. "<s>"), may be NULL.
 * default_system (chatml, internlm2; may be NULL): the system turn to open with when msgs has none. */
int lmb_chat_template_render(lmb_chat_template t, const lmb_message *msgs, int n, const char *bos,
                             const char *eos, const char *default_system, char **out, lmb_error *err);

/* The end-of-turn token text that should stop generation for this template (NULL if none). */
const char *lmb_chat_template_stop_token(lmb_chat_template t);

#endif
