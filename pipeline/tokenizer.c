/* tokenizer.c — loading tokenizer.json (+ tokenizer_config.json) and the encode pipeline.
 *
 * Encode follows HF tokenizers step by step: invalid UTF-8 input becomes U+FFFD; added tokens with
 * normalized=false are cut out of the raw text; each remaining segment is normalized, then cut around
 * added tokens with normalized=true; each remaining piece is pre-tokenized into words; each word goes
 * through BPE.  With LMB_TOK_ADD_SPECIAL the post-processor's ids are put around the result.  A failed
 * encode leaves `out` as it was.  The component parsers live beside their runtimes (tok_*.c); this file
 * only wires them together and builds the id -> token table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/fileio.h"
#include "tok_internal.h"
#include "utf8.h"

int lmb_ids_push(lmb_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->ids, nc * sizeof *p);
        if (!p) return -1;
        v->ids = p;
        v->cap = nc;
    }
    v->ids[v->n++] = id;
    return 0;
}

void lmb_ids_free(lmb_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

void lmb_tokenizer_free(lmb_tokenizer *t) {
    if (!t) return;
    lmb_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    lmb_trie_free(&t->trie_raw);
    lmb_trie_free(&t->trie_norm);
    lmb_norm_free(t->norm, t->n_norm);
    lmb_pretok_free(t->pretok, t->n_pretok);
    lmb_decoder_free(t->dec, t->n_dec);
    free(t->post_prefix);
    free(t->post_suffix);
    free(t->tok);
    free(t->tok_len);
    free(t->special);
    free(t->chat_template);
    free(t->bos_token);
    free(t->eos_token);
    free(t);
}

/* ---- post-processor ----------------------------------------------------------------------------------- */

typedef struct idvec {
    int32_t *v;
    size_t n;
} idvec;

static int idvec_append(idvec *d, const int32_t *ids, size_t n) {
    int32_t *p = realloc(d->v, (d->n + n + 1) * sizeof *p);
    if (!p) return -1;
    d->v = p;
    if (n) memcpy(p + d->n, ids, n * sizeof *ids);
    d->n += n;
    return 0;
}

/* Ids of a TemplateProcessing special token, from its special_tokens table. */
static int template_special(json_t *specials, const char *name, idvec *into, const char *where, lmb_error *err) {
    json_t *e = json_object_get(specials, name), *ids = json_object_get(e, "ids");
    if (!json_is_array(ids))
        return lmb_fail(err, "%s.special_tokens: no entry \"%s\" with an \"ids\" array", where, name);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_t *x = json_array_get(ids, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > LMB_TOK_MAX_ID)
            return lmb_fail(err, "%s.special_tokens[\"%s\"].ids[%zu]: expected an integer id from 0 to %d", where, name,
                            i, LMB_TOK_MAX_ID);
        int32_t id = (int32_t)json_integer_value(x);
        if (idvec_append(into, &id, 1)) return lmb_fail(err, "out of memory");
    }
    return 0;
}

static int parse_template(json_t *j, idvec *pre, idvec *suf, const char *where, lmb_error *err) {
    json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
    bool seen_a = false;
    if (json_is_array(single)) {
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *it = json_array_get(single, i);
            json_t *sp = json_object_get(it, "SpecialToken"), *sq = json_object_get(it, "Sequence");
            if (json_is_object(sq)) {
                if (seen_a) return lmb_fail(err, "%s.single[%zu]: a second Sequence", where, i);
                seen_a = true;
            } else if (json_is_string(json_object_get(sp, "id"))) {
                if (template_special(specials, json_string_value(json_object_get(sp, "id")), seen_a ? suf : pre, where,
                                     err))
                    return -1;
            } else {
                return lmb_fail(err, "%s.single[%zu]: expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}",
                                where, i);
            }
        }
    } else if (json_is_string(single)) { /* "<s> $A </s>" form */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", json_string_value(single));
        for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            char *colon = strrchr(w, ':');
            if (colon && colon != w) *colon = '\0';
            if (w[0] == '$') {
                seen_a = true;
            } else if (template_special(specials, w, seen_a ? suf : pre, where, err)) {
                return -1;
            }
        }
    } else {
        return lmb_fail(err, "%s.single: expected an array or a string", where);
    }
    return 0;
}

