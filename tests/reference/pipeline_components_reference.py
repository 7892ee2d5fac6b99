#!/usr/bin/python3
"""Independent reference outputs for tests/pipeline_components_test.cpp.

Writes tests/data/components/<case>/{config.json, weights.safetensors, io.safetensors}: random
weights under transformers' / diffusers' tensor names, inputs, and the outputs of a plain
PyTorch implementation of CLIPTextModel and AutoencoderKL written from those libraries' module
definitions (modeling_clip.py; diffusers vae.py, resnet.py, attention_processor.py), functional
and separate from qdm's graph description. Shapes follow SD 1.x (quick_gelu, quant convs) and
SD 2.x (gelu, penultimate layer) at toy sizes. Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/pipeline_components_reference.py
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "components")


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Weights(dict):
    """Random weights created on first use, by name."""

    def __init__(self, gen):
        super().__init__()
        self.gen = gen

    def get(self, name, shape, kind="w"):
        if name not in self:
            if kind == "norm_w":
                t = 1.0 + 0.1 * torch.randn(shape, generator=self.gen)
            elif kind == "b":
                t = 0.1 * torch.randn(shape, generator=self.gen)
            else:
                fan_in = max(1, int(torch.tensor(shape[1:]).prod().item())) if len(shape) > 1 else 1
                t = torch.randn(shape, generator=self.gen) / math.sqrt(fan_in)
            self[name] = t
        assert list(self[name].shape) == list(shape), name
        return self[name]


# ---- CLIPTextModel --------------------------------------------------------------------------

def clip_text(W, cfg, ids):
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    n, length = ids.shape
    x = F.embedding(ids, W.get("text_model.embeddings.token_embedding.weight", (cfg["vocab_size"], d)))
    x = x + W.get("text_model.embeddings.position_embedding.weight", (cfg["max_position_embeddings"], d))[:length]
    mask = torch.full((length, length), float("-inf")).triu(1)
    hidden_states = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{i}"

        def lin(name, t, out, inp):
            return F.linear(t, W.get(f"{p}.{name}.weight", (out, inp)), W.get(f"{p}.{name}.bias", (out,), "b"))

        def ln(name, t):
            return F.layer_norm(t, (d,), W.get(f"{p}.{name}.weight", (d,), "norm_w"), W.get(f"{p}.{name}.bias", (d,), "b"),
                                cfg["layer_norm_eps"])

        r = x
        h = ln("layer_norm1", x)
        hd = d // heads
        q = lin("self_attn.q_proj", h, d, d) * hd ** -0.5
        k = lin("self_attn.k_proj", h, d, d)
        v = lin("self_attn.v_proj", h, d, d)
        split = lambda t: t.view(n, length, heads, hd).transpose(1, 2)
        a = torch.softmax(split(q) @ split(k).transpose(-1, -2) + mask, dim=-1) @ split(v)
        a = a.transpose(1, 2).reshape(n, length, d)
        x = r + lin("self_attn.out_proj", a, d, d)
        h = lin("mlp.fc1", ln("layer_norm2", x), cfg["intermediate_size"], d)
        h = h * torch.sigmoid(1.702 * h) if cfg["hidden_act"] == "quick_gelu" else F.gelu(h)
        x = x + lin("mlp.fc2", h, d, cfg["intermediate_size"])
        hidden_states.append(x)
    chosen = hidden_states[-(cfg.get("clip_skip", 0) + 1)]
    return F.layer_norm(chosen, (d,), W.get("text_model.final_layer_norm.weight", (d,), "norm_w"),
                        W.get("text_model.final_layer_norm.bias", (d,), "b"), cfg["layer_norm_eps"])


# ---- AutoencoderKL --------------------------------------------------------------------------

def conv(W, name, x, out, k, stride=1, padding=None):
    padding = k // 2 if padding is None else padding
    return F.conv2d(x, W.get(name + ".weight", (out, x.shape[1], k, k)), W.get(name + ".bias", (out,), "b"), stride, padding)


def gn(W, name, x, groups):
    c = x.shape[1]
    return F.group_norm(x, groups, W.get(name + ".weight", (c,), "norm_w"), W.get(name + ".bias", (c,), "b"), 1e-6)


def resnet(W, p, x, out, groups):
    h = conv(W, p + ".conv1", F.silu(gn(W, p + ".norm1", x, groups)), out, 3)
    h = conv(W, p + ".conv2", F.silu(gn(W, p + ".norm2", h, groups)), out, 3)
    if x.shape[1] != out:
        x = conv(W, p + ".conv_shortcut", x, out, 1)
    return x + h


def mid(W, p, x, cfg):
    g = cfg["norm_num_groups"]
    c = x.shape[1]
    x = resnet(W, p + ".resnets.0", x, c, g)
    if cfg.get("mid_block_add_attention", True):
        a = p + ".attentions.0"
        n, _, hh, ww = x.shape
        h = gn(W, a + ".group_norm", x, g).view(n, c, hh * ww).transpose(1, 2)
        lin = lambda name, t: F.linear(t, W.get(f"{a}.{name}.weight", (c, c)), W.get(f"{a}.{name}.bias", (c,), "b"))
        q, k, v = lin("to_q", h), lin("to_k", h), lin("to_v", h)
        o = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c), dim=-1) @ v
        o = lin("to_out.0", o).transpose(1, 2).reshape(n, c, hh, ww)
        x = x + o
    return resnet(W, p + ".resnets.1", x, c, g)


def vae_encode(W, cfg, x):
    boc, g, lat = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["latent_channels"]
    x = conv(W, "encoder.conv_in", x, boc[0], 3)
    for i, ch in enumerate(boc):
        for j in range(cfg["layers_per_block"]):
            x = resnet(W, f"encoder.down_blocks.{i}.resnets.{j}", x, ch, g)
        if i + 1 < len(boc):
            x = conv(W, f"encoder.down_blocks.{i}.downsamplers.0.conv", F.pad(x, (0, 1, 0, 1)), ch, 3, 2, 0)
    x = mid(W, "encoder.mid_block", x, cfg)
    x = conv(W, "encoder.conv_out", F.silu(gn(W, "encoder.conv_norm_out", x, g)), 2 * lat, 3)
    if cfg.get("use_quant_conv", True):
        x = conv(W, "quant_conv", x, 2 * lat, 1)
    return x[:, :lat]


def vae_decode(W, cfg, z):
    boc, g, lat = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["latent_channels"]
    if cfg.get("use_post_quant_conv", True):
        z = conv(W, "post_quant_conv", z, lat, 1)
    x = conv(W, "decoder.conv_in", z, boc[-1], 3)
    x = mid(W, "decoder.mid_block", x, cfg)
    for i, ch in enumerate(reversed(boc)):
        for j in range(cfg["layers_per_block"] + 1):
            x = resnet(W, f"decoder.up_blocks.{i}.resnets.{j}", x, ch, g)
        if i + 1 < len(boc):
            x = conv(W, f"decoder.up_blocks.{i}.upsamplers.0.conv", F.interpolate(x, scale_factor=2.0, mode="nearest"), ch, 3)
    return conv(W, "decoder.conv_out", F.silu(gn(W, "decoder.conv_norm_out", x, g)), cfg["out_channels"], 3)


def write_case(name, cfg, weights, io):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    save_safetensors(os.path.join(d, "weights.safetensors"), dict(sorted(weights.items())))
    save_safetensors(os.path.join(d, "io.safetensors"), io)


def main():
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(1234)
    clip_cases = {
        # SD 1.x: openai CLIP ViT-L/14's text tower, quick_gelu, the last layer
        "clip_sd1": dict(architectures=["CLIPTextModel"], vocab_size=99, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=16,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5),
        # SD 2.x: OpenCLIP ViT-H/14, gelu, the penultimate layer
        "clip_sd2": dict(architectures=["CLIPTextModel"], vocab_size=99, hidden_size=40, intermediate_size=80,
                         num_hidden_layers=3, num_attention_heads=5, max_position_embeddings=16,
                         hidden_act="gelu", layer_norm_eps=1e-5, clip_skip=1),
    }
    for name, cfg in clip_cases.items():
        W = Weights(g)
        ids = torch.randint(0, cfg["vocab_size"], (2, cfg["max_position_embeddings"]), generator=g)
        out = clip_text(W, cfg, ids)
        # layers after the chosen one still exist in the file
        full = dict(cfg, clip_skip=0)
        clip_text(W, full, ids)
        write_case(name, cfg, W, {"input_ids": ids, "out": out})
    vae_cases = {
        # SD 1.x / 2.x VAE shape: four levels with two resnets each, 4 latent channels (toy widths)
        "vae_sd": dict(_class_name="AutoencoderKL", in_channels=3, out_channels=3, block_out_channels=[8, 16, 16],
                       down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                       layers_per_block=2, latent_channels=4, norm_num_groups=4, sample_size=16, scaling_factor=0.18215),
        # one channel in and out, no quant convs, no mid-block attention
        "vae_plain": dict(_class_name="AutoencoderKL", in_channels=1, out_channels=1, block_out_channels=[8, 16],
                          layers_per_block=1, latent_channels=3, norm_num_groups=4, sample_size=8, scaling_factor=0.5,
                          use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=False),
    }
    for name, cfg in vae_cases.items():
        W = Weights(g)
        factor = 2 ** (len(cfg["block_out_channels"]) - 1)
        s = cfg["sample_size"]
        image = torch.rand((2, cfg["in_channels"], s, s + factor), generator=g) * 2 - 1  # not square
        latent = torch.randn((2, cfg["latent_channels"], s // factor, s // factor + 1), generator=g)
        mean = vae_encode(W, cfg, image)
        decoded = vae_decode(W, cfg, latent)
        write_case(name, cfg, W, {"sample": image, "mean": mean, "latent": latent, "decoded": decoded})


if __name__ == "__main__":
    main()
