/* ids.c — line identity: keys, the key set, shard hashes, reading ids from input and output lines (see ids.h).
 * Keys hash with two MurmurHash64A lanes (different seeds); shard hashes use FNV-1a-64, the hash seeds are
 * derived from too (lmb_item_id_hash), so both are stable across versions and machines. */
#include "ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- formats ------------------------------------------------------------------------------------------ */

static const char *format_names[] = {"auto", "plain", "openai"};

int lmb_format_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, format_names[i]) == 0) return i;
    return -1;
}

const char *lmb_format_name(lmb_format f) { return format_names[f]; }

lmb_format lmb_format_detect(const char *text, size_t len) {
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    lmb_format f;
    if (o)
        f = json_is_object(o) && json_object_get(o, "custom_id") ? LMB_FMT_OPENAI : LMB_FMT_PLAIN;
    else
        f = memmem(text, len, "\"custom_id\"", 11) ? LMB_FMT_OPENAI : LMB_FMT_PLAIN;
    json_decref(o);
    return f;
}

/* ---- hashes ------------------------------------------------------------------------------------------- */

static uint64_t murmur64(const unsigned char *p, size_t len, uint64_t seed) {
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    uint64_t h = seed ^ (len * m);
    size_t nb = len / 8;
    for (size_t i = 0; i < nb; i++) {
        uint64_t k;
        memcpy(&k, p + 8 * i, 8);
        k *= m;
        k ^= k >> 47;
        k *= m;
        h ^= k;
        h *= m;
    }
    size_t rest = len & 7;
    if (rest) {
        for (size_t i = rest; i-- > 0;) h ^= (uint64_t)p[nb * 8 + i] << (8 * i);
        h *= m;
    }
    h ^= h >> 47;
    h *= m;
    h ^= h >> 47;
    return h;
}

static lmb_key key_of(const char *s, size_t n) {
    lmb_key k = {murmur64((const unsigned char *)s, n, 0x6c6d6261746368ULL),
                 murmur64((const unsigned char *)s, n, 0x9e3779b97f4a7c15ULL)};
    if (k.a == 0 && k.b == 0) k.b = 1; /* {0,0} marks an empty slot */
    return k;
}

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static char *id_text(json_t *id) { return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT); }

lmb_key lmb_key_of_id(json_t *id) {
    char *t = id_text(id);
    size_t n = t ? strlen(t) : 0;
    char *buf = malloc(n + 2);
    lmb_key k = {0, 1};
    if (t && buf) {
        buf[0] = 'i';
        memcpy(buf + 1, t, n);
        k = key_of(buf, n + 1);
    }
    free(buf);
    free(t);
    return k;
}

static int pos_text(char *buf, size_t cap, char tag, const char *origin, long line) {
    return tag ? snprintf(buf, cap, "%c%s:%ld", tag, origin ? origin : "", line)
               : snprintf(buf, cap, "%s:%ld", origin ? origin : "", line);
}

