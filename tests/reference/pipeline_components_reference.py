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


# ---- UNet2DConditionModel -------------------------------------------------------------------

def timestep_embedding(t, dim, flip=True, shift=0):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - shift))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1) if flip else emb


def resnet_t(W, p, x, temb, out, groups, eps):
    h = F.silu(F.group_norm(x, groups, W.get(p + ".norm1.weight", (x.shape[1],), "norm_w"), W.get(p + ".norm1.bias", (x.shape[1],), "b"), eps))
    h = conv(W, p + ".conv1", h, out, 3)
    tf = F.linear(F.silu(temb), W.get(p + ".time_emb_proj.weight", (out, temb.shape[1])), W.get(p + ".time_emb_proj.bias", (out,), "b"))
    h = h + tf[:, :, None, None]
    h = F.silu(F.group_norm(h, groups, W.get(p + ".norm2.weight", (out,), "norm_w"), W.get(p + ".norm2.bias", (out,), "b"), eps))
    h = conv(W, p + ".conv2", h, out, 3)
    if x.shape[1] != out:
        x = conv(W, p + ".conv_shortcut", x, out, 1)
    return x + h


def attention(W, p, x, ctx, heads, dim):
    n, lq, _ = x.shape
    q = F.linear(x, W.get(p + ".to_q.weight", (dim, x.shape[-1])))
    k = F.linear(ctx, W.get(p + ".to_k.weight", (dim, ctx.shape[-1])))
    v = F.linear(ctx, W.get(p + ".to_v.weight", (dim, ctx.shape[-1])))
    d = dim // heads
    sp = lambda t: t.view(n, t.shape[1], heads, d).transpose(1, 2)
    o = torch.softmax(sp(q) @ sp(k).transpose(-1, -2) * d ** -0.5, dim=-1) @ sp(v)
    o = o.transpose(1, 2).reshape(n, lq, dim)
    return F.linear(o, W.get(p + ".to_out.0.weight", (dim, dim)), W.get(p + ".to_out.0.bias", (dim,), "b"))


def transformer2d(W, p, x, ctx, heads, layers, cfg):
    n, c, hh, ww = x.shape
    h = F.group_norm(x, cfg["norm_num_groups"], W.get(p + ".norm.weight", (c,), "norm_w"), W.get(p + ".norm.bias", (c,), "b"), 1e-6)
    if cfg["use_linear_projection"]:
        h = h.permute(0, 2, 3, 1).reshape(n, hh * ww, c)
        h = F.linear(h, W.get(p + ".proj_in.weight", (c, c)), W.get(p + ".proj_in.bias", (c,), "b"))
    else:
        h = conv(W, p + ".proj_in", h, c, 1).permute(0, 2, 3, 1).reshape(n, hh * ww, c)
    ln = lambda name, t: F.layer_norm(t, (c,), W.get(name + ".weight", (c,), "norm_w"), W.get(name + ".bias", (c,), "b"), 1e-5)
    for l in range(layers):
        t = f"{p}.transformer_blocks.{l}"
        h = h + attention(W, t + ".attn1", ln(t + ".norm1", h), ln(t + ".norm1", h), heads, c)
        h = h + attention(W, t + ".attn2", ln(t + ".norm2", h), ctx, heads, c)
        g = F.linear(ln(t + ".norm3", h), W.get(t + ".ff.net.0.proj.weight", (8 * c, c)), W.get(t + ".ff.net.0.proj.bias", (8 * c,), "b"))
        a, gate = g.chunk(2, dim=-1)
        h = h + F.linear(a * F.gelu(gate), W.get(t + ".ff.net.2.weight", (c, 4 * c)), W.get(t + ".ff.net.2.bias", (c,), "b"))
    if cfg["use_linear_projection"]:
        h = F.linear(h, W.get(p + ".proj_out.weight", (c, c)), W.get(p + ".proj_out.bias", (c,), "b"))
        h = h.reshape(n, hh, ww, c).permute(0, 3, 1, 2)
    else:
        h = conv(W, p + ".proj_out", h.reshape(n, hh, ww, c).permute(0, 3, 1, 2), c, 1)
    return h + x