static int parse_post(json_t *j, idvec *pre, idvec *suf, const char *where, lmb_error *err) {
    if (!j || json_is_null(j)) return 0;
    json_t *type = json_object_get(j, "type");
    if (!json_is_object(j) || !json_is_string(type))
        return lmb_fail(err, "%s: expected an object with a string \"type\"", where);
    const char *ty = json_string_value(type);
    char sub[512];
    if (strcmp(ty, "ByteLevel") == 0) return 0; /* offsets only: no effect on ids */
    if (strcmp(ty, "Sequence") == 0) {
        json_t *list = json_object_get(j, "processors");
        if (!json_is_array(list)) return lmb_fail(err, "%s.processors: expected an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(sub, sizeof sub, "%s.processors[%zu]", where, i);
            idvec p = {0}, s = {0};
            int rc = parse_post(json_array_get(list, i), &p, &s, sub, err);
            /* later processors wrap the earlier result */
            if (!rc && (idvec_append(&p, pre->v, pre->n) || idvec_append(suf, s.v, s.n))) rc = lmb_fail(err, "out of memory");
            if (!rc) {
                free(pre->v);
                *pre = p;
                p.v = NULL;
            }
            free(p.v);
            free(s.v);
            if (rc) return -1;
        }
        return 0;
    }
    if (strcmp(ty, "TemplateProcessing") == 0) return parse_template(j, pre, suf, where, err);
    if (strcmp(ty, "BertProcessing") == 0 || strcmp(ty, "RobertaProcessing") == 0) {
        json_t *cls = json_array_get(json_object_get(j, "cls"), 1), *sep = json_array_get(json_object_get(j, "sep"), 1);
        if (!json_is_integer(cls) || !json_is_integer(sep) || json_integer_value(cls) < 0 ||
            json_integer_value(sep) < 0 || json_integer_value(cls) > LMB_TOK_MAX_ID ||
            json_integer_value(sep) > LMB_TOK_MAX_ID)
            return lmb_fail(err, "%s: expected \"cls\" and \"sep\" as [token, id] with ids from 0 to %d", where,
                            LMB_TOK_MAX_ID);
        int32_t c = (int32_t)json_integer_value(cls), s = (int32_t)json_integer_value(sep);
        if (idvec_append(pre, &c, 1) || idvec_append(suf, &s, 1)) return lmb_fail(err, "out of memory");
        return 0;
    }
    return lmb_fail(err, "%s: unsupported post_processor type \"%s\" (supported: TemplateProcessing, ByteLevel, "
                    "BertProcessing, RobertaProcessing, Sequence)", where, ty);
}

/* ---- loading ---------------------------------------------------------------------------------------------- */

