/* test_chat_template.c — the built-in chat templates render exactly what the HF Jinja templates render
 * (add_generation_prompt=True) for a system + multi-turn conversation and for a single user turn, ChatML
 * templates open with their default system turn (Qwen2, Qwen2.5) when the conversation has none, and a
 * template is detected from tokenizer_config.json's chat_template. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/chat_template.h"
#include "../pipeline/tokenizer.h"
#include "support/fixtures.h"

static const lmb_message conv[4] = {
    {"system", "Be brief."}, {"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "Bye"}};

static void expect(lmb_chat_template t, const lmb_message *m, int n, const char *bos, const char *eos,
                   const char *want) {
    char *got = NULL;
    lmb_error err;
    cr_assert_eq(lmb_chat_template_render(t, m, n, bos, eos, NULL, &got, &err), 0, "%s", err.msg);
    cr_assert_str_eq(got, want, "%s rendered\n%s\nwanted\n%s", lmb_chat_template_name(t), got, want);
    free(got);
}

Test(chat_template, llama2) {
    expect(LMB_TPL_LLAMA2, conv, 4, "<s>", "</s>",
           "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] Bye [/INST]");
    expect(LMB_TPL_LLAMA2, conv + 1, 1, "<s>", "</s>", "<s>[INST] Hi there [/INST]");
}

Test(chat_template, llama3) {
    expect(LMB_TPL_LLAMA3, conv, 4, "<|begin_of_text|>", "<|end_of_text|>",
           "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
    cr_assert_str_eq(lmb_chat_template_stop_token(LMB_TPL_LLAMA3), "<|eot_id|>");
}

Test(chat_template, chatml_and_internlm2) {
    const char *turns = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
                        "<|im_start|>assistant\n";
    expect(LMB_TPL_CHATML, conv, 4, NULL, NULL, turns);
    char want[512];
    snprintf(want, sizeof want, "<s>%s", turns);
    expect(LMB_TPL_INTERNLM2, conv, 4, "<s>", "</s>", want);
    cr_assert_str_eq(lmb_chat_template_stop_token(LMB_TPL_CHATML), "<|im_end|>");
}

/* The default system turn of ChatML templates, read from the Jinja source: Qwen2-Instruct's template, and the
 * structure of Qwen2.5's (a tools branch whose system turn is not one literal, then the default as a literal).
 * The renders were made by jinja2 3.1 from these same strings (add_generation_prompt=True). */
static const char *QWEN2_JINJA =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char *QWEN25_JINJA =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}"
    "\n        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\n<tools>\" }}\n"
    "    {{- \"\\n</tools><|im_end|>\\n\" }}\n{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}"
    "\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}"
    "\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

Test(chat_template, chatml_default_system) {
    char *q2 = lmb_chat_template_default_system(QWEN2_JINJA), *q25 = lmb_chat_template_default_system(QWEN25_JINJA);
    cr_assert_str_eq(q2, "You are a helpful assistant.");
    cr_assert_str_eq(q25, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    cr_assert_null(lmb_chat_template_default_system(NULL));
    cr_assert_null(lmb_chat_template_default_system("{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + "
                                                    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
                                                    "'\\n'}}{% endfor %}"),
                   "InternLM2's template has no default");
    char *esc = lmb_chat_template_default_system("{{ '<|im_start|>system\\nYou\\'re brief.\\tOK<|im_end|>\\n' }}");
    cr_assert_str_eq(esc, "You're brief.\tOK", "Jinja escapes undone");
    free(esc);
    const char *rest = "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                       "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n";
    const char *defaults[2] = {q2, q25};
    for (int i = 0; i < 2; i++) {
        char want[1024], *got = NULL;
        lmb_error err;
        snprintf(want, sizeof want, "<|im_start|>system\n%s<|im_end|>\n%s", defaults[i], rest);
        cr_assert_eq(lmb_chat_template_render(LMB_TPL_CHATML, conv + 1, 3, NULL, NULL, defaults[i], &got, &err), 0);
        cr_assert_str_eq(got, want, "no system message: the template's default opens");
        free(got);
        snprintf(want, sizeof want, "<|im_start|>system\nBe brief.<|im_end|>\n%s", rest);
        cr_assert_eq(lmb_chat_template_render(LMB_TPL_CHATML, conv, 4, NULL, NULL, defaults[i], &got, &err), 0);
        cr_assert_str_eq(got, want, "the conversation's own system message replaces the default");
        free(got);
    }
    free(q2), free(q25);
}

Test(chat_template, mistral) {
    expect(LMB_TPL_MISTRAL, conv, 4, "<s>", "</s>", "<s>[INST] Be brief.\n\nHi there [/INST]Hello!</s>[INST] Bye [/INST]");
    expect(LMB_TPL_MISTRAL, conv + 1, 1, "<s>", "</s>", "<s>[INST] Hi there [/INST]");
}

Test(chat_template, raw_and_names) {
    expect(LMB_TPL_RAW, conv + 1, 1, NULL, NULL, "Hi there");
    const char *names[] = {"raw", "llama2", "llama3", "chatml", "internlm2", "mistral"};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(lmb_chat_template_parse(names[i]), i);
        cr_assert_str_eq(lmb_chat_template_name((lmb_chat_template)i), names[i]);
    }
    cr_assert_eq(lmb_chat_template_parse("jinja"), -1);
}

Test(chat_template, detect) {
    cr_assert_eq(lmb_chat_template_detect(NULL), LMB_TPL_RAW);
    cr_assert_eq(lmb_chat_template_detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}"),
                 LMB_TPL_LLAMA3);
    cr_assert_eq(lmb_chat_template_detect("{{ '<|im_start|>' + message['role'] + '\\n' }}"), LMB_TPL_CHATML);
    char dir[512];
    LMB_TEST_NEED_SHARED(dir, "tokenizers/llama2");
    lmb_tokenizer *t;
    lmb_error err;
    cr_assert_eq(lmb_tokenizer_load_dir(dir, &t, &err), 0, "%s", err.msg);
    const char *jinja = lmb_tokenizer_chat_template(t);
    if (jinja) cr_assert_eq(lmb_chat_template_detect(jinja), LMB_TPL_LLAMA2, "llama2's own template");
    lmb_tokenizer_free(t);
}
