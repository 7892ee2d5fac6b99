#!/usr/bin/env bash
# The VQDM table (issue 16): recipe vq at M = 2, 3, 4 codebooks of 2^8 (VARIANTS adds others, e.g.
# vq_m4b6:4:6, codebooks of 2^6 at a quarter of the overhead) against scalar tfmq+cache at W4A8 /
# W3A8 (the same temporal handling: cached temporal features, per-step activation tables) on the
# shipped model, 100 DDIM steps, FID-FMNIST on the same seeds; bits per weight with every byte counted; ms per
# UNet call at batch 1 and 64 for the vq kernels (int), decode-then-FP32 (sim) and FP32.
#   bash bench/vq_table.sh            (from the repository root, after .ci/setup)
# Environment: NUM (samples per FID, default 1000), CALIB (calibration trajectories), VARIANTS
# ("name:M:B ..."), SCALARS ("name:bits ..."), QDM / BENCH (binaries), PAUSE_PID (a background
# job, e.g. training, stopped while speed is measured and resumed after).
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
calib=${CALIB:-32}
variants=${VARIANTS:-"vq_m2b8:2:8 vq_m3b8:3:8 vq_m4b8:4:8"}
scalars=${SCALARS:-"tfmq_cache_w4a8:4 tfmq_cache_w3a8:3"}
qdm=${QDM:-build/bin/qdm}
bench=${BENCH:-build/bin/qdm_forward_bench}
model=models/fmnist-ddpm
out=bench/results/vq
mkdir -p "$out"

pause() { [ -n "${PAUSE_PID:-}" ] && kill -STOP "$PAUSE_PID" 2>/dev/null || true; }
resume() { [ -n "${PAUSE_PID:-}" ] && kill -CONT "$PAUSE_PID" 2>/dev/null || true; }
trap resume EXIT

# speed NAME ARGS...: one UNet call at batch 1 and 64 (t = the schedule's, medians), into NAME.speed.json
speed() {
  local name=$1; shift
  [ -s "$out/$name.speed.json" ] && return
  pause
  { "$bench" "$@" --batch 1 --reps 40 --t 990 && "$bench" "$@" --batch 64 --reps 5 --t 990; } > "$out/$name.speed.json.tmp" || { resume; return 1; }
  resume
  mv "$out/$name.speed.json.tmp" "$out/$name.speed.json"
}
quantize() {  # NAME ARGS...
  local name=$1; shift
  [ -f "$out/$name.safetensors" ] && [ -s "$out/$name.seconds" ] && return
  /usr/bin/time -f "%e" -o "$out/$name.seconds" "$qdm" quantize --model "$model" --steps 100 --calib-samples "$calib" \
    --report-samples 256 --out "$out/$name.safetensors" "$@" > "$out/$name.log" 2>&1
}
evaluate() {  # NAME KERNELS
  [ -s "$out/$1.eval.json" ] || "$qdm" eval --artifact "$out/$1.safetensors" --kernels "$2" --num "$num" --seed 0 \
    --json "$out/$1.eval.json" > /dev/null 2>&1
}

for v in $variants; do
  IFS=: read -r name m b <<< "$v"
  quantize "$name" --recipe vq --codebooks "$m" --codebook-bits "$b" --iters 200
  evaluate "$name" int
done
for s in $scalars; do
  IFS=: read -r name w <<< "$s"
  quantize "$name" --recipe tfmq+cache --wbits "$w" --iters 200  # as bench/quant_table.sh
  evaluate "$name" int
done
# Speed last, every variant back to back (PAUSE_PID stopped meanwhile).
speed fp32 --model "$model"
for v in $variants; do
  name=${v%%:*}
  speed "$name" --artifact "$out/$name.safetensors" --kernels int
  speed "$name.sim" --artifact "$out/$name.safetensors" --kernels sim
done
for s in $scalars; do
  name=${s%%:*}
  speed "$name" --artifact "$out/$name.safetensors" --kernels int
done
python3 bench/vq_table.py "$out" "$num" "$variants" "$scalars" > bench/results/vq_table.md
cat bench/results/vq_table.md
