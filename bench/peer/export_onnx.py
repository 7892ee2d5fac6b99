#!/usr/bin/env python3
"""Exports a qdm/diffusers UNet2DModel folder to ONNX with Debian's python3-torch, for the ONNX
Runtime peer in bench/peer_speed.sh (benchmark only: never a product or test dependency).

The network is written out here in plain torch (diffusers is not a Debian package) for the
configs qdm ships: positional time embedding, DownBlock2D / AttnDownBlock2D, UNetMidBlock2D,
UpBlock2D / AttnUpBlock2D, default time shift, optional class-embedding table. The exported
graph takes sample (N, C, H, W) float and timestep (N,) float (and class_labels (N,) int64 for a
conditional model); --check compares it with `qdm forward` on the same input.

  python3 bench/peer/export_onnx.py models/fmnist-ddpm out.onnx [--check build/bin/qdm]
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = t.float() if t.is_floating_point() else t
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        dtype = "I64" if t.dtype == torch.int64 else "F32"
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, scale=1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.scale = scale

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (skip + h) / self.scale


class Attention(nn.Module):
    def __init__(self, ch, head_dim, groups, eps, rescale=1.0):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=eps) if groups else None
        self.to_q, self.to_k, self.to_v = nn.Linear(ch, ch), nn.Linear(ch, ch), nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])
        self.heads, self.head_dim, self.rescale = ch // head_dim, head_dim, rescale

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x) if self.group_norm is not None else x
        t = t.reshape(n, c, h * w).transpose(1, 2)
        split = lambda y: y.reshape(n, h * w, self.heads, self.head_dim).permute(0, 2, 1, 3)
        q, k, v = split(self.to_q(t)), split(self.to_k(t)), split(self.to_v(t))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        o = (p @ v).permute(0, 2, 1, 3).reshape(n, h * w, c)
        o = self.to_out[0](o).transpose(1, 2).reshape(n, c, h, w)
        return (o + x) / self.rescale


class Block(nn.Module):
    pass


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc = cfg["block_out_channels"]
        temb = cfg.get("time_embedding_dim") or 4 * boc[0]
        groups, eps, lpb = cfg.get("norm_num_groups", 32), cfg.get("norm_eps", 1e-5), cfg.get("layers_per_block", 2)
        hd = cfg.get("attention_head_dim")
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(boc[0], temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)
        self.class_embedding = nn.Embedding(cfg["num_class_embeds"], temb) if cfg.get("num_class_embeds") else None
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            cin, out = out, boc[i]
            b = Block()
            b.resnets = nn.ModuleList([Resnet(cin if j == 0 else out, out, temb, groups, eps) for j in range(lpb)])
            b.attentions = (nn.ModuleList([Attention(out, hd or out, groups, eps) for _ in range(lpb)])
                            if kind == "AttnDownBlock2D" else None)
            b.downsamplers = None
            if i + 1 < len(boc):
                b.downsamplers = nn.ModuleList([nn.Module()])
                b.downsamplers[0].conv = nn.Conv2d(out, out, 3, stride=2, padding=1)
            self.down_blocks.append(b)
        c = boc[-1]
        self.mid_block = Block()
        self.mid_block.resnets = nn.ModuleList([Resnet(c, c, temb, groups, eps), Resnet(c, c, temb, groups, eps)])
        self.mid_block.attentions = nn.ModuleList([Attention(c, hd or c, cfg.get("attn_norm_num_groups") or groups, eps)])
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        out = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out, cin = out, rev[i], rev[min(i + 1, len(rev) - 1)]
            b = Block()
            b.resnets = nn.ModuleList([Resnet((prev if j == 0 else out) + (cin if j == lpb else out), out, temb, groups, eps)
                                       for j in range(lpb + 1)])
            b.attentions = (nn.ModuleList([Attention(out, hd or out, groups, eps) for _ in range(lpb + 1)])
                            if kind == "AttnUpBlock2D" else None)
            b.upsamplers = None
            if i + 1 < len(rev):
                b.upsamplers = nn.ModuleList([nn.Module()])
                b.upsamplers[0].conv = nn.Conv2d(out, out, 3, padding=1)
            self.up_blocks.append(b)
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, sample, timestep, class_labels=None):
        half = self.cfg["block_out_channels"][0] // 2
        shift = self.cfg.get("freq_shift", 0)
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / (half - shift)))
        args = timestep.float()[:, None] * freqs[None, :]
        proj = torch.cat([torch.cos(args), torch.sin(args)] if self.cfg.get("flip_sin_to_cos", True)
                         else [torch.sin(args), torch.cos(args)], dim=-1)
        emb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(proj)))
        if self.class_embedding is not None:
            emb = emb + self.class_embedding(class_labels)
        x = sample * 2 - 1 if self.cfg.get("center_input_sample") else sample
        x = self.conv_in(x)
        skips = [x]
        for b in self.down_blocks:
            for j, r in enumerate(b.resnets):
                x = r(x, emb)
                if b.attentions is not None:
                    x = b.attentions[j](x)
                skips.append(x)
            if b.downsamplers is not None:
                x = b.downsamplers[0].conv(x)
                skips.append(x)
        x = self.mid_block.resnets[0](x, emb)
        x = self.mid_block.attentions[0](x)
        x = self.mid_block.resnets[1](x, emb)
        for b in self.up_blocks:
            for j, r in enumerate(b.resnets):
                x = r(torch.cat([x, skips.pop()], dim=1), emb)
                if b.attentions is not None:
                    x = b.attentions[j](x)
            if b.upsamplers is not None:
                x = b.upsamplers[0].conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def main():
    folder, out = sys.argv[1], sys.argv[2]
    qdm = sys.argv[sys.argv.index("--check") + 1] if "--check" in sys.argv else None
    cfg = json.load(open(os.path.join(folder, "config.json")))
    model = UNet(cfg).eval()
    weights = read_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        sys.exit(f"weights do not match: missing {missing}, unexpected {unexpected}")
    s, c = cfg["sample_size"], cfg["in_channels"]
    conditional = bool(cfg.get("num_class_embeds"))
    x, t = torch.randn(2, c, s, s), torch.tensor([500.0, 37.0])
    labels = torch.tensor([1, cfg.get("null_class", 0)], dtype=torch.int64) if conditional else None
    inputs = (x, t, labels) if conditional else (x, t)
    names = ["sample", "timestep"] + (["class_labels"] if conditional else [])
    torch.onnx.export(model, inputs, out, input_names=names, output_names=["out"], opset_version=17,
                      dynamic_axes={n: {0: "batch"} for n in names + ["out"]})
    if qdm:
        with tempfile.TemporaryDirectory() as d:
            feeds = {"sample": x, "timestep": t}
            if conditional:
                feeds["class_labels"] = labels
            write_safetensors(f"{d}/in.safetensors", feeds)
            subprocess.run([qdm, "forward", "--model", folder, "--input", f"{d}/in.safetensors", "--out",
                            f"{d}/out.safetensors"], check=True, capture_output=True)
            theirs = read_safetensors(f"{d}/out.safetensors")["out"]
        with torch.no_grad():
            ours = model(*inputs)
        err = (ours - theirs).abs().max().item()
        print(f"export: max |torch - qdm forward| = {err:.3g}")
        if err > 1e-4:
            sys.exit("the exported network differs from qdm's")


if __name__ == "__main__":
    main()
