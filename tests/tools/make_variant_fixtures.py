#!/usr/bin/env python3
"""make_variant_fixtures.py — builds tests/fixtures/variants/variants.json.

One file of small tokenizers that each exercise a few tokenizer.json components the big reference
tokenizers do not (Metaspace schemes, unk fusing, normalizers, Split behaviors, Digits, added-token
options, continuing_subword_prefix, end_of_word_suffix, other post-processors and decoders), with HF
tokenizers' outputs for a set of texts.  To stay small, the few trained BPE models are stored once under
"models"; each variant names its model, optional "model_overrides", and the rest of its tokenizer.json.
The C test assembles the tokenizer.json from those parts.  In a case, "ids_with_bos" and
"decoded_skip_special" are left out when they equal "ids" and "decoded"; "decoded" is null where HF itself
panics (see decode()).

The output is the same on every run (see affixed_symbols) for a given tokenizers version and Python: the
training corpus is the standard library's docstrings, which change between Python versions (3.11 here).

Run from the repository root:  python3 tests/tools/make_variant_fixtures.py
"""
import copy
import inspect
import json
import platform

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

OUT = "tests/fixtures/variants/variants.json"
META = "\u2581"


def english():
    import argparse, textwrap, string
    text = "\n".join(inspect.getdoc(o) or "" for m in (argparse, textwrap, string) for o in vars(m).values()
                     if inspect.isclass(o) or inspect.isfunction(o))
    return [line for line in text.splitlines() if line.strip()] + [
        "Once upon a time, there was a little girl named Lily.", "café naïve résumé Ångström",
        "1234567890 3.14 42", "hello hello HELLO Hello world word words",
    ]


def affixed_symbols(pre, prefix, suffix):
    """The symbols "##c" / "c</w>" that BpeTrainer makes for the corpus, sorted.  The trainer numbers them
    in the order it walks a Rust HashMap, which changes from run to run, and merges with equal counts are
    ordered by those ids; declaring them up front (as special tokens of the trainer: they take the first ids,
    in this order, and only the model is kept) makes the trained model the same on every run."""
    out = set()
    for line in english():
        for word, _ in pre.pre_tokenize_str(line):
            for i, c in enumerate(word):
                s = (prefix if i > 0 and prefix else "") + c + (suffix if i == len(word) - 1 and suffix else "")
                if s != c:
                    out.add(s)
    return sorted(out)


def train_model(pre, vocab_size, special, **kw):
    bpe_kw = {k: kw.pop(k) for k in list(kw) if k in ("unk_token", "byte_fallback", "fuse_unk")}
    for k in ("continuing_subword_prefix", "end_of_word_suffix"):  # both the model and the trainer need these
        if k in kw:
            bpe_kw[k] = kw[k]
    if "continuing_subword_prefix" in kw or "end_of_word_suffix" in kw:
        special = special + affixed_symbols(pre, kw.get("continuing_subword_prefix"), kw.get("end_of_word_suffix"))
    tok = Tokenizer(models.BPE(**bpe_kw))
    tok.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False, **kw)
    tok.train_from_iterator(english(), trainer=trainer)
    return json.loads(tok.to_str())


