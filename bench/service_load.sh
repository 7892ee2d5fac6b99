#!/usr/bin/env bash
# Sampling through the service under concurrent load: a scheduler and one worker on loopback,
# the shipped model, 1 / 4 / 16 concurrent clients, with and without dynamic batching.
#   bash bench/service_load.sh            (after bash .ci/setup)
# Environment: STEPS (sampler steps, default 20), REQUESTS (per client, 16), SECONDS_MAX (120),
# MAX_BATCH (16), DELAY_MS (batching window, 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin; steps=${STEPS:-20}; requests=${REQUESTS:-16}; secs=${SECONDS_MAX:-120}
out=bench/results/service_load.md
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
hwm() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
{
  echo "# Service load: Sample calls through qdm-scheduler to one qdm-worker"
  echo
  echo "\`bash bench/service_load.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d); model fmnist-ddpm, 1 image per"
  echo "request, $steps DDIM steps, up to $requests requests per client, ${secs} s per row. Latency in seconds."
  echo
  echo "| batching | clients | requests | requests/s | images/s | p50 | p95 | p99 | errors |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > "$out"
for batching in true false; do
  port=$((30000 + RANDOM % 20000))
  "$bin/qdm-scheduler" --data "$work/data-$batching" --model-root models --listen 127.0.0.1:$port \
    --metrics 127.0.0.1:$((port + 1)) >"$work/s.log" 2>&1 &
  s=$!; pids+=($s)
  "$bin/qdm-worker" --scheduler 127.0.0.1:$port --listen 127.0.0.1:$((port + 2)) --advertise 127.0.0.1:$((port + 2)) \
    --metrics 127.0.0.1:$((port + 3)) --cache-dir "$work/w-$batching" --job-slots 0 --batching $batching \
    --max-batch "${MAX_BATCH:-16}" --max-queue-delay-ms "${DELAY_MS:-20}" >"$work/w.log" 2>&1 &
  w=$!; pids+=($w)
  for _ in $(seq 100); do "$bin/qdm" health --server 127.0.0.1:$((port + 2)) >/dev/null 2>&1 && break; sleep 0.2; done
  "$bin/qdm" generate --server 127.0.0.1:$port --model fmnist-ddpm --num 1 --steps 2 --out "$work/warm" >/dev/null 2>&1
  "$bin/qdm_load_generator" --server 127.0.0.1:$port --model fmnist-ddpm --clients 1,4,16 --requests "$requests" \
    --seconds "$secs" --num 1 --steps "$steps" --label "$([ $batching = true ] && echo "on (max ${MAX_BATCH:-16}, ${DELAY_MS:-20} ms)" || echo off)" >> "$out"
  echo "  peak RSS with batching $batching: scheduler $(hwm $s) MiB, worker $(hwm $w) MiB" >> "$work/rss.txt"
  kill -TERM "$w" "$s"; wait "$w" "$s" 2>/dev/null || true
done
{ echo; echo "Peak resident memory:"; cat "$work/rss.txt"; } >> "$out"
cat "$out"
