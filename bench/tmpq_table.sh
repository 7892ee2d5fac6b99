#!/usr/bin/env bash
# The TMPQ-DM table of the TMPQ issue: on one model, the same seeds for every row, FID-FMNIST
# on NUM samples of
#   FP32 DDIM-100 and uniform (leading-spaced) DDIM and DPM-Solver++(2M) at N = 5, 10, 20,
#   TFMQ-DM W4A8 calibrated for those N, with each sampler of SAMPLERS,
#   TMPQ-DM searched at those N (default search), with each sampler of SAMPLERS (the search's
#   images and the artifact's sampler), under the BitOPs cap (the all-6-bit model's)
#   and under a measured-time cap instead (1.2x TFMQ W4A8's measured ms per image at batch 1 at
#   the same N, no BitOPs cap: on qdm's kernels time hardly depends on the bit widths), the
#   latter with the paper's timestep groups and with even ones (--group-power 1),
# with BitOPs per image, measured ms per image at batch 1 and 64 (integer kernels: the execution
# plan; FP32: LibTorch), resident weight bytes and search wall time.
#   bash bench/tmpq_table.sh              (from the repository root, after .ci/setup)
# Environment: MODEL (default models/fmnist-ddpm), NUM (1000), STEPS ("5 10 20"), SAMPLERS
# ("ddim dpmpp2m": the quantized rows' samplers; FP32 rows are evaluated with both), ITERS (TFMQ
# AdaRound iterations per block, 200 as in bench/results/quant_table.md), SEARCH (extra qdm
# quantize flags for every search, e.g. "--generations 10"), QDM (binary), PAUSE_PID (a
# background job, e.g. training, stopped while speed is measured and resumed after), GUIDANCE
# (class-conditional model: each row evaluated again with an even spread of class labels at this
# guidance, default 3 as bench/quant_table.sh, for the class accuracy; 0 skips it), GUIDED (the rows
# that get it, default all).
# Every row is kept in bench/results/tmpq/<model>/ as it finishes (what the table reads of an
# artifact, `qdm inspect --json`, is kept beside it by bench/tmpq_table.py as NAME.inspect.json:
# artifacts are not committed, and a row with one is not quantized again): a rerun skips finished rows,
# and a search killed mid-way resumes from its last generation.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/fmnist-ddpm}
num=${NUM:-1000}
steps=${STEPS:-"5 10 20"}
samplers=${SAMPLERS:-"ddim dpmpp2m"}
iters=${ITERS:-200}
read -r -a search <<< "${SEARCH:-}"
qdm=${QDM:-build/bin/qdm}
bench=${BENCH:-build/bin/qdm_sampling_bench}
out=${OUT:-bench/results/tmpq/$(basename "$model")}
mkdir -p "$out/state" "$out/cache"
classifier=models/fmnist-classifier
guidance=${GUIDANCE:-3}
grep -q '"num_class_embeds": *[1-9]' "$model/config.json" || guidance=0

pause() { [ -n "${PAUSE_PID:-}" ] && kill -STOP "$PAUSE_PID" 2>/dev/null || true; }
resume() { [ -n "${PAUSE_PID:-}" ] && kill -CONT "$PAUSE_PID" 2>/dev/null || true; }
trap resume EXIT

# speed NAME STEPS ARGS...: ms per image at batch 1 (three runs) and 64 (one process, warm), into NAME.speed.md
speed() {
  local name=$1 n=$2; shift 2
  [ -s "$out/$name.speed.md" ] && return
  pause
  "$bench" "$@" --steps "$n" --batches 1,1,1,64 --out "$out/$name.speed.md.tmp" >/dev/null 2>&1 || { resume; return 1; }
  resume
  mv "$out/$name.speed.md.tmp" "$out/$name.speed.md"
}
# ms per image at batch 1 from a speed file, the median of its runs (the time-capped search's cap)
ms_b1() { awk -F'|' '$3+0 == 1 { print 1000 * $7 }' "$out/$1.speed.md" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] }'; }
evaluate() {  # NAME ARGS...: unguided, then guided where asked (rows whose artifact is kept)
  local name=$1; shift
  [ -s "$out/$name.eval.json" ] || "$qdm" eval "$@" --num "$num" --seed 0 --classifier "$classifier" --json "$out/$name.eval.json" >"$out/$name.eval.log" 2>&1
  if [ "$guidance" != 0 ] && [ ! -s "$out/$name.guided.json" ] && [[ " ${GUIDED:-$name} " == *" $name "* ]] &&
     { [[ "$name" == fp_* ]] || [ -s "$out/$name.safetensors" ]; }; then
    "$qdm" eval "$@" --num "$num" --seed 0 --classifier "$classifier" --class-label all --guidance "$guidance" \
      --json "$out/$name.guided.json" >"$out/$name.guided.log" 2>&1
  fi
}

