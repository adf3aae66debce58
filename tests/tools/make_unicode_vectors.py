#!/usr/bin/env python3
"""make_unicode_vectors.py — writes tests/fixtures/unicode/vectors.json, Python's answers for the
normalization forms and per-character lowercasing that pipeline/unicode.c implements.

Two kinds of checks: (1) strings built to stress the algorithm (canonical reordering, blocked and unblocked
composition, Hangul, singletons, exclusions, compatibility forms) with their NFC/NFD/NFKC/NFKD/lowercase;
(2) every code point, one at a time, summarized as one FNV-1a hash per form and per block of 4096 code
points (so a failure names the block).  Use the same Python (Unicode version) as gen_unicode_tables.py.

Run from the repository root:  python3 tests/tools/make_unicode_vectors.py
"""
import json
import random
import unicodedata

OUT = "tests/fixtures/unicode/vectors.json"
FORMS = ["NFC", "NFD", "NFKC", "NFKD"]


def lower(s):
    return "".join(c.lower() for c in s)  # per character: no final-sigma rule, like Rust's char::to_lowercase


def fnv(h, data):
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def block_hashes(fn):
    out = []
    for blk in range(0x110):
        h = 0xCBF29CE484222325
        for cp in range(blk * 0x1000, blk * 0x1000 + 0x1000):
            if 0xD800 <= cp < 0xE000:
                continue
            h = fnv(h, fn(chr(cp)).encode("utf-8") + b"\xff")
        out.append("%016x" % h)
    return out


def strings():
    s = ["", "abc", "A\u030a", "\u212b", "\u00c5", "e\u0301\u0327", "e\u0327\u0301", "a\u0328\u0301\u0323",
         "\u1e0b\u0323", "\u0071\u0307\u0323", "\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8", "\ud55c\uad6d\uc5b4",
         "\u1100\u1100\u1161\u1161", "\u0344", "\u0958", "\u2126", "\ufb01", "\u2460", "\uff26\uff35", "\u00bd", "\u1e9b\u0323",
         "\u0301a", "a\u0301\u0301", "\u0f73", "\u0f77", "\u1fc1", "\u00a8\u0301", "\u3300", "\u2fa1d", "\u0041\u0338",
         "\u05d0\u05b7\u05bc", "\u0915\u093c", "\u09c7\u09be", "\u0b47\u0b3e", "\u1025\u102e", "\u0627\u0653",
         "\u1100\u0301\u1161", "\uac00\u0301\u11a8", "ΑΣ Σ ς İ I", "\u0130\u03a3", "Ǆǅǆ ǈ", "\u1e9e\u00df",
         "zero\u200bwidth", "\u00c7\u0301", "\u0063\u0327\u0301", "\u00e9\u0300", "\u0065\u0301\u0300"]
    rng = random.Random(7)
    pool = ([chr(c) for c in range(0x41, 0x5b)] + [chr(c) for c in range(0x300, 0x370)] + list("\u0591\u05b0\u05bc\u0610"
            "\u064b\u0670\u093c\u094d\u0e38\u0e48\u1dc0\u20d0\u302a\u3099\u309a") + [chr(c) for c in range(0x1100, 0x1113)]
            + [chr(c) for c in range(0x1161, 0x1176)] + [chr(c) for c in range(0x11a8, 0x11c3)] + list("\u00c0\u00e9\u1e0b"
            "\u212b\u2126\ufb01\u2460\u00bd\u3300\uac00\uac01\u0958\u0344\u1f00\u1fc1\u01d5\u0226\u0227\u0b47\u0b3e\u304b"
            "\u30ab\uff76\uff9e"))
    for _ in range(400):
        s.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 12))))
    return s


def main():
    cases = []
    for x in strings():
        c = {"s": x, "lower": lower(x)}
        for f in FORMS:
            c[f] = unicodedata.normalize(f, x)
        cases.append(c)
    out = {"unicode_version": unicodedata.unidata_version, "cases": cases,
           "block_hashes": {f: block_hashes(lambda ch, f=f: unicodedata.normalize(f, ch)) for f in FORMS}}
    out["block_hashes"]["lower"] = block_hashes(lower)
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=0)
        fh.write("\n")


if __name__ == "__main__":
    main()
