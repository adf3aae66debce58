#!/usr/bin/env python3
"""make_awq_pack_reference.py — builds tests/fixtures/awq/pack_reference.safetensors.

An independent reference for lmbatch's int4 quantizer and packer (quantize/int4.c): a small fp32 weight
quantized and packed the way AutoAWQ does it (awq/quantize/quantizer.py pseudo_quantize_tensor with
zero_point=True, then awq/modules/linear/gemm.py WQLinear_GEMM.from_linear), re-implemented here in torch
fp32 from that description:

  per row and group of G input columns:  s = clamp(max - min, 1e-5) / 15,  z = clamp(-round(min / s), 0, 15)
  pseudo-quantized w' = (clamp(round(w / s) + z, 0, 15) - z) * s
  from_linear: scales_f16 = s.half(); intweight = round((w' + z * s) / scales_f16) -> [in, out]
  qweight[:, c] |= intweight[:, 8c + order[i]] << 4i with order = [0, 2, 4, 6, 1, 3, 5, 7]; qzeros likewise.

Tensors written: w F32 [out, in], intweight I32 [out, in] (the codes), zeros I32 [out, in/G], scales F16
[in/G, out], qweight I32 [in, out/8], qzeros I32 [in/G, out/8], and the group size as metadata.  Row 0 is
all-positive (its zero point clamps to 0), row 1 constant (range below 1e-5), the rest normal with a few
outliers.  Run from the repository root:  python3 tests/tools/make_awq_pack_reference.py
"""
import torch
from safetensors.torch import save_file

OUT = "tests/fixtures/awq/pack_reference.safetensors"
OUT_F, IN_F, G = 24, 64, 32
ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def pseudo_quantize(w):
    rows = w.shape[0]
    g = w.reshape(-1, G)
    mx, mn = g.amax(dim=1, keepdim=True), g.amin(dim=1, keepdim=True)
    s = (mx - mn).clamp(min=1e-5) / 15
    z = (-torch.round(mn / s)).clamp(0, 15)
    wq = (torch.clamp(torch.round(g / s) + z, 0, 15) - z) * s
    return wq.reshape(w.shape), s.view(rows, -1), z.view(rows, -1)


def pack_columns(x):  # x: [rows, cols] small ints -> [rows, cols / 8] int32 in AutoAWQ's nibble order
    out = torch.zeros((x.shape[0], x.shape[1] // 8), dtype=torch.int32)
    for c in range(x.shape[1] // 8):
        for i in range(8):
            out[:, c] |= x[:, 8 * c + ORDER[i]] << (4 * i)
    return out


def main():
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(OUT_F, IN_F, generator=gen) * 0.05
    w[0] = w[0].abs() + 0.01  # all positive: z = clamp(-round(min/s)) -> 0
    w[1] = 0.25  # constant: range 0 -> clamp 1e-5
    w[5, 3] = 0.9  # outliers
    w[9, 40] = -0.7
    wq, s, z = pseudo_quantize(w)
    s = s.t().contiguous()  # [in/G, out], as _apply_quant passes them
    z = z.t().contiguous()
    scales_f16 = s.half()
    intweight = torch.stack([torch.round((wq[:, k] + (z * s)[k // G]) / scales_f16[k // G]).to(torch.int32)
                             for k in range(IN_F)], dim=1)  # [out, in]
    # The direct codes (round(w/s) + z with the fp32 s) must agree, or the fixture would test rounding luck.
    direct = torch.clamp(torch.round(w.reshape(-1, G) / s.t().reshape(-1, 1)) + z.t().reshape(-1, 1), 0, 15)
    assert torch.equal(direct.reshape(OUT_F, IN_F).to(torch.int32), intweight), "codes differ: pick another seed"
    qweight = pack_columns(intweight.t().contiguous())
    qzeros = pack_columns(z.to(torch.int32))
    save_file({"w": w.contiguous(), "intweight": intweight.contiguous(), "zeros": z.t().to(torch.int32).contiguous(),
               "scales": scales_f16, "qweight": qweight, "qzeros": qzeros}, OUT, metadata={"group_size": str(G)})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
