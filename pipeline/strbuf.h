/* strbuf.h — a growable NUL-terminated byte string (text rendering, output lines). */
#ifndef LMB_STRBUF_H
#define LMB_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lmb_strbuf {
    char *s;
    size_t len, cap;
    bool oom; /* set once an append failed; later appends are no-ops */
} lmb_strbuf;

void lmb_sb_append(lmb_strbuf *b, const char *s, size_t n);
void lmb_sb_puts(lmb_strbuf *b, const char *s);
void lmb_sb_printf(lmb_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lmb_sb_truncate(lmb_strbuf *b, size_t len);
/* Hands over the string (never NULL unless oom) and resets b. */
char *lmb_sb_take(lmb_strbuf *b);
void lmb_sb_free(lmb_strbuf *b);

#endif