# The kernels' latency table (measured once per machine and model, cached for every search):
# measured first by a one-generation search, on a quiet machine.
if [ -z "$(ls "$out/cache/latency" 2>/dev/null)" ]; then
  pause
  "$qdm" quantize --model "$model" --recipe tmpq --steps 5 --base-steps 20 --calib-samples 2 --generations 1 --population 2 \
    --top 1 --mutations 0 --crossovers 0 --final-images 0 --report-samples 0 --cache-dir "$out/cache" --out "$out/latency_probe.safetensors" \
    >"$out/latency_probe.log" 2>&1
  resume
  rm -f "$out/latency_probe.safetensors"*
fi
# FP32 DDIM-100 on these seeds may exist already (bench/quant_table.sh's): reused when it is of
# the same weights and sample count.
# Its guided evaluation likewise (bench/quant_table.sh's fp.guided.json) when at the same guidance.
python3 - "$model" "$num" "$out" "$guidance" <<'PY' || true
import hashlib, json, os, shutil, sys
model, num, out, guidance = sys.argv[1:5]
sha = None  # the model's, hashed only when a copy is wanted
for src, dst in (("fp.json", "fp_ddim100.eval.json"), ("fp.guided.json", "fp_ddim100.guided.json")):
    src, dst = f"bench/results/quant/{src}", f"{out}/{dst}"
    if os.path.exists(dst) or not os.path.exists(src):
        continue
    j = json.load(open(src))
    sha = sha or hashlib.sha256(open(f"{model}/diffusion_pytorch_model.safetensors", "rb").read()).hexdigest()
    if (j.get("sha256") == sha and j.get("num_images") == int(num) and j.get("steps") == 100 and j.get("seed") == 0
            and float(j.get("guidance", guidance)) == float(guidance)):
        shutil.copy(src, dst)
PY
evaluate fp_ddim100 --model "$model" --steps 100
speed fp_ddim100 100 --model "$model"
for n in $steps; do
  evaluate "fp_ddim$n" --model "$model" --steps "$n"
  speed "fp_ddim$n" "$n" --model "$model"
  # DPM-Solver++(2M) on the same grid: the same UNet calls, so DDIM's speed row stands for it.
  evaluate "fp_dpm$n" --model "$model" --steps "$n" --sampler dpmpp2m

  for sampler in $samplers; do
    # DDIM rows keep their names; other samplers' rows carry the sampler (tfmq_w4a8_dpm_n10, ...).
    sfx=$([ "$sampler" = ddim ] && echo "" || echo "_${sampler%%pp2m}")
    a="$out/tfmq_w4a8${sfx}_n$n.safetensors"
    [ -s "$a" ] || [ -s "$out/tfmq_w4a8${sfx}_n$n.inspect.json" ] || "$qdm" quantize --model "$model" --recipe tfmq --wbits 4 \
      --abits 8 --steps "$n" --sampler "$sampler" --iters "$iters" --report-samples 0 --out "$a" >"$out/tfmq_w4a8${sfx}_n$n.log" 2>&1
    evaluate "tfmq_w4a8${sfx}_n$n" --artifact "$a"
    speed "tfmq_w4a8${sfx}_n$n" "$n" --artifact "$a" --kernels int

    # ms_even: the time cap with even timestep groups (--group-power 1) instead of the paper's
    for cap in bitops ms ms_even; do
      name="tmpq_${cap}${sfx}_n$n"
      a="$out/$name.safetensors"
      budget=()
      [ "$cap" != bitops ] && budget=(--ms-cap "$(ms_b1 "tfmq_w4a8${sfx}_n$n" | awk '{ printf "%.3f", 1.2 * $1 }')" --bitops-cap 100)
      [ "$cap" = ms_even ] && budget+=(--group-power 1)
      if [ ! -s "$a" ] && [ ! -s "$out/$name.inspect.json" ] && ! "$qdm" quantize --model "$model" --recipe tmpq --steps "$n" --sampler "$sampler" "${budget[@]}" "${search[@]}" \
          --classifier "$classifier" --report-samples 0 --cache-dir "$out/cache" --search-state "$out/state/$name" --out "$a" \
          >"$out/$name.log" 2>&1; then
        echo "$name: the search failed ($(tail -1 "$out/$name.log" | cut -c1-200))" >&2
        continue
      fi
      evaluate "$name" --artifact "$a"
      speed "$name" "$n" --artifact "$a" --kernels int
    done
  done
done
python3 bench/tmpq_table.py "$out" "$model" "$num" "$steps" "$iters" "${SEARCH:-}" > "${TABLE:-bench/results/tmpq_table.md}"
cat "${TABLE:-bench/results/tmpq_table.md}"
