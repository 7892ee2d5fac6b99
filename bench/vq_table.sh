#!/usr/bin/env bash
# The VQDM table (issue 16): recipes vq+cache (and vq) at M = 2, 3, 4 codebooks of 2^8 without its fine-tuning and
# M = 2 with it (the recipe's default; VARIANTS "name:M:B:finetune-iters", -1 the default, adds
# others, e.g. vq_m4b6:4:6:0, codebooks of 2^6 at a quarter of the overhead) against scalar tfmq+cache at W4A8 /
# W3A8 (the same temporal handling: cached temporal features, per-step activation tables; FINETUNED
# "name:base" rows: `qdm finetune` with vq's default steps on a row's artifact) on the
# shipped model, 100 DDIM steps, FID-FMNIST on the same seeds; bits per weight with every byte counted; ms per
# UNet call at batch 1 and 64 for the vq kernels (int), decode-then-FP32 (sim) and FP32.
#   bash bench/vq_table.sh            (from the repository root, after .ci/setup)
# Environment: NUM (samples per FID, default 1000), CALIB (calibration trajectories), VARIANTS
# ("name:M:B ..."), SCALARS ("name:bits ..."), QDM / BENCH (binaries), PAUSE_PID (a background
# job, e.g. training, stopped while speed is measured and resumed after), GUIDANCE (class-conditional
# model: each row evaluated again with an even spread of class labels at this guidance, default 3 as
# bench/quant_table.sh, for the class accuracy; 0 skips it), GUIDED (the rows that get it, default all).
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
calib=${CALIB:-32}
# A variant's recipe (fifth field) is vq+cache unless named: these rows (sessions 16-17) cached
# the temporal features, what recipe vq did then (today's vq quantizes the temporal block:
# bench/vq_resident.sh compares the two).
variants=${VARIANTS:-"vq_m2b8:2:8:0 vq_m3b8:3:8:0 vq_m4b8:4:8:0 vq_m2b8_ft:2:8:-1"}
scalars=${SCALARS:-"tfmq_cache_w4a8:4 tfmq_cache_w3a8:3"}
finetuned=${FINETUNED:-"tfmq_cache_w4a8_ft:tfmq_cache_w4a8"}
ft_iters=600  # recipe vq's default (format/recipes.cpp)
qdm=${QDM:-build/bin/qdm}
bench=${BENCH:-build/bin/qdm_forward_bench}
model=models/fmnist-ddpm
guidance=${GUIDANCE:-3}
grep -q '"num_class_embeds": *[1-9]' "$model/config.json" || guidance=0
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
evaluate() {  # NAME KERNELS: unguided, then guided where asked
  [ -s "$out/$1.eval.json" ] || "$qdm" eval --artifact "$out/$1.safetensors" --kernels "$2" --num "$num" --seed 0 \
    --json "$out/$1.eval.json" > /dev/null 2>&1
  [ "$guidance" = 0 ] || [ -s "$out/$1.guided.json" ] || [[ " ${GUIDED:-$1} " != *" $1 "* ]] || \
    "$qdm" eval --artifact "$out/$1.safetensors" --kernels "$2" --num "$num" --seed 0 --class-label all \
      --guidance "$guidance" --json "$out/$1.guided.json" > /dev/null 2>&1
}

for v in $variants; do
  IFS=: read -r name m b ft recipe <<< "$v"
  quantize "$name" --recipe "${recipe:-vq+cache}" --codebooks "$m" --codebook-bits "$b" --iters 200 --finetune-iters "${ft:--1}"
  evaluate "$name" int
done
for s in $scalars; do
  IFS=: read -r name w <<< "$s"
  quantize "$name" --recipe tfmq+cache --wbits "$w" --iters 200  # as bench/quant_table.sh
  evaluate "$name" int
done
for f in $finetuned; do  # seconds: the base row's quantization plus the fine-tuning
  IFS=: read -r name base <<< "$f"
  if ! { [ -f "$out/$name.safetensors" ] && [ -s "$out/$name.seconds" ]; }; then
    /usr/bin/time -f "%e" -o "$out/$name.ft_seconds" "$qdm" finetune --model "$model" --artifact "$out/$base.safetensors" \
      --out "$out/$name.safetensors" --finetune-iters "$ft_iters" > "$out/$name.log" 2>&1
    python3 -c "import sys; print(float(open(sys.argv[1]).read()) + float(open(sys.argv[2]).read()))" \
      "$out/$base.seconds" "$out/$name.ft_seconds" > "$out/$name.seconds"
  fi
  evaluate "$name" int
done
# Speed last, every variant back to back (PAUSE_PID stopped meanwhile).
speed fp32 --model "$model"
for v in $variants; do
  name=${v%%:*}
  speed "$name" --artifact "$out/$name.safetensors" --kernels int
  speed "$name.sim" --artifact "$out/$name.safetensors" --kernels sim
done
for s in $scalars $finetuned; do
  name=${s%%:*}
  speed "$name" --artifact "$out/$name.safetensors" --kernels int
done
python3 bench/vq_table.py "$out" "$num" "$variants" "$scalars" "$finetuned" > bench/results/vq_table.md
cat bench/results/vq_table.md
