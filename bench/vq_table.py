"""Assembles bench/results/vq_table.md from the files bench/vq_table.sh writes."""
import json, os, struct, sys

out, num, variants, scalars = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
finetuned = sys.argv[5].split() if len(sys.argv) > 5 else []  # "name:base": qdm finetune on a row's artifact


def meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["qdm"])


def tensor_bytes(path):
    """name -> (shape, bytes) of a safetensors file's tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return {k: (v["shape"], v["data_offsets"][1] - v["data_offsets"][0]) for k, v in h.items() if k != "__metadata__"}


def scalar_bits(path, weights):
    """Bits per weight of a scalar artifact's conv and linear weights, every byte counted: packed
    codes, scales and zero points, and 2-d+ weights stored in fp32."""
    total = 0
    for k, (shape, nbytes) in tensor_bytes(path).items():
        if k.endswith((".qweight", ".wscale", ".wzero")) or (k.endswith(".weight") and len(shape) >= 2):
            total += nbytes
    return 8.0 * total / weights


def speed(name):
    p = f"{out}/{name}.speed.json"
    if not os.path.exists(p):
        return {}
    return {j["batch"]: j for j in (json.loads(l) for l in open(p) if l.strip())}


def ms(name, batch):
    s = speed(name).get(batch)
    return f"{s['median_ms']:.2f}" if s else "-"


def guided(path):
    """Class accuracy and FID of a guided evaluation (bench/quant_table.sh's spread of labels), or dashes."""
    if not os.path.exists(path):
        return "- | -"
    g = json.load(open(path))
    return f"{g['class_accuracy']:.3f} | {g['fid_fmnist']:.1f}"


fp = json.load(open("bench/results/quant/fp.json"))
fp_speed = speed("fp32")
rows = [f"| FP32 (LibTorch) | 32 | 32 | {fp['fid_fmnist']:.1f} | {guided('bench/results/quant/fp.guided.json')} | inf | "
        f"{fp['weight_bytes']} | {ms('fp32', 1)} | - | {ms('fp32', 64)} | - | - |"]
notes = []
weights = None  # conv and linear weights but the cached temporal block, from a vq report
for v in variants:
    p = f"{out}/{v.split(':')[0]}.safetensors"
    if os.path.exists(p) and weights is None:
        weights = meta(p)["report"]["vq"]["weights"]
fid, ms_of = {}, {}
for v in variants + scalars + finetuned:
    name = v.split(":")[0]
    path = f"{out}/{name}.safetensors"
    if not os.path.exists(f"{out}/{name}.eval.json"):
        continue
    ev = json.load(open(f"{out}/{name}.eval.json"))
    m = meta(path)
    rep = m["report"] or {}
    marker = f"{out}/{name}.from_quant_table"
    if os.path.exists(marker):  # quality and time measured by bench/quant_table.sh, speed here
        notes.append(f"- {name}: " + open(marker).read().strip() + ".")
        log = open(f"bench/results/quant/{name}.log").read()
        rep = dict(rep, psnr_vs_fp=float(log.split('psnr_vs_fp":')[1].split(",")[0].split("}")[0]))
    if os.path.exists(f"{out}/{name}.note"):
        notes.append(f"- {name}: " + open(f"{out}/{name}.note").read().strip())
    stale = rep.get("measured_before_finetune", False)  # qdm finetune: the report is the base's
    secs = float(open(f"{out}/{name}.seconds").read().strip())
    fid[name] = ev["fid_fmnist"]
    ms_of[name] = {b: speed(name).get(b, {}).get("median_ms") for b in (1, 64)}
    ms_of[name + ".sim"] = {b: speed(name + ".sim").get(b, {}).get("median_ms") for b in (1, 64)}
    tuned = m["recipe"].get("finetune", {}).get("iters", 0)
    tuned_label = f" + fine-tuning ({tuned} steps)" if tuned else ""
    if v in finetuned:
        base = v.split(":")[1]
        v = next(x for x in variants + scalars if x.split(":")[0] == base)
    if name.startswith("vq"):
        vq = rep["vq"]
        parts = v.split(":")
        label = f"{parts[4] if len(parts) > 4 else 'vq+cache'} M={parts[1]} B={parts[2]} A8{tuned_label}"
        nominal = f"{vq['nominal_bits']:.2f} (vq layers), {vq['vq_layers']} of the layers"
        bits = f"{vq['vq_bits_per_weight']:.2f} vq layers / {vq['bits_per_weight']:.2f} all"
        sim = (ms(name + '.sim', 1), ms(name + '.sim', 64))
    else:
        w = v.split(":")[1]
        label = f"tfmq+cache W{w}A8{tuned_label}"
        nominal = w
        bits = f"{scalar_bits(path, weights):.2f} all" if weights else "-"
        sim = ("-", "-")
    psnr = "-" if stale else f"{rep.get('psnr_vs_fp', float('nan')):.2f}"
    rows.append(f"| {label} | {nominal} | {bits} | {ev['fid_fmnist']:.1f} | {guided(f'{out}/{name}.guided.json')} | {psnr} | "
                f"{ev['weight_bytes']} | {ms(name, 1)} | {sim[0]} | {ms(name, 64)} | {sim[1]} | {secs / 60:.1f} |")
def goals():
    out_lines = ["Goals (issue 16), for each vq row against tfmq+cache W4A8 (and W4A8 fine-tuned alike):"]
    ref = "tfmq_cache_w4a8"
    if ref not in fid:
        return []
    tuned_ref = next((f.split(":")[0] for f in finetuned if f.split(":")[1] == ref and f.split(":")[0] in fid), None)
    for v in variants:
        name = v.split(":")[0]
        if name not in fid:
            continue
        line = f"- {name}: FID {fid[name] - fid[ref]:+.1f} against W4A8 ({fid[ref]:.1f})"
        if tuned_ref:
            line += f", {fid[name] - fid[tuned_ref]:+.1f} against W4A8 fine-tuned ({fid[tuned_ref]:.1f})"
        for b in (1, 64):
            q, w, sim = ms_of[name][b], ms_of[ref][b], ms_of[name + ".sim"][b]
            if q and w:
                line += f"; batch {b}: {q / w:.2f}x the W4A8 step" + (f", {sim / q:.1f}x faster than decode-then-FP32" if sim else "")
        out_lines.append(line + ".")
    out_lines.append("(goal: about 3 bits per weight with every byte and FID no worse than W4A8; the vq kernels within "
                     "1.2x of the W4A8 step and faster than decode-then-FP32 at every batch; FIDs closer than about 2 "
                     "do not rank)")
    return out_lines


note_path = f"{out}/table_note.md"  # what a session wrote about its runs, kept across regenerations
note = open(note_path).read().strip() + "\n\n" if os.path.exists(note_path) else ""
print(f"""# VQDM on models/fmnist-ddpm

{note}`bash bench/vq_table.sh`: 100 DDIM steps, FID-FMNIST on {num} samples (seeds 0..{int(num) - 1}) on the integer kernels,
PSNR against the FP32 images of the same seeds (256 images; "-": the quality report predates a
`qdm finetune`); rows "+ fine-tuning" are fine-tuned against the FP32 model's predictions (scales,
integer codebooks, biases, norms; every code fixed: engine/quant/finetune.h), vq's default; bits per weight count every byte of the
quantized layers' weights (codes, int8 codebooks, fp32 row scales; scalar layers: packed codes,
scale and zero point) over all conv and linear weights but the cached temporal block; resident
weight bytes are what the evaluation held (the execution plan's weights, biases, norms, caches);
ms per UNet call (median; t = 990) at batch 1 and 64, 2 threads, for the integer kernels (vq:
a tile of output channels decoded per task) and the decode-then-FP32 simulation (`--kernels
sim`, what VQDM's own code does); quantization wall time in minutes. Guided: the same seeds with an
even spread of class labels at guidance 3, class accuracy by the evaluator's classifier ("-": not run).

| model | nominal bits | bits per weight (all bytes) | FID-FMNIST | guided class acc | guided FID | PSNR vs FP dB | resident weight bytes | ms b1 int | ms b1 sim | ms b64 int | ms b64 sim | quantize min |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
""" + "\n".join(rows) + """

""" + "\n".join(notes) + """

""" + "\n".join(goals()) + """

Reproduce: `bash bench/vq_table.sh` (environment variables at the top of the script).
""")
