#!/usr/bin/env python3
"""hf_parity.py prompts MODEL_DIR IDS.jsonl  — writes N random token-id prompts (one JSON line each,
"prompt_ids") for `lmbatch score`.
   hf_parity.py compare MODEL_DIR IDS.jsonl LMBATCH.safetensors — runs HF transformers (fp16, GPU) on the same
prompts, teacher-forced, and compares every position's logits with lmbatch's: top-1 agreement and relative
error ||a-b||/||b||.  Prints one JSON line; exits 1 below the issue's bars (>= 99% top-1, <= 2e-2)."""
import json, sys, torch
from safetensors.torch import load_file

def prompts(model_dir, path, n=8, length=256, seed=1):
    g = torch.Generator().manual_seed(seed)
    with open(path, "w") as f:
        for _ in range(n):
            ids = [1] + torch.randint(3, 32000, (length - 1,), generator=g).tolist()
            f.write(json.dumps({"prompt_ids": ids}) + "\n")

def compare(model_dir, ids_path, lmb_path):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float16, device_map="cuda").eval()
    ours = load_file(lmb_path)
    agree = total = 0
    num = den = 0.0
    worst = 0.0
    for j, line in enumerate(open(ids_path)):
        ids = torch.tensor([json.loads(line)["prompt_ids"]], device="cuda")
        with torch.no_grad():
            ref = model(ids).logits[0].float()
        got = ours[f"prompt{j}.logits"].to("cuda").float()
        agree += (ref.argmax(-1) == got.argmax(-1)).sum().item()
        total += ref.shape[0]
        d = ((got - ref) ** 2).sum().item()
        r = (ref ** 2).sum().item()
        num += d
        den += r
        worst = max(worst, (d / r) ** 0.5)
    res = {"positions": total, "top1_agreement": agree / total, "rel_err": (num / den) ** 0.5, "worst_prompt_rel_err": worst}
    print(json.dumps(res))
    sys.exit(0 if res["top1_agreement"] >= 0.99 and res["rel_err"] <= 2e-2 else 1)

if sys.argv[1] == "prompts":
    prompts(sys.argv[2], sys.argv[3])
else:
    compare(sys.argv[2], sys.argv[3], sys.argv[4])
