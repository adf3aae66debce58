/* cmd_quantize.c — `lmbatch quantize <method> ...`: dispatches to the quantization subcommands.
 * `awq` (W4A16 weights, pipeline/cmd_quantize_awq.c) and `kv` (KV-cache quantization parameters,
 * pipeline/cmd_quantize_kv.c). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} subcommands[] = {
    {"awq", lmb_cmd_quantize_awq, "AWQ W4A16 weights (calibrate, search, pack in AutoAWQ's GEMM layout)"},
    {"kv", lmb_cmd_quantize_kv, "KV-cache int8/int4 scales from calibration text (for --kv-params)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lmbatch quantize <method> [options]\n\nmethods:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-6s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\n`lmbatch quantize <method> --help` shows a method's options.\n");
}

int lmb_cmd_quantize(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? LMB_EXIT_USAGE : LMB_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0) return subcommands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lmbatch quantize: unknown method \"%s\"\n\n", argv[1]);
    usage(stderr);
    return LMB_EXIT_USAGE;
}
