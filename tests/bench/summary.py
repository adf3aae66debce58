#!/usr/bin/env python3
"""summary.py — the closing table of the GPU-machine scripts (h100.sh, kv.sh, w4kv.sh, quality.sh) from their
JSON lines: one line per record, whatever made it.

    python3 tests/bench/summary.py RESULTS.jsonl

Records: {"test", "status"} (a GPU test binary); parity against HF (top1_agreement); HF generate (engine "hf");
the engine's memory report (case "memory ..."); long-context decode (case "decode ...": ms per step estimated as
(seconds - ttft_p99) / 127); perplexity (ppl, with the change against the case "weights fp16" when the file has
it); any other lmbatch bench record (throughput)."""
import json
import sys


def main(path):
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    base = next((r["ppl"] for r in rows if r.get("case") == "weights fp16" and "ppl" in r), None)
    for r in rows:
        c = r.get("case", "")
        if "test" in r:
            print(f"{r['test']:<40} {r['status']}")
        elif "top1_agreement" in r:
            print(f"{c:<40} top1 {r['top1_agreement'] * 100:.2f}%  rel_err {r['rel_err']:.2e}")
            if "hf16_vs_hf32_top1" in r:
                print(f"{'  noise floor: HF fp16 vs HF fp32':<40} top1 {r['hf16_vs_hf32_top1'] * 100:.2f}%  "
                      f"rel_err {r['hf16_vs_hf32_rel_err']:.2e}")
                print(f"{'  lmbatch fp16 vs HF fp32':<40} top1 {r['lmbatch_vs_hf32_top1'] * 100:.2f}%  "
                      f"rel_err {r['lmbatch_vs_hf32_rel_err']:.2e}")
        elif r.get("engine") == "hf":
            print(f"{c:<40} {r['output_tok_per_s']:>9.1f} out tok/s  ({r['seconds']} s, peak {r['peak_gpu_gb']} GB)")
        elif "ppl" in r:
            rel = f"  {100 * (r['ppl'] / base - 1):+7.3f}%" if base else ""
            print(f"{c:<40} ppl {r['ppl']:9.4f}{rel}")
        elif c.startswith("memory"):
            print(f"{c:<22} weights {r['weight_bytes'] / 2**30:6.2f} GiB  KV {r['kv_bytes_per_token']:>7} B/token  "
                  f"capacity {r['kv_tokens']:>7} tokens = {r['kv_tokens'] // 4096:>3} x 4096  "
                  f"peak {r['peak_gpu_bytes'] / 2**30:.1f} GiB")
        elif c.startswith("decode"):
            ms = (r["seconds"] - r["ttft_p99_s"]) / 127 * 1e3
            print(f"{c:<40} decode ~{ms:6.2f} ms/step  ({r['output_tok_per_s']:.0f} out tok/s overall, "
                  f"{r['preemptions']} preemptions)")
        elif "output_tok_per_s" in r:
            print(f"{c:<40} {r['output_tok_per_s']:>9.1f} out tok/s  ttft p50 {r['ttft_p50_s']:.3f} s  "
                  f"weights {r['weight_bytes'] / 2**30:.2f} GiB  steps {r['steps']}  preempt {r['preemptions']}")


if __name__ == "__main__":
    main(sys.argv[1])
