#!/usr/bin/env bash
# The quantization table of the quantization issue: FP and every recipe at W8A8, W4A8 and
# W4A32 on the shipped model, 100 DDIM steps, the same seeds for every row.
#   bash bench/quant_table.sh            (from the repository root, after .ci/setup)
# Environment: NUM (samples per FID, default 1000), ITERS / ACT_ITERS (reconstruction
# iterations per block, default 200 as in the committed table), CALIB (calibration trajectories), CONFIGS, RECIPES, QDM (binary),
# KERNELS (int or sim for the FID evaluations; W4A32 has no integer path and always uses sim),
# GUIDANCE (class-conditional model: every row is evaluated a second time with an even spread
# of class labels at this guidance, default 3, for the class accuracy; 0 skips it).
# FINETUNED ("recipe:w:a ...", default "tfmq+cache:4:8 tfmq:4:8"): those rows again after `qdm finetune`
# (FT_ARGS, default vq's 600 steps with 12 held-out evaluations, as bench/vq_table.sh's row), named
# <row>_ft; their quantize time is the row's plus the fine-tuning.
# Recipe "tfmq-qskip" is tfmq with the 1x1 shortcuts and downsample convs quantized too
# (only conv_in, conv_out and time_embedding.linear_1 kept in fp32).
set -euo pipefail
cd "$(dirname "$0")/.."
num=${NUM:-1000}
iters=${ITERS:-200}
act_iters=${ACT_ITERS:-200}
calib=${CALIB:-32}
configs=${CONFIGS:-"8:8 4:8 4:32"}
recipes=${RECIPES:-"rtn qdiffusion tfmq tfmq+cache"}
kernels=${KERNELS:-int}
guidance=${GUIDANCE:-3}
grep -q '"num_class_embeds": *[1-9]' models/fmnist-ddpm/config.json || guidance=0
guided=(--class-label all --guidance "$guidance")
out=bench/results/quant
qdm=${QDM:-build/bin/qdm}   # a copy lets the table run while the tree is rebuilt
mkdir -p "$out"
[ -f "$out/fp.json" ] || "$qdm" eval --model models/fmnist-ddpm --num "$num" --steps 100 --seed 0 --json "$out/fp.json" >/dev/null
# FP32 again on the next seeds: how far FID moves between independent sample sets.
[ -f "$out/fp_seed$num.json" ] || "$qdm" eval --model models/fmnist-ddpm --num "$num" --steps 100 --seed "$num" \
  --json "$out/fp_seed$num.json" >/dev/null
[ "$guidance" = 0 ] || [ -f "$out/fp.guided.json" ] || "$qdm" eval --model models/fmnist-ddpm --num "$num" --steps 100 \
  --seed 0 "${guided[@]}" --json "$out/fp.guided.json" >/dev/null
for cfg in $configs; do
  w=${cfg%%:*}; a=${cfg##*:}
  for r in $recipes; do
    name="${r/+/_}_w${w}a${a}"; name=${name/-/_}
    recipe=$r; extra=()
    [ "$r" = tfmq-qskip ] && recipe=tfmq && extra=(--keep-fp conv_in conv_out time_embedding.linear_1)
    k=$kernels; [ "$a" = 32 ] && k=sim
    if [ ! -f "$out/$name.eval.json" ]; then
      # A finished artifact (written atomically, with its wall time) is kept: only its evaluation reruns.
      [ -f "$out/$name.safetensors" ] && [ -s "$out/$name.seconds" ] || \
      /usr/bin/time -f "%e" -o "$out/$name.seconds" "$qdm" quantize --model models/fmnist-ddpm --recipe "$recipe" "${extra[@]}" \
        --wbits "$w" --abits "$a" --steps 100 --calib-samples "$calib" --iters "$iters" --act-iters "$act_iters" \
        --report-samples 256 --out "$out/$name.safetensors" > "$out/$name.log" 2>&1
      "$qdm" eval --artifact "$out/$name.safetensors" --kernels "$k" --num "$num" --seed 0 --json "$out/$name.eval.json" >/dev/null
    fi
    [ "$guidance" = 0 ] || [ -f "$out/$name.guided.json" ] || "$qdm" eval --artifact "$out/$name.safetensors" \
      --kernels "$k" --num "$num" --seed 0 "${guided[@]}" --json "$out/$name.guided.json" >/dev/null
  done
done
read -r -a ft_args <<< "${FT_ARGS:---finetune-iters 600 --finetune-evals 12}"
for f in ${FINETUNED-"tfmq+cache:4:8 tfmq:4:8"}; do
  IFS=: read -r r w a <<< "$f"
  base="${r/+/_}_w${w}a${a}"; base=${base/-/_}; name="${base}_ft"
  [ -f "$out/$base.safetensors" ] || { echo "no $base row yet: $name skipped" >&2; continue; }
  k=$kernels; [ "$a" = 32 ] && k=sim
  if [ ! -f "$out/$name.eval.json" ]; then
    [ -f "$out/$name.safetensors" ] && [ -s "$out/$name.seconds" ] || \
    /usr/bin/time -f "%e" -o "$out/$name.seconds" "$qdm" finetune --model models/fmnist-ddpm --artifact "$out/$base.safetensors" \
      --out "$out/$name.safetensors" "${ft_args[@]}" > "$out/$name.log" 2>&1
    "$qdm" eval --artifact "$out/$name.safetensors" --kernels "$k" --num "$num" --seed 0 --json "$out/$name.eval.json" >/dev/null
  fi
  [ "$guidance" = 0 ] || [ -f "$out/$name.guided.json" ] || "$qdm" eval --artifact "$out/$name.safetensors" \
    --kernels "$k" --num "$num" --seed 0 "${guided[@]}" --json "$out/$name.guided.json" >/dev/null
done
python3 bench/quant_table.py "$out" "$num" "$iters" "$act_iters" "$calib" > bench/results/quant_table.md
cat bench/results/quant_table.md
