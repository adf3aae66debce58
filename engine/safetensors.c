/* safetensors.c — the safetensors reader: one mapped file, a sharded set (model.safetensors.index.json) or
 * every *.safetensors file of a folder, validated before any tensor is handed out.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON header, then the data section.  The
 * header maps tensor name -> {dtype, shape, data_offsets [begin, end)} (offsets relative to the data
 * section) plus an optional "__metadata__" string->string object.  Invariants after a successful open: every
 * tensor lies inside its file's data section, tensors of one file do not overlap, nbytes == numel * dtype
 * size, names are unique across the set.  Views point into the mappings and live until lmb_st_close.
 * The writer lives in safetensors_write.c.
 */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

/* The reference implementation refuses headers over 100 MB; so do we (a real header is a few hundred KB). */
#define ST_HEADER_MAX ((uint64_t)100 * 1000 * 1000)

typedef struct st_file {
    char *path;
    lmb_mapped_file map;
} st_file;

typedef struct st_entry {
    lmb_tensor t; /* t.name is owned (heap) */
    int file;     /* index into files */
    uint64_t begin, end;
} st_entry;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct lmb_safetensors {
    st_file *files;
    int n_files;
    st_entry *e;
    int n, cap;
    const st_entry **by_name; /* sorted by name, for lmb_st_find */
    st_meta *meta;            /* "__metadata__" of the first file */
    int n_meta;
};

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- one tensor entry ------------------------------------------------------------------------------------ */

/* A JSON integer that must be >= 0. */
static int get_nonneg(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (int64_t)x;
    return 0;
}

static void describe(char *buf, size_t cap, const json_t *v) {
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(buf, cap, "\"%.40s\"", json_string_value(v));
    else
        snprintf(buf, cap, "%s", json_kind(v));
}

static int parse_entry(const char *path, const char *name, const json_t *v, uint64_t data_size, st_entry *out,
                       lmb_error *err) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(v))
        return lmb_fail(err, "%s: tensor \"%s\": entry must be an object, got %s", path, name, json_kind(v));

    const json_t *jd = json_object_get(v, "dtype");
    if (!jd) return lmb_fail(err, "%s: tensor \"%s\": field \"dtype\" is missing", path, name);
    if (!json_is_string(jd))
        return lmb_fail(err, "%s: tensor \"%s\": field \"dtype\" must be a string, got %s", path, name, json_kind(jd));
    lmb_dtype dt = lmb_dtype_parse(json_string_value(jd));
    if (dt == LMB_DTYPE_INVALID)
        return lmb_fail(err,
                        "%s: tensor \"%s\": unsupported dtype \"%.40s\" (expected F32, F16, BF16, F64, I64, I32, I16, "
                        "I8, U8 or BOOL)",
                        path, name, json_string_value(jd));

    const json_t *js = json_object_get(v, "shape");
    if (!js) return lmb_fail(err, "%s: tensor \"%s\": field \"shape\" is missing", path, name);
    if (!json_is_array(js))
        return lmb_fail(err, "%s: tensor \"%s\": field \"shape\" must be an array, got %s", path, name, json_kind(js));
    size_t ndim = json_array_size(js);
    if (ndim > LMB_MAX_DIMS)
        return lmb_fail(err, "%s: tensor \"%s\": shape has %zu dimensions, at most %d supported", path, name, ndim,
                        LMB_MAX_DIMS);
    size_t es = lmb_dtype_size(dt);
    uint64_t nbytes = es; /* numel * es, checked for overflow as it grows */
    for (size_t i = 0; i < ndim; i++) {
        const json_t *d = json_array_get(js, i);
        int64_t x;
        if (get_nonneg(d, &x)) {
            char got[64];
            describe(got, sizeof got, d);
            return lmb_fail(err, "%s: tensor \"%s\": shape[%zu] must be a non-negative integer, got %s", path, name, i,
                            got);
        }
        out->t.shape[i] = x;
        if (x != 0 && nbytes > (uint64_t)INT64_MAX / (uint64_t)x)
            return lmb_fail(err, "%s: tensor \"%s\": shape is too large (byte size overflows)", path, name);
        nbytes *= (uint64_t)x;
    }

    const json_t *jo = json_object_get(v, "data_offsets");
    if (!jo) return lmb_fail(err, "%s: tensor \"%s\": field \"data_offsets\" is missing", path, name);
    int64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || get_nonneg(json_array_get(jo, 0), &b) ||
        get_nonneg(json_array_get(jo, 1), &e))
        return lmb_fail(err, "%s: tensor \"%s\": field \"data_offsets\" must be two non-negative integers [begin, end]",
                        path, name);
    if (b > e)
        return lmb_fail(err, "%s: tensor \"%s\": data_offsets [%lld, %lld): begin is after end", path, name,
                        (long long)b, (long long)e);
    if ((uint64_t)e > data_size)
        return lmb_fail(err, "%s: tensor \"%s\": data_offsets [%lld, %lld) exceed the data section (%llu bytes)", path,
                        name, (long long)b, (long long)e, (unsigned long long)data_size);
    if ((uint64_t)(e - b) != nbytes) {
        char shp[256];
        int o = snprintf(shp, sizeof shp, "[");
        for (size_t i = 0; i < ndim && o < (int)sizeof shp; i++)
            o += snprintf(shp + o, sizeof shp - (size_t)o, "%s%lld", i ? ", " : "", (long long)out->t.shape[i]);
        if (o < (int)sizeof shp) snprintf(shp + o, sizeof shp - (size_t)o, "]");
        return lmb_fail(
            err, "%s: tensor \"%s\": data_offsets [%lld, %lld) hold %lld bytes but shape %s of %s needs %llu", path,
            name, (long long)b, (long long)e, (long long)(e - b), shp, lmb_dtype_name(dt), (unsigned long long)nbytes);
    }
    out->t.dtype = dt;
    out->t.ndim = (int)ndim;
    out->t.nbytes = (size_t)nbytes;
    out->begin = (uint64_t)b;
    out->end = (uint64_t)e;
    return 0;
}

