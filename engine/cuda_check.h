/* cuda_check.h — turning CUDA runtime and cuBLAS failures into lmb_error statuses with file and line. */
#ifndef LMB_CUDA_CHECK_H
#define LMB_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "error.h"

#define CUDA_CHECK(call)                                                                                     \
    do {                                                                                                     \
        cudaError_t e_ = (cudaError_t)(call);                                                                \
        if (e_ != cudaSuccess)                                                                               \
            return lmb_fail(err, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)

#define CUBLAS_CHECK(call)                                                                                     \
    do {                                                                                                       \
        cublasStatus_t s_ = (call);                                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                       \
            return lmb_fail(err, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
    } while (0)

#endif
