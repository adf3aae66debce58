/* main.c — `lmbatch <command> ...`: dispatches to the subcommands in pipeline/cmd_*.c.
 * The only place that turns a status into a process exit code. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifndef LMB_VERSION
#define LMB_VERSION "0.1.0-dev"
#endif

static int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("lmbatch %s\n", LMB_VERSION);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"run", lmb_cmd_run, "generate answers for a JSONL file of prompts"},
    {"bench", lmb_cmd_bench, "offline throughput: req/s, tok/s, TTFT, memory (random prompts or a dataset)"},
    {"score", lmb_cmd_score, "teacher-forced logits of token-id prompts, written as safetensors"},
    {"ppl", lmb_cmd_ppl, "perplexity of a model over a text (HF fixed-length procedure)"},
    {"version", cmd_version, "print the version"},
    {"inspect", lmb_cmd_inspect, "show a model folder's config, weight bytes and KV-cache cost"},
    {"tokenize", lmb_cmd_tokenize, "text -> token ids (or --decode ids -> text) with a model's tokenizer"},
    {"merge", lmb_cmd_merge, "join the shard outputs of a batch (--shard K/N), checking they are complete"},
    {"job", lmb_cmd_job, "run or check a job file (inputs, model, quantize stage, output; safe under cron)"},
    {"quantize", lmb_cmd_quantize, "quantize a model folder: `quantize awq` (W4A16 weights), `quantize kv` (KV-cache scales)"},
};

static void usage(FILE *f) {
    fprintf(f, "lmbatch %s — batch LLM inference\n\nusage: lmbatch <command> [options]\n\ncommands:\n",
            LMB_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`lmbatch <command> --help` shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? LMB_EXIT_USAGE : LMB_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lmbatch %s\n", LMB_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lmbatch: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return LMB_EXIT_USAGE;
}
