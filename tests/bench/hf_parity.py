#!/usr/bin/env python3
"""hf_parity.py prompts MODEL_DIR IDS.jsonl  — writes N random token-id prompts (one JSON line each,
"prompt_ids") for `lmbatch score`.
   hf_parity.py compare MODEL_DIR IDS.jsonl LMBATCH.safetensors — runs HF transformers (fp16, GPU) on the same
prompts, teacher-forced, and compares every position's logits with lmbatch's: top-1 agreement and relative
error ||a-b||/||b||; then HF in fp32, against which both fp16 engines are measured too (the noise floor).  Prints one JSON line; exits 1 below the issue's bars (>= 99% top-1, <= 2e-2)."""
import json, sys, torch
from safetensors.torch import load_file

def prompts(model_dir, path, n=8, length=256, seed=1):
    g = torch.Generator().manual_seed(seed)
    with open(path, "w") as f:
        for _ in range(n):
            ids = [1] + torch.randint(3, 32000, (length - 1,), generator=g).tolist()
            f.write(json.dumps({"prompt_ids": ids}) + "\n")

def logits_of(model_dir, dtype, prompts):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map="cuda").eval()
    out = []
    with torch.no_grad():
        for ids in prompts:
            out.append(model(torch.tensor([ids], device="cuda")).logits[0].float().cpu())
    del model
    torch.cuda.empty_cache()
    return out

def agreement(got, ref):
    agree = total = 0
    num = den = 0.0
    for g, r in zip(got, ref):
        agree += (g.argmax(-1) == r.argmax(-1)).sum().item()
        total += r.shape[0]
        num += ((g - r) ** 2).sum().item()
        den += (r ** 2).sum().item()
    return agree / total, (num / den) ** 0.5, total

def compare(model_dir, ids_path, lmb_path):
    prompts = [json.loads(line)["prompt_ids"] for line in open(ids_path)]
    ours = load_file(lmb_path)
    lmb = [ours[f"prompt{j}.logits"].float() for j in range(len(prompts))]
    hf16 = logits_of(model_dir, torch.float16, prompts)
    top1, rel, n = agreement(lmb, hf16)
    res = {"positions": n, "top1_agreement": top1, "rel_err": rel}
    # the noise floor: HF fp16 and lmbatch against HF in fp32 (random weights have many near-ties)
    hf32 = logits_of(model_dir, torch.float32, prompts)
    res["hf16_vs_hf32_top1"], res["hf16_vs_hf32_rel_err"], _ = agreement(hf16, hf32)
    res["lmbatch_vs_hf32_top1"], res["lmbatch_vs_hf32_rel_err"], _ = agreement(lmb, hf32)
    print(json.dumps(res))
    sys.exit(0 if res["top1_agreement"] >= 0.99 and res["rel_err"] <= 2e-2 else 1)

if sys.argv[1] == "prompts":
    prompts(sys.argv[2], sys.argv[3])
else:
    compare(sys.argv[2], sys.argv[3], sys.argv[4])
