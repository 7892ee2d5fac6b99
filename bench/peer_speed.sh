#!/usr/bin/env bash
# qdm against the fastest FP32 CPU runtime a user could pick instead: ONNX Runtime (npm
# onnxruntime-node, its bundled CPU library, threads spinning on and off) running the shipped
# model exported by Debian's python3-torch, next to qdm's execution plan in FP32, W8A8 and W4A8
# and qdm FP32 on LibTorch (QDM_EXECUTION_PLAN=0, the training path); one UNet forward at
# t = 500, batch 1, 4, 16, 64, interleaved: every round runs every variant once per batch size,
# and the table reports medians over rounds.
# Then end to end through the service: one Sample of 1 image x 20 steps, p50 / p99 at 1 and 16
# clients, fp32 model vs W4A8 artifact. ONNX Runtime and the export belong to this benchmark only.
#
#   bash bench/peer_speed.sh            (after bash .ci/setup)
# Environment: ROUNDS (5), THREADS (2), BATCHES ("1 4 16 64"), RECIPE (rtn; the recipe does not
# change the kernels), SERVICE (1: run the service part), PAUSE_PID (a process to SIGSTOP while
# measuring, e.g. a training run sharing the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin; rounds=${ROUNDS:-5}; threads=${THREADS:-2}; batches=${BATCHES:-"1 4 16 64"}; recipe=${RECIPE:-rtn}
peer=var/peer; mkdir -p "$peer" var/bench
out=bench/results/peer_speed.md
# The export and the artifacts are cached per model weights (a retrained model gets fresh ones).
key=$(sha256sum models/fmnist-ddpm/diffusion_pytorch_model.safetensors | cut -c1-12)
onnx=$peer/fmnist-ddpm-$key.onnx
artifact() { echo "var/bench/${recipe}_$1-$key.safetensors"; }
if [ -n "${PAUSE_PID:-}" ]; then kill -STOP "$PAUSE_PID"; trap 'kill -CONT "$PAUSE_PID" 2>/dev/null || true' EXIT; fi

# The peer: onnxruntime-node (its install script fetches GPU builds from the network: skipped),
# and the model as ONNX from Debian's python3-torch.
if [ ! -d "$peer/node_modules/onnxruntime-node" ]; then
  (cd "$peer" && npm init -y >/dev/null && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null)
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
[ -s "$onnx" ] || /usr/bin/python3 bench/peer/export_onnx.py models/fmnist-ddpm "$onnx" --check "$bin/qdm" 2>&1 | grep "export:"
for wa in w8a8 w4a8; do
  a=$(artifact $wa)
  [ -s "$a" ] || QDM_THREADS=$threads "$bin/qdm" quantize --model models/fmnist-ddpm --recipe "$recipe" --wbits "${wa:1:1}" \
    --abits 8 --report-samples 0 --out "$a" >/dev/null 2>&1
done

results=$(mktemp)
run_variant() {  # VARIANT BATCH REPS
  case $1 in
    ort-spin) NODE_PATH=$peer/node_modules node bench/peer/ort_bench.js "$onnx" "$2" "$3" "$threads" 1 ;;
    ort-nospin) NODE_PATH=$peer/node_modules node bench/peer/ort_bench.js "$onnx" "$2" "$3" "$threads" 0 ;;
    qdm-fp32) QDM_THREADS=$threads "$bin/qdm_forward_bench" --model models/fmnist-ddpm --batch "$2" --reps "$3" ;;
    qdm-fp32-gemm) QDM_FP32_CONV=gemm QDM_THREADS=$threads "$bin/qdm_forward_bench" --model models/fmnist-ddpm --batch "$2" --reps "$3" ;;
    qdm-fp32-libtorch) QDM_EXECUTION_PLAN=0 QDM_THREADS=$threads "$bin/qdm_forward_bench" --model models/fmnist-ddpm --batch "$2" --reps "$3" ;;
    qdm-w8a8) QDM_THREADS=$threads "$bin/qdm_forward_bench" --artifact "$(artifact w8a8)" --batch "$2" --reps "$3" ;;
    qdm-w4a8) QDM_THREADS=$threads "$bin/qdm_forward_bench" --artifact "$(artifact w4a8)" --batch "$2" --reps "$3" ;;
  esac
}
variants="ort-spin ort-nospin qdm-fp32 qdm-fp32-gemm qdm-fp32-libtorch qdm-w8a8 qdm-w4a8"
for round in $(seq "$rounds"); do
  for b in $batches; do
    reps=$(( b >= 64 ? 5 : b >= 16 ? 10 : 30 ))
    for v in $variants; do echo "$v $b $(run_variant "$v" "$b" "$reps")" >> "$results"; done
  done
  echo "round $round of $rounds done" >&2
done
# The FP32 and W4A8 kernel breakdowns at batch 1 and 64.
profile=$(for src in "--model models/fmnist-ddpm" "--artifact $(artifact w4a8)"; do for b in 1 64; do
  QDM_THREADS=$threads "$bin/qdm_forward_bench" $src --batch $b --reps $(( b == 1 ? 50 : 5 )) --profile; done; done)

