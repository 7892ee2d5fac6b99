#!/usr/bin/env bash
# qdm-sampler against qdm-worker as a sampling node: process start to the first image of a W4A8
# artifact of the shipped model (one image, its calibrated 100-step schedule), with an empty cache
# (the artifact is fetched from the scheduler), RUNS runs each, interleaved; and the installed
# bytes of their images (deploy/image/stage_sizes.py). Writes bench/results/sampler_start.md.
#   bash bench/sampler_start.sh          (after bash .ci/setup; RUNS=5, THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin; runs=${RUNS:-5}; threads=${THREADS:-2}
out=bench/results/sampler_start.md
key=$(sha256sum models/fmnist-ddpm/diffusion_pytorch_model.safetensors | cut -c1-12)
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
artifact=var/bench/rtn_w4a8-$key.safetensors  # shared with bench/peer_speed.sh
mkdir -p var/bench
[ -s "$artifact" ] || QDM_THREADS=$threads "$bin/qdm" quantize --model models/fmnist-ddpm --recipe rtn --wbits 4 --abits 8 \
  --report-samples 0 --out "$artifact" >/dev/null 2>&1
mkdir -p "$work/data/artifacts"; cp "$artifact" "$work/data/artifacts/w4a8.safetensors"
port=$((30000 + RANDOM % 20000))
"$bin/qdm-scheduler" --data "$work/data" --model-root models --listen 127.0.0.1:$port --metrics 127.0.0.1:0 >"$work/scheduler.log" 2>&1 &
for _ in $(seq 100); do QDM_SERVER=127.0.0.1:$port "$bin/qdm" models list --artifacts 2>/dev/null | grep -q "^w4a8 " && break; sleep 0.1; done
results=$work/results.jsonl
for run in $(seq "$runs"); do
  for node in qdm-sampler qdm-worker; do
    QDM_THREADS=$threads "$bin/qdm_node_start" --node "$bin/$node" --scheduler 127.0.0.1:$port --artifact w4a8 \
      --port $((port + 10)) --runs 1 --work "$work/node" --log "$work/$node.log" >> "$results"
  done
done
sizes=$(python3 deploy/image/stage_sizes.py Dockerfile "$bin")
python3 - "$results" "$runs" "$threads" "$sizes" > "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs, threads, sizes = sys.argv[2], sys.argv[3], sys.argv[4]
print("# Sampling nodes: cold start and image size\n")
print(f"`bash bench/sampler_start.sh`: AMD EPYC, {threads} threads. Process start to the first image of a W4A8 "
      "artifact of the shipped model (rtn; one image, its calibrated 100-step DDIM schedule) with an empty cache: "
      "the node starts, registers, fetches the artifact from a running scheduler, loads it and samples "
      f"(bench/node_start.cpp; the client retries its connection every 10 ms rather than after gRPC's 1 s backoff). Medians of {runs} runs each, interleaved.\n")
print("| node | first image (s), median | min | max | of which sampling (s) |")
print("|---|---:|---:|---:|---:|")
for node in ("qdm-sampler", "qdm-worker"):
    t = [r["first_image_s"] for r in rows if r["node"] == node]
    c = [r["compute_s"] for r in rows if r["node"] == node]
    print(f"| {node} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} | {statistics.median(c):.3f} |")
print("\nGoal: <= 1 s for qdm-sampler.\n")
print("Installed bytes of the images' stages (`python3 deploy/image/stage_sizes.py`: Debian 12 packages and "
      "their dependencies beyond debian:12-slim, from this machine's package index, plus the binaries; goal: "
      "sampler <= 0.25x worker):\n")
print(sizes)
PY
cat "$out"
