/* sha256.h — SHA-256 (FIPS 180-4), for the input hashes in manifests and the quantize stage's stamp. */
#ifndef LMB_SHA256_H
#define LMB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/error.h"

typedef struct lmb_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
    size_t fill;
} lmb_sha256;

void lmb_sha256_init(lmb_sha256 *s);
void lmb_sha256_update(lmb_sha256 *s, const void *data, size_t n);
/* Writes the digest as 64 lowercase hex digits + NUL. */
void lmb_sha256_hex(lmb_sha256 *s, char out[65]);
/* The hex digest of a file's bytes (as stored: a .gz is hashed compressed). */
int lmb_sha256_file(const char *path, char out[65], lmb_error *err);

#endif
