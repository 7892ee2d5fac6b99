#!/usr/bin/env bash
# The quantization table of the quantization issue: FP and every recipe at W8A8, W4A8 and
# W4A32 on the shipped model, 100 DDIM steps, the same seeds for every row.
#   bash bench/quant_table.sh            (from the repository root, after .ci/setup)
# Environment: NUM (samples per FID, default 1000), ITERS / ACT_ITERS (reconstruction
# iterations per block), CALIB (calibration trajectories), CONFIGS, RECIPES, QDM (binary).
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
iters=${ITERS:-500}
act_iters=${ACT_ITERS:-500}
calib=${CALIB:-32}
configs=${CONFIGS:-"8:8 4:8 4:32"}
recipes=${RECIPES:-"rtn qdiffusion tfmq tfmq+cache"}
out=bench/results/quant
qdm=${QDM:-build/bin/qdm}   # a copy lets the table run while the tree is rebuilt
mkdir -p "$out"
[ -f "$out/fp.json" ] || "$qdm" eval --model models/fmnist-ddpm --num "$num" --steps 100 --seed 0 --json "$out/fp.json" >/dev/null
for cfg in $configs; do
  w=${cfg%%:*}; a=${cfg##*:}
  for r in $recipes; do
    name="${r/+/_}_w${w}a${a}"
    [ -f "$out/$name.eval.json" ] && continue
    # A finished artifact (written atomically, with its wall time) is kept: only its evaluation reruns.
    [ -f "$out/$name.safetensors" ] && [ -s "$out/$name.seconds" ] || \
    /usr/bin/time -f "%e" -o "$out/$name.seconds" "$qdm" quantize --model models/fmnist-ddpm --recipe "$r" \
      --wbits "$w" --abits "$a" --steps 100 --calib-samples "$calib" --iters "$iters" --act-iters "$act_iters" \
      --report-samples 256 --out "$out/$name.safetensors" > "$out/$name.log" 2>&1
    "$qdm" eval --artifact "$out/$name.safetensors" --kernels sim --num "$num" --seed 0 --json "$out/$name.eval.json" >/dev/null
  done
done
python3 bench/quant_table.py "$out" "$num" "$iters" "$act_iters" "$calib" > bench/results/quant_table.md
cat bench/results/quant_table.md
