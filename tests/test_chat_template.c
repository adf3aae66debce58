/* test_chat_template.c — the built-in chat templates render exactly what the HF Jinja templates render
 * (add_generation_prompt=True) for a system + multi-turn conversation and for a single user turn, and a
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
    cr_assert_eq(lmb_chat_template_render(t, m, n, bos, eos, &got, &err), 0, "%s", err.msg);
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
