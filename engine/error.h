/* error.h — the one way lmbatch reports failure.
 *
 * Every fallible function returns int (0 = ok, nonzero = failed) and, on failure, fills an lmb_error with a
 * message a user can act on: which file/line/field, what was expected, what was found.  Nothing below main()
 * calls exit() or abort().  Callers add context on the way up with lmb_error_prefix().
 */
#ifndef LMB_ERROR_H
#define LMB_ERROR_H

#include <stdarg.h>

#define LMB_ERROR_MAX 1024

typedef struct lmb_error {
    char msg[LMB_ERROR_MAX];
} lmb_error;

#if defined(__GNUC__)
#define LMB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LMB_PRINTF(a, b)
#endif

/* Sets the message (err may be NULL) and returns -1, so callers can write `return lmb_fail(err, ...)`. */
int lmb_fail(lmb_error *err, const char *fmt, ...) LMB_PRINTF(2, 3);
int lmb_failv(lmb_error *err, const char *fmt, va_list ap);

/* Prepends "<context>: " to the current message (e.g. the file being read). Returns -1. */
int lmb_error_prefix(lmb_error *err, const char *fmt, ...) LMB_PRINTF(2, 3);

void lmb_error_clear(lmb_error *err);

#endif
