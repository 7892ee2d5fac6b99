#!/usr/bin/env python3
"""Exports a text-to-image pipeline's UNet2DConditionModel (unet/ of a diffusers pipeline folder)
to ONNX with Debian's python3-torch, for the ONNX Runtime row of bench/t2i_speed.sh (benchmark
only: never a product or test dependency).

The network is the plain-PyTorch reference the component tests compare against
(tests/reference/pipeline_components_reference.py, written from diffusers' module definitions),
with the folder's weights. The graph takes sample (N, C, H, W) float, timestep (N,) float and
encoder_hidden_states (N, L, D) float at N = 2 (one guided image: the prompt and the negative
prompt in one call, as qdm runs them); --check compares it with `qdm forward --component unet`.

  python3 bench/peer/export_t2i_onnx.py models/fmnist-t2i out.onnx [--check build/bin/qdm]
"""
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import pipeline_components_reference as ref  # noqa: E402

sys.path.insert(0, HERE)
from export_onnx import read_safetensors, write_safetensors  # noqa: E402


class Loaded(ref.Weights):
    """The folder's weights; a name the network asks for that the file lacks is an error."""

    def __init__(self, tensors):
        super().__init__(None)
        self.update(tensors)

    def get(self, name, shape, kind="w"):
        if name not in self:
            raise KeyError(f"weights lack {name}")
        assert list(self[name].shape) == list(shape), name
        return self[name]


class UNet(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.W = Loaded(weights)

    def forward(self, sample, timestep, encoder_hidden_states):
        return ref.unet_condition(self.W, self.cfg, sample, timestep, encoder_hidden_states)


def main():
    folder, out = sys.argv[1], sys.argv[2]
    qdm = sys.argv[sys.argv.index("--check") + 1] if "--check" in sys.argv else None
    cfg = json.load(open(os.path.join(folder, "unet", "config.json")))
    text = json.load(open(os.path.join(folder, "text_encoder", "config.json")))
    tok = json.load(open(os.path.join(folder, "tokenizer", "tokenizer_config.json")))
    model = UNet(cfg, read_safetensors(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))).eval()
    n, c, s, length = 2, cfg["in_channels"], cfg["sample_size"], tok.get("model_max_length", 77)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, s, s, generator=gen)
    t = torch.tensor([500.0, 20.0])
    ctx = torch.randn(n, length, text["hidden_size"], generator=gen)
    with torch.no_grad():
        torch.onnx.export(model, (x, t, ctx), out, input_names=["sample", "timestep", "encoder_hidden_states"],
                          output_names=["out"], opset_version=17)
        want = model(x, t, ctx)
    print(f"export: {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    if qdm:
        with tempfile.TemporaryDirectory() as d:
            write_safetensors(os.path.join(d, "in.safetensors"), {"sample": x, "timestep": t, "encoder_hidden_states": ctx})
            subprocess.run([qdm, "forward", "--model", folder, "--component", "unet", "--input", os.path.join(d, "in.safetensors"),
                            "--out", os.path.join(d, "out.safetensors")], check=True, capture_output=True)
            got = read_safetensors(os.path.join(d, "out.safetensors"))["out"]
        err = ((got - want).abs().max() / want.abs().max()).item()
        print(f"export: qdm forward vs the exported network: max relative difference {err:.2e}")
        if err > 1e-4:
            sys.exit("export: the exported network does not match qdm's UNet")


if __name__ == "__main__":
    main()
