/* quantize.h — the quantize stage: a model folder in, a packed AWQ W4A16 model folder out, that the
 * engine (and AutoAWQ / transformers) opens like any other model folder.
 *
 * AWQ (the paper, as AutoAWQ and LMDeploy implement it): run the fp model layer by layer on calibration
 * text, capturing each linear group's input; per group search s = mean|x|^α (α in {0, 1/20, ..., 19/20},
 * normalised so max(s) * min(s) = 1) minimising the MSE of the group's block output when its weights
 * are quantized as Q(W diag(s)) diag(s)^-1; fold 1/s into what precedes the group (so the fp model is
 * unchanged up to rounding); then AutoAWQ's clipping search; then asymmetric int4 per group of
 * group_size input channels, packed in AutoAWQ's GEMM layout (quantize/int4.h).  Groups:
 *   qkv     q, k, v        input: input norm output    block: self-attention output   fold: input norm
 *   o       o              input: attention output     block: o                       fold: v rows (GQA: s
 *                                                                                    tied across the heads
 *                                                                                    sharing a KV head)
 *   gate_up gate, up       input: post-attn norm out   block: MLP output              fold: post-attn norm
 *   down    down           input: silu(gate) * up      block: down                    fold: up rows
 * RTN (the baseline) skips calibration, search and clipping: same quantizer and packing.
 * The embedding, norms and head stay unquantized (fp16), as AutoAWQ leaves them.
 *
 * The calibration forward, the searches and the fake quantization run in fp32 on a quantize device
 * (qdev.h): the GPU (cuBLAS, TF32 matmuls by default) or the CPU (OpenMP; minutes for models of tens of
 * millions of parameters, hours for 7B-class ones).  They hold N * (4 H + Q + F) * 4 bytes of activations
 * (N = samples * seqlen) plus a bounded scratch.
 */
#ifndef LMB_QUANTIZE_H
#define LMB_QUANTIZE_H

#include <stdbool.h>

#include "../engine/error.h"
#include "calib.h"
#include "qdev.h"

typedef enum lmb_quant_method { LMB_QUANT_AWQ, LMB_QUANT_RTN } lmb_quant_method;

typedef enum lmb_awq_group { LMB_AWQ_QKV, LMB_AWQ_O, LMB_AWQ_GATE_UP, LMB_AWQ_DOWN, LMB_AWQ_GROUPS } lmb_awq_group;

typedef struct lmb_awq_options {
    const char *model_dir, *out_dir;
    const char *calib_path; /* plain text or JSONL ("text" / "prompt"); not needed for RTN */
    const lmb_calib_set *calib_set; /* instead of calib_path: already tokenized sequences (tests) */
    int calib_samples;      /* 128 */
    int calib_seqlen;       /* 2048 */
    int w_bits;             /* 4 (the only value supported) */
    int group_size;         /* 128 */
    lmb_quant_method method;
    bool clip;    /* the clipping search (default true) */
    bool duo;     /* AutoAWQ's duo scaling: s = x_mean^a / w_mean^(1-a) (default false: x_mean^a, as LMDeploy) */
    double alpha; /* < 0 (default): search α; else use this α for every group (tests) */
    bool dense;   /* write the scaled (folded) model unquantized in F32, without clipping: checks the folding */
    bool quiet;   /* no progress on stderr */
    lmb_qdev_kind backend; /* where the calibration runs: CPU (default here), CUDA, or AUTO (the CLI's default) */
    int device;            /* CUDA device index */
    bool exact_fp32;       /* GPU: fp32 matmuls instead of TF32 */
} lmb_awq_options;

void lmb_awq_options_default(lmb_awq_options *o);

typedef struct lmb_awq_group_stats {
    bool scaled;     /* a scale was searched and folded for this group */
    double alpha;    /* the chosen α */
    double mse_rtn;  /* block output MSE with plain RTN weights (α = 0, no clipping) */
    double mse_best; /* ... with the chosen scale, before clipping */
    double mse_final; /* ... as written: scaled, clipped, quantized (0 when not measured) */
} lmb_awq_group_stats;

typedef struct lmb_awq_report {
    int n_layers;
    lmb_awq_group_stats (*layers)[LMB_AWQ_GROUPS]; /* [n_layers][LMB_AWQ_GROUPS] */
    int calib_seqs, calib_seqlen;
    long calib_stream_tokens;
    double seconds;
} lmb_awq_report;

/* Quantizes o->model_dir into o->out_dir (created if missing; never the model folder itself).  report
 * (may be NULL) receives per-layer statistics; free it with lmb_awq_report_free. */
int lmb_quantize_awq(const lmb_awq_options *o, lmb_awq_report *report, lmb_error *err);
void lmb_awq_report_free(lmb_awq_report *r);

#endif
