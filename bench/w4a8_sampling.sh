#!/usr/bin/env bash
# End-to-end sampling of the shipped model: FP32 LibTorch vs a W4A8 artifact on the integer
# kernels and on the fake-quant simulation, 100 DDIM steps at batch 1 and 64, one run each
# right after another: time per step, images/s, resident weight bytes, peak RSS.
#   bash bench/w4a8_sampling.sh [ARTIFACT]   (default: bench/results/quant/tfmq_w4a8.safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
artifact=${1:-bench/results/quant/tfmq_w4a8.safetensors}
steps=${STEPS:-100}
out=bench/results/w4a8_sampling.md
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
build/bin/qdm_sampling_bench --model models/fmnist-ddpm --steps "$steps" --batches 1,64 --out "$tmp/fp32.md" >/dev/null 2>&1
build/bin/qdm_sampling_bench --artifact "$artifact" --kernels int --steps "$steps" --batches 1,64 --out "$tmp/int.md" >/dev/null 2>&1
build/bin/qdm_sampling_bench --artifact "$artifact" --kernels sim --steps "$steps" --batches 1,64 --out "$tmp/sim.md" >/dev/null 2>&1
{
  echo "# W4A8 sampling end to end: FP32 vs integer kernels vs simulation"
  echo
  echo "\`bash bench/w4a8_sampling.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d), $steps DDIM steps, artifact \`$artifact\`."
  echo
  head -n 100 "$tmp/fp32.md" | grep "^|" | head -2
  for f in fp32 int sim; do grep "^|" "$tmp/$f.md" | tail -n +3; done
} > "$out"
cat "$out"
