/* rope.h — RoPE inverse frequencies from the model config, as HF transformers computes them
 * (default; linear: divided by factor; llama3: the wavelength-banded smoothing of Llama 3.1). */
#ifndef LMB_ROPE_H
#define LMB_ROPE_H

#include "model.h"

/* Writes head_dim/2 inverse frequencies to inv_freq. */
void lmb_rope_inv_freq(const lmb_model_config *cfg, double *inv_freq);

#endif
