/* kv_params.h — offline KV-cache quantization parameters: per layer and per KV head, the range of K (after RoPE)
 * and of V seen on calibration text, and the int8 / int4 scale and zero point derived from it.  Written by
 * `lmbatch quantize kv` (quantize/kv_calibrate.c), read by the engine for `--kv-params` (docs/FORMATS.md,
 * "KV quantization parameters").
 *
 * Convention of the file (the seeds'): x ≈ q * scale + zp with a signed code q in [-2^(b-1), 2^(b-1) - 1];
 * asymmetric: zp = (min + max) / 2, scale = (max - min) / (2^b - 1); symmetric (--kv-sym): zp = 0,
 * scale = max(|min|, |max|) / (2^(b-1) - 1).  The engine stores unsigned codes u = q + 2^(b-1), so it reads a
 * row as u * scale + zero with zero = zp - 2^(b-1) * scale (lmb_kv_params_fixed).
 */
#ifndef LMB_KV_PARAMS_H
#define LMB_KV_PARAMS_H

#include <stdbool.h>

#include "../engine/error.h"
#include "../engine/model.h"

enum { LMB_KVP_INT8 = 0, LMB_KVP_INT4 = 1 };
enum { LMB_KVP_K = 0, LMB_KVP_V = 1 };

typedef struct lmb_kv_params {
    int n_layers, n_kv_heads, head_dim;
    bool symmetric;
    /* each [n_layers * n_kv_heads], index layer * n_kv_heads + head */
    float *min[2], *max[2];            /* [K|V] */
    float *scale[2][2], *zp[2][2];     /* [int8|int4][K|V] */
    /* provenance, for the reader (not used by the engine) */
    char model[512], calib_file[512];
    int calib_seqs, calib_seqlen;
    long calib_tokens;
} lmb_kv_params;

/* Allocates the arrays (min = +inf, max = -inf, scales and zero points 0). */
int lmb_kv_params_init(lmb_kv_params *p, int n_layers, int n_kv_heads, int head_dim, lmb_error *err);
void lmb_kv_params_free(lmb_kv_params *p);

/* Sets scale and zp of both bit widths from min/max (asymmetric, or symmetric when p->symmetric).  A head that
 * saw no value (min > max) gets scale 0, zp 0. */
void lmb_kv_params_derive(lmb_kv_params *p);

int lmb_kv_params_save(const lmb_kv_params *p, const char *path, lmb_error *err);
/* Reads and checks the file: format and version, shapes, finite numbers, scales >= 0; errors name the field. */
int lmb_kv_params_load(const char *path, lmb_kv_params *p, lmb_error *err);

/* The engine's table for `bits` (8 or 4): [n_layers][2 (K, V)][n_kv_heads][2 (scale, zero)], values rounded to
 * fp16 as the cache stores them.  Fails when the params do not match the model (layers, KV heads, head_dim).
 * *out is malloc'd (caller frees). */
int lmb_kv_params_fixed(const lmb_kv_params *p, const lmb_model_config *cfg, int bits, float **out, lmb_error *err);

/* lmb_kv_params_load + lmb_kv_params_fixed, for the engine's `kv_params` path. */
int lmb_kv_params_load_fixed(const char *path, const lmb_model_config *cfg, int bits, float **out, lmb_error *err);

#endif
