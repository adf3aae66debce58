#!/usr/bin/env python3
"""hf_generate.py MODEL_DIR BATCH IN OUT — HF transformers `generate` throughput on the GPU: BATCH random
prompts of IN tokens, OUT new tokens each (greedy, EOS ignored via min_new_tokens), fp16, timed after one
warm-up call with torch.cuda.synchronize around it.  Prints one JSON line with output tok/s."""
import json, sys, time, torch
from transformers import AutoModelForCausalLM

model_dir, bs, n_in, n_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float16, device_map="cuda").eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(3, 32000, (bs, n_in), generator=g).to("cuda")
mask = torch.ones_like(ids)
kw = dict(do_sample=False, min_new_tokens=n_out, max_new_tokens=n_out, pad_token_id=0)
with torch.no_grad():
    model.generate(input_ids=ids[:, :16], attention_mask=mask[:, :16], **{**kw, "min_new_tokens": 4, "max_new_tokens": 4})
    torch.cuda.synchronize()
    t0 = time.time()
    out = model.generate(input_ids=ids, attention_mask=mask, **kw)
    torch.cuda.synchronize()
    secs = time.time() - t0
new = (out.shape[1] - n_in) * bs
print(json.dumps({"engine": "hf", "batch": bs, "input_len": n_in, "output_len": n_out, "seconds": round(secs, 3),
                  "output_tok_per_s": round(new / secs, 1), "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1)}))
