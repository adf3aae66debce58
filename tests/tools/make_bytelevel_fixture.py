#!/usr/bin/env python3
"""make_bytelevel_fixture.py — builds tests/fixtures/bytelevel/{tokenizer.json,vectors.json}.

A small byte-level BPE in the Llama-3 layout (Split with the Llama-3 regex + ByteLevel, a TemplateProcessing
that adds <|begin_of_text|>, ByteLevel decoder), trained with HF `tokenizers` on a corpus this script
writes itself (Python's own standard-library sources for English and code, plus CJK, emoji, RTL, combining
marks and whitespace runs), then the reference vectors: HF's ids / ids with BOS / decoded text for each
case, decode cases whose bytes are invalid UTF-8, and invalid-UTF-8 *input* cases (expected ids: HF's ids
for bytes.decode("utf-8", "replace"), the rule lmb_tokenizer_encode documents).

The engine tests reuse this tokenizer for their tiny random model, so keep it here and keep it small.
Run from the repository root:  python3 tests/tools/make_bytelevel_fixture.py
"""
import inspect
import json
import os
import random

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

OUT = "tests/fixtures/bytelevel"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]

MULTILINGUAL = [
    "数学是科学的皇后。请写一个三百字的小故事，关于一只会说话的猫。",
    "日本語のテキストとカタカナ、ひらがなを混ぜた文章です。東京は大きな都市です。",
    "한국어 텍스트도 조금 넣어 봅니다. 서울은 아름다운 도시입니다.",
    "Кириллица: съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "العربية: نص قصير باللغة العربية للاختبار.",
    "עברית: טקסט קצר בעברית לבדיקה.",
    "हिन्दी: यह एक छोटा परीक्षण वाक्य है।",
    "Emoji: 🙌🤖🎉👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️‍🔥 🧑🏿‍💻 and flags 🇫🇷🇯🇵.",
    "Accents: café naïve Ångström résumé coöperate São Paulo Zürich.",
    "Combining: e\u0301 a\u0308 o\u0302\u0323 Z\u0351\u0350a\u0352l\u0353g\u0354o\u0355.",
    "Numbers: 1234567890 3.14159 -42 1,000,000 2024-01-31 0x1F 1e-9 ٣٤٥ ½.",
    "Whitespace:  two  spaces,\tone tab,\t\ttwo tabs,\n\nnew lines,   \n   trailing   ",
]


def corpus():
    """Deterministic training text: stdlib sources (code + English docstrings) and the lines above."""
    import argparse, collections, json as js, textwrap, string, heapq, functools, dataclasses
    texts = [inspect.getsource(m) for m in (argparse, collections, js, textwrap, string, heapq, functools,
                                            dataclasses)]
    rng = random.Random(1234)
    for _ in range(200):
        texts.append(rng.choice(MULTILINGUAL))
        texts.append(" " * rng.randint(1, 12) + "\t" * rng.randint(0, 3) + "\n" * rng.randint(0, 3))
    return texts


def train():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="$A $B:1",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    return tok


def random_unicode(rng, n):
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
              (0x600, 0x6FF), (0x900, 0x97F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF), (0x2000, 0x206F)]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            out.append(rng.choice([" ", "  ", "\n", "\t", " \n", "\r\n"]))
        else:
            lo, hi = rng.choice(blocks)
            out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def cases():
    c = [
        "Hello world", " Hello  world ", "", " ", "a", "\n", "\t", "   ", "    \n    \n\n  ",
        "Once upon a time, there was a little girl named Lily. She loved to play outside.",
        "\n\nnewlines\n\tand tabs\r\n", "tabs\tinside\t\twords\t", "trailing spaces   ", "   leading spaces",
        "def f(x):\n    return x**2  # comment\n", "class A(B):\n\tpass\n",
        "for i in range(10):\n        print(f\"{i:>4d}\", end='')\n",
        "if (a && b || !c) { x += 1; } // C-ish", "x = [1, 2, 3]; y = {'a': 1}; z = (lambda: None)()",
        "I'm you're they'll don't WE'LL She'S it'D", "https://example.com/a?b=c&d=e#frag",
        "1234567890 3.14159 -42 1000000 0.5e-10", "12345678901234567890", "٣٤٥ ½ ² ⅷ",
        "数学是科学的皇后。请写一个300字的小故事。", "日本語のテキストと한국어 텍스트", "中文，标点；“引号”（括号）",
        "emoji 🙌🤖 and accents: café naïve Ångström", "👨‍👩‍👧‍👦 family", "🏳️‍🌈🏳️‍⚧️ flags 🇫🇷🇯🇵",
        "skin tones 👍🏻👍🏼👍🏽👍🏾👍🏿", "❤️‍🔥 heart on fire, 🧑🏿‍💻 technologist",
        "ΑΒΓ αβγ Кириллица العربية עברית हिन्दी", "مرحبا بالعالم 123 hello", "שלום עולם!",
        "e\u0301 vs é, a\u0308 vs ä", "Z\u0351\u0350a\u0352l\u0353g\u0354o\u0355 text",
        "\u0915\u094d\u0937 conjunct", "mixed\u200bzero\u200dwidth\u200c\ufeffbom",
        "nbsp\u00a0here\u3000ideographic\u2003em\u2028line\u2029para", "nel\u0085next", "ctl\x07\x1b[0m\x1c\x1f end",
        "ÿ\x07 control \xa0nbsp", "Ǆǅǆ ﬁ ligature ＦＵＬＬＷＩＤＴＨ", "Ġ literal Ġ and Ċ chars",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|begin_of_text|>Hello<|endoftext|>",
        "not<|im_end|>special<|im_end", "<|im_start|><|im_end|><|endoftext|>", "< |im_start| >",
        "text <|endoftext|> more text", "x" * 300, "ab" * 150, " " * 64 + "x", "\n" * 20, "🙌" * 30,
        "The quick brown fox jumps over the lazy dog. " * 8,
    ]
    rng = random.Random(42)
    for _ in range(20):
        c.append(random_unicode(rng, rng.randint(1, 40)))
    return c


CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def main():
    tok = train()
    os.makedirs(OUT, exist_ok=True)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    config = {"add_bos_token": True, "bos_token": "<|begin_of_text|>",
              "eos_token": "<|im_end|>",
              "chat_template": CHATML, "model_max_length": 2048, "tokenizer_class": "PreTrainedTokenizerFast"}
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
        f.write("\n")
    tok = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))

    def entry(text):
        ids = tok.encode(text, add_special_tokens=False).ids
        return {"text": text, "ids": ids, "ids_with_bos": tok.encode(text).ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)}

    # ids whose bytes are not valid UTF-8: byte tokens chosen by hand (the byte-level alphabet is all in vocab)
    b2u = {}
    n = 0
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    for b in range(256):
        if b in printable:
            b2u[b] = chr(b)
        else:
            b2u[b] = chr(256 + n)
            n += 1
    byte_id = {b: tok.token_to_id(u) for b, u in b2u.items()}
    hello = tok.encode("Hello", add_special_tokens=False).ids
    eot = tok.token_to_id("<|endoftext|>")
    raw_decodes = [
        [byte_id[0xE6]], [byte_id[0xE6], byte_id[0x95]], [byte_id[0xE6], byte_id[0x95], byte_id[0xB0]],
        hello + [byte_id[0xF0], byte_id[0x9F]] + hello, [byte_id[0x80]], [byte_id[0xFF], byte_id[0xFE]],
        [byte_id[0xC0], byte_id[0xAF]], [byte_id[0xED], byte_id[0xA0], byte_id[0x80]],
        [byte_id[0xF0], byte_id[0x9F], eot, byte_id[0x99], byte_id[0x8C]],
        hello + [byte_id[0xE6]], [byte_id[0xE6]] + hello, [eot, byte_id[0xC3]], [byte_id[0xF4], byte_id[0x90]],
        [byte_id[0xC3], byte_id[0xA9], byte_id[0xC3]],
    ]
    decode_cases = [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                     "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)} for ids in raw_decodes]

    bad_inputs = [b"\xff", b"abc\xffdef", b"\xe6\x95", b"caf\xc3", b"\xc0\xaf", b"\xed\xa0\x80 surrogate",
                  b"\xf0\x9f\x99 trunc emoji", b"\xf4\x90\x80\x80 too big", b"\x80\x80\x80", b"ok \xe6\x95\xb0 ok",
                  b"<|im_start|>\xfe<|im_end|>"]
    byte_cases = []
    for b in bad_inputs:
        text = b.decode("utf-8", errors="replace")
        byte_cases.append({"bytes_hex": b.hex(), "ids": tok.encode(text, add_special_tokens=False).ids,
                           "ids_with_bos": tok.encode(text).ids})

    vec = {
        "tokenizer": "lmbatch fixture: llama3-layout byte-level BPE, vocab %d, made by "
                     "tests/tools/make_bytelevel_fixture.py with HF tokenizers %s" % (tok.get_vocab_size(),
                                                                                     tokenizers.__version__),
        "decoded_uses_skip_special": False,
        "cases": [entry(t) for t in cases()],
        "decode_cases": decode_cases,
        "byte_cases": byte_cases,
    }
    with open(os.path.join(OUT, "vectors.json"), "w", encoding="utf-8") as f:
        json.dump(vec, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
