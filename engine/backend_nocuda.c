/* backend_nocuda.c — the CUDA backend's entry point in builds without CUDA (CUDA=0): a clear refusal. */
#include "backend.h"

int lmb_backend_cuda_create(const lmb_model *model, const lmb_engine_config *cfg, lmb_backend **out,
                            lmb_error *err) {
    *out = NULL;
    return lmb_fail(err, "this lmbatch was built without CUDA (rebuild with `make CUDA=1` on a machine with "
                         "nvcc); use --backend cpu");
}