lmb_key lmb_key_of_pos(const char *origin, long line) {
    char small[512];
    int n = pos_text(small, sizeof small, 'p', origin, line);
    if ((size_t)n < sizeof small) return key_of(small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return (lmb_key){0, 1};
    pos_text(big, (size_t)n + 1, 'p', origin, line);
    lmb_key k = key_of(big, (size_t)n);
    free(big);
    return k;
}

uint64_t lmb_shard_hash_id(json_t *id) {
    char *t = id_text(id);
    uint64_t h = t ? fnv1a(t, strlen(t)) : 0;
    free(t);
    return h;
}

uint64_t lmb_shard_hash_pos(const char *origin, long line) {
    char small[512];
    int n = pos_text(small, sizeof small, 0, origin, line);
    if ((size_t)n < sizeof small) return fnv1a(small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return 0;
    pos_text(big, (size_t)n + 1, 0, origin, line);
    uint64_t h = fnv1a(big, (size_t)n);
    free(big);
    return h;
}

/* ---- input lines -------------------------------------------------------------------------------------- */

void lmb_ident_input(const char *text, size_t len, lmb_format fmt, const char *origin, long line, bool multi,
                     lmb_input_ident *out) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!o) {
        snprintf(out->why, sizeof out->why, "not valid JSON (column %d: %s)", je.column, je.text);
        return;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(out->why, sizeof out->why, "a line must be a JSON object");
        return;
    }
    out->root = o;
    if (fmt == LMB_FMT_OPENAI) {
        json_t *c = json_object_get(o, "custom_id");
        if (json_is_string(c) && json_string_length(c) > 0)
            out->id = json_incref(c);
        else if (!c || json_is_null(c))
            snprintf(out->why, sizeof out->why, "field \"custom_id\" is required (a non-empty string)");
        else
            snprintf(out->why, sizeof out->why, "field \"custom_id\" must be a non-empty string");
        return;
    }
    json_t *id = json_object_get(o, "id");
    if (!id || json_is_null(id)) {
        out->id_default = true;
        if (multi) {
            char buf[1024];
            pos_text(buf, sizeof buf, 0, origin, line);
            out->id = json_string(buf);
        } else {
            out->id = json_integer(line);
        }
    } else if (json_is_string(id) || json_is_integer(id)) {
        out->id = json_incref(id);
    } else {
        snprintf(out->why, sizeof out->why, "field \"id\" must be a string or an integer");
    }
}

void lmb_input_ident_free(lmb_input_ident *id) {
    json_decref(id->root);
    json_decref(id->id);
    memset(id, 0, sizeof *id);
}

lmb_key lmb_input_key(const lmb_input_ident *id, const char *origin, long line) {
    return id->id ? lmb_key_of_id(id->id) : lmb_key_of_pos(origin, line);
}

uint64_t lmb_input_shard_hash(const lmb_input_ident *id, const char *origin, long line) {
    return id->id ? lmb_shard_hash_id(id->id) : lmb_shard_hash_pos(origin, line);
}

/* ---- the keys of an input, line by line ---------------------------------------------------------------- */

void lmb_keyer_init(lmb_keyer *k, lmb_format forced, bool multi, int shard_k, int shard_n) {
    memset(k, 0, sizeof *k);
    k->forced = forced;
    k->multi = multi;
    k->shard_k = shard_k;
    k->shard_n = shard_n;
    k->stream = -1;
}

void lmb_keyer_free(lmb_keyer *k) { lmb_keyset_free(&k->seen); }

int lmb_keyer_line(lmb_keyer *k, const char *text, size_t len, const char *origin, long number, int stream,
                   lmb_line_key *out, lmb_error *err) {
    memset(out, 0, sizeof *out);
    if (stream != k->stream) {
        k->stream = stream;
        k->fmt = k->forced != LMB_FMT_AUTO ? k->forced : lmb_format_detect(text, len);
    }
    out->fmt = k->fmt;
    lmb_ident_input(text, len, k->fmt, origin, number, k->multi, &out->ident);
    uint64_t h = lmb_input_shard_hash(&out->ident, origin, number);
    out->in_shard = k->shard_n <= 1 || h % (uint64_t)k->shard_n == (uint64_t)k->shard_k;
    if (!out->in_shard) return 0;
    out->key = lmb_input_key(&out->ident, origin, number);
    if (!out->ident.id) return 0;
    bool added;
    uint64_t pos = ((uint64_t)stream << 40) | (uint64_t)number, first = 0;
    if (lmb_keyset_put(&k->seen, out->key, pos, &added, err)) return -1;
    if (added) return 0;
    lmb_keyset_get(&k->seen, out->key, &first);
    out->dup = true;
    out->first_stream = (int)(first >> 40);
    out->first_line = (long)(first & ((1ULL << 40) - 1));
    out->key = lmb_key_of_pos(origin, number);
    return 0;
}

/* ---- output lines ------------------------------------------------------------------------------------- */

