#!/usr/bin/env bash
# Integer kernels vs LibTorch FP32 at the shipped model's layer shapes, one thread, one run:
# GEMMs (im2col shapes, every CPU path present) and 3x3 convolutions (the lane convolution the
# W4A8 sampler runs). Writes bench/results/qgemm.md.
#   bash bench/qgemm_table.sh      (after .ci/setup; stop other work on the machine first)
set -euo pipefail
cd "$(dirname "$0")/.."
json=$(mktemp); trap 'rm -f "$json"' EXIT
build/bin/qdm_qgemm_bench --benchmark_format=json --benchmark_min_time=0.3 --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true > "$json"
python3 - "$json" > bench/results/qgemm.md <<'PY'
import json, subprocess, sys
runs = [r for r in json.load(open(sys.argv[1]))["benchmarks"] if r.get("aggregate_name") == "median"]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
print("# Integer kernels vs LibTorch FP32 (one thread)\n")
print(f"`bash bench/qgemm_table.sh`; CPU: {cpu}. GOPS = 2 x multiply-adds / time. The int rows include")
print("quantizing the fp32 input and dequantizing the fp32 output (with bias), as a layer pays them.")
print("Medians of 5 repetitions (this VM's speed varies by tens of percent from minute to minute).\n")
fp = {r["label"].split("|")[1]: r for r in runs if r["label"].startswith("fp32")}
print("| kernel | shape | ms | GOPS | speed-up vs FP32 |")
print("|---|---|---:|---:|---:|")
for r in runs:
    kind, s = r["label"].split("|")
    up = f"{fp[s]['real_time'] / r['real_time']:.2f}x"
    print(f"| {kind} | {s} | {r['real_time']:.2f} | {r['GOPS'] / 1e9:.0f} | {up} |")
print()
print("Ceiling for context: per 512-bit instruction, vpdpbusd does 64 int8 multiply-adds and vfmadd231ps")
print("16 fp32 ones, so int8 dot products allow about 4x the FP32 rate at the same issue rate.")
print("LibTorch's addmm runs on Debian's OpenBLAS and its conv2d on oneDNN, which is several times")
print("faster here: the conv2d rows are the comparison that matters for sampling.")
PY
cat bench/results/qgemm.md
