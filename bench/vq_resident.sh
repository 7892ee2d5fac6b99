#!/usr/bin/env bash
# Resident bytes of VQDM artifacts (issue 32 item 7): recipe vq, whose temporal information block
# (the time embedding and every time_emb_proj) is quantized at the weight bits as tfmq quantizes
# it (TIAR), against vq+cache, which stores the fp32 model's temporal features of every step and
# class instead (F16), at M codebooks of 2^8 without fine-tuning, on the shipped model
# (models/fmnist-ddpm), 100 DDIM steps, both made and evaluated in one run: FID-FMNIST on NUM
# samples (seeds 0..NUM-1) unguided, and with an even spread of class labels at guidance 3 (class
# accuracy and FID); resident bytes on the integer plan as `qdm inspect` measures them (the same
# figure the sampling log reports), broken down by what holds them, and against FP32's.
#   bash bench/vq_resident.sh          (from the repository root, after .ci/setup)
# Environment: NUM (1000), CALIB (32), CODEBOOKS ("3"), QDM (binary). Finished rows are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
calib=${CALIB:-32}
codebooks=${CODEBOOKS:-"3"}
qdm=${QDM:-build/bin/qdm}
model=models/fmnist-ddpm
out=bench/results/vq
mkdir -p "$out"
rows=()
for m in $codebooks; do
  for recipe in vq+cache vq; do
    name=$([ "$recipe" = vq ] && echo "vqtib_m${m}b8" || echo "vqcache_m${m}b8")
    rows+=("$name:$recipe:$m")
    [ -f "$out/$name.safetensors" ] && [ -s "$out/$name.seconds" ] || \
      /usr/bin/time -f "%e" -o "$out/$name.seconds" "$qdm" quantize --model "$model" --steps 100 --calib-samples "$calib" \
        --report-samples 256 --out "$out/$name.safetensors" --recipe "$recipe" --codebooks "$m" --codebook-bits 8 --iters 200 \
        --finetune-iters 0 > "$out/$name.log" 2>&1
    [ -s "$out/$name.inspect.json" ] || "$qdm" inspect "$out/$name.safetensors" --json > "$out/$name.inspect.json"
    [ -s "$out/$name.eval.json" ] || "$qdm" eval --artifact "$out/$name.safetensors" --kernels int --num "$num" --seed 0 \
      --json "$out/$name.eval.json" > /dev/null 2>&1
    [ -s "$out/$name.guided.json" ] || "$qdm" eval --artifact "$out/$name.safetensors" --kernels int --num "$num" --seed 0 \
      --class-label all --guidance 3 --json "$out/$name.guided.json" > /dev/null 2>&1
  done
done
python3 - "$out" "$num" "${rows[@]}" <<'PY' > bench/results/vq_resident.md
import json, sys
out, num, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
fp = json.load(open("bench/results/quant/fp.json"))
fp_bytes = fp["weight_bytes"]
print("# VQDM's resident bytes: the temporal block quantized (vq) or cached (vq+cache)\n")
print(f"`bash bench/vq_resident.sh`: models/fmnist-ddpm, 100 DDIM steps, M codebooks of 2^8 per group of 8 inputs, "
      f"A8, no fine-tuning, both recipes quantized and evaluated by this command on this machine (2 threads, shared with other work: "
      f"quantize minutes are wall time). FID-FMNIST on "
      f"{num} samples (seeds 0..{int(num) - 1}); guided: an even spread of class labels at guidance 3 (class accuracy, FID). "
      "Resident bytes: what the integer plan holds, every byte (`qdm inspect`, the figure the sampling log reports), "
      f"against FP32's {fp_bytes:,} (its FID {fp['fid_fmnist']:.1f}). Bits per weight: every byte of the stored conv and "
      "linear weights over their count (vq+cache stores no temporal block, so its count is smaller).\n")
print("| recipe | M | bits per weight (vq layers / all) | resident bytes | / FP32 | held by | FID-FMNIST | guided accuracy / FID | quantize min |")
print("|---|---:|---|---:|---:|---|---:|---|---:|")
for r in rows:
    name, recipe, m = r.split(":")
    ins = json.load(open(f"{out}/{name}.inspect.json"))
    ev = json.load(open(f"{out}/{name}.eval.json"))
    g = json.load(open(f"{out}/{name}.guided.json"))
    vq = ins["report"]["vq"]
    held = ", ".join(f"{k} {v:,}" for k, v in sorted(ins["resident_breakdown"].items(), key=lambda kv: -kv[1]))
    secs = float(open(f"{out}/{name}.seconds").read())
    print(f"| {recipe} | {m} | {vq['vq_bits_per_weight']:.2f} / {vq['bits_per_weight']:.2f} | {ins['resident_weight_bytes']:,} | "
          f"{ins['resident_weight_bytes'] / fp_bytes:.3f}x | {held} | {ev['fid_fmnist']:.1f} | "
          f"{g.get('class_accuracy', float('nan')):.3f} / {g['fid_fmnist']:.1f} | {secs / 60:.1f} |")
print("\nGoal (issue 32): resident vq M = 3 <= 0.11x of FP32 (M = 2 <= 0.09x), FID within noise of vq+cache's "
      "(two FP32 sample sets differ by ~9.5 FID: closer figures do not rank).")
PY
cat bench/results/vq_resident.md