static int build_tables(lmb_tokenizer *t, const char *path, lmb_error *err) {
    int32_t max = t->bpe.max_id;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max) max = t->added[i].id;
    t->vocab_size = max + 1;
    size_t n = (size_t)t->vocab_size + 1;
    t->tok = calloc(n, sizeof *t->tok);
    t->tok_len = calloc(n, sizeof *t->tok_len);
    t->special = calloc(n, sizeof *t->special);
    if (!t->tok || !t->tok_len || !t->special) return lmb_fail(err, "out of memory");
    const lmb_strmap *v = &t->bpe.vocab;
    for (size_t i = 0; i < v->n; i++) {
        int32_t id = v->e[i].val;
        t->tok[id] = v->keys.p + v->e[i].off;
        t->tok_len[id] = v->e[i].len;
    }
    /* added-token tries: special tokens first, then the others, each in file order (HF's order).  Tokens
     * with normalized=true are matched, and decoded, as their normalized content. */
    lmb_trie_init(&t->trie_raw);
    lmb_trie_init(&t->trie_norm);
    lmb_enc_scratch sc = {0};
    int rc = 0;
    if (!(sc.md = pcre2_match_data_create(1, NULL))) return lmb_fail(err, "out of memory");
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (size_t i = 0; i < t->n_added && !rc; i++) {
            lmb_added *a = &t->added[i];
            if (a->special != (pass == 0) || a->len == 0) continue;
            if (!a->normalized) {
                if (lmb_trie_add(&t->trie_raw, a->content, a->len, (int32_t)i)) rc = lmb_fail(err, "out of memory");
                continue;
            }
            if (lmb_normalize(t->norm, t->n_norm, a->content, a->len, &sc, &sc.nbuf, err)) {
                lmb_error_prefix(err, "%s: added_tokens[%zu]", path, i);
                rc = -1;
            } else if (!(a->norm = malloc(sc.nbuf.n + 1))) {
                rc = lmb_fail(err, "out of memory");
            } else {
                memcpy(a->norm, sc.nbuf.p, sc.nbuf.n + 1);
                a->norm_len = sc.nbuf.n;
                if (lmb_trie_add(&t->trie_norm, a->norm, a->norm_len, (int32_t)i)) rc = lmb_fail(err, "out of memory");
            }
        }
    lmb_buf_free(&sc.nbuf);
    free(sc.tmp);
    pcre2_match_data_free(sc.md);
    for (size_t i = 0; i < t->n_added && !rc; i++) {
        const lmb_added *a = &t->added[i];
        t->tok[a->id] = a->norm ? a->norm : a->content;
        t->tok_len[a->id] = (uint32_t)(a->norm ? a->norm_len : a->len);
        t->special[a->id] = a->special;
    }
    return rc;
}

static int load_root(json_t *root, const char *path, lmb_tokenizer **out, lmb_error *err) {
    *out = NULL;
    if (!json_is_object(root)) return lmb_fail(err, "%s: expected a JSON object at the top level", path);
    lmb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lmb_fail(err, "out of memory");
    t->add_bos_token = t->add_eos_token = -1;
    lmb_trie_init(&t->trie_raw);
    lmb_trie_init(&t->trie_norm);
    lmb_bytelevel_init(&t->bl);
    char where[1024];
    idvec pre = {0}, suf = {0};
    json_t *model = json_object_get(root, "model");
    if (!model) {
        lmb_fail(err, "%s: no \"model\" field", path);
        goto fail;
    }
    if (lmb_bpe_parse(model, &t->bpe, path, err)) goto fail;
    snprintf(where, sizeof where, "%s: normalizer", path);
    if (lmb_norm_parse(json_object_get(root, "normalizer"), &t->norm, &t->n_norm, where, err)) goto fail;
    snprintf(where, sizeof where, "%s: pre_tokenizer", path);
    if (lmb_pretok_parse(json_object_get(root, "pre_tokenizer"), &t->pretok, &t->n_pretok, where, err)) goto fail;
    if (lmb_added_parse(json_object_get(root, "added_tokens"), t, path, err)) goto fail;
    snprintf(where, sizeof where, "%s: post_processor", path);
    if (parse_post(json_object_get(root, "post_processor"), &pre, &suf, where, err)) goto fail;
    t->post_prefix = pre.v, t->n_post_prefix = pre.n;
    t->post_suffix = suf.v, t->n_post_suffix = suf.n;
    pre.v = suf.v = NULL;
    json_t *dec = json_object_get(root, "decoder");
    t->has_decoder = dec && !json_is_null(dec);
    snprintf(where, sizeof where, "%s: decoder", path);
    if (t->has_decoder && lmb_decoder_parse(dec, &t->dec, &t->n_dec, where, err)) goto fail;
    /* A Strip decoder that removes more than one leading character, or trailing ones, makes the text of a
     * window of ids depend on where the window starts; lmb_detok's sliding window would then lose text
     * (Llama's Strip removes one leading space, which the window handles). */
    for (size_t i = 0; i < t->n_dec; i++)
        if (t->dec[i].kind == LMB_DEC_STRIP && (t->dec[i].start > 1 || t->dec[i].stop > 0)) t->detok_from_start = true;
    if (build_tables(t, path, err)) goto fail;
    *out = t;
    return 0;
fail:
    free(pre.v);
    free(suf.v);
    lmb_tokenizer_free(t);
    return -1;
}

