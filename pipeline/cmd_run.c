/* cmd_run.c — `lmbatch run --model DIR --input FILE... --output OUT.jsonl [options]`: the command line of the
 * batch pipeline (runner.h); locking, shards, the manifest and exit codes are jobs/exec.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../jobs/exec.h"
#include "cli_common.h"
#include "commands.h"
#include "runner.h"

int lmb_cmd_run(int argc, char **argv) {
    const char *model = NULL, *output = NULL, *tpl = NULL, *format = "auto", *order = "completion", *shard = NULL;
    const char *devices = NULL, *manifest = NULL;
    lmb_arg_list inputs = {0};
    double interval = 10;
    bool help = false, resume = false, no_lock = false;
    lmb_cli_engine ce;
    lmb_cli_sampling cs;
    lmb_cli_engine_init(&ce);
    lmb_cli_sampling_init(&cs);
    lmb_arg opts[40] = {
        {"--model", LMB_ARG_STRING, &model, "model folder (config.json, *.safetensors, tokenizer.json)"},
        {"--input", LMB_ARG_STRING_LIST, &inputs,
         "JSONL prompts: a file (plain, .gz, .zst), an archive (tar, tar.gz, tar.zst, zip) of .jsonl members, a "
         "quoted glob pattern, or - for stdin; repeatable (read in the order given)"},
        {"--output", LMB_ARG_STRING, &output, "JSONL results, - for stdout"},
        {"--format", LMB_ARG_STRING, &format,
         "auto (default: per input file, OpenAI batch lines when they have \"custom_id\"), plain or openai"},
        {"--order", LMB_ARG_STRING, &order,
         "completion (default: each line as soon as it is done) or input (input order, bounded buffering)"},
        {"--resume", LMB_ARG_FLAG, &resume,
         "continue an interrupted output: skip the ids it already answers, redo a torn last line"},
        {"--shard", LMB_ARG_STRING, &shard,
         "K/N: take the lines whose id hashes to K of N, writing OUT.shard-K-of-N.jsonl (default: from "
         "SLURM_ARRAY_TASK_ID/_COUNT or SLURM_PROCID/SLURM_NTASKS; 0/1 = all lines)"},
        {"--devices", LMB_ARG_STRING, &devices,
         "0,1,...: one engine per device pulling from one input (CPU backend: the threads are split)"},
        {"--manifest", LMB_ARG_STRING, &manifest, "write a run manifest (JSON) there; \"auto\" = OUT.manifest.json"},
        {"--no-lock", LMB_ARG_FLAG, &no_lock, "do not take OUT.lock (two runs on one output would then clash)"},
        {"--chat-template", LMB_ARG_STRING, &tpl,
         "llama2, llama3, chatml, internlm2, mistral or raw (default: detected from tokenizer_config.json)"},
        {"--progress-interval", LMB_ARG_DOUBLE, &interval, "seconds between JSON progress lines when not on a TTY"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n = 13;
    n = lmb_cli_engine_opts(opts, n, &ce);
    n = lmb_cli_sampling_opts(opts, n, &cs);
    const char *synopsis = "lmbatch run --model DIR --input FILE.jsonl [--input ...] --output OUT.jsonl [options]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    lmb_exec ex = {.who = "lmbatch run", .hash_inputs = true};
    lmb_run_options *o = &ex.run;
    o->chat_template = -1;
    int dev_list[64], n_dev = 0;
    if (lmb_args_parse(argc, argv, opts, n, &pos, &err)) {
        fprintf(stderr, "lmbatch run: %s\n", err.msg);
        goto done;
    }
    if (help) {
        lmb_args_usage(synopsis, opts, n);
        rc = LMB_EXIT_OK;
        goto done;
    }
    if (!model || inputs.n == 0 || !output || pos.n > 0) {
        lmb_args_usage(synopsis, opts, n);
        goto done;
    }
    int f = lmb_format_parse(format);
    if (f < 0) {
        fprintf(stderr, "lmbatch run: --format must be auto, plain or openai, got \"%s\"\n", format);
        goto done;
    }
    if (strcmp(order, "completion") && strcmp(order, "input")) {
        fprintf(stderr, "lmbatch run: --order must be completion or input, got \"%s\"\n", order);
        goto done;
    }
    if (tpl && (o->chat_template = lmb_chat_template_parse(tpl)) < 0) {
        fprintf(stderr, "lmbatch run: unknown --chat-template \"%s\"\n", tpl);
        goto done;
    }
    if (!(interval > 0)) {
        fprintf(stderr, "lmbatch run: --progress-interval must be > 0\n");
        goto done;
    }
    if (lmb_cli_engine_config(&ce, &o->engine, &err) || lmb_cli_sampling_defaults(&cs, &o->defaults, &o->seed, &err) ||
        (devices && lmb_parse_devices(devices, dev_list, 64, &n_dev, &err))) {
        fprintf(stderr, "lmbatch run: %s\n", err.msg);
        goto done;
    }
    if (ce.device && devices) {
        fprintf(stderr, "lmbatch run: give --device or --devices, not both\n");
        goto done;
    }
    o->model_dir = model;
    o->progress_interval = interval;
    o->quiet = ce.quiet;
    o->format = (lmb_format)f;
    o->order = strcmp(order, "input") == 0 ? LMB_ORDER_INPUT : LMB_ORDER_COMPLETION;
    o->resume = resume;
    o->devices = n_dev ? dev_list : NULL;
    o->n_devices = n_dev;
    ex.input_patterns = inputs.items;
    ex.n_patterns = inputs.n;
    ex.output = output;
    ex.shard = shard;
    ex.lock_path = no_lock ? "-" : NULL;
    ex.manifest_path = !manifest ? NULL : strcmp(manifest, "auto") == 0 ? "" : manifest;
    rc = lmb_exec_batch(&ex);
done:
    lmb_args_free(opts, n, &pos);
    return rc;
}
