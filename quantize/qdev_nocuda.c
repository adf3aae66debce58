/* qdev_nocuda.c — the GPU quantize device in a build without CUDA: not available. */
#include "qdev.h"

bool lmb_qdev_cuda_present(void) { return false; }

int lmb_qdev_cuda_open(lmb_qdev **out, int device, bool exact_fp32, lmb_error *err) {
    *out = NULL;
    return lmb_fail(err, "this lmbatch was built without CUDA: the quantize stage can only run on the CPU "
                         "(--backend cpu); rebuild with nvcc on PATH (make CUDA=1) for the GPU");
}
