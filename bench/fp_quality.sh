#!/usr/bin/env bash
# FID-FMNIST of the shipped FP32 model (1,000 samples, 100 DDIM steps, seeds 0..999) and the
# floor: 1,000 training images against the test set, in the same feature space. A
# class-conditional model is measured unconditionally (the null class) and again guided: the
# same seeds with an even spread of class labels at GUIDANCE (default 3), class accuracy by the
# evaluator's classifier, per class.
#   bash bench/fp_quality.sh            (from the repository root, after .ci/setup)
# Environment: NUM (1000), STEPS (100), GUIDANCE (3; 0 skips the guided evaluation), QDM (binary).
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
steps=${STEPS:-100}
guidance=${GUIDANCE:-3}
qdm=${QDM:-build/bin/qdm}
grep -q '"num_class_embeds": *[1-9]' models/fmnist-ddpm/config.json || guidance=0
mkdir -p bench/results
"$qdm" eval --model models/fmnist-ddpm --num "$num" --steps "$steps" --seed 0 --floor \
  --json bench/results/fp_quality.json >/dev/null
rm -f bench/results/fp_quality_guided.json
[ "$guidance" = 0 ] || "$qdm" eval --model models/fmnist-ddpm --num "$num" --steps "$steps" --seed 0 \
  --class-label all --guidance "$guidance" --json bench/results/fp_quality_guided.json >/dev/null
python3 - "$num" "$steps" <<'PY'
import json, os, sys
r = json.load(open("bench/results/fp_quality.json"))
num, steps = sys.argv[1], sys.argv[2]
hist = ", ".join(f"{k} {v}" for k, v in r["class_histogram"].items())
guided = ""
if os.path.exists("bench/results/fp_quality_guided.json"):
    g = json.load(open("bench/results/fp_quality_guided.json"))
    rows = "\n".join(f"| {name} | {c['images']} | {c['accuracy']:.3f} | {c['fid_fmnist']:.1f} |"
                     for name, c in g["per_class"].items())
    guided = f"""
## Guided (class-conditional)

The same seeds with an even spread of the ten class labels, classifier-free guidance
{g['guidance']:g}: class accuracy {g['class_accuracy']:.3f} (the evaluator's classifier names the
requested class), FID-FMNIST {g['fid_fmnist']:.3f}, mean confidence {g['mean_confidence']:.3f},
{g['sampling_seconds']:.0f} s (two UNet halves per step). Per class (a class's FID is on
{int(num) // 10} images against that class's test images, so it ranks classes, not models):

| class | images | accuracy | FID-FMNIST |
|---|---:|---:|---:|
{rows}
"""
cond = " (unconditional: the null class)" if guided else ""
doc = f"""# FP32 quality of models/fmnist-ddpm

| samples | sampler | FID-FMNIST{cond} | train-vs-test FID (floor) | mean confidence | sampling s |
|---:|---|---:|---:|---:|---:|
| {num} | DDIM {steps} steps, seeds 0..{int(num)-1} | {r['fid_fmnist']:.3f} | {r['train_vs_test_fid']:.3f} | {r['mean_confidence']:.3f} | {r['sampling_seconds']:.0f} |

Class histogram (classifier argmax): {hist}.
{guided}
FID-FMNIST: Fréchet distance between Gaussians fitted to the 128-d penultimate features of
`models/fmnist-classifier` for the samples and for the 10,000 test images. The floor is the
same distance for {num} training images. Reproduce: `bash bench/fp_quality.sh`.
"""
open("bench/results/fp_quality.md", "w").write(doc)
print(doc)
PY
