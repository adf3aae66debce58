#!/usr/bin/env python3
"""hf_make_model.py DIR [--shape llama2-7b] [--layers N] — a random-weight Llama model of a real shape, saved by
transformers (save_pretrained, fp16 safetensors), for lmbatch to load on the GPU machine (which has no
checkpoints).  Weights come from transformers' own initialisation (normal, std initializer_range) on the GPU."""
import argparse, time, torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "llama2-7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                      intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5),
}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", default="llama2-7b", choices=sorted(SHAPES))
    ap.add_argument("--layers", type=int, default=0, help="fewer layers than the shape has (0: all)")
    a = ap.parse_args()
    out, shape = a.out, a.shape
    t0 = time.time()
    torch.manual_seed(0)
    kw = dict(SHAPES[shape])
    if a.layers: kw["num_hidden_layers"] = a.layers
    cfg = LlamaConfig(**kw, rope_theta=10000.0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.float16)
    model.save_pretrained(out, safe_serialization=True)
    print(f"hf_make_model: {shape} saved to {out} in {time.time() - t0:.1f} s", flush=True)

main()
