/* cmd_quantize_awq.c — `lmbatch quantize awq --model DIR --calib FILE --out DIR [...]`, the flags of
 * `lmdeploy lite auto_awq` (--calib-samples, --calib-seqlen, --w-bits, --w-group-size; --work-dir for
 * --out), plus --method rtn (or --rtn) for the round-to-nearest baseline with the same packing.
 * --backend auto (default) runs the calibration on the GPU when there is one, else on the CPU. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "../quantize/quantize.h"

int lmb_cmd_quantize_awq(int argc, char **argv) {
    const char *model = NULL, *calib = NULL, *out = NULL, *method = "awq", *backend = "auto";
    long samples = 128, seqlen = 2048, bits = 4, group = 128, threads = 0, device = 0;
    bool rtn = false, no_clip = false, duo = false, dense = false, quiet = false, help = false, exact = false;
    lmb_arg opts[] = {
        {"--model", LMB_ARG_STRING, &model, "model folder (Hugging Face layout, unquantized)"},
        {"--calib", LMB_ARG_STRING, &calib, "calibration text: plain text or JSONL with \"text\"/\"prompt\" fields"},
        {"--calib-samples", LMB_ARG_INT, &samples, "calibration sequences (default 128)"},
        {"--calib-seqlen", LMB_ARG_INT, &seqlen, "tokens per calibration sequence (default 2048)"},
        {"--w-bits", LMB_ARG_INT, &bits, "weight bits (4, the only value supported)"},
        {"--group-size", LMB_ARG_INT, &group, "input channels per quantization group (default 128)"},
        {"--w-group-size", LMB_ARG_INT, &group, "the same as --group-size (lmdeploy's spelling)"},
        {"--out", LMB_ARG_STRING, &out, "output folder (created if missing)"},
        {"--work-dir", LMB_ARG_STRING, &out, "the same as --out (lmdeploy's spelling)"},
        {"--output", LMB_ARG_STRING, &out, "the same as --out (what job files pass)"},
        {"--method", LMB_ARG_STRING, &method, "awq (default) or rtn (round to nearest: no calibration/search)"},
        {"--rtn", LMB_ARG_FLAG, &rtn, "the same as --method rtn"},
        {"--no-clip", LMB_ARG_FLAG, &no_clip, "skip the clipping search"},
        {"--duo-scaling", LMB_ARG_FLAG, &duo, "AutoAWQ's duo scaling: s = x_mean^a / w_mean^(1-a) (default: x_mean^a)"},
        {"--dense", LMB_ARG_FLAG, &dense, "debug: write the scaled model unquantized (F32), to check the folding"},
        {"--backend", LMB_ARG_STRING, &backend, "where the calibration runs: auto (default: the GPU if present), cpu or cuda"},
        {"--device", LMB_ARG_INT, &device, "CUDA device index (default 0)"},
        {"--exact-fp32", LMB_ARG_FLAG, &exact, "GPU: fp32 matmuls (default TF32, ~4x faster)"},
        {"--threads", LMB_ARG_INT, &threads, "CPU threads (default: all)"},
        {"--quiet", LMB_ARG_FLAG, &quiet, "no progress on stderr"},
        {"--help", LMB_ARG_FLAG, &help, "show this help"},
    };
    const int n = (int)(sizeof opts / sizeof opts[0]);
    const char *synopsis = "lmbatch quantize awq --model DIR --calib FILE --out DIR [--calib-samples 128 "
                           "--calib-seqlen 2048] [--w-bits 4] [--group-size 128] [--method awq|rtn]";
    lmb_arg_list pos;
    lmb_error err;
    int rc = LMB_EXIT_USAGE;
    if (lmb_args_parse(argc, argv, opts, n, &pos, &err)) {
        fprintf(stderr, "lmbatch quantize awq: %s\n", err.msg);
        goto done;
    }
    if (rtn) method = "rtn";
    bool is_rtn = strcmp(method, "rtn") == 0;
    if (help || !model || !out || pos.n || (!is_rtn && strcmp(method, "awq") != 0) || (!is_rtn && !calib)) {
        if (!help && !is_rtn && strcmp(method, "awq") != 0)
            fprintf(stderr, "lmbatch quantize awq: --method must be awq or rtn, got \"%s\"\n", method);
        else if (!help && model && out && !pos.n && !calib)
            fprintf(stderr, "lmbatch quantize awq: AWQ needs --calib FILE (or use --method rtn)\n");
        lmb_args_usage(synopsis, opts, n);
        rc = help ? LMB_EXIT_OK : LMB_EXIT_USAGE;
        goto done;
    }
    if (samples < 1 || samples > 1000000 || seqlen < 2 || seqlen > 1000000 || group < 1 || group > 65536 ||
        threads < 0 || device < 0 || device > 1024) {
        fprintf(stderr, "lmbatch quantize awq: --calib-samples, --calib-seqlen, --group-size, --threads and --device "
                        "must be positive (and sane)\n");
        goto done;
    }
    lmb_qdev_kind kind = strcmp(backend, "auto") == 0 ? LMB_QDEV_AUTO
                         : strcmp(backend, "cpu") == 0 ? LMB_QDEV_CPU
                         : strcmp(backend, "cuda") == 0 ? LMB_QDEV_CUDA
                                                        : (lmb_qdev_kind)-1;
    if ((int)kind < 0) {
        fprintf(stderr, "lmbatch quantize awq: --backend must be auto, cpu or cuda, got \"%s\"\n", backend);
        goto done;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    lmb_awq_options o;
    lmb_awq_options_default(&o);
    o.model_dir = model, o.out_dir = out, o.calib_path = calib;
    o.calib_samples = (int)samples, o.calib_seqlen = (int)seqlen, o.w_bits = (int)bits, o.group_size = (int)group;
    o.method = is_rtn ? LMB_QUANT_RTN : LMB_QUANT_AWQ;
    o.clip = !no_clip, o.duo = duo, o.dense = dense, o.quiet = quiet;
    o.backend = kind, o.device = (int)device, o.exact_fp32 = exact;
    if (lmb_quantize_awq(&o, NULL, &err)) {
        fprintf(stderr, "lmbatch quantize awq: %s\n", err.msg);
        rc = LMB_EXIT_MODEL;
        goto done;
    }
    rc = LMB_EXIT_OK;
done:
    lmb_args_free(opts, n, &pos);
    return rc;
}