int lmb_tokenizer_load_json(const char *json, size_t len, const char *name, lmb_tokenizer **out, lmb_error *err) {
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    if (!root) return lmb_fail(err, "%s:%d:%d: invalid JSON: %s", name, je.line, je.column, je.text);
    int rc = load_root(root, name, out, err);
    json_decref(root);
    return rc;
}

int lmb_tokenizer_load(const char *path, lmb_tokenizer **out, lmb_error *err) {
    *out = NULL;
    char *text;
    size_t len;
    if (lmb_file_read_all(path, &text, &len, err)) return -1;
    int rc = lmb_tokenizer_load_json(text, len, path, out, err);
    free(text);
    return rc;
}

/* A special-token field of tokenizer_config.json: a string or {"content": string}. */
static int config_token(json_t *cfg, const char *key, char **out, const char *path, lmb_error *err) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return lmb_fail(err, "%s: \"%s\": expected a string or {\"content\": string}", path, key);
    if (!(*out = strdup(json_string_value(v)))) return lmb_fail(err, "out of memory");
    return 0;
}

static int load_config(lmb_tokenizer *t, const char *path, lmb_error *err) {
    json_error_t je;
    json_t *cfg = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!cfg) return lmb_fail(err, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
    int rc = -1;
    if (!json_is_object(cfg)) {
        lmb_fail(err, "%s: expected a JSON object", path);
        goto done;
    }
    json_t *b = json_object_get(cfg, "add_bos_token"), *e = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(b)) t->add_bos_token = json_is_true(b);
    if (json_is_boolean(e)) t->add_eos_token = json_is_true(e);
    json_t *ct = json_object_get(cfg, "chat_template");
    if (json_is_array(ct)) { /* [{"name": ..., "template": ...}]: take "default" */
        json_t *pick = NULL;
        for (size_t i = 0; i < json_array_size(ct); i++) {
            json_t *it = json_array_get(ct, i);
            const char *name = json_string_value(json_object_get(it, "name"));
            if (name && strcmp(name, "default") == 0) pick = json_object_get(it, "template");
        }
        if (!pick) {
            lmb_fail(err, "%s: chat_template: a list without a \"default\" entry", path);
            goto done;
        }
        ct = pick;
    }
    if (ct && !json_is_null(ct)) {
        if (!json_is_string(ct)) {
            lmb_fail(err, "%s: chat_template: expected a string or a list of {name, template}", path);
            goto done;
        }
        if (!(t->chat_template = strdup(json_string_value(ct)))) {
            lmb_fail(err, "out of memory");
            goto done;
        }
    }
    if (config_token(cfg, "bos_token", &t->bos_token, path, err) || config_token(cfg, "eos_token", &t->eos_token, path, err))
        goto done;
    rc = 0;
done:
    json_decref(cfg);
    return rc;
}

