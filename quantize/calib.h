/* calib.h — the calibration set of the quantize stage: text (plain, or JSONL with a "text" or "prompt"
 * field per line; compressed files are read transparently) tokenized with the model's tokenizer and cut
 * into n_seqs sequences of seqlen tokens.
 *
 * A file is JSONL when its first non-blank line is a JSON object.  Plain text is tokenized as one document (BOS at its start when the tokenizer adds one); JSONL lines are
 * tokenized one by one (each with BOS) and concatenated, as AutoAWQ concatenates its samples.  From that
 * token stream, n_samples windows of seqlen tokens are taken evenly spaced over the whole stream (so a
 * calibration file is sampled end to end, deterministically, and windows never overlap); when the stream
 * holds fewer than n_samples * seqlen tokens, as many windows as fit, and a stream shorter than seqlen
 * becomes one shorter sequence.  JSONL is read only until the stream covers n_samples * seqlen tokens.
 */
#ifndef LMB_CALIB_H
#define LMB_CALIB_H

#include <stdint.h>

#include "../engine/error.h"
#include "../pipeline/tokenizer.h"

typedef struct lmb_calib_set {
    int n_seqs, seqlen;
    int32_t *tokens;     /* [n_seqs * seqlen] */
    long stream_tokens;  /* tokens in the whole stream the windows were taken from */
    long records;        /* JSONL lines used (0 for plain text) */
} lmb_calib_set;

/* Reads and tokenizes path.  Bad JSONL lines (not an object, no "text"/"prompt" string) are errors naming
 * the line; an empty file is an error. */
int lmb_calib_load(const char *path, const lmb_tokenizer *tok, int n_samples, int seqlen, lmb_calib_set *out,
                   lmb_error *err);
/* From an already-tokenized stream (used by lmb_calib_load and tests). */
int lmb_calib_from_stream(const int32_t *ids, long n, int n_samples, int seqlen, lmb_calib_set *out, lmb_error *err);
void lmb_calib_free(lmb_calib_set *c);

#endif
