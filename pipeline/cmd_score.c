/* cmd_score.c — `lmbatch score --model DIR --input FILE.jsonl --output OUT.safetensors`: teacher-forced
 * logits of every position of each prompt, written as promptJ.ids (I32) and promptJ.logits (F32 [n, vocab]),
 * the layout of ../shared/reference — so lmbatch's numbers can be compared with HF's by any safetensors
 * reader.  Lines carry "prompt_ids" (a list of ids) or "prompt" (text, tokenized with BOS). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "../engine/safetensors.h"
#include "cli_common.h"
#include "commands.h"
#include "source.h"
#include "tokenizer.h"

int lmb_cmd_score(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *output = NULL;
    bool help = false;
    lmb_cli_engine ce;
    lmb_cli_engine_init(&ce);
    lmb_arg opts[24] = {
        {"--model", LMB_ARG_STRING, &model, "model folder"},
        {"--input", LMB_ARG_STRING, &input, "JSONL with \"prompt_ids\" or \"prompt\" per line"},
        {"--output", LMB_ARG_STRING, &output, "safetensors file to write"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    int n = lmb_cli_engine_opts(opts, 4, &ce);
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE, count = 0;
    lmb_engine *e = NULL;
    lmb_tokenizer *tok = NULL;
    lmb_source *src = NULL;
    lmb_st_writer *w = lmb_st_writer_new();
    void **bufs = NULL;
    char **names = NULL;
    int nbufs = 0;
    if (lmb_args_parse(argc, argv, opts, n, &pos, &err)) {
        fprintf(stderr, "lmbatch score: %s\n", err.msg);
        goto done;
    }
    if (help || !model || !input || !output || pos.n) {
        lmb_args_usage("lmbatch score --model DIR --input FILE.jsonl --output OUT.safetensors", opts, n);
        rc = help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
        goto done;
    }
    lmb_engine_config cfg;
    if (lmb_cli_engine_config(&ce, &cfg, &err)) {
        fprintf(stderr, "lmbatch score: %s\n", err.msg);
        goto done;
    }
    rc = LMB_EXIT_MODEL;
    if (!w || lmb_engine_open(&cfg, model, &e, &err) || lmb_source_open(input, &src, &err)) goto fail;
    int V = lmb_engine_model_config(e)->vocab;
    lmb_line l;
    int r;
    while ((r = lmb_source_next(src, &l, &err)) == 1) {
        json_error_t je;
        json_t *o = json_loadb(l.text, l.len, 0, &je);
        if (!o) continue;
        lmb_ids v = {0};
        json_t *ids = json_object_get(o, "prompt_ids"), *p = json_object_get(o, "prompt");
        int bad = 0;
        if (json_is_array(ids)) {
            for (size_t i = 0; i < json_array_size(ids); i++) lmb_ids_push(&v, (int32_t)json_integer_value(json_array_get(ids, i)));
        } else if (json_is_string(p)) {
            bad = (!tok && lmb_tokenizer_load_dir(model, &tok, &err)) ||
                  lmb_tokenizer_encode(tok, json_string_value(p), json_string_length(p), LMB_TOK_ADD_SPECIAL, &v, &err);
        }
        json_decref(o);
        if (bad) goto fail;
        if (v.n == 0) continue;
        float *logits = malloc(sizeof(float) * v.n * (size_t)V);
        bufs = realloc(bufs, sizeof *bufs * (size_t)(nbufs + 2));
        names = realloc(names, sizeof *names * (size_t)(nbufs + 2));
        if (!logits || !bufs || !names) {
            lmb_fail(&err, "out of memory");
            goto fail;
        }
        bufs[nbufs] = v.ids;
        bufs[nbufs + 1] = logits;
        names[nbufs] = malloc(32);
        names[nbufs + 1] = malloc(32);
        snprintf(names[nbufs], 32, "prompt%d.ids", count);
        snprintf(names[nbufs + 1], 32, "prompt%d.logits", count);
        nbufs += 2;
        if (lmb_engine_logits(e, v.ids, (int)v.n, 0, logits, &err)) goto fail;
        int64_t s_ids[1] = {(int64_t)v.n}, s_lg[2] = {(int64_t)v.n, V};
        if (lmb_st_writer_add(w, names[nbufs - 2], LMB_I32, 1, s_ids, v.ids, &err) ||
            lmb_st_writer_add(w, names[nbufs - 1], LMB_F32, 2, s_lg, logits, &err))
            goto fail;
        count++;
    }
    if (r < 0 || lmb_st_writer_save(w, output, &err)) goto fail;
    fprintf(stderr, "lmbatch score: %d prompts -> %s\n", count, output);
    rc = LMB_EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "lmbatch score: %s\n", err.msg);
done:
    for (int i = 0; i < nbufs; i++) free(bufs[i]), free(names[i]);
    free(bufs);
    free(names);
    lmb_st_writer_free(w);
    lmb_source_close(src);
    lmb_tokenizer_free(tok);
    lmb_engine_close(e);
    lmb_args_free(opts, n, &pos);
    return rc;
}
