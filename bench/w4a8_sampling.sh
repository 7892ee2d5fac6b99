#!/usr/bin/env bash
# End-to-end sampling of the shipped model: FP32 LibTorch vs a W4A8 artifact on the integer
# kernels and on the fake-quant simulation, 100 DDIM steps at batch 1 and 64, one run each
# right after another: time per step, images/s, resident weight bytes, peak RSS. Then the
# integer path against the simulation: pixel differences of 64 images of the same seeds, and
# FID-FMNIST of both on NUM samples (cached next to the artifact as NAME.int|sim.eval.json).
#   bash bench/w4a8_sampling.sh [ARTIFACT]   (default: bench/results/quant/tfmq_w4a8.safetensors)
#   DEVICE=cuda bash bench/w4a8_sampling.sh  (a GPU worker's path; writes w4a8_sampling_cuda.md)
set -euo pipefail
cd "$(dirname "$0")/.."
artifact=${1:-bench/results/quant/tfmq_w4a8.safetensors}
steps=${STEPS:-100}
num=${NUM:-1000}
device=${DEVICE:-cpu}
suffix=$([ "$device" = cpu ] && echo "" || echo "_${device%%:*}")
out=bench/results/w4a8_sampling$suffix.md
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
build/bin/qdm_sampling_bench --model models/fmnist-ddpm --steps "$steps" --batches 1,64 --device "$device" --out "$tmp/fp32.md" >/dev/null 2>&1
build/bin/qdm_sampling_bench --artifact "$artifact" --kernels int --steps "$steps" --batches 1,64 --device "$device" --out "$tmp/int.md" >/dev/null 2>&1
build/bin/qdm_sampling_bench --artifact "$artifact" --kernels sim --steps "$steps" --batches 1,64 --device "$device" --out "$tmp/sim.md" >/dev/null 2>&1
{
  echo "# W4A8 sampling end to end: FP32 vs integer kernels vs simulation"
  echo
  echo "\`DEVICE=$device bash bench/w4a8_sampling.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d), $steps DDIM steps, artifact \`$artifact\`."
  echo
  head -n 100 "$tmp/fp32.md" | grep "^|" | head -2
  for f in fp32 int sim; do grep "^|" "$tmp/$f.md" | tail -n +3; done
  echo
  echo "Integer kernels vs simulation, same seeds (64 images, PNG pixels 0..255):"
  echo
  build/bin/qdm sample --artifact "$artifact" --kernels int --num 64 --seed 0 --device "$device" --out "$tmp/int" >/dev/null 2>&1
  build/bin/qdm sample --artifact "$artifact" --kernels sim --num 64 --seed 0 --device "$device" --out "$tmp/sim" >/dev/null 2>&1
  echo "    $(python3 bench/png_diff.py "$tmp/int" "$tmp/sim")"
  base=${artifact%.safetensors}
  for k in int sim; do
    j=$base.$k$suffix.eval.json
    [ -f "$j" ] || build/bin/qdm eval --artifact "$artifact" --kernels "$k" --num "$num" --seed 0 --device "$device" --json "$j" >/dev/null 2>&1
  done
  echo
  python3 - "$base.int$suffix.eval.json" "$base.sim$suffix.eval.json" <<'PY'
import json, sys
i, s = (json.load(open(p)) for p in sys.argv[1:3])
print(f"FID-FMNIST ({i['num_images']} samples, seeds from {i['seed']}): int {i['fid_fmnist']:.2f}, sim {s['fid_fmnist']:.2f}")
PY
} > "$out"
cat "$out"