static int parse_metadata(const char *path, const json_t *v, lmb_safetensors *st, bool keep, lmb_error *err) {
    if (!json_is_object(v)) return lmb_fail(err, "%s: \"__metadata__\" must be an object, got %s", path, json_kind(v));
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        if (!json_is_string(x))
            return lmb_fail(err, "%s: \"__metadata__\" value for \"%s\" must be a string, got %s", path, k,
                            json_kind(x));
    }
    if (!keep) return 0;
    size_t n = json_object_size(v);
    st->meta = calloc(n ? n : 1, sizeof *st->meta);
    if (!st->meta) return lmb_fail(err, "%s: out of memory", path);
    json_object_foreach((json_t *)v, k, x) {
        st_meta *m = &st->meta[st->n_meta];
        m->key = dup_str(k);
        m->value = dup_str(json_string_value(x));
        if (m->key) st->n_meta++; /* counted once the key exists, so close frees what was made */
        if (!m->key || !m->value) return lmb_fail(err, "%s: out of memory", path);
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* ---- one file -------------------------------------------------------------------------------------------- */

static int add_file(lmb_safetensors *st, const char *path, bool keep_meta, lmb_error *err) {
    st_file *nf = realloc(st->files, sizeof *nf * (size_t)(st->n_files + 1));
    if (!nf) return lmb_fail(err, "%s: out of memory", path);
    st->files = nf;
    int fi = st->n_files;
    st_file *f = &st->files[fi];
    memset(f, 0, sizeof *f);
    f->path = dup_str(path);
    if (!f->path) return lmb_fail(err, "%s: out of memory", path);
    st->n_files++; /* from here lmb_st_close releases it */
    if (lmb_file_map(path, &f->map, err)) return -1;

    const unsigned char *p = f->map.data;
    size_t size = f->map.size;
    if (size < 8)
        return lmb_fail(
            err, "%s: file is %zu bytes, shorter than the 8-byte header length (truncated or not a safetensors file)",
            path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8)
        return lmb_fail(err,
                        "%s: header length %llu exceeds the file size (%zu bytes; truncated or not a safetensors file)",
                        path, (unsigned long long)hlen, size);
    if (hlen > ST_HEADER_MAX)
        return lmb_fail(err, "%s: header length %llu exceeds the %llu-byte limit", path, (unsigned long long)hlen,
                        (unsigned long long)ST_HEADER_MAX);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return lmb_fail(err, "%s: header is not valid JSON: %s (at header byte %d)", path, jerr.text, jerr.position);
    int rc = -1;
    if (!json_is_object(root)) {
        lmb_fail(err, "%s: header must be a JSON object, got %s", path, json_kind(root));
        goto done;
    }
    const unsigned char *data = p + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    size_t n_new = json_object_size(root);
    if (st->n + (int)n_new > st->cap) {
        int ncap = st->cap ? st->cap : 64;
        while (ncap < st->n + (int)n_new) ncap *= 2;
        st_entry *ne = realloc(st->e, sizeof *ne * (size_t)ncap);
        if (!ne) {
            lmb_fail(err, "%s: out of memory", path);
            goto done;
        }
        st->e = ne;
        st->cap = ncap;
    }
    int first = st->n;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(path, val, st, keep_meta, err)) goto done;
            continue;
        }
        st_entry *e = &st->e[st->n];
        if (parse_entry(path, key, val, data_size, e, err)) goto done;
        e->file = fi;
        e->t.data = data + e->begin;
        e->t.name = dup_str(key);
        if (!e->t.name) {
            lmb_fail(err, "%s: out of memory", path);
            goto done;
        }
        st->n++;
    }
    /* Overlap: sorted by begin, each non-empty tensor must start at or after the previous one's end. */
    if (st->n > first) qsort(st->e + first, (size_t)(st->n - first), sizeof *st->e, cmp_begin);
    const st_entry *prev = NULL;
    for (int i = first; i < st->n; i++) {
        const st_entry *e = &st->e[i];
        if (e->begin == e->end) continue;
        if (prev && e->begin < prev->end) {
            lmb_fail(err, "%s: tensors \"%s\" data_offsets [%llu, %llu) and \"%s\" data_offsets [%llu, %llu) overlap",
                     path, prev->t.name, (unsigned long long)prev->begin, (unsigned long long)prev->end, e->t.name,
                     (unsigned long long)e->begin, (unsigned long long)e->end);
            goto done;
        }
        prev = e;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    return strcmp(x->t.name, y->t.name);
}

