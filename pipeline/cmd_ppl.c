/* cmd_ppl.c — `lmbatch ppl --model DIR --text FILE [--ctx 1024 --stride 512] [--max-chars N] [--json]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/fileio.h"
#include "cli_common.h"
#include "commands.h"
#include "perplexity.h"
#include "progress.h"
#include "tokenizer.h"

static void show(int w, int n, void *user) {
    if (*(bool *)user) return;
    fprintf(stderr, "\rppl: window %d/%d", w, n);
    if (w == n) fputc('\n', stderr);
}

int lmb_cmd_ppl(int argc, char **argv) {
    const char *model = NULL, *text_path = NULL;
    long ctx = 1024, stride = 512, max_chars = -1;
    bool json = false, help = false;
    lmb_cli_engine ce;
    lmb_cli_engine_init(&ce);
    ce.max_batch_tokens = 1024;
    lmb_arg opts[24] = {
        {"--model", LMB_ARG_STRING, &model, "model folder"},
        {"--text", LMB_ARG_STRING, &text_path, "text file (plain or .gz/.zst)"},
        {"--ctx", LMB_ARG_INT, &ctx, "window length in tokens (default 1024)"},
        {"--stride", LMB_ARG_INT, &stride, "window step in tokens (default 512)"},
        {"--max-chars", LMB_ARG_INT, &max_chars, "use only the first N characters of the text"},
        {"--json", LMB_ARG_FLAG, &json, "print the result as JSON"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n = lmb_cli_engine_opts(opts, 7, &ce);
    const char *synopsis = "lmbatch ppl --model DIR --text FILE [--ctx 1024 --stride 512] [--max-chars N]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    char *text = NULL;
    lmb_tokenizer *tok = NULL;
    lmb_engine *eng = NULL;
    lmb_ids ids = {0};
    if (lmb_args_parse(argc, argv, opts, n, &pos, &err)) {
        fprintf(stderr, "lmbatch ppl: %s\n", err.msg);
        goto done;
    }
    if (help || !model || !text_path || pos.n) {
        lmb_args_usage(synopsis, opts, n);
        rc = help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
        goto done;
    }
    lmb_engine_config cfg;
    if (lmb_cli_engine_config(&ce, &cfg, &err)) {
        fprintf(stderr, "lmbatch ppl: %s\n", err.msg);
        goto done;
    }
    rc = LMB_EXIT_MODEL;
    size_t len;
    double t0 = lmb_now();
    if (lmb_file_read_all(text_path, &text, &len, &err) || lmb_tokenizer_load_dir(model, &tok, &err) ||
        lmb_tokenizer_encode(tok, text, lmb_utf8_prefix_bytes(text, len, max_chars), LMB_TOK_ADD_SPECIAL, &ids,
                             &err)) {
        fprintf(stderr, "lmbatch ppl: %s\n", err.msg);
        goto done;
    }
    if (lmb_engine_open(&cfg, model, &eng, &err)) {
        fprintf(stderr, "lmbatch ppl: %s\n", err.msg);
        goto done;
    }
    lmb_ppl_result r;
    if (lmb_perplexity(eng, ids.ids, (long)ids.n, (int)ctx, (int)stride, &r, show, &ce.quiet, &err)) {
        fprintf(stderr, "lmbatch ppl: %s\n", err.msg);
        goto done;
    }
    double secs = lmb_now() - t0;
    if (json)
        printf("{\"ppl\": %.6f, \"tokens\": %zu, \"scored\": %ld, \"windows\": %d, \"ctx\": %ld, \"stride\": %ld, "
               "\"seconds\": %.2f}\n",
               r.ppl, ids.n, r.scored, r.windows, ctx, stride, secs);
    else
        printf("perplexity %.4f over %ld predictions (%zu tokens, %d windows of %ld, stride %ld) in %.1f s\n", r.ppl,
               r.scored, ids.n, r.windows, ctx, stride, secs);
    rc = LMB_EXIT_OK;
done:
    lmb_engine_close(eng);
    lmb_tokenizer_free(tok);
    lmb_ids_free(&ids);
    free(text);
    lmb_args_free(opts, n, &pos);
    return rc;
}