def unet_condition(W, cfg, x, t, ctx):
    boc, g, eps = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["norm_eps"]
    heads = cfg["attention_head_dim"]
    heads = heads if isinstance(heads, list) else [heads] * len(boc)
    layers = cfg.get("transformer_layers_per_block", 1)
    layers = layers if isinstance(layers, list) else [layers] * len(boc)
    temb = timestep_embedding(t, boc[0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
    td = 4 * boc[0]
    temb = F.linear(temb, W.get("time_embedding.linear_1.weight", (td, boc[0])), W.get("time_embedding.linear_1.bias", (td,), "b"))
    temb = F.linear(F.silu(temb), W.get("time_embedding.linear_2.weight", (td, td)), W.get("time_embedding.linear_2.bias", (td,), "b"))
    x = conv(W, "conv_in", x, boc[0], 3)
    skips = [x]
    for i, ch in enumerate(boc):
        p = f"down_blocks.{i}"
        for j in range(cfg["layers_per_block"]):
            x = resnet_t(W, f"{p}.resnets.{j}", x, temb, ch, g, eps)
            if cfg["down_block_types"][i] == "CrossAttnDownBlock2D":
                x = transformer2d(W, f"{p}.attentions.{j}", x, ctx, heads[i], layers[i], cfg)
            skips.append(x)
        if i + 1 < len(boc):
            x = conv(W, f"{p}.downsamplers.0.conv", x, ch, 3, 2, 1)
            skips.append(x)
    x = resnet_t(W, "mid_block.resnets.0", x, temb, boc[-1], g, eps)
    x = transformer2d(W, "mid_block.attentions.0", x, ctx, heads[-1], layers[-1], cfg)
    x = resnet_t(W, "mid_block.resnets.1", x, temb, boc[-1], g, eps)
    for i, ch in enumerate(reversed(boc)):
        p = f"up_blocks.{i}"
        m = len(boc) - 1 - i
        for j in range(cfg["layers_per_block"] + 1):
            x = torch.cat([x, skips.pop()], dim=1)
            x = resnet_t(W, f"{p}.resnets.{j}", x, temb, ch, g, eps)
            if cfg["up_block_types"][i] == "CrossAttnUpBlock2D":
                x = transformer2d(W, f"{p}.attentions.{j}", x, ctx, heads[m], layers[m], cfg)
        if i + 1 < len(boc):
            x = conv(W, f"{p}.upsamplers.0.conv", F.interpolate(x, scale_factor=2.0, mode="nearest"), ch, 3)
    x = F.silu(F.group_norm(x, g, W.get("conv_norm_out.weight", (x.shape[1],), "norm_w"), W.get("conv_norm_out.bias", (x.shape[1],), "b"), eps))
    return conv(W, "conv_out", x, cfg["out_channels"], 3)


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
    unet_cases = {
        # SD 1.x: conv proj_in/out, one head count for every block, cross_attention_dim of CLIP-L's width
        "unet_sd1": dict(_class_name="UNet2DConditionModel", sample_size=8, in_channels=4, out_channels=4,
                         down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                         up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], block_out_channels=[8, 16],
                         layers_per_block=1, attention_head_dim=2, cross_attention_dim=12, norm_num_groups=4,
                         norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, use_linear_projection=False,
                         mid_block_type="UNetMidBlock2DCrossAttn", act_fn="silu"),
        # SD 2.x: linear proj_in/out, heads per block, two transformer layers in the last level
        "unet_sd2": dict(_class_name="UNet2DConditionModel", sample_size=8, in_channels=4, out_channels=4,
                         down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                         up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], block_out_channels=[8, 16],
                         layers_per_block=2, attention_head_dim=[2, 4], transformer_layers_per_block=[1, 2],
                         cross_attention_dim=20, norm_num_groups=4, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
                         use_linear_projection=True, act_fn="silu"),
    }
    for name, cfg in unet_cases.items():
        W = Weights(g)
        x = torch.randn((2, 4, 8, 12), generator=g)
        t = torch.tensor([10.0, 700.0])
        ctx = torch.randn((2, 5, cfg["cross_attention_dim"]), generator=g)
        out = unet_condition(W, cfg, x, t, ctx)
        write_case(name, cfg, W, {"sample": x, "timestep": t, "encoder_hidden_states": ctx, "out": out})


if __name__ == "__main__":
    main()
