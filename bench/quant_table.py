"""Assembles bench/results/quant_table.md from the JSON files bench/quant_table.sh writes."""
import glob, json, os, struct, sys

out, num, iters, act_iters, calib = sys.argv[1:6]
fp = json.load(open(f"{out}/fp.json"))
fp_bytes = os.path.getsize("models/fmnist-ddpm/diffusion_pytorch_model.safetensors")


def artifact_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def artifact_meta(path):
    return json.loads(artifact_header(path)["__metadata__"]["qdm"])


def artifact_bytes(path):
    """The file's bytes, marked when its temporal feature cache is F32 (written before caches were F16)."""
    cache = artifact_header(path).get("temporal_cache.0")
    return f"{os.path.getsize(path)}" + (" (F32 cache)" if cache and cache["dtype"] == "F32" else "")


def guided_cells(prefix):
    """Class accuracy and FID of the guided evaluation (class-conditional model), or dashes."""
    path = f"{prefix}.guided.json"
    if not os.path.exists(path):
        return "- | -"
    g = json.load(open(path))
    return f"{g['class_accuracy']:.3f} | {g['fid_fmnist']:.3f}"


guidance = None
if os.path.exists(f"{out}/fp.guided.json"):
    guidance = json.load(open(f"{out}/fp.guided.json"))["guidance"]
fids = {}  # (recipe, cfg) -> FID
rows = [f"| FP32 | - | {fp['fid_fmnist']:.3f} | {guided_cells(f'{out}/fp')} | 0 | inf | 1.000 | - | {fp_bytes} | LibTorch | {fp['weight_bytes']} |"]
for cfg in ["w8a8", "w4a8", "w4a32"]:
    for recipe in ["rtn", "qdiffusion", "tfmq", "tfmq_cache", "tfmq_qskip"]:
        for ft in ["", "_ft"]:  # _ft: the row after `qdm finetune`
            name = f"{recipe}_{cfg}{ft}"
            path = f"{out}/{name}.safetensors"
            if not os.path.exists(f"{out}/{name}.eval.json"):
                continue
            ev = json.load(open(f"{out}/{name}.eval.json"))
            fids[(recipe + ft, cfg)] = ev["fid_fmnist"]
            meta = artifact_meta(path)
            rep, timings = meta["report"], meta["timings"]
            seconds = timings.get("quantization", timings["total"]) + timings.get("finetune", 0)
            label = recipe.replace("_", "+") + (" fine-tuned" if ft else "")
            # `qdm finetune` keeps the report it was given (marked measured_before_finetune): no image cells.
            images = ("- | - | -" if rep.get("measured_before_finetune") else
                      f"{rep['mse_vs_fp']:.5f} | {rep['psnr_vs_fp']:.2f} | {rep['temporal_feature_cosine']:.4f}")
            rows.append(f"| {label} | {cfg.upper()} | {ev['fid_fmnist']:.3f} | {guided_cells(f'{out}/{name}')} | {images} | "
                        f"{seconds:.0f} | {artifact_bytes(path)} | {ev['kernels']} | {ev['weight_bytes']} |")
goals = []
fp_fid = fp["fid_fmnist"]
chance = f"{out}/fp_seed{num}.json"
if os.path.exists(chance):
    other = json.load(open(chance))["fid_fmnist"]
    goals.append(f"- Chance level: FP32 on seeds {num}..{2 * int(num) - 1} scores {other:.1f} against {fp_fid:.1f} on "
                 f"seeds 0..{int(num) - 1}; FIDs closer than about {abs(other - fp_fid):.1f} do not rank recipes.")
def accuracy(prefix):
    path = f"{prefix}.guided.json"
    return json.load(open(path))["class_accuracy"] if os.path.exists(path) else None


fp_acc = accuracy(f"{out}/fp")
for cfg in ["w8a8", "w4a8", "w4a32"]:
    q = fids.get(("qdiffusion", cfg))
    for variant in ["tfmq", "tfmq_ft", "tfmq_cache", "tfmq_cache_ft"]:
        t = fids.get((variant, cfg))
        if t is None:
            continue
        label = variant.replace("_ft", " fine-tuned").replace("_", "+")
        line = f"- {cfg.upper()}: {label} FID {t:.1f} is {100 * (t / fp_fid - 1):.1f}% above FP ({fp_fid:.1f}; goal at W4A8: within 10%)"
        acc = accuracy(f"{out}/{variant.replace('_ft', '')}_{cfg}{'_ft' if variant.endswith('_ft') else ''}")
        if acc is not None and fp_acc is not None:
            line += (f"; guided class accuracy {acc:.3f}, {100 * (fp_acc - acc):.1f} points below FP's {fp_acc:.3f} "
                     "(goal at W4A8: within 2)")
        if q is not None:
            line += (f"; its gap to FP ({t - fp_fid:.1f}) is {(t - fp_fid) / (q - fp_fid):.2f} of qdiffusion's "
                     f"({q - fp_fid:.1f}; goal at W4A8: at most 0.5)")
        goals.append(line + ".")
print(f"""# Quantization of models/fmnist-ddpm

100 DDIM steps; FID-FMNIST on {num} samples (seeds 0..{int(num)-1}); MSE / PSNR per image
against the FP32 images of the same seeds (256 images, pixels in [0, 1]); temporal-feature
cosine similarity to FP32 averaged over steps and resnets; quantization wall time on this
machine; artifact size in bytes. Reconstruction: {iters} AdaRound iterations per block,
{act_iters} LSQ iterations per block (qdiffusion), {calib} calibration trajectories.
FID evaluated on the kernels named per row (int: the integer kernels; sim: fake-quant), with
the weight bytes resident in that evaluation (sim: the fp32 grid weights).
tfmq+qskip: tfmq with the 1x1 shortcuts and downsample convs quantized as well.
fine-tuned: the row's artifact after `qdm finetune` (600 Adam steps against the fp32 model's
noise predictions on 256 fresh trajectories, every integer code kept; time: quantization + fine-tuning;
its MSE / PSNR / cosine cells are empty: `qdm finetune` keeps the report it was given).
"(F32 cache)": an artifact written before temporal caches were made and stored at F16; today's
tfmq+cache and vq artifacts are about 2 MB smaller on this model (W4A8: 5.61 -> 3.57 MB).
FID-FMNIST without labels is the unconditional (null-class) model; """ + (
    f"guided: the same seeds with an even spread of class labels at guidance {guidance:g}, class accuracy "
    "by the evaluator's classifier and FID." if guidance else "guided: (unconditional model)") + """

| recipe | bits | FID-FMNIST | guided class acc | guided FID | MSE vs FP | PSNR vs FP dB | temporal cos | quantize s | artifact bytes | eval kernels | resident weight bytes |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|
""" + "\n".join(rows) + """

Goals, from the rows above:
""" + ("\n".join(goals) or "- no tfmq row yet") + """

Reproduce: `bash bench/quant_table.sh` (environment variables at the top of the script).
""")
