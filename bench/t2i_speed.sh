#!/usr/bin/env bash
# One prompt to one image, end to end, on the shipped text-to-image pipeline (models/fmnist-t2i):
# DDIM 20 steps, guidance 3 (two UNet halves per step), qdm's FP32 execution plans, the time
# split by stage (text encoding, denoising, VAE decoding) as the served model measures it; the
# median of REPEATS runs, each a fresh process (the plans are built at load, outside the times).
#   bash bench/t2i_speed.sh              (from the repository root, after .ci/setup)
# Environment: REPEATS (7), THREADS (2), QDM (binary).
# Not yet here (issue 33): W4A8 (quantized pipelines) and ONNX Runtime's FP32 UNet in the same loop.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${REPEATS:-7}
threads=${THREADS:-2}
qdm=${QDM:-build/bin/qdm}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for i in $(seq "$repeats"); do
  QDM_THREADS=$threads "$qdm" sample --model models/fmnist-t2i --prompt "a photo of a sneaker" --guidance 3 --num 1 --steps 20 \
    --threads "$threads" --out "$(mktemp -d)" 2>&1 | grep "stages:" >> "$log"
done
python3 - "$log" "$repeats" "$threads" <<'PY'
import re, statistics, sys
rows = [tuple(float(x) for x in re.findall(r"([0-9.]+) s", line)) for line in open(sys.argv[1])]
med = [statistics.median(r[i] for r in rows) * 1000 for i in range(3)]
total = sum(med)
cpu = open("/proc/cpuinfo").read()
model = re.search(r"model name\s*:\s*(.*)", cpu).group(1)
doc = f"""# One prompt to one image: models/fmnist-t2i, qdm FP32 plans

`bash bench/t2i_speed.sh`: DDIM 20 steps, guidance 3, one 32x32 image (latent 4x8x8), {sys.argv[3]}
threads, {model}; median of {sys.argv[2]} runs, each stage as the served model times it.

| stage | ms | share |
|---|---:|---:|
| text encoding (2 prompts: the prompt and the empty negative) | {med[0]:.2f} | {med[0] / total:.0%} |
| denoising (20 steps x 2 halves, UNet2DConditionModel) | {med[1]:.2f} | {med[1] / total:.0%} |
| VAE decoding | {med[2]:.2f} | {med[2] / total:.0%} |
| total | {total:.2f} | |

Not yet measured here: W4A8 (quantized pipelines are issue 33's next step) and ONNX Runtime's
FP32 UNet in the same loop.
"""
open("bench/results/t2i_speed.md", "w").write(doc)
print(doc)
PY