/* Builds the name index; a name found twice (across shards) is an error. */
static int finish(lmb_safetensors *st, lmb_error *err) {
    st->by_name = malloc(sizeof *st->by_name * (size_t)(st->n ? st->n : 1));
    if (!st->by_name) return lmb_fail(err, "out of memory");
    for (int i = 0; i < st->n; i++) st->by_name[i] = &st->e[i];
    qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->by_name[i - 1]->t.name, st->by_name[i]->t.name) == 0)
            return lmb_fail(err, "tensor \"%s\" appears in both %s and %s", st->by_name[i]->t.name,
                            st->files[st->by_name[i - 1]->file].path, st->files[st->by_name[i]->file].path);
    return 0;
}

static lmb_safetensors *st_new(lmb_error *err) {
    lmb_safetensors *st = calloc(1, sizeof *st);
    if (!st) lmb_fail(err, "out of memory");
    return st;
}

int lmb_st_open_file(const char *path, lmb_safetensors **out, lmb_error *err) {
    *out = NULL;
    lmb_safetensors *st = st_new(err);
    if (!st) return -1;
    if (add_file(st, path, true, err) || finish(st, err)) {
        lmb_st_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

/* ---- sharded sets and folders ---------------------------------------------------------------------------- */

static const st_entry *find_entry(const lmb_safetensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->by_name[mid]->t.name);
        if (c == 0) return st->by_name[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Opens the shards named by DIR/model.safetensors.index.json and checks every weight_map entry. */
static int open_index(lmb_safetensors *st, const char *dir, const char *index_path, lmb_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (lmb_file_read_all(index_path, &text, &len, err)) return -1;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) return lmb_fail(err, "%s: not valid JSON: %s (line %d)", index_path, jerr.text, jerr.line);
    int rc = -1;
    const char **shards = NULL;
    int n_shards = 0;
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(root)) {
        lmb_fail(err, "%s: must be a JSON object, got %s", index_path, json_kind(root));
        goto done;
    }
    if (!wm) {
        lmb_fail(err, "%s: field \"weight_map\" is missing", index_path);
        goto done;
    }
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        lmb_fail(err, "%s: field \"weight_map\" must be a non-empty object of tensor name -> shard file", index_path);
        goto done;
    }
    shards = malloc(sizeof *shards * json_object_size(wm));
    if (!shards) {
        lmb_fail(err, "%s: out of memory", index_path);
        goto done;
    }
    const char *name;
    json_t *v;
    /* Shards in order of first mention, so the first shard's metadata is the set's metadata. */
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v)) {
            lmb_fail(err, "%s: weight_map[\"%s\"] must be a file name string, got %s", index_path, name, json_kind(v));
            goto done;
        }
        const char *s = json_string_value(v);
        if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
            lmb_fail(err, "%s: weight_map[\"%s\"] = \"%s\" must be a plain file name in the same folder", index_path,
                     name, s);
            goto done;
        }
        int j = 0;
        while (j < n_shards && strcmp(shards[j], s) != 0) j++;
        if (j == n_shards) shards[n_shards++] = s;
    }
    for (int j = 0; j < n_shards; j++) {
        char p[4096];
        if (lmb_path_join(p, sizeof p, dir, shards[j], err)) goto done;
        if (!lmb_file_exists(p)) {
            lmb_fail(err, "%s: weight_map names shard \"%s\", which does not exist (%s)", index_path, shards[j], p);
            goto done;
        }
        if (add_file(st, p, j == 0, err)) goto done;
    }
    if (finish(st, err)) goto done;
    json_object_foreach(wm, name, v) {
        const st_entry *e = find_entry(st, name);
        const char *want = json_string_value(v);
        if (!e) {
            lmb_fail(err, "%s: weight_map: tensor \"%s\" is not in its shard %s", index_path, name, want);
            goto done;
        }
        const char *got = st->files[e->file].path;
        size_t gl = strlen(got), wl = strlen(want);
        if (gl < wl + 1 || strcmp(got + gl - wl, want) != 0 || got[gl - wl - 1] != '/') {
            lmb_fail(err, "%s: weight_map: tensor \"%s\" is listed in %s but found in %s", index_path, name, want, got);
            goto done;
        }
    }
    rc = 0;