def models_():
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    sp = train_model(pre_tokenizers.Metaspace(), 600, ["<unk>", "<s>", "</s>"] + byte_tokens, unk_token="<unk>",
                     byte_fallback=True, fuse_unk=True, limit_alphabet=50)
    bl = train_model(pre_tokenizers.ByteLevel(add_prefix_space=False), 500, ["<|endoftext|>", "<s>", "</s>"],
                     initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    cs = train_model(pre_tokenizers.Whitespace(), 300, ["[UNK]"], unk_token="[UNK]", continuing_subword_prefix="##")
    ew = train_model(pre_tokenizers.Whitespace(), 300, ["<unk>"], unk_token="<unk>", end_of_word_suffix="</w>")
    return {"sp": sp["model"], "bl": bl["model"], "cs": cs["model"], "ew": ew["model"]}


def added(content, id_, special=True, **kw):
    d = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": not special, "special": special}
    d.update(kw)
    return d


SP_ADDED = [added("<unk>", 0), added("<s>", 1), added("</s>", 2)]
BL_ADDED = [added("<|endoftext|>", 0), added("<s>", 1), added("</s>", 2)]
BOS_TEMPLATE = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
LLAMA_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": META}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
BL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def metaspace(scheme, split=True):
    return {"type": "Metaspace", "replacement": META, "prepend_scheme": scheme, "split": split}


def bytelevel(prefix=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


def seq_pre(*p):
    return {"type": "Sequence", "pretokenizers": list(p)}


def split(pattern, behavior, invert=False):
    return {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}


DEFAULT_ADDED = {"sp": SP_ADDED, "bl": BL_ADDED, "cs": [added("[UNK]", 0)], "ew": [added("<unk>", 0)]}


def v(name, model, pre=None, norm=None, post=None, dec=None, add=None, overrides=None, extra=()):
    return {"name": name, "model": model, "model_overrides": overrides or {}, "extra_texts": list(extra),
            "tokenizer": {"added_tokens": add if add is not None else DEFAULT_ADDED[model],
                          "normalizer": norm, "pre_tokenizer": pre, "post_processor": post, "decoder": dec}}


# characters where regex engines' ideas of \s and \w may differ (Oniguruma for HF, PCRE2 for us)
WS_CHARS = ("a\x85b\u180ec\u200bd\u2028e\u2029f\u3000g\x1ch\x1fi\u00a0j\u1680k\u2007l\u202fm\u205fn\x0bo"
            "\x0cp\ufeffq\u2060r")
WORD_CHARS = ("e\u0301 a_b x\u200dy z\u200cw 1\u0663\u2167\u00bd\u2460 \u24b6\u24d0 \u0903\u0915 \u3005\u3007"
              " \u02b0\u02c6 \u2118\u212e \u00aa\u00ba \u2040\ufe4f \u20dd\u0488 \U0001F170")

VARIANTS = [
    v("meta_first_split", "sp", pre=metaspace("first"), post=BOS_TEMPLATE, dec={"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True}),
    v("meta_always_nosplit", "sp", pre=metaspace("always", False), post=BOS_TEMPLATE, dec=LLAMA_DECODER),
    v("meta_never", "sp", pre=metaspace("never"), dec={"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True}),
    v("meta_legacy_fields", "sp", pre={"type": "Metaspace", "replacement": META, "add_prefix_space": True},
      dec={"type": "Metaspace", "replacement": META, "add_prefix_space": True}),
    v("llama_unk_fuse", "sp", norm={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": META},
      {"type": "Replace", "pattern": {"String": " "}, "content": META}]}, post=BOS_TEMPLATE, dec=LLAMA_DECODER,
      overrides={"byte_fallback": False, "fuse_unk": True}),
    v("llama_unk_nofuse", "sp", norm={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": META},
      {"type": "Replace", "pattern": {"String": " "}, "content": META}]}, post=BOS_TEMPLATE, dec=LLAMA_DECODER,
      overrides={"byte_fallback": False, "fuse_unk": False}),
    v("nfkc_lower_strip_replace", "sp", pre=metaspace("always"), dec=LLAMA_DECODER, norm={"type": "Sequence", "normalizers": [
      {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
      {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]}),
    v("nfc", "sp", pre=metaspace("always"), norm={"type": "NFC"}, dec=LLAMA_DECODER),
    v("nfd", "sp", pre=metaspace("always"), norm={"type": "NFD"}, dec=LLAMA_DECODER),
    v("nfkd_strip_left", "sp", pre=metaspace("always"), dec=LLAMA_DECODER,
      norm={"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Strip", "strip_left": True, "strip_right": False}]}),
    v("replace_decoder_regex", "sp", pre=metaspace("always"), dec={"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"Regex": META + "+"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 2, "stop": 1}]}),
    v("digits_individual", "bl", pre=seq_pre({"type": "Digits", "individual_digits": True}, bytelevel()), dec=BL_DECODER),
    v("digits_contiguous", "bl", pre=seq_pre({"type": "Digits", "individual_digits": False}, bytelevel()), dec=BL_DECODER),
    v("split_removed", "bl", pre=seq_pre(split({"Regex": "\\s+"}, "Removed"), bytelevel(regex=False)), dec=BL_DECODER),
    v("split_merged_prev", "bl", pre=seq_pre(split({"String": " "}, "MergedWithPrevious"), bytelevel(regex=False)), dec=BL_DECODER),
    v("split_merged_next", "bl", pre=seq_pre(split({"String": " "}, "MergedWithNext"), bytelevel(regex=False)), dec=BL_DECODER),
    v("split_contiguous", "bl", pre=seq_pre(split({"Regex": "[,.;:!?]"}, "Contiguous"), bytelevel(regex=False)), dec=BL_DECODER),
    v("split_isolated_invert", "bl", pre=seq_pre(split({"Regex": "\\p{L}+"}, "Isolated", True), bytelevel(regex=False)), dec=BL_DECODER),
    v("split_removed_invert", "bl", pre=seq_pre(split({"Regex": "\\p{L}+|\\p{N}+"}, "Removed", True), bytelevel(regex=False)), dec=BL_DECODER),
    v("split_merged_next_invert", "bl", pre=seq_pre(split({"Regex": "\\d+"}, "MergedWithNext", True), bytelevel(regex=False)), dec=BL_DECODER),
    v("bytelevel_prefix_space", "bl", pre=bytelevel(prefix=True), dec=BL_DECODER,
      post={"type": "Sequence", "processors": [{"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
            "use_regex": True}, BOS_TEMPLATE]}),
    v("bytelevel_prefix_after_split", "bl", pre=seq_pre(split({"String": "\n"}, "Isolated"), bytelevel(prefix=True, regex=False)), dec=BL_DECODER),
    v("ignore_merges", "bl", pre=bytelevel(), dec=BL_DECODER, overrides={"ignore_merges": True}),
    v("whitespace_pretok", "bl", pre=seq_pre({"type": "Whitespace"}, bytelevel(regex=False)), dec=BL_DECODER,
      extra=[WORD_CHARS]),
    v("whitespace_split", "bl", pre=seq_pre({"type": "WhitespaceSplit"}, bytelevel(regex=False)), dec=BL_DECODER),
    v("char_delimiter", "bl", pre=seq_pre({"type": "CharDelimiterSplit", "delimiter": ","}, bytelevel(regex=False)), dec=BL_DECODER),
    v("punctuation", "bl", pre=seq_pre({"type": "Punctuation", "behavior": "Isolated"}, bytelevel(regex=False)), dec=BL_DECODER),
    v("no_decoder", "bl", pre=bytelevel(), dec=None),
    v("bert_post", "bl", pre=bytelevel(), dec=BL_DECODER, post={"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}),
    v("roberta_post", "bl", pre=bytelevel(), dec=BL_DECODER,
      post={"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1], "trim_offsets": True, "add_prefix_space": False}),
    v("added_options", "bl", pre=bytelevel(), dec=BL_DECODER, norm={"type": "Lowercase"}, add=BL_ADDED + [
        added("<L>", 500, lstrip=True), added("<R>", 501, rstrip=True), added("<LR>", 502, lstrip=True, rstrip=True),
        added("word", 503, special=False, single_word=True, normalized=False),
        added("HeLLo", 504, special=False, normalized=True), added("abc", 505, special=False, normalized=False),
        added("abcd", 506, special=False, normalized=False), added("bcd", 507, special=False, normalized=False),
        added("[X]", 508, special=False, normalized=False), added("nice day", 509, special=False, normalized=True)],
      extra=["<L>x", "  <L>  x", "x  <R>  y", "a <LR> b", "x<LR><LR>y", "  <L><R>  ", "word words sword word.",
             "_word word_ 1word word1 éword", "HELLO there, hello", "abcd abc bcd xabcdx abcbcd", "[X] <s> [X]",
             "a Nice Day indeed", "<R> <L>"]),
    v("split_removed_whitespace", "bl", pre=seq_pre(split({"Regex": "\\s+"}, "Removed"), bytelevel(regex=False)), dec=BL_DECODER,
      extra=[WS_CHARS]),
    v("split_removed_word", "bl", pre=seq_pre(split({"Regex": "\\w+"}, "Removed"), bytelevel(regex=False)), dec=BL_DECODER,
      extra=[WORD_CHARS]),
    v("split_removed_letters_numbers", "bl", pre=seq_pre(split({"Regex": "\\p{L}+|\\p{N}+"}, "Removed"), bytelevel(regex=False)),
      dec=BL_DECODER, extra=[WORD_CHARS]),
    v("cs_prefix", "cs", pre={"type": "Whitespace"}, dec=None),
    v("ew_suffix", "ew", pre={"type": "Whitespace"}, dec={"type": "BPEDecoder", "suffix": "</w>"}),
    v("bpe_decoder_empty_suffix", "ew", pre={"type": "Whitespace"}, dec={"type": "BPEDecoder", "suffix": ""}),
]

TEXTS = [
    "Hello world", " Hello  world ", "", " ", "a", "   leading and trailing   ", "tabs\tand\nnew\r\nlines\n\n",
    "Once upon a time, there was a little girl named Lily.", "1234567890 3.14159 -42 x1y22z333",
    "I'm you're they'll don't", "café naïve Ångström e\u0301 a\u0308", "Ǆǅǆ ﬁ ligature ＦＵＬＬＷＩＤＴＨ ½ ²",
    "数学是科学的皇后。", "emoji 🙌🤖 👨‍👩‍👧 ok", "ΑΒΓ αβγ İstanbul ΣΑΣ", "<s> special </s> inside <|endoftext|>",
    "▁ already has the meta symbol", "punct: a,b;c.d!e?f (g) [h] {i}", "x" * 40, "\u00a0nbsp\u3000wide",
    "Hello, world! Hello, world!", "zzzqqq unknownish ÿþ",
]


def decode(tok, ids, skip):
    """HF's text, or None where HF itself panics (its Strip decoder indexes out of bounds on empty tokens)."""
    try:
        return tok.decode(ids, skip_special_tokens=skip)
    except BaseException:  # pyo3's PanicException is not an Exception
        return None


def main():
    mods = models_()
    out = {"note": "made by tests/tools/make_variant_fixtures.py with HF tokenizers %s, Python %s"
           % (tokenizers.__version__, platform.python_version()),
           "models": mods, "variants": []}
    for var in VARIANTS:
        model = copy.deepcopy(mods[var["model"]])
        model.update(var["model_overrides"])
        tj = {"version": "1.0", "truncation": None, "padding": None}
        tj.update(var["tokenizer"])
        tj["model"] = model
        tok = Tokenizer.from_str(json.dumps(tj))
        # HF gives added tokens the model's id when the content is in the vocabulary and renumbers the rest;
        # store the ids it settled on so the file is self-consistent
        var["tokenizer"]["added_tokens"] = json.loads(tok.to_str())["added_tokens"]
        cases = []
        for text in TEXTS + var["extra_texts"]:
            ids = tok.encode(text, add_special_tokens=False).ids
            case = {"text": text, "ids": ids, "decoded": decode(tok, ids, False)}
            # left out when equal to "ids" / "decoded", to keep the file small
            with_bos, skipped = tok.encode(text).ids, decode(tok, ids, True)
            if with_bos != ids:
                case["ids_with_bos"] = with_bos
            if skipped != case["decoded"]:
                case["decoded_skip_special"] = skipped
            cases.append(case)
        out["variants"].append({"name": var["name"], "model": var["model"], "model_overrides": var["model_overrides"],
                                "tokenizer": var["tokenizer"], "cases": cases})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
