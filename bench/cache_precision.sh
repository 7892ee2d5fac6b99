#!/usr/bin/env bash
# What storing the temporal feature cache at F16 instead of F32 costs in images: one artifact
# with a cache (default the quant table's tfmq+cache W4A8) rewritten with its cache at F16 and at
# F32 (bench/cache_dtype.py, every other byte the same), the same seeds sampled from both on the
# integer kernels and from FP32, pixel differences (bench/png_diff.py) and the file sizes.
#   bash bench/cache_precision.sh      -> bench/results/cache_precision.md
# Environment: ARTIFACT, NUM (images, default 64), QDM (binary).
set -euo pipefail
cd "$(dirname "$0")/.."
artifact=${ARTIFACT:-bench/results/quant/tfmq_cache_w4a8.safetensors}
num=${NUM:-64}
qdm=${QDM:-build/bin/qdm}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for d in F16 F32; do
  python3 bench/cache_dtype.py "$artifact" "$tmp/$d.safetensors" "$d"
  "$qdm" sample --artifact "$tmp/$d.safetensors" --kernels int --num "$num" --seed 0 --steps 100 --out "$tmp/$d" >/dev/null
done
"$qdm" sample --model models/fmnist-ddpm --num "$num" --seed 0 --steps 100 --out "$tmp/fp" >/dev/null
{
  echo "# Temporal feature cache at F16 vs F32"
  echo
  echo "\`bash bench/cache_precision.sh\`, $(date -u +%F): \`$artifact\` with its cache rewritten at F16 and at F32"
  echo "(bench/cache_dtype.py), $num images (seeds 0..$((num - 1)), 100 DDIM steps, unconditional) on the integer kernels;"
  echo "MSE and PSNR over every pixel in [0, 1]."
  echo
  echo "| compared | file bytes | max abs diff /255 | mean abs diff /255 | MSE | PSNR dB |"
  echo "|---|---:|---:|---:|---:|---:|"
  row() {  # label, bytes, dir a, dir b
    python3 - "$1" "$2" "$(python3 bench/png_diff.py "$3" "$4")" <<'PY'
import json, sys
label, size, d = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"| {label} | {size} | {d['max_abs_diff_255']} | {d['mean_abs_diff_255']:.3f} | {d['mse']:.2e} | {d['psnr_db']:.1f} |")
PY
  }
  row "F16 cache vs F32 cache" "$(stat -c %s "$tmp/F16.safetensors") vs $(stat -c %s "$tmp/F32.safetensors")" "$tmp/F16" "$tmp/F32"
  row "F16 cache vs FP32 model" "$(stat -c %s "$tmp/F16.safetensors")" "$tmp/F16" "$tmp/fp"
  row "F32 cache vs FP32 model" "$(stat -c %s "$tmp/F32.safetensors")" "$tmp/F32" "$tmp/fp"
} > bench/results/cache_precision.md
cat bench/results/cache_precision.md
