/* chat_template.c — the built-in templates (see chat_template.h).  Each renderer follows the model's
 * official Jinja template with add_generation_prompt=True:
 *   llama2    <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
 *   llama3    <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>... assistant header
 *   chatml    <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n, opened by the template's
 *             default system turn when the conversation has none (Qwen2, Qwen2.5, SmolLM2)
 *   internlm2 <s> + chatml
 *   mistral   <s>[INST] {system\n\n}{user} [/INST]{assistant}</s>[INST] {user} [/INST]
 *   raw       the contents joined by "\n" (BOS comes from the tokenizer's post-processor)
 */
#include "chat_template.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static const char *names[] = {"raw", "llama2", "llama3", "chatml", "internlm2", "mistral"};

int lmb_chat_template_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(name, names[i]) == 0) return i;
    if (strcmp(name, "qwen2") == 0) return LMB_TPL_CHATML;
    return -1;
}

const char *lmb_chat_template_name(lmb_chat_template t) { return names[t]; }

lmb_chat_template lmb_chat_template_detect(const char *j) {
    if (!j) return LMB_TPL_RAW;
    if (strstr(j, "<|start_header_id|>")) return LMB_TPL_LLAMA3;
    if (strstr(j, "<|im_start|>")) return strstr(j, "bos_token") ? LMB_TPL_INTERNLM2 : LMB_TPL_CHATML;
    if (strstr(j, "[INST]")) return strstr(j, "<<SYS>>") ? LMB_TPL_LLAMA2 : LMB_TPL_MISTRAL;
    return LMB_TPL_RAW;
}

char *lmb_chat_template_default_system(const char *j) {
    static const char *const opens[] = {"<|im_start|>system\\n", "<|im_start|>system\n"}; /* escaped, raw */
    for (const char *p = j; p && *p; p++) {
        size_t ol = 0;
        for (int k = 0; k < 2 && !ol; k++)
            if (!strncmp(p, opens[k], strlen(opens[k]))) ol = strlen(opens[k]);
        if (!ol) continue;
        const char *t = p + ol, *end = strstr(t, "<|im_end|>");
        if (!end || end == t) continue;
        /* literal text only: no quote (the literal would end) and no Jinja expression in between */
        bool literal = true;
        for (const char *q = t; q < end && literal; q++) {
            if (*q == '\\' && q + 1 < end) {
                q++;
                continue;
            }
            if (*q == '\'' || *q == '"' || *q == '{' || *q == '}') literal = false;
        }
        if (!literal) continue;
        lmb_strbuf b = {0};
        for (const char *q = t; q < end; q++) {
            char ch = *q;
            if (ch == '\\' && q + 1 < end) {
                ch = *++q;
                ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
            }
            lmb_sb_append(&b, &ch, 1);
        }
        return lmb_sb_take(&b);
    }
    return NULL;
}

const char *lmb_chat_template_stop_token(lmb_chat_template t) {
    switch (t) {
    case LMB_TPL_LLAMA3: return "<|eot_id|>";
    case LMB_TPL_CHATML:
    case LMB_TPL_INTERNLM2: return "<|im_end|>";
    default: return NULL;
    }
}

/* Trims ASCII whitespace on both ends, as Jinja's |trim / str.strip() do for the llama2/mistral templates. */
static void append_stripped(lmb_strbuf *b, const char *s) {
    const char *e = s + strlen(s);
    while (s < e && strchr(" \t\n\r\f\v", *s)) s++;
    while (e > s && strchr(" \t\n\r\f\v", e[-1])) e--;
    lmb_sb_append(b, s, (size_t)(e - s));
}

static int check_roles(const lmb_message *m, int n, bool system_first_only, lmb_error *err) {
    for (int i = 0; i < n; i++) {
        const char *r = m[i].role;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            return lmb_fail(err, "messages[%d]: role \"%s\" is not system, user or assistant", i, r);
        if (system_first_only && i > 0 && !strcmp(r, "system"))
            return lmb_fail(err, "messages[%d]: this template accepts a system message only first", i);
    }
    return 0;
}

