/* qdev.c — opening a quantize device (see qdev.h) and its sticky error. */
#include "qdev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lmb_qdev_open(lmb_qdev **out, lmb_qdev_kind kind, int device, bool exact_fp32, lmb_error *err) {
    if (kind == LMB_QDEV_AUTO) kind = lmb_qdev_cuda_present() ? LMB_QDEV_CUDA : LMB_QDEV_CPU;
    return kind == LMB_QDEV_CUDA ? lmb_qdev_cuda_open(out, device, exact_fp32, err) : lmb_qdev_cpu_open(out, err);
}

void lmb_qdev_close(lmb_qdev *d) {
    if (d) d->ops->destroy(d);
}

void lmb_qdev_fail(lmb_qdev *d, const char *fmt, ...) {
    if (d->failed) return;
    d->failed = true;
    va_list ap;
    va_start(ap, fmt);
    lmb_failv(&d->error, fmt, ap);
    va_end(ap);
}

int lmb_qdev_status(const lmb_qdev *d, lmb_error *err) {
    if (!d->failed) return 0;
    return lmb_fail(err, "%s", d->error.msg);
}

const float *lmb_qdev_host_view(lmb_qdev *d, const float *p, size_t n, float **tmp) {
    *tmp = NULL;
    if (d->host_memory) return p;
    if (!(*tmp = malloc(sizeof(float) * (n ? n : 1)))) {
        lmb_qdev_fail(d, "out of host memory for %zu floats", n);
        return NULL;
    }
    d->ops->get(d, *tmp, p, n);
    return *tmp;
}
