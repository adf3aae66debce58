#!/usr/bin/env python3
"""make_shared_parity.py — writes tests/fixtures/shared_parity.json: for each tokenizer of ../shared/tokenizers
and each text of ../shared/data, HF tokenizers' ids for the whole text (without special tokens), summarized as
a count and an FNV-1a hash, plus the hash of HF's decode of those ids.  Only these summaries enter the
repository (../shared itself may not); test_tokenizer.c encodes the same texts and compares.

Hashes: FNV-1a 64 over the ids as little-endian int32 bytes, and over the decoded text's UTF-8 bytes.

Run from the repository root:  python3 tests/tools/make_shared_parity.py
"""
import gzip
import json
import struct

import tokenizers
from tokenizers import Tokenizer

OUT = "tests/fixtures/shared_parity.json"
TOKENIZERS = ["llama2", "gpt2-style", "llama3-style", "qwen2-style"]
TEXTS = ["ptb.valid.txt", "pycode.valid.txt.gz"]


def fnv(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def read(name):
    path = "../shared/data/" + name
    raw = gzip.open(path).read() if name.endswith(".gz") else open(path, "rb").read()
    return raw.decode("utf-8")


def main():
    out = {"note": "made by tests/tools/make_shared_parity.py with HF tokenizers %s" % tokenizers.__version__,
           "cases": []}
    texts = {name: read(name) for name in TEXTS}
    for tk in TOKENIZERS:
        tok = Tokenizer.from_file("../shared/tokenizers/%s/tokenizer.json" % tk)
        for name, text in texts.items():
            ids = tok.encode(text, add_special_tokens=False).ids
            decoded = tok.decode(ids, skip_special_tokens=False)
            out["cases"].append({"tokenizer": tk, "text": name, "bytes": len(text.encode("utf-8")), "n_ids": len(ids),
                                 "ids_fnv": fnv(struct.pack("<%di" % len(ids), *ids)),
                                 "decoded_fnv": fnv(decoded.encode("utf-8"))})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
