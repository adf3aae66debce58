/* awq_internal.h — what the quantize stage's files share (not a public API): one decoder layer in fp32,
 * the layer-by-layer calibration forward with its captured linear inputs, the AWQ scale search, folding
 * and clipping, and the output writer.
 *
 * Data flow per layer (quantize/awq.c): lmb_qlayer_load (fp32 copy on the quantize device, qdev.h) ->
 * lmb_calib_fwd_layer (captures the inputs of q/k/v, o, gate/up, down; advances the fp residual stream) ->
 * lmb_awq_search (α per group) -> lmb_awq_fold (1/s into the preceding norm or linear, s into the group;
 * captures divided by s) -> lmb_awq_clip -> lmb_qlayer_to_host -> the writer quantizes and packs.  Only one
 * layer is held in fp32 at a time.
 */
#ifndef LMB_AWQ_INTERNAL_H
#define LMB_AWQ_INTERNAL_H

#include <stdbool.h>

#include "../engine/model.h"
#include "calib.h"
#include "qdev.h"
#include "quantize.h"

typedef struct lmb_qlinear {
    float *w; /* [out, in] */
    float *b; /* [out] or NULL */
    int out, in;
} lmb_qlinear;

typedef struct lmb_qlayer {
    float *attn_norm, *ffn_norm; /* [hidden] */
    lmb_qlinear q, k, v, o, gate, up, down;
} lmb_qlayer;

/* fp32 copies of layer l's weights in the device's memory (dense checkpoints only). */
int lmb_qlayer_load(lmb_qdev *d, const lmb_model *m, int l, lmb_qlayer *L, lmb_error *err);
void lmb_qlayer_free(lmb_qdev *d, lmb_qlayer *L);
/* A host copy of L for the writer (L itself on the CPU device); free with lmb_qlayer_free_host. */
int lmb_qlayer_to_host(lmb_qdev *d, const lmb_qlayer *L, lmb_qlayer *out, lmb_error *err);
void lmb_qlayer_free_host(lmb_qdev *d, lmb_qlayer *H);

/* ---- calibration forward (calibrate.c) ---------------------------------------------------------------- */
typedef struct lmb_calib_fwd {
    lmb_qdev *d;
    lmb_model_config cfg;
    int n_seqs, seqlen, N; /* N = n_seqs * seqlen tokens, sequence s at rows [s*seqlen, (s+1)*seqlen) */
    int chunk_seqs;        /* sequences per chunk: the scratch below holds chunk_seqs * seqlen rows */
    double *inv_freq;      /* host */
    /* whole [N, *] device buffers: the fp residual stream entering the current layer, the inputs of its
     * linears (filled by lmb_calib_fwd_layer) and a block output (the search's reference) */
    float *x;       /* [N, H] */
    float *in_qkv;  /* [N, H]   input norm output */
    float *in_o;    /* [N, Q]   attention output (Q = heads * head_dim) */
    float *in_gu;   /* [N, H]   post-attention norm output */
    float *in_down; /* [N, F]   silu(gate) * up */
    float *ref;     /* [N, H] */
    /* chunk scratch */
    float *q, *k, *v, *att, *gate, *up, *h;
} lmb_calib_fwd;

int lmb_calib_fwd_init(lmb_calib_fwd *f, lmb_qdev *d, const lmb_model *m, const lmb_calib_set *c, lmb_error *err);
void lmb_calib_fwd_free(lmb_calib_fwd *f);
/* Runs layer L (unquantized) on the residual stream: fills in_* and advances x. */
int lmb_calib_fwd_layer(lmb_calib_fwd *f, const lmb_qlayer *L, lmb_error *err);
/* For n_seqs <= chunk_seqs whole sequences (pointers at their first row): out [rows, H] = o_proj(causal
 * attention(RoPE(q), RoPE(k), v)) of xn [rows, H]; att_out [rows, Q] (may be NULL) receives the attention
 * output (o_proj's input). */
void lmb_calib_attn_block(lmb_calib_fwd *f, const lmb_qlayer *L, const float *xn, float *out, float *att_out,
                          int n_seqs);
/* The same for the MLP: out [rows, H] = down(silu(gate(xn)) * up(xn)); act_out [rows, F] (may be NULL)
 * receives down's input. */
void lmb_calib_mlp_block(lmb_calib_fwd *f, const lmb_qlayer *L, const float *xn, float *out, float *act_out,
                         int n_seqs);

/* ---- AWQ search, folding, clipping (awq_search.c, awq_clip.c) ------------------------------------------ */
/* Searches each group's scale on the unmodified layer (as AutoAWQ does, every group against the fp layer):
 * scales[g] gets a malloc'ed vector over the group's input channels, or NULL when the group is not scaled.
 * alpha < 0 searches α in {0, 1/20, ..., 19/20}; otherwise uses that α (tests; st.mse_rtn is still
 * measured).  duo: AutoAWQ's duo scaling, s = x_mean^α / (w_mean^(1-α) + 1e-4) with w_mean the mean over the
 * group's weight rows of |w| / max|w| of its quantization group. */
int lmb_awq_search(lmb_calib_fwd *f, const lmb_qlayer *L, int group_size, double alpha, bool duo,
                   float *scales[LMB_AWQ_GROUPS], lmb_awq_group_stats st[LMB_AWQ_GROUPS], lmb_error *err);
/* Folds the scales: 1/s into the preceding norm (q/k/v, gate/up) or linear (v for o, up for down), s into
 * the group's input columns; the captured inputs are divided by s so they stay the inputs of the layer. */
int lmb_awq_fold(lmb_calib_fwd *f, lmb_qlayer *L, float *const scales[LMB_AWQ_GROUPS], lmb_error *err);
/* AutoAWQ's clipping search on every linear but q and k: per output row and group, the max |w| shrunk over
 * 1, 0.95, ..., 0.55 times its value, keeping the one whose group output (on up to 512 sampled tokens) has
 * the least squared error after quantization; the weights are clamped to it. */
int lmb_awq_clip(lmb_calib_fwd *f, lmb_qlayer *L, int group_size, lmb_error *err);
/* Output MSE of each group's block with the layer's weights fake-quantized as they are now (after fold and
 * clip) against the same layer unquantized: st[g].mse_final. */
int lmb_awq_measure(lmb_calib_fwd *f, const lmb_qlayer *L, int group_size, lmb_awq_group_stats st[LMB_AWQ_GROUPS],
                    lmb_error *err);

/* ---- output folder (awq_write.c) ------------------------------------------------------------------------ */
typedef struct lmb_qwriter lmb_qwriter;
/* dense: write every tensor F32 and no quantization_config (the folded model, for checks). */
int lmb_qwriter_open(lmb_qwriter **out, const lmb_model *m, const char *out_dir, int group_size, bool dense,
                     lmb_error *err);
/* Quantizes (unless dense) and adds layer l's tensors under the architecture's names. */
int lmb_qwriter_add_layer(lmb_qwriter *w, int l, const lmb_qlayer *L, lmb_error *err);
/* Adds embedding, final norm and head, writes model.safetensors and config.json, copies the tokenizer files. */
int lmb_qwriter_finish(lmb_qwriter *w, const char *metadata_json, lmb_error *err);
void lmb_qwriter_close(lmb_qwriter *w);

#endif