done:
    free(shards);
    json_decref(root);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every *.safetensors in dir, in name order. */
static int open_glob(lmb_safetensors *st, const char *dir, lmb_error *err) {
    DIR *d = opendir(dir);
    if (!d) return lmb_fail(err, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, rc = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l <= 12 || strcmp(de->d_name + l - 12, ".safetensors") != 0) continue;
        char **nn = realloc(names, sizeof *nn * (size_t)(n + 1));
        if (!nn) {
            lmb_fail(err, "%s: out of memory", dir);
            goto done;
        }
        names = nn;
        if (!(names[n] = dup_str(de->d_name))) {
            lmb_fail(err, "%s: out of memory", dir);
            goto done;
        }
        n++;
    }
    if (n == 0) {
        lmb_fail(err, "%s: no model.safetensors, model.safetensors.index.json or other *.safetensors file", dir);
        goto done;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char p[4096];
        if (lmb_path_join(p, sizeof p, dir, names[i], err) || add_file(st, p, i == 0, err)) goto done;
    }
    rc = finish(st, err);
done:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int lmb_st_open_dir(const char *dir, lmb_safetensors **out, lmb_error *err) {
    *out = NULL;
    char index[4096], single[4096];
    if (lmb_path_join(index, sizeof index, dir, "model.safetensors.index.json", err) ||
        lmb_path_join(single, sizeof single, dir, "model.safetensors", err))
        return -1;
    lmb_safetensors *st = st_new(err);
    if (!st) return -1;
    int rc;
    if (lmb_file_exists(index))
        rc = open_index(st, dir, index, err);
    else if (lmb_file_exists(single))
        rc = add_file(st, single, true, err) || finish(st, err) ? -1 : 0;
    else
        rc = open_glob(st, dir, err);
    if (rc) {
        lmb_st_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

void lmb_st_close(lmb_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free((char *)st->e[i].t.name);
    free(st->e);
    free(st->by_name);
    for (int i = 0; i < st->n_files; i++) {
        lmb_file_unmap(&st->files[i].map);
        free(st->files[i].path);
    }
    free(st->files);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    free(st);
}

/* ---- queries --------------------------------------------------------------------------------------------- */

int lmb_st_count(const lmb_safetensors *st) { return st->n; }

const lmb_tensor *lmb_st_at(const lmb_safetensors *st, int i) { return (i >= 0 && i < st->n) ? &st->e[i].t : NULL; }

const lmb_tensor *lmb_st_find(const lmb_safetensors *st, const char *name) {
    const st_entry *e = find_entry(st, name);
    return e ? &e->t : NULL;
}

int lmb_st_find_index(const lmb_safetensors *st, const char *name) {
    const st_entry *e = find_entry(st, name);
    return e ? (int)(e - st->e) : -1;
}

const char *lmb_st_metadata(const lmb_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

const char *lmb_st_file_of(const lmb_safetensors *st, int i) {
    return (i >= 0 && i < st->n) ? st->files[st->e[i].file].path : NULL;
}
