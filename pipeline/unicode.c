/* unicode.c — normalization forms and lowercasing over the generated tables (see unicode.h).
 *
 * Normalization is the textbook three-step: full decomposition (Hangul algorithmically), canonical
 * reordering (stable by combining class within each run of non-starters), then for NFC/NFKC canonical
 * composition of unblocked pairs.  Pure ASCII input is returned unchanged without decoding.
 */
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#include "utf8.h"

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7 };
enum { L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static const lmb_uc_range *find_range(const lmb_uc_range *t, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < t[mid].lo)
            hi = mid;
        else if (cp > t[mid].hi)
            lo = mid + 1;
        else
            return &t[mid];
    }
    return NULL;
}

uint8_t lmb_uc_combining_class(uint32_t cp) {
    if (cp < 0x300) return 0;
    const lmb_uc_range *r = find_range(lmb_uc_ccc, lmb_uc_ccc_n, cp);
    return r ? r->value : 0;
}

bool lmb_uc_is_word(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return find_range(lmb_uc_word, lmb_uc_word_n, cp) != NULL;
}

bool lmb_uc_is_whitespace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

static const lmb_uc_decomp *find_decomp(uint32_t cp) {
    size_t lo = 0, hi = lmb_uc_decomps_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lmb_uc_decomps[mid].cp == cp) return &lmb_uc_decomps[mid];
        if (lmb_uc_decomps[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = lmb_uc_comps_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lmb_uc_comps[mid].key == key) return lmb_uc_comps[mid].cp;
        if (lmb_uc_comps[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

typedef struct cpbuf {
    uint32_t *v;
    uint8_t *cc;
    size_t n, cap;
} cpbuf;

/* Appends cp, keeping each run of non-starters sorted by combining class (stable). */
static int cp_push(cpbuf *b, uint32_t cp) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        uint32_t *v = realloc(b->v, nc * sizeof *v);
        if (!v) return -1;
        b->v = v;
        uint8_t *cc = realloc(b->cc, nc);
        if (!cc) return -1;
        b->cc = cc;
        b->cap = nc;
    }
    uint8_t c = lmb_uc_combining_class(cp);
    size_t i = b->n++;
    if (c != 0)
        while (i > 0 && b->cc[i - 1] > c) {
            b->v[i] = b->v[i - 1];
            b->cc[i] = b->cc[i - 1];
            i--;
        }
    b->v[i] = cp;
    b->cc[i] = c;
    return 0;
}

static int decompose(cpbuf *b, uint32_t cp, bool compat) {
    if (cp < 0xA0) return cp_push(b, cp);
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        if (cp_push(b, L_BASE + s / N_COUNT) || cp_push(b, V_BASE + (s % N_COUNT) / T_COUNT)) return -1;
        if (s % T_COUNT) return cp_push(b, T_BASE + s % T_COUNT);
        return 0;
    }
    const lmb_uc_decomp *d = find_decomp(cp);
    if (!d) return cp_push(b, cp);
    size_t off = compat ? d->compat_off : d->canon_off, len = compat ? d->compat_len : d->canon_len;
    for (size_t k = 0; k < len; k++)
        if (cp_push(b, lmb_uc_decomp_pool[off + k])) return -1;
    return 0;
}

/* Canonical composition in place.  A character composes with the last starter when nothing is kept
 * between them, or when the last kept character has a lower combining class (it is not "blocked"). */
static void compose(cpbuf *b) {
    if (b->n == 0) return;
    bool have_starter = b->cc[0] == 0;
    size_t starter = 0, out = 1;
    int last = b->cc[0];
    for (size_t i = 1; i < b->n; i++) {
        uint32_t c = b->v[i];
        int cc = b->cc[i];
        if (have_starter && (out == starter + 1 || last < cc)) {
            uint32_t comp = compose_pair(b->v[starter], c);
            if (comp) {
                b->v[starter] = comp;
                continue;
            }
        }
        if (cc == 0) {
            have_starter = true;
            starter = out;
        }
        last = cc;
        b->v[out] = c;
        b->cc[out] = (uint8_t)cc;
        out++;
    }
    b->n = out;
}

static int reserve(char **buf, size_t *cap, size_t need) {
    if (*cap >= need) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    char *p = realloc(*buf, nc);
    if (!p) return -1;
    *buf = p;
    *cap = nc;
    return 0;
}

static bool all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

int lmb_uc_normalize(lmb_uc_form form, const char *s, size_t n, char **buf, size_t *cap, size_t *out_len) {
    if (all_ascii(s, n)) {
        if (reserve(buf, cap, n + 1)) return -1;
        memcpy(*buf, s, n);
        (*buf)[n] = '\0';
        *out_len = n;
        return 0;
    }
    cpbuf b = {0};
    bool compat = form == LMB_UC_NFKC || form == LMB_UC_NFKD;
    int rc = -1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        lmb_utf8_next(s, n, &i, &cp);
        if (decompose(&b, cp, compat)) goto done;
    }
    if (form == LMB_UC_NFC || form == LMB_UC_NFKC) compose(&b);
    if (reserve(buf, cap, b.n * 4 + 1)) goto done;
    size_t o = 0;
    for (size_t k = 0; k < b.n; k++) o += (size_t)lmb_utf8_put(b.v[k], *buf + o);
    (*buf)[o] = '\0';
    *out_len = o;
    rc = 0;
done:
    free(b.v);
    free(b.cc);
    return rc;
}

int lmb_uc_lowercase(const char *s, size_t n, char **buf, size_t *cap, size_t *out_len) {
    if (reserve(buf, cap, n * 3 + 1)) return -1; /* İ (2 bytes) -> i + U+0307 (3 bytes) is the worst case */
    char *o = *buf;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            o[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            i++;
            continue;
        }
        uint32_t cp;
        lmb_utf8_next(s, n, &i, &cp);
        bool done = false;
        for (size_t m = 0; m < lmb_uc_lower_multi_n; m++)
            if (lmb_uc_lower_multi[m].cp == cp) {
                for (int j = 0; j < lmb_uc_lower_multi[m].n; j++) k += (size_t)lmb_utf8_put(lmb_uc_lower_multi[m].to[j], o + k);
                done = true;
            }
        if (done) continue;
        size_t lo = 0, hi = lmb_uc_lower_n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (lmb_uc_lower[mid].cp < cp)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < lmb_uc_lower_n && lmb_uc_lower[lo].cp == cp) cp = lmb_uc_lower[lo].to;
        k += (size_t)lmb_utf8_put(cp, o + k);
    }
    o[k] = '\0';
    *out_len = k;
    return 0;
}
