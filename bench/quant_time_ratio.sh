#!/usr/bin/env bash
# Quantization wall time of tfmq vs qdiffusion at equal iteration settings (AdaRound and LSQ
# iterations per block both ITERS), W4A8, one thread each, run back to back REPS times.
# Writes bench/results/quant_time_ratio.md.
#   ITERS=100 REPS=2 bash bench/quant_time_ratio.sh      (after .ci/setup)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${ITERS:-100}
reps=${REPS:-2}
qdm=${QDM:-build/bin/qdm}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for i in $(seq "$reps"); do
  for r in tfmq qdiffusion; do
    QDM_THREADS=1 "$qdm" quantize --model models/fmnist-ddpm --recipe "$r" --wbits 4 --abits 8 --steps 100 \
      --calib-samples 32 --iters "$iters" --act-iters "$iters" --report-samples 0 --out "$tmp/$r.$i.safetensors" >/dev/null 2>&1
  done
done
python3 - "$tmp" "$iters" "$reps" > bench/results/quant_time_ratio.md <<'PY'
import json, struct, sys
tmp, iters, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def timings(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["qdm"])["timings"]
print("# Quantization time: tfmq vs qdiffusion at equal iteration settings\n")
print(f"`ITERS={iters} REPS={reps} bash bench/quant_time_ratio.sh`: W4A8, {iters} AdaRound and {iters} LSQ iterations")
print("per block (LSQ is qdiffusion's; tfmq keeps its FSC tables), 32 calibration trajectories, one")
print("thread, runs back to back. Seconds from the artifacts' timings.\n")
stages = ["calibration_data", "weight_ranges", "activation_ranges", "tiar", "block_reconstruction", "total"]
print("| run | recipe | " + " | ".join(stages) + " |")
print("|---|---|" + "---:|" * len(stages))
totals = {"tfmq": [], "qdiffusion": []}
for i in range(1, reps + 1):
    for r in ["tfmq", "qdiffusion"]:
        t = timings(f"{tmp}/{r}.{i}.safetensors")
        totals[r].append(t["total"])
        print(f"| {i} | {r} | " + " | ".join(f"{t.get(s, 0):.1f}" for s in stages) + " |")
ratio = sorted(a / b for a, b in zip(totals["tfmq"], totals["qdiffusion"]))
print(f"\ntfmq / qdiffusion total time per run: {', '.join(f'{x:.2f}' for x in ratio)} (goal <= 0.6).")
PY
cat bench/results/quant_time_ratio.md
