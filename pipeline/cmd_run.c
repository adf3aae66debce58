/* cmd_run.c — `lmbatch run --model DIR --input FILE.jsonl --output OUT.jsonl [options]`. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "runner.h"

int lmb_cmd_run(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *output = NULL, *tpl = NULL;
    double interval = 10;
    bool help = false;
    lmb_cli_engine ce;
    lmb_cli_sampling cs;
    lmb_cli_engine_init(&ce);
    lmb_cli_sampling_init(&cs);
    lmb_arg opts[32] = {
        {"--model", LMB_ARG_STRING, &model, "model folder (config.json, *.safetensors, tokenizer.json)"},
        {"--input", LMB_ARG_STRING, &input, "JSONL prompts (plain or .gz/.zst), - for stdin"},
        {"--output", LMB_ARG_STRING, &output, "JSONL results, - for stdout"},
        {"--chat-template", LMB_ARG_STRING, &tpl,
         "llama2, llama3, chatml, internlm2, mistral or raw (default: detected from tokenizer_config.json)"},
        {"--progress-interval", LMB_ARG_DOUBLE, &interval, "seconds between progress lines when not on a TTY"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n = 6;
    n = lmb_cli_engine_opts(opts, n, &ce);
    n = lmb_cli_sampling_opts(opts, n, &cs);
    const char *synopsis = "lmbatch run --model DIR --input FILE.jsonl --output OUT.jsonl [options]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    lmb_run_options o = {.progress_interval = interval, .chat_template = -1};
    if (lmb_args_parse(argc, argv, opts, n, &pos, &err)) {
        fprintf(stderr, "lmbatch run: %s\n", err.msg);
        goto done;
    }
    if (help) {
        lmb_args_usage(synopsis, opts, n);
        rc = LMB_EXIT_OK;
        goto done;
    }
    if (!model || !input || !output || pos.n > 0) {
        lmb_args_usage(synopsis, opts, n);
        goto done;
    }
    if (tpl && (o.chat_template = lmb_chat_template_parse(tpl)) < 0) {
        fprintf(stderr, "lmbatch run: unknown --chat-template \"%s\"\n", tpl);
        goto done;
    }
    if (lmb_cli_engine_config(&ce, &o.engine, &err) || lmb_cli_sampling_defaults(&cs, &o.defaults, &o.seed, &err)) {
        fprintf(stderr, "lmbatch run: %s\n", err.msg);
        goto done;
    }
    o.model_dir = model;
    o.input = input;
    o.output = output;
    o.progress_interval = interval;
    o.quiet = ce.quiet;
    lmb_run_summary sum;
    if (lmb_run(&o, &sum, &err)) {
        fprintf(stderr, "lmbatch run: %s\n", err.msg);
        rc = LMB_EXIT_MODEL;
        goto done;
    }
    if (!o.quiet)
        fprintf(stderr, "lmbatch run: %ld lines, %ld ok, %ld errors, %ld prompt + %ld generated tokens in %.1f s (%.1f tok/s)\n",
                sum.lines, sum.ok, sum.errors, sum.prompt_tokens, sum.completion_tokens, sum.seconds,
                sum.seconds > 0 ? sum.completion_tokens / sum.seconds : 0);
    rc = sum.errors ? LMB_EXIT_PARTIAL : LMB_EXIT_OK;
done:
    lmb_args_free(opts, n, &pos);
    return rc;
}
