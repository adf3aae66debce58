#!/usr/bin/env python3
"""make_ppl_reference.py — HF transformers (float32, CPU) perplexity of pycoder-22M over the first 4,000
characters of ../shared/data/pycode.valid.txt.gz with 128-token windows every 64 (the fixed-length procedure of
../shared/README.md, at a size CI runs in seconds).  Writes tests/fixtures/ppl/pycoder-22M.json, which
tests/test_ppl.c compares with `lmb_perplexity` on the CPU engine.
Run from the repository root:  python3 tests/tools/make_ppl_reference.py"""
import gzip, json, math, torch
from transformers import AutoModelForCausalLM
from tokenizers import Tokenizer

MODEL, CHARS, CTX, STRIDE = "../shared/models/pycoder-22M", 4000, 128, 64
text = gzip.open("../shared/data/pycode.valid.txt.gz", "rt", encoding="utf-8").read()[:CHARS]
tok = Tokenizer.from_file(MODEL + "/tokenizer.json")
ids = tok.encode(text, add_special_tokens=True).ids
cfg = json.load(open(MODEL + "/config.json"))
bos = cfg.get("bos_token_id")
if bos is not None and (not ids or ids[0] != bos):
    ids = [bos] + ids
model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
x = torch.tensor([ids])
nll, count, prev_end = 0.0, 0, 0
for begin in range(0, len(ids), STRIDE):
    end = min(begin + CTX, len(ids))
    trg = end - prev_end
    inp = x[:, begin:end]
    labels = inp.clone()
    labels[:, :-trg] = -100
    with torch.no_grad():
        logits = model(inp).logits[0, :-1].double()
    lab = labels[0, 1:]
    mask = lab != -100
    lp = torch.log_softmax(logits, -1)[mask].gather(1, lab[mask][:, None])
    nll -= lp.sum().item()
    count += int(mask.sum())
    prev_end = end
    if end == len(ids):
        break
out = {"model": "pycoder-22M", "chars": CHARS, "ctx": CTX, "stride": STRIDE, "tokens": len(ids),
       "scored": count, "ppl": math.exp(nll / count), "reference": "transformers float32, CPU"}
json.dump(out, open("tests/fixtures/ppl/pycoder-22M.json", "w"), indent=1)
print(out)
