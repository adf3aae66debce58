/* safetensors_write.c — the safetensors writer (used by the AWQ quantizer and the test fixtures).
 *
 * Tensors are laid out in the data section in insertion order, back to back; the JSON header lists
 * "__metadata__" first (when any was set) and then the tensors in the same order, and is padded with
 * spaces so that 8 + header length is a multiple of 8, as Hugging Face's writer does (every tensor then
 * starts 8-aligned relative to the file when the ones before it have 8-multiple sizes).  Tensor data is
 * borrowed until lmb_st_writer_save, which builds the file in memory and writes it atomically.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "safetensors.h"

typedef struct wr_entry {
    char *name;
    lmb_dtype dtype;
    int ndim;
    int64_t shape[LMB_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wr_entry;

typedef struct wr_meta {
    char *key, *value;
} wr_meta;

struct lmb_st_writer {
    wr_entry *e;
    int n, cap;
    wr_meta *meta;
    int n_meta;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

lmb_st_writer *lmb_st_writer_new(void) { return calloc(1, sizeof(lmb_st_writer)); }

void lmb_st_writer_free(lmb_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w);
}

int lmb_st_writer_add(lmb_st_writer *w, const char *name, lmb_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, lmb_error *err) {
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        return lmb_fail(err, "safetensors writer: invalid tensor name \"%s\"", name ? name : "(null)");
    size_t es = lmb_dtype_size(dtype);
    if (es == 0) return lmb_fail(err, "safetensors writer: tensor \"%s\": invalid dtype", name);
    if (ndim < 0 || ndim > LMB_MAX_DIMS)
        return lmb_fail(err, "safetensors writer: tensor \"%s\": %d dimensions, expected 0..%d", name, ndim,
                        LMB_MAX_DIMS);
    uint64_t nbytes = es;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return lmb_fail(err, "safetensors writer: tensor \"%s\": shape[%d] = %lld is negative", name, i,
                            (long long)shape[i]);
        if (shape[i] != 0 && nbytes > (uint64_t)INT64_MAX / (uint64_t)shape[i])
            return lmb_fail(err, "safetensors writer: tensor \"%s\": shape is too large", name);
        nbytes *= (uint64_t)shape[i];
    }
    if (nbytes > 0 && !data) return lmb_fail(err, "safetensors writer: tensor \"%s\": no data", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return lmb_fail(err, "safetensors writer: tensor \"%s\" added twice", name);
    if (w->n == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 64;
        wr_entry *ne = realloc(w->e, sizeof *ne * (size_t)ncap);
        if (!ne) return lmb_fail(err, "safetensors writer: out of memory");
        w->e = ne;
        w->cap = ncap;
    }
    wr_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = dup_str(name))) return lmb_fail(err, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = (size_t)nbytes;
    w->n++;
    return 0;
}

int lmb_st_writer_set_metadata(lmb_st_writer *w, const char *key, const char *value, lmb_error *err) {
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            char *v = dup_str(value);
            if (!v) return lmb_fail(err, "safetensors writer: out of memory");
            free(w->meta[i].value);
            w->meta[i].value = v;
            return 0;
        }
    wr_meta *nm = realloc(w->meta, sizeof *nm * (size_t)(w->n_meta + 1));
    if (!nm) return lmb_fail(err, "safetensors writer: out of memory");
    w->meta = nm;
    char *k = dup_str(key), *v = dup_str(value);
    if (!k || !v) {
        free(k);
        free(v);
        return lmb_fail(err, "safetensors writer: out of memory");
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].value = v;
    w->n_meta++;
    return 0;
}

/* The header as compact JSON (metadata first, then tensors in insertion order); NULL when out of memory. */
static char *build_header(const lmb_st_writer *w) {
    json_t *root = json_object();
    if (!root) return NULL;
    int bad = 0;
    if (w->n_meta > 0) {
        json_t *m = json_object();
        bad |= json_object_set_new(root, "__metadata__", m);
        for (int i = 0; i < w->n_meta && !bad; i++)
            bad |= json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value));
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n && !bad; i++) {
        const wr_entry *e = &w->e[i];
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        bad |= json_object_set_new(root, e->name, t);
        bad |= json_object_set_new(t, "dtype", json_string(lmb_dtype_name(e->dtype)));
        bad |= json_object_set_new(t, "shape", shape);
        for (int d = 0; d < e->ndim; d++) bad |= json_array_append_new(shape, json_integer(e->shape[d]));
        bad |= json_object_set_new(t, "data_offsets", offs);
        bad |= json_array_append_new(offs, json_integer((json_int_t)off));
        bad |= json_array_append_new(offs, json_integer((json_int_t)(off + e->nbytes)));
        off += e->nbytes;
    }
    char *s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

int lmb_st_writer_save(lmb_st_writer *w, const char *path, lmb_error *err) {
    char *hdr = build_header(w);
    if (!hdr)
        return lmb_fail(err,
                        "%s: cannot build the safetensors header (out of memory, or a name or metadata string that is "
                        "not valid UTF-8)",
                        path);
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7; /* 8 + padded is then a multiple of 8 */
    size_t total = 8 + padded;
    for (int i = 0; i < w->n; i++) total += w->e[i].nbytes;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(hdr);
        return lmb_fail(err, "%s: out of memory (%zu bytes) writing safetensors", path, total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(hdr);
    size_t off = 8 + padded;
    for (int i = 0; i < w->n; i++) {
        if (w->e[i].nbytes) memcpy(buf + off, w->e[i].data, w->e[i].nbytes);
        off += w->e[i].nbytes;
    }
    int rc = lmb_file_write_atomic(path, buf, total, err);
    free(buf);
    return rc;
}