/* llama2 and mistral: [INST] pairs; the system prompt joins the first user turn. */
static int render_inst(lmb_strbuf *b, const lmb_message *m, int n, const char *bos, const char *eos, bool llama2,
                       lmb_error *err) {
    if (check_roles(m, n, true, err)) return -1;
    const char *sys = NULL;
    if (n > 0 && !strcmp(m[0].role, "system")) {
        sys = m[0].content;
        m++, n--;
    }
    for (int i = 0; i < n; i++) {
        bool user = !strcmp(m[i].role, "user");
        if (user != (i % 2 == 0))
            return lmb_fail(err, "messages must alternate user/assistant starting with user (message %d is %s)", i,
                            m[i].role);
        if (user) {
            if (llama2 || i == 0) lmb_sb_puts(b, bos ? bos : "");
            lmb_sb_puts(b, "[INST] ");
            /* the template builds the turn's content, then (llama2) strips it as a whole */
            lmb_strbuf c = {0};
            if (sys && i == 0) lmb_sb_printf(&c, llama2 ? "<<SYS>>\n%s\n<</SYS>>\n\n" : "%s\n\n", sys);
            lmb_sb_puts(&c, m[i].content);
            if (c.oom) return lmb_fail(err, "out of memory rendering the chat template");
            if (llama2) append_stripped(b, c.s);
            else lmb_sb_puts(b, c.s);
            lmb_sb_free(&c);
            lmb_sb_puts(b, " [/INST]");
        } else {
            if (llama2) {
                lmb_sb_puts(b, " ");
                append_stripped(b, m[i].content);
                lmb_sb_puts(b, " ");
            } else {
                lmb_sb_puts(b, m[i].content);
            }
            lmb_sb_puts(b, eos ? eos : "");
        }
    }
    return 0;
}

int lmb_chat_template_render(lmb_chat_template t, const lmb_message *m, int n, const char *bos, const char *eos,
                             const char *default_system, char **out, lmb_error *err) {
    *out = NULL;
    if (n < 1) return lmb_fail(err, "messages is empty");
    lmb_strbuf b = {0};
    int rc = 0;
    switch (t) {
    case LMB_TPL_RAW:
        for (int i = 0; i < n; i++) {
            if (i) lmb_sb_puts(&b, "\n");
            lmb_sb_puts(&b, m[i].content);
        }
        break;
    case LMB_TPL_LLAMA2:
    case LMB_TPL_MISTRAL:
        rc = render_inst(&b, m, n, bos, eos, t == LMB_TPL_LLAMA2, err);
        break;
    case LMB_TPL_LLAMA3:
        if ((rc = check_roles(m, n, false, err))) break;
        lmb_sb_puts(&b, bos ? bos : "<|begin_of_text|>");
        for (int i = 0; i < n; i++) {
            lmb_sb_printf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
            append_stripped(&b, m[i].content);
            lmb_sb_puts(&b, "<|eot_id|>");
        }
        lmb_sb_puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case LMB_TPL_CHATML:
    case LMB_TPL_INTERNLM2:
        if ((rc = check_roles(m, n, false, err))) break;
        if (t == LMB_TPL_INTERNLM2 && bos) lmb_sb_puts(&b, bos);
        if (default_system && strcmp(m[0].role, "system"))
            lmb_sb_printf(&b, "<|im_start|>system\n%s<|im_end|>\n", default_system);
        for (int i = 0; i < n; i++) lmb_sb_printf(&b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
        lmb_sb_puts(&b, "<|im_start|>assistant\n");
        break;
    }
    if (rc) {
        lmb_sb_free(&b);
        return -1;
    }
    *out = lmb_sb_take(&b);
    return *out ? 0 : lmb_fail(err, "out of memory rendering the chat template");
}