int lmb_tokenizer_load_dir(const char *dir, lmb_tokenizer **out, lmb_error *err) {
    *out = NULL;
    char path[4096];
    if (lmb_path_join(path, sizeof path, dir, "tokenizer.json", err)) return -1;
    if (!lmb_file_exists(path)) return lmb_fail(err, "%s: no tokenizer.json in this folder", dir);
    lmb_tokenizer *t;
    if (lmb_tokenizer_load(path, &t, err)) return -1;
    if (lmb_path_join(path, sizeof path, dir, "tokenizer_config.json", err)) {
        lmb_tokenizer_free(t);
        return -1;
    }
    if (lmb_file_exists(path) && load_config(t, path, err)) {
        lmb_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---- encode ------------------------------------------------------------------------------------------------- */

static void scratch_free(lmb_enc_scratch *sc) {
    lmb_buf_free(&sc->nbuf);
    lmb_buf_free(&sc->pa);
    lmb_buf_free(&sc->pb);
    lmb_buf_free(&sc->pc);
    free(sc->tmp);
    free(sc->seg.v);
    free(sc->sub.v);
    free(sc->sa.v);
    free(sc->sb.v);
    free(sc->st.v);
    if (sc->md) pcre2_match_data_free(sc->md);
    lmb_bpe_scratch_free(&sc->bpe);
}

static int push_all(lmb_ids *out, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (lmb_ids_push(out, ids[i])) return -1;
    return 0;
}

/* One segment of plain text (between raw-matched added tokens). */
static int encode_segment(const lmb_tokenizer *t, const char *s, size_t n, bool at_origin, lmb_enc_scratch *sc,
                          lmb_ids *out, lmb_error *err) {
    const char *ns = s;
    size_t nn = n;
    if (t->n_norm) {
        if (lmb_normalize(t->norm, t->n_norm, s, n, sc, &sc->nbuf, err)) return -1;
        ns = sc->nbuf.p;
        nn = sc->nbuf.n;
    }
    sc->sub.n = 0;
    if (lmb_added_split(t, &t->trie_norm, ns, nn, &sc->sub)) return lmb_fail(err, "out of memory");
    for (size_t k = 0; k < sc->sub.n; k++) {
        const lmb_span *p = &sc->sub.v[k];
        if (p->id >= 0) {
            if (lmb_ids_push(out, p->id)) return lmb_fail(err, "out of memory");
            continue;
        }
        lmb_buf *buf;
        lmb_spans *words;
        if (lmb_pretokenize(t, ns + p->off, p->len, at_origin && p->off == 0, sc, &buf, &words, err)) return -1;
        for (size_t w = 0; w < words->n; w++)
            if (lmb_bpe_encode_word(&t->bpe, buf->p + words->v[w].off, words->v[w].len, &sc->bpe, out))
                return lmb_fail(err, "out of memory");
    }
    return 0;
}

int lmb_tokenizer_encode(const lmb_tokenizer *t, const char *text, size_t len, int flags, lmb_ids *out,
                         lmb_error *err) {
    size_t base = out->n;
    char *clean = NULL;
    if (!lmb_utf8_valid(text, len)) { /* documented in tokenizer.h: invalid input bytes become U+FFFD */
        if (lmb_utf8_sanitize(text, len, &clean, &len)) return lmb_fail(err, "out of memory");
        text = clean;
    }
    lmb_enc_scratch sc = {0};
    int rc = -1;
    if (!(sc.md = pcre2_match_data_create(1, NULL))) {
        lmb_fail(err, "out of memory");
        goto done;
    }
    if ((flags & LMB_TOK_ADD_SPECIAL) && push_all(out, t->post_prefix, t->n_post_prefix)) goto oom;
    if (lmb_added_split(t, &t->trie_raw, text, len, &sc.seg)) goto oom;
    for (size_t k = 0; k < sc.seg.n; k++) {
        const lmb_span *g = &sc.seg.v[k];
        if (g->id >= 0) {
            if (lmb_ids_push(out, g->id)) goto oom;
        } else if (encode_segment(t, text + g->off, g->len, g->off == 0, &sc, out, err)) {
            goto done;
        }
    }
    if ((flags & LMB_TOK_ADD_SPECIAL) && push_all(out, t->post_suffix, t->n_post_suffix)) goto oom;
    rc = 0;
    goto done;
oom:
    lmb_fail(err, "out of memory");
done:
    if (rc) out->n = base;
    scratch_free(&sc);
    free(clean);
    return rc;
}

/* ---- lookups -------------------------------------------------------------------------------------------------- */

int lmb_tokenizer_vocab_size(const lmb_tokenizer *t) { return t->vocab_size; }

const char *lmb_tokenizer_id_to_token(const lmb_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size ? t->tok[id] : NULL;
}

int32_t lmb_tokenizer_token_to_id(const lmb_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0) return t->added[i].id;
    return lmb_strmap_get(&t->bpe.vocab, token, n);
}

bool lmb_tokenizer_is_special(const lmb_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && t->special[id];
}

const char *lmb_tokenizer_chat_template(const lmb_tokenizer *t) { return t->chat_template; }
const char *lmb_tokenizer_bos_token(const lmb_tokenizer *t) { return t->bos_token; }
const char *lmb_tokenizer_eos_token(const lmb_tokenizer *t) { return t->eos_token; }
int lmb_tokenizer_config_add_bos(const lmb_tokenizer *t) { return t->add_bos_token; }
