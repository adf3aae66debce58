/* kv_calibrate.h — `lmbatch quantize kv`: the offline KV-cache scales.  Runs the CPU engine (fp32) over
 * calibration text and records, per layer and per KV head, the smallest and largest value of K (after RoPE, as
 * the cache stores it) and of V, through the engine's calibration tap; then derives the int8 and int4 scales and
 * zero points (quantize/kv_params.h) that `--kv-params` applies instead of per-token ones.
 *
 * Calibration text: plain text is tokenized as one document (BOS first); JSONL lines (a "text" or "prompt"
 * string each) are tokenized one by one, each with BOS, and concatenated.  From that stream up to `samples`
 * windows of `seqlen` tokens are taken, evenly spaced over the whole stream and never overlapping (a stream
 * shorter than seqlen is one window).  Each window is one teacher-forced forward.
 */
#ifndef LMB_KV_CALIBRATE_H
#define LMB_KV_CALIBRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "../engine/model.h"
#include "../pipeline/tokenizer.h"
#include "kv_params.h"

typedef struct lmb_kv_calib_options {
    const char *model_dir, *calib_path;
    int samples;    /* windows at most (default 128) */
    int seqlen;     /* tokens per window (default 2048; capped at the model's context) */
    bool symmetric; /* abs-max scales, zero point 0 */
    int threads;    /* CPU threads, 0 = all */
    bool quiet;     /* no progress on stderr */
} lmb_kv_calib_options;

void lmb_kv_calib_options_default(lmb_kv_calib_options *o);

/* The token stream of a calibration file (see above); *records: JSONL lines used (0 for plain text).  Bad
 * JSONL lines are errors naming the line. */
int lmb_kv_calib_tokens(const char *path, const lmb_tokenizer *tok, lmb_ids *out, long *records, lmb_error *err);

/* Runs the model over windows of ids[0..n) and fills *p (initialised here) with the ranges and derived scales. */
int lmb_kv_calibrate_ids(const lmb_model *m, const int32_t *ids, long n, const lmb_kv_calib_options *o,
                         lmb_kv_params *p, lmb_error *err);

/* The whole stage: model + tokenizer from o->model_dir, text from o->calib_path. */
int lmb_kv_calibrate(const lmb_kv_calib_options *o, lmb_kv_params *p, lmb_error *err);

#endif
