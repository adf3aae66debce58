/* model.h — a Hugging Face model folder of the Llama family, read into one internal description.
 *
 * lmb_model_config is what config.json (+ generation_config.json) says, normalised across architectures and
 * transformers versions.  lmb_weights binds every tensor the architecture needs to one internal layout
 * (Llama names; InternLM2's fused wqkv split into q/k/v; a tied head points at the embedding).  Linear
 * weights are [out, in] row-major as stored by HF; AWQ-quantized linears carry qweight/qzeros/scales instead.
 * The model knows nothing about requests or backends.
 */
#ifndef LMB_MODEL_H
#define LMB_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h"
#include "tensor.h"

typedef enum lmb_arch { LMB_ARCH_LLAMA, LMB_ARCH_MISTRAL, LMB_ARCH_QWEN2, LMB_ARCH_INTERNLM2 } lmb_arch;

typedef enum lmb_rope_type { LMB_ROPE_DEFAULT, LMB_ROPE_LINEAR, LMB_ROPE_LLAMA3 } lmb_rope_type;

#define LMB_MAX_EOS 8

typedef struct lmb_rope {
    lmb_rope_type type;
    double theta;            /* base, default 10000 */
    double factor;           /* linear / llama3 */
    double low_freq_factor;  /* llama3 */
    double high_freq_factor; /* llama3 */
    int original_max_pos;    /* llama3: original_max_position_embeddings */
} lmb_rope;

typedef struct lmb_quant_config {
    bool awq; /* quantization_config.quant_method == "awq" */
    int bits; /* 4 */
    int group_size;
} lmb_quant_config;

typedef struct lmb_model_config {
    lmb_arch arch;
    char arch_name[64]; /* as in config.json "architectures"[0] */
    int hidden;         /* hidden_size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim; /* head_dim or hidden / n_heads */
    int ffn;      /* intermediate_size */
    int vocab;
    int max_pos; /* max_position_embeddings */
    double rms_eps;
    bool tied_embeddings;
    bool qkv_bias; /* Qwen2 always; Llama attention_bias; InternLM2 "bias" (default true) */
    bool o_bias;   /* Llama attention_bias and InternLM2 "bias" also put a bias on o (Qwen2 does not) */
    bool mlp_bias; /* Llama mlp_bias: gate, up and down carry biases */
    lmb_rope rope;
    lmb_dtype dtype; /* torch_dtype / dtype: F32, F16 or BF16.  LMB_DTYPE_INVALID after lmb_config_parse when
                        config.json names none; lmb_model_open then takes the embedding's dtype */
    int bos_id;      /* -1 if none; config.json's, else generation_config.json's */
    int eos_ids[LMB_MAX_EOS];
    int n_eos; /* union of config.json and generation_config.json */
    lmb_quant_config quant;
} lmb_model_config;

/* A linear layer y = x W^T (+ b).  Dense: w is [out, in].  AWQ (GEMM layout): qweight I32 [in, out/8],
 * qzeros I32 [in/group, out/8], scales F16 [in/group, out]. */
typedef struct lmb_linear {
    int in, out;
    lmb_tensor w;
    lmb_tensor qweight, qzeros, scales;
    lmb_tensor bias; /* absent unless the architecture has one */
} lmb_linear;

static inline bool lmb_linear_quantized(const lmb_linear *l) { return l->qweight.data != NULL; }

typedef struct lmb_layer_weights {
    lmb_tensor attn_norm; /* [hidden] */
    lmb_linear q, k, v, o;
    lmb_tensor ffn_norm; /* [hidden] */
    lmb_linear gate, up, down;
} lmb_layer_weights;

typedef struct lmb_weights {
    lmb_tensor embed;      /* [vocab, hidden] */
    lmb_tensor final_norm; /* [hidden] */
    lmb_linear head;       /* [vocab, hidden]; views embed when tied */
    lmb_layer_weights *layers;
    /* Buffers the binding had to create (InternLM2 split); freed with the model. */
    void **owned;
    int n_owned;
} lmb_weights;

typedef struct lmb_model {
    char dir[4096];
    lmb_model_config cfg;
    lmb_weights w;
    lmb_safetensors *st;
    bool random_weights; /* lmb_model_random: shapes only, the backend fills the weights (benchmarks) */
} lmb_model;

/* Parses config.json text (and generation_config.json text, may be NULL). `what` names the source in errors. */
int lmb_config_parse(const char *config_json, const char *generation_json, const char *what,
                     lmb_model_config *cfg, lmb_error *err);
/* Reads DIR/config.json and DIR/generation_config.json (optional). */
int lmb_config_load(const char *dir, lmb_model_config *cfg, lmb_error *err);

/* Opens the folder: config, safetensors, weight binding with shape checks. */
int lmb_model_open(const char *dir, lmb_model **out, lmb_error *err);
void lmb_model_close(lmb_model *m);

/* A model of a named real shape with no weights on disk ("llama2-7b", "llama2-13b", "llama3-8b",
 * "mistral-7b", "qwen2-7b", "tinyllama-1.1b"): tensor views carry shapes and dtype but no data, and a
 * backend that accepts random_weights fills them itself (the CUDA backend, for benchmarks). */
int lmb_model_random(const char *shape, lmb_dtype dtype, lmb_model **out, lmb_error *err);
/* Turns a lmb_model_random model into an AWQ W4A16 one (AutoAWQ GEMM layout, this group size; fp16
 * elsewhere), still without data: the CUDA backend generates the packed weights (benchmarks). */
int lmb_model_random_awq(lmb_model *m, int group, lmb_error *err);
/* The names lmb_model_random knows, comma-separated. */
const char *lmb_model_random_shapes(void);

/* Binds weights from an already-open tensor set (used by lmb_model_open and tests).  Missing and unexpected
 * tensors are reported together in one error; `rotary_emb.inv_freq` buffers, and lm_head.weight of a tied
 * model, are ignored.  Weights may be F32, F16 or BF16 (not necessarily all the same).  With AWQ each
 * linear is taken as qweight/qzeros/scales, or dense .weight where the checkpoint left it unquantized.
 * On failure *w is left empty.  lmb_weights_free accepts an empty (zeroed) lmb_weights. */
int lmb_weights_bind(const lmb_model_config *cfg, const lmb_safetensors *st, lmb_weights *w, lmb_error *err);
void lmb_weights_free(lmb_weights *w, int n_layers);

/* Bytes of the bound weights per dtype (indexed by lmb_dtype; a tied head is counted once, InternLM2's split
 * q/k/v as the fused tensor they came from) and their total; these are the bytes a backend uploads. */
uint64_t lmb_weights_bytes(const lmb_weights *w, int n_layers, uint64_t by_dtype[LMB_DTYPE_COUNT]);

/* Parameters implied by the config (a tied head counted once; AWQ models count like their unquantized source). */
int64_t lmb_config_param_count(const lmb_model_config *cfg);
/* KV-cache bytes per token for all layers at the given bits per element (16, 8, 4), including the
 * per-token-per-head scale/zero overhead for 8 and 4 bits (two fp16 values per head for K and for V);
 * 0 for any other bits. */
size_t lmb_config_kv_bytes_per_token(const lmb_model_config *cfg, int bits);

/* "llama", "mistral", "qwen2", "internlm2". */
const char *lmb_arch_name(lmb_arch a);

#endif
