/* backend_cuda_step.h — the batch-1 decode step of an all-AWQ model as one persistent kernel
 * (engine/backend_cuda_step.c; the kernel: kernels/cuda/w4a16_step.cu, kernels_cuda.h: lmb_cuda_w4_step).
 *
 * At load (after the KV cache), lmb_cuda_step_init checks what the kernel needs: every linear AWQ with one group
 * size and 16-byte aligned, no biases, fp16 activations and a 16-bit cache, not --batch-invariant, shapes the
 * kernel takes, an sm_90a build on a compute capability 9.0 device.  Then the forward runs a step of one token that
 * decodes (T = 1, no prefill tile) as embedding, this kernel, final norm, head and sampling, and the separate
 * kernels otherwise.  LMB_W4_STEP=auto turns it on where it applies, =1 makes a refusal an error (tests), =0 off;
 * the default is off until it has run on a GPU (backend_cuda_step.c: STEP_DEFAULT).  Not under LMB_PROFILE
 * (per-operation timing needs the operations apart).
 */
#ifndef LMB_BACKEND_CUDA_STEP_H
#define LMB_BACKEND_CUDA_STEP_H

#include <stdbool.h>

#include "backend_cuda_impl.h"

int lmb_cuda_step_init(cuda_backend *c, lmb_error *err);
/* Whether a forward of T tokens, n_dec of them decoding and n_tiles prefill tiles, runs the step kernel. */
bool lmb_cuda_step_applies(const cuda_backend *c, int T, int n_dec, int n_tiles);
/* Enqueues the kernel for token 0 of the step's metadata (device pointers). */
int lmb_cuda_step_enqueue(cuda_backend *c, const int32_t *positions, const int32_t *tok_seq, const int32_t *tables,
                          const int64_t *slots, lmb_error *err);
void lmb_cuda_step_free(cuda_backend *c);

#endif
