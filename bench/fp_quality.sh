#!/usr/bin/env bash
# FID-FMNIST of the shipped FP32 model (1,000 samples, 100 DDIM steps, seeds 0..999) and the
# floor: 1,000 training images against the test set, in the same feature space.
#   bash bench/fp_quality.sh            (from the repository root, after .ci/setup)
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
steps=${STEPS:-100}
mkdir -p bench/results
build/bin/qdm eval --model models/fmnist-ddpm --num "$num" --steps "$steps" --seed 0 --floor \
  --json bench/results/fp_quality.json >/dev/null
python3 - "$num" "$steps" <<'PY'
import json, sys
r = json.load(open("bench/results/fp_quality.json"))
num, steps = sys.argv[1], sys.argv[2]
hist = ", ".join(f"{k} {v}" for k, v in r["class_histogram"].items())
doc = f"""# FP32 quality of models/fmnist-ddpm

| samples | sampler | FID-FMNIST | train-vs-test FID (floor) | mean confidence | sampling s |
|---:|---|---:|---:|---:|---:|
| {num} | DDIM {steps} steps, seeds 0..{int(num)-1} | {r['fid_fmnist']:.3f} | {r['train_vs_test_fid']:.3f} | {r['mean_confidence']:.3f} | {r['sampling_seconds']:.0f} |

Class histogram (classifier argmax): {hist}.

FID-FMNIST: Fréchet distance between Gaussians fitted to the 128-d penultimate features of
`models/fmnist-classifier` for the samples and for the 10,000 test images. The floor is the
same distance for {num} training images. Reproduce: `bash bench/fp_quality.sh`.
"""
open("bench/results/fp_quality.md", "w").write(doc)
print(doc)
PY
