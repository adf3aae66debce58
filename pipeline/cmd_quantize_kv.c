/* cmd_quantize_kv.c — `lmbatch quantize kv --model DIR --calib FILE --out PARAMS [--kv-sym]`: offline KV-cache
 * scales (quantize/kv_calibrate.h) written as a params file (docs/FORMATS.md, "KV quantization parameters") for
 * `--kv int8|int4 --kv-params PARAMS`.  argv[0] is the method name ("kv") when `quantize` dispatches here.
 * The job file's quantize stage calls it as `quantize kv --model M --output OUT [--calib F] [--bits 8]`:
 * --output DIR writes DIR/kv_params.json (DIR created if missing); --bits is checked (8 or 4) but the file
 * holds the scales of both widths.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/fileio.h"

#include "../quantize/kv_calibrate.h"
#include "args.h"
#include "commands.h"
#include "progress.h"

int lmb_cmd_quantize_kv(int argc, char **argv) {
    lmb_kv_calib_options o;
    lmb_kv_calib_options_default(&o);
    const char *out = NULL, *out_dir = NULL;
    long bits = 8;
    long samples = o.samples, seqlen = o.seqlen, threads = 0;
    bool help = false;
    lmb_arg opts[] = {
        {"--model", LMB_ARG_STRING, &o.model_dir, "model folder"},
        {"--calib", LMB_ARG_STRING, &o.calib_path, "calibration text: plain, or JSONL with \"text\"/\"prompt\" (.gz ok)"},
        {"--out", LMB_ARG_STRING, &out, "the params file to write (JSON)"},
        {"--output", LMB_ARG_STRING, &out_dir, "or a folder: writes FOLDER/kv_params.json (the job stage's form)"},
        {"--bits", LMB_ARG_INT, &bits, "8 or 4 (the file holds both; accepted for the job stage)"},
        {"--kv-sym", LMB_ARG_FLAG, &o.symmetric, "symmetric scales (abs-max, zero point 0) instead of min/max"},
        {"--samples", LMB_ARG_INT, &samples, "calibration windows at most (default 128)"},
        {"--seqlen", LMB_ARG_INT, &seqlen, "tokens per window (default 2048, capped at the model's context)"},
        {"--threads", LMB_ARG_INT, &threads, "CPU threads (default: all cores)"},
        {"--quiet", LMB_ARG_FLAG, &o.quiet, "no progress or summary on stderr"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *synopsis = "lmbatch quantize kv --model DIR --calib FILE (--out PARAMS.json | --output DIR) [--kv-sym]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    if (lmb_args_parse(argc, argv, opts, n_opts, &pos, &err)) {
        fprintf(stderr, "lmbatch quantize kv: %s\n", err.msg);
        goto done;
    }
    if (help || !o.model_dir || !o.calib_path || !out == !out_dir || pos.n) {
        lmb_args_usage(synopsis, opts, n_opts);
        rc = help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
        goto done;
    }
    if (samples < 1 || samples > 1000000 || seqlen < 2 || seqlen > (1 << 24) || threads < 0 || (bits != 8 && bits != 4)) {
        fprintf(stderr, "lmbatch quantize kv: --samples must be >= 1, --seqlen >= 2, --threads >= 0, --bits 8 or 4\n");
        goto done;
    }
    char out_path[4096];
    if (out_dir) {
        if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "lmbatch quantize kv: cannot create %s: %s\n", out_dir, strerror(errno));
            rc = LMB_EXIT_MODEL;
            goto done;
        }
        if (lmb_path_join(out_path, sizeof out_path, out_dir, "kv_params.json", &err)) {
            fprintf(stderr, "lmbatch quantize kv: %s\n", err.msg);
            goto done;
        }
        out = out_path;
    }
    o.samples = (int)samples;
    o.seqlen = (int)seqlen;
    o.threads = (int)threads;
    rc = LMB_EXIT_MODEL;
    double t0 = lmb_now();
    lmb_kv_params p;
    if (lmb_kv_calibrate(&o, &p, &err)) {
        fprintf(stderr, "lmbatch quantize kv: %s\n", err.msg);
        goto done;
    }
    if (lmb_kv_params_save(&p, out, &err)) {
        fprintf(stderr, "lmbatch quantize kv: %s\n", err.msg);
        lmb_kv_params_free(&p);
        goto done;
    }
    if (!o.quiet) {
        fprintf(stderr, "quantize kv: %d windows x %d tokens in %.1f s -> %s (%s)\n", p.calib_seqs, p.calib_seqlen,
                lmb_now() - t0, out, p.symmetric ? "symmetric" : "asymmetric");
        for (int l = 0; l < p.n_layers; l++) {
            float r[2] = {0, 0};
            for (int kv = 0; kv < 2; kv++)
                for (int h = 0; h < p.n_kv_heads; h++) {
                    size_t i = (size_t)l * p.n_kv_heads + h;
                    r[kv] = fmaxf(r[kv], fmaxf(fabsf(p.min[kv][i]), fabsf(p.max[kv][i])));
                }
            fprintf(stderr, "  layer %2d  |K| <= %8.3f  |V| <= %8.3f\n", l, r[0], r[1]);
        }
    }
    lmb_kv_params_free(&p);
    rc = LMB_EXIT_OK;
done:
    lmb_args_free(opts, n_opts, &pos);
    return rc;
}
