/* utf8.c — UTF-8 decoding with U+FFFD substitution (see utf8.h for the replacement rule). */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

bool lmb_utf8_next(const char *str, size_t n, size_t *i, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str + *i;
    size_t left = n - *i;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        *i += 1;
        return true;
    }
    int need;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *cp = LMB_UTF8_REPLACEMENT;
        *i += 1;
        return false;
    }
    size_t k = 1;
    for (; k <= (size_t)need; k++) {
        if (k >= left) break;
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
        v = (v << 6) | (b & 0x3F);
    }
    if (k <= (size_t)need) { /* truncated or bad continuation: the bytes so far are one maximal subpart */
        *cp = LMB_UTF8_REPLACEMENT;
        *i += k;
        return false;
    }
    *cp = v;
    *i += k;
    return true;
}

int lmb_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t lmb_utf8_valid_prefix(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t at = i;
        uint32_t cp;
        if (!lmb_utf8_next(s, n, &i, &cp)) return at;
    }
    return n;
}

int lmb_utf8_sanitize(const char *s, size_t n, char **out, size_t *out_len) {
    /* each invalid byte grows to at most 3 bytes */
    char *buf = malloc(n * 3 + 1);
    if (!buf) return -1;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t at = i;
        uint32_t cp;
        if (lmb_utf8_next(s, n, &i, &cp)) {
            memcpy(buf + o, s + at, i - at);
            o += i - at;
        } else {
            o += (size_t)lmb_utf8_put(LMB_UTF8_REPLACEMENT, buf + o);
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
}

size_t lmb_utf8_count(const char *s, size_t n) {
    size_t i = 0, k = 0;
    uint32_t cp;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80)
            i++;
        else
            lmb_utf8_next(s, n, &i, &cp);
        k++;
    }
    return k;
}

size_t lmb_utf8_skip(const char *s, size_t n, size_t k) {
    size_t i = 0;
    uint32_t cp;
    while (i < n && k > 0) {
        if ((unsigned char)s[i] < 0x80)
            i++;
        else
            lmb_utf8_next(s, n, &i, &cp);
        k--;
    }
    return i;
}
