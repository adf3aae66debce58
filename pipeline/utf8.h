/* utf8.h — the UTF-8 helpers the tokenizer is built on.
 *
 * Decoding follows the Unicode "maximal subpart" practice (what Python's errors="replace" and Rust's
 * from_utf8_lossy do): each maximal prefix of a would-be valid sequence counts as ONE invalid unit and
 * becomes one U+FFFD.  Surrogates, overlongs and code points above U+10FFFF are invalid.
 */
#ifndef LMB_UTF8_H
#define LMB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMB_UTF8_REPLACEMENT 0xFFFDu

/* Decodes the code point at s[*i] (requires *i < n), advances *i past it and returns true; on an invalid
 * unit, sets *cp = U+FFFD, advances past the maximal subpart (at least one byte) and returns false. */
bool lmb_utf8_next(const char *s, size_t n, size_t *i, uint32_t *cp);

/* Writes cp (must be a valid scalar value) to out (4 bytes room); returns the byte count. */
int lmb_utf8_put(uint32_t cp, char *out);

/* Length in bytes of the sequence a lead byte announces (1 for ASCII and for invalid leads). */
static inline int lmb_utf8_seqlen(unsigned char c) {
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
}

/* Index of the first invalid byte, or n when s[0..n) is valid UTF-8. */
size_t lmb_utf8_valid_prefix(const char *s, size_t n);
static inline bool lmb_utf8_valid(const char *s, size_t n) { return lmb_utf8_valid_prefix(s, n) == n; }

/* Heap copy of s with each invalid unit replaced by U+FFFD (NUL-terminated; *out_len excludes it). */
int lmb_utf8_sanitize(const char *s, size_t n, char **out, size_t *out_len);

/* Number of code points (invalid units count one each). */
size_t lmb_utf8_count(const char *s, size_t n);

/* Byte offset of the k-th code point of s (n if s has k or fewer). */
size_t lmb_utf8_skip(const char *s, size_t n, size_t k);

#endif
