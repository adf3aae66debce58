/* fileio.h — reading files the way every module needs them: mapped read-only (weights), read whole (JSON,
 * text; `.gz`/`.zst`/`.xz` decompressed on the fly through libarchive's raw format), and path helpers.
 * Every buffer returned here is owned by the caller and released with the matching free function.
 */
#ifndef LMB_FILEIO_H
#define LMB_FILEIO_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct lmb_mapped_file {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} lmb_mapped_file;

int lmb_file_map(const char *path, lmb_mapped_file *out, lmb_error *err);
void lmb_file_unmap(lmb_mapped_file *f);

/* Reads the whole file into a NUL-terminated heap buffer (*size excludes the NUL). Compressed files
 * (gzip, zstd, xz, bzip2 — detected by content, not by name) are decompressed. */
int lmb_file_read_all(const char *path, char **out, size_t *size, lmb_error *err);

bool lmb_file_exists(const char *path);

/* dir + "/" + name into buf; fails (returns -1) when it does not fit. */
int lmb_path_join(char *buf, size_t cap, const char *dir, const char *name, lmb_error *err);

/* Writes data to path atomically: path.tmp.<pid>, fsync, rename. */
int lmb_file_write_atomic(const char *path, const void *data, size_t size, lmb_error *err);

#endif
