"""Assembles bench/results/tmpq_table.md from the files bench/tmpq_table.sh writes."""
import json, os, subprocess, sys

out, model, num, steps, iters, search_flags = sys.argv[1:7]
steps = [int(n) for n in steps.split()]
qdm = os.environ.get("QDM", "build/bin/qdm")


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def speed(name):
    """ms per image per batch size from a qdm_sampling_bench table (the median of repeated runs)."""
    ms = {}
    path = f"{out}/{name}.speed.md"
    if not os.path.exists(path):
        return ms
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[1].isdigit():
            ms.setdefault(int(cells[1]), []).append(1000 * float(cells[5]) / int(cells[1]))
    return {b: sorted(v)[(len(v) - 1) // 2] for b, v in ms.items()}


def inspect(name):
    """`qdm inspect --json` of an artifact, as bench/tmpq_table.sh kept it (artifacts are not committed)."""
    kept = load(f"{out}/{name}.inspect.json")
    if kept is not None:
        return kept
    path = f"{out}/{name}.safetensors"
    if not os.path.exists(path):
        return None
    j = json.loads(subprocess.run([qdm, "inspect", path, "--json"], check=True, capture_output=True, text=True).stdout)
    json.dump(j, open(f"{out}/{name}.inspect.json", "w"), indent=1)
    return j


fp_bytes = os.path.getsize(f"{model}/diffusion_pytorch_model.safetensors")
fp_macs = None  # multiply-adds of one UNet call, from any artifact of the model
rows, fid = [], {}


def row(label, n, name, bitops, resident, search_s="-", speed_of=None):
    ev = load(f"{out}/{name}.eval.json")
    if ev is None:
        return
    fid[name] = ev["fid_fmnist"]
    ms = speed(speed_of or name)
    b1 = f"{ms[1]:.1f}" if 1 in ms else "-"
    b64 = f"{ms[64]:.2f}" if 64 in ms else "-"
    g = load(f"{out}/{name}.guided.json")
    guided = f"{g['class_accuracy']:.3f} | {g['fid_fmnist']:.1f}" if g else "- | -"
    rows.append(f"| {label} | {n} | {ev['fid_fmnist']:.1f} | {guided} | {bitops / 1e9:.1f} | {b1} | {b64} | {resident} | {search_s} |")


# The quantized rows' samplers: DDIM's rows carry no suffix (tfmq_w4a8_n10), others do (_dpm).
samplers = [("", "DDIM"), ("_dpm", "DPM-Solver++(2M)")]
# The searches' budgets: the BitOPs cap, the time cap with the paper's groups, with even groups.
caps = {"bitops": "BitOPs cap", "ms": "time cap", "ms_even": "time cap, even groups"}
artifacts = {}
for n in steps:
    for sfx, _ in samplers:
        for name in [f"tfmq_w4a8{sfx}_n{n}"] + [f"tmpq_{cap}{sfx}_n{n}" for cap in caps]:
            a = inspect(name) if os.path.exists(f"{out}/{name}.eval.json") else None
            if a:
                artifacts[name] = a
                # every layer's multiply-adds: the largest count (an fp32-left layer is not counted)
                fp_macs = max(fp_macs or 0, a.get("macs_per_call") or 0)

fp_resident = load(f"{out}/fp_ddim100.eval.json")["weight_bytes"] if os.path.exists(f"{out}/fp_ddim100.eval.json") else fp_bytes
fp_bitops = (fp_macs or 0) * 32 * 32
row("FP32 DDIM", 100, "fp_ddim100", fp_bitops * 100, fp_resident)
for n in steps:
    row("FP32 DDIM (uniform)", n, f"fp_ddim{n}", fp_bitops * n, fp_resident)
for n in steps:
    row("FP32 DPM-Solver++(2M) (uniform)", n, f"fp_dpm{n}", fp_bitops * n, fp_resident, speed_of=f"fp_ddim{n}")
for sfx, sampler in samplers:
    for n in steps:
        a = artifacts.get(f"tfmq_w4a8{sfx}_n{n}")
        if a:
            row(f"TFMQ-DM W4A8, {sampler}", n, f"tfmq_w4a8{sfx}_n{n}", a["bitops_per_call"] * n, a["resident_weight_bytes"])
for sfx, sampler in samplers:
    for cap in caps:
        for n in steps:
            a = artifacts.get(f"tmpq_{cap}{sfx}_n{n}")
            if not a:
                continue
            se = a["report"]["search"]
            budget = (f"{se['options']['bitops_cap']:g} x all-6-bit" if cap == "bitops"
                      else f"{se['options']['ms_cap']:.1f} ms (1.2x TFMQ W4A8 at N = {n})")
            row(f"TMPQ-DM, {caps[cap]} {budget}, {sampler}", n, f"tmpq_{cap}{sfx}_n{n}", a["bitops_per_call"] * n, a["resident_weight_bytes"],
                f"{a['timings'].get('total', 0) / 60:.1f} min")

lines = []
fp100 = fid.get("fp_ddim100")
s100 = speed("fp_ddim100")
for sfx, sampler in samplers:
    for n in steps:
        u = fid.get(f"fp_ddim{n}")
        same = fid.get(f"fp{sfx}{n}") if sfx else None  # FP32 at N with the same sampler
        for cap in caps:
            t = fid.get(f"tmpq_{cap}{sfx}_n{n}")
            if t is None or fp100 is None:
                continue
            ok = t <= 1.1 * fp100 and (u is None or t < u)
            lines.append(f"- N = {n}, {sampler}: TMPQ ({caps[cap]}) FID {t:.1f} against FP DDIM-100 {fp100:.1f} (goal at N = 10: <= {1.1 * fp100:.1f})"
                         + (f" and uniform FP DDIM-{n} {u:.1f}" if u is not None else "") + (" - met" if ok else " - not met")
                         + (f"; FP32 {sampler} at N = {n}: {same:.1f}" if same is not None else "") + ".")
            s = speed(f"tmpq_{cap}{sfx}_n{n}")
            if 64 in s and 64 in s100:
                lines.append(f"- N = {n}, {sampler}: TMPQ ({caps[cap]}) time per image at batch 64 is {s[64] / s100[64]:.3f}x of FP DDIM-100's "
                             f"(batch 1: {s.get(1, 0) / s100.get(1, 1):.3f}x; goal at N = 10: <= 0.1x).")
times = [a["timings"].get("total", 0) / 60 for k, a in artifacts.items() if k.startswith("tmpq_")]
if times:
    lines.append(f"- Searches took {min(times):.0f}-{max(times):.0f} min end to end (goal for the default: <= 60 min).")

note_path = f"{out}/table_note.md"  # what sessions wrote about their runs, kept across regenerations
note = open(note_path).read().strip() + "\n\n" if os.path.exists(note_path) else ""
print(f"""# TMPQ-DM: timesteps and per-layer bits searched together ({os.path.basename(model)})

{note}FID-FMNIST on {num} samples, seeds 0..{int(num) - 1} for every row (the evaluator's classifier
features against the Fashion-MNIST test set). BitOPs per image over all N steps (one UNet call
per step: multiply-adds x weight bits x activation bits, 32 for fp32 operands, attention's
matmuls at their operand bits; the cached temporal block is free). ms per image: sampling runs
of qdm_sampling_bench in one process, the median of three at batch 1 and one at batch 64 (integer kernels on the execution plan;
FP32 on LibTorch), this machine, 2 threads. Resident bytes: the weights the runtime holds.
TFMQ-DM W4A8: calibrated for that N ({iters} AdaRound iterations per block). TMPQ-DM: the
default search (recipe defaults{', plus ' + search_flags if search_flags else ''}) at N, either under the
default BitOPs cap (the all-6-bit model's) or under a time cap alone: 1.2x TFMQ W4A8's
measured ms per image at batch 1 at the same N, checked against the kernels' latency table
(measured once per machine, per layer and weight bit width); the time cap with the paper's
timestep groups (dense near t = 0) and with even groups (`--group-power 1`). Search time is the whole
quantize job (quantizer bank, search, final FID ranking; the latency table was cached). Guided:
the same seeds with an even spread of class labels at guidance 3, class accuracy by the evaluator's
classifier and FID ("-": not run; artifacts that were not kept cannot be).

| model | N | FID-FMNIST | guided class acc | guided FID | GBitOPs / image | ms / image (b1) | ms / image (b64) | resident weight bytes | search wall time |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
""" + "\n".join(rows) + "\n\nGoals:\n" + "\n".join(lines) + """

Reproduce: `bash bench/tmpq_table.sh` (environment variables at the top of the script).
""")
