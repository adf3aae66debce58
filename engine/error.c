/* error.c — message formatting for lmb_error (see error.h). */
#include "error.h"

#include <stdio.h>
#include <string.h>

int lmb_failv(lmb_error *err, const char *fmt, va_list ap) {
    if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int lmb_fail(lmb_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lmb_failv(err, fmt, ap);
    va_end(ap);
    return -1;
}

int lmb_error_prefix(lmb_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char head[LMB_ERROR_MAX], old[LMB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
    return -1;
}

void lmb_error_clear(lmb_error *err) {
    if (err) err->msg[0] = '\0';
}
