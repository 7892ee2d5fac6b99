#!/usr/bin/env bash
# A TFMQ-DM W4A8 quantize job with the defaults on the shipped model (`qdm quantize --recipe tfmq`:
# 32 calibration trajectories, 200 AdaRound iterations, a 256-image quality report), once with
# every fp32 trajectory on LibTorch (QDM_EXECUTION_PLAN=0, how jobs ran before the fp32 plan) and
# once on the fp32 plan (the default), back to back in one run, ROUNDS rounds interleaved; the
# stage times come from each artifact's own timings. Writes bench/results/quantize_job_time.md.
#   bash bench/quantize_job_time.sh        (after bash .ci/setup; ROUNDS=1, THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin; rounds=${ROUNDS:-1}; threads=${THREADS:-2}
out=bench/results/quantize_job_time.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
: > "$work/runs.tsv"
for round in $(seq "$rounds"); do
  for variant in libtorch plan; do
    env=(QDM_THREADS=$threads)
    [ "$variant" = libtorch ] && env+=(QDM_EXECUTION_PLAN=0)
    start=$(date +%s.%N)
    env "${env[@]}" "$bin/qdm" quantize --model models/fmnist-ddpm --recipe tfmq --wbits 4 --abits 8 \
      --out "$work/$variant-$round.safetensors" > "$work/$variant-$round.log" 2>&1
    end=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\n' "$variant" "$round" "$(echo "$end - $start" | bc)" "$work/$variant-$round.safetensors" >> "$work/runs.tsv"
    echo "$variant round $round: $(echo "$end - $start" | bc) s" >&2
  done
done
python3 - "$work/runs.tsv" "$threads" > "$out" <<'PY'
import json, statistics, struct, sys
def timings(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["qdm"])["timings"]
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
runs = {}
for variant, _, wall, path in rows:
    runs.setdefault(variant, []).append((float(wall), timings(path)))
print("# TFMQ-DM W4A8 quantize job: fp32 trajectories on LibTorch vs the fp32 plan\n")
print(f"`bash bench/quantize_job_time.sh`: AMD EPYC, {sys.argv[2]} threads. `qdm quantize --model models/fmnist-ddpm "
      "--recipe tfmq --wbits 4 --abits 8` with every other option at its default (32 calibration trajectories of "
      "100 DDIM steps, TIAR and 200 AdaRound iterations per block, the quality report on 256 images), once with "
      "QDM_EXECUTION_PLAN=0 (every fp32 trajectory on LibTorch, as jobs ran before) and once as shipped (fp32 "
      f"trajectories on the fp32 plan), back to back; {len(rows) // 2} round(s), medians. Stage seconds from each "
      "artifact's timings.\n")
stages = sorted({k for v in runs.values() for _, t in v for k in t if k not in ("total",)})
print("| fp32 trajectories | process wall s | " + " | ".join(stages) + " |")
print("|---|---:|" + "---:|" * len(stages))
med = {}
for variant in ("libtorch", "plan"):
    v = runs[variant]
    med[variant] = statistics.median(w for w, _ in v)
    cells = [f"{statistics.median(t.get(s, 0.0) for _, t in v):.1f}" for s in stages]
    name = "LibTorch (QDM_EXECUTION_PLAN=0)" if variant == "libtorch" else "fp32 plan (default)"
    print(f"| {name} | {med[variant]:.1f} | " + " | ".join(cells) + " |")
print(f"\nplan / LibTorch wall time: {med['plan'] / med['libtorch']:.2f}x (goal <= 0.6x).")
PY
cat "$out"