static long int_field(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

int lmb_ident_output(const char *text, size_t len, lmb_output_ident *out) {
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    int rc = -1;
    if (!json_is_object(o)) goto done;
    json_t *id, *err = json_object_get(o, "error"), *usage = NULL;
    if (json_object_get(o, "custom_id")) {
        out->fmt = LMB_FMT_OPENAI;
        id = json_object_get(o, "custom_id");
        if (!json_is_string(id) && !json_is_null(id)) goto done;
        if (json_is_null(id)) id = NULL;
        json_t *resp = json_object_get(o, "response");
        if (json_is_object(err)) {
            out->ok = false;
        } else if (json_is_object(resp) && json_is_integer(json_object_get(resp, "status_code"))) {
            long sc = int_field(resp, "status_code");
            out->ok = sc >= 200 && sc < 300;
            usage = json_object_get(json_object_get(resp, "body"), "usage");
        } else {
            goto done;
        }
    } else {
        out->fmt = LMB_FMT_PLAIN;
        id = json_object_get(o, "id");
        if (id && !json_is_string(id) && !json_is_integer(id)) goto done;
        if (json_is_object(err)) {
            out->ok = false;
        } else if (id && json_is_string(json_object_get(o, "text"))) {
            out->ok = true;
            usage = json_object_get(o, "usage");
        } else {
            goto done;
        }
    }
    json_t *src = json_object_get(err, "source"), *line = json_object_get(err, "line");
    bool has_pos = json_is_string(src) && json_is_integer(line);
    const char *code = json_string_value(json_object_get(err, "code"));
    out->dup = !out->ok && code && strcmp(code, LMB_ERR_DUPLICATE) == 0;
    if ((out->dup || !id) && !has_pos) goto done;
    out->key = out->dup || !id ? lmb_key_of_pos(json_string_value(src), (long)json_integer_value(line))
                               : lmb_key_of_id(id);
    out->shard_hash = id ? lmb_shard_hash_id(id) : lmb_shard_hash_pos(json_string_value(src), (long)json_integer_value(line));
    if (usage) {
        out->prompt_tokens = int_field(usage, "prompt_tokens");
        out->completion_tokens = int_field(usage, "completion_tokens");
    }
    rc = 0;
done:
    json_decref(o);
    return rc;
}

/* ---- key set ------------------------------------------------------------------------------------------ */

static size_t slot_of(lmb_key k, size_t cap) { return (size_t)(k.a ^ (k.b >> 7)) & (cap - 1); }

static bool empty(lmb_key k) { return k.a == 0 && k.b == 0; }

static int grow(lmb_keyset *s, lmb_error *err) {
    size_t nc = s->cap ? s->cap * 2 : 1024;
    lmb_key *nk = calloc(nc, sizeof *nk);
    uint64_t *nv = calloc(nc, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return lmb_fail(err, "out of memory for %zu ids", s->n);
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (empty(s->keys[i])) continue;
        size_t j = slot_of(s->keys[i], nc);
        while (!empty(nk[j])) j = (j + 1) & (nc - 1);
        nk[j] = s->keys[i];
        nv[j] = s->vals[i];
    }
    free(s->keys);
    free(s->vals);
    s->keys = nk;
    s->vals = nv;
    s->cap = nc;
    return 0;
}

int lmb_keyset_put(lmb_keyset *s, lmb_key k, uint64_t val, bool *added, lmb_error *err) {
    if ((s->n + 1) * 4 > s->cap * 3 && grow(s, err)) return -1;
    size_t j = slot_of(k, s->cap);
    while (!empty(s->keys[j])) {
        if (s->keys[j].a == k.a && s->keys[j].b == k.b) {
            if (added) *added = false;
            return 0;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->keys[j] = k;
    s->vals[j] = val;
    s->n++;
    if (added) *added = true;
    return 0;
}

bool lmb_keyset_get(const lmb_keyset *s, lmb_key k, uint64_t *val) {
    if (!s->cap) return false;
    size_t j = slot_of(k, s->cap);
    while (!empty(s->keys[j])) {
        if (s->keys[j].a == k.a && s->keys[j].b == k.b) {
            if (val) *val = s->vals[j];
            return true;
        }
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}

void lmb_keyset_free(lmb_keyset *s) {
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof *s);
}