service=""
if [ "${SERVICE:-1}" = 1 ]; then
  work=$(mktemp -d); pids=()
  trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; [ -n "${PAUSE_PID:-}" ] && kill -CONT "$PAUSE_PID" 2>/dev/null || true' EXIT
  mkdir -p "$work/data/artifacts"
  cp "$(artifact w4a8)" "$work/data/artifacts/fmnist-w4a8.safetensors"
  port=$((30000 + RANDOM % 20000))
  "$bin/qdm-scheduler" --data "$work/data" --model-root models --listen 127.0.0.1:$port --metrics 127.0.0.1:$((port + 1)) >"$work/s.log" 2>&1 &
  pids+=($!); disown
  QDM_THREADS=$threads "$bin/qdm-worker" --scheduler 127.0.0.1:$port --listen 127.0.0.1:$((port + 2)) --advertise 127.0.0.1:$((port + 2)) \
    --metrics 127.0.0.1:$((port + 3)) --cache-dir "$work/w" --job-slots 0 --max-batch 16 --max-queue-delay-ms 10 >"$work/w.log" 2>&1 &
  pids+=($!); disown
  for _ in $(seq 100); do "$bin/qdm" health --server 127.0.0.1:$((port + 2)) >/dev/null 2>&1 && break; sleep 0.2; done
  for src in "--model fmnist-ddpm" "--artifact fmnist-w4a8"; do
    "$bin/qdm" generate --server 127.0.0.1:$port $src --num 1 --steps 2 --out "$work/warm" >/dev/null 2>&1
    service+=$("$bin/qdm_load_generator" --server 127.0.0.1:$port $src --clients 1,16 --requests 24 --seconds 120 --num 1 \
      --steps 20 --label "${src#--* }")$'\n'
  done
fi

python3 - "$results" "$out" "$threads" "$rounds" "$recipe" "$profile" "$service" <<'PY'
import json, statistics, subprocess, sys
results, out, threads, rounds, recipe, profile, service = sys.argv[1:8]
rows = {}
meta = {}
for line in open(results):
    v, b, js = line.split(" ", 2)
    j = json.loads(js)
    rows.setdefault((v, int(b)), []).append(j["median_ms"])
    meta[(v, int(b))] = j
batches = sorted({b for _, b in rows})
names = {"ort-spin": "ONNX Runtime FP32, spinning on", "ort-nospin": "ONNX Runtime FP32, spinning off",
         "qdm-fp32": "qdm FP32 (execution plan, oneDNN convolutions)",
         "qdm-fp32-gemm": "qdm FP32 (execution plan, own GEMM convolutions)", "qdm-fp32-libtorch": "qdm FP32 (LibTorch)",
         "qdm-w8a8": f"qdm W8A8 ({recipe}, execution plan)", "qdm-w4a8": f"qdm W4A8 ({recipe}, execution plan)"}
cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
med = {k: statistics.median(v) for k, v in rows.items()}
L = ["# qdm vs ONNX Runtime: one UNet forward on the shipped model", "",
     f"`bash bench/peer_speed.sh`: {cpu}, {threads} threads, t = 500, medians over {rounds} interleaved rounds "
     "(each round runs every variant once per batch size, in its own process; within a run, the median of its calls). ms per forward.", ""]
L.append("| variant | " + " | ".join(f"batch {b}" for b in batches) + " | weight bytes |")
L.append("|---|" + "---:|" * len(batches) + "---:|")
for v in names:
    if (v, batches[0]) not in med: continue
    wb = meta[(v, batches[0])].get("weight_bytes", "")
    L.append(f"| {names[v]} | " + " | ".join(f"{med[(v, b)]:.2f}" for b in batches) + f" | {wb} |")
L += ["", "Ratios against the faster ONNX Runtime setting at each batch size (lower is better; goals: FP32 on the plan <= 1.0, W4A8 <= 0.4):", ""]
L.append("| variant | " + " | ".join(f"batch {b}" for b in batches) + " |")
L.append("|---|" + "---:|" * len(batches))
for v in ["qdm-fp32", "qdm-fp32-gemm", "qdm-fp32-libtorch", "qdm-w8a8", "qdm-w4a8"]:
    if (v, batches[0]) not in med: continue
    L.append(f"| {names[v]} | " + " | ".join(f"{med[(v, b)] / min(med[('ort-spin', b)], med[('ort-nospin', b)]):.2f}x" for b in batches) + " |")
fp = meta.get(("qdm-fp32", batches[0]), {}).get("weight_bytes")  # measured: the plan's resident fp32 weights
w4 = meta.get(("qdm-w4a8", batches[0]), {}).get("weight_bytes")
if w4 and fp: L += ["", f"Resident weights: W4A8 {w4} bytes = {w4 / fp:.3f}x of FP32 ({fp} bytes)."]
L += ["", "Peak RSS (MiB) per process at the largest batch: " + ", ".join(
    f"{names[v].split(',')[0].split(' (')[0]} {meta[(v, batches[-1])]['peak_rss_mib']:.0f}" for v in names if (v, batches[-1]) in meta) + "."]
L += ["", "Time per kernel kind (ms per forward, profiled run):", ""]
for line in profile.strip().splitlines():
    j = json.loads(line)
    parts = sorted(j.get("profile_ms", {}).items(), key=lambda kv: -kv[1])
    L.append(f"- {j['what']}, batch {j['batch']} ({j['median_ms']:.2f} ms): " + ", ".join(f"{k} {v:.2f}" for k, v in parts))
if service.strip():
    L += ["", "End to end through the service (scheduler + one worker on loopback, 1 image x 20 DDIM steps per Sample; latency in s):", "",
          "| source | clients | requests | requests/s | images/s | p50 | p95 | p99 | errors |", "|---|---|---|---|---|---|---|---|---|"]
    L += [l for l in service.strip().splitlines() if l.startswith("|")]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
