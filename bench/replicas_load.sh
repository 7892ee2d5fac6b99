#!/usr/bin/env bash
# The job store under load: one qdm-scheduler on SQLite against two replicas on one PostgreSQL
# (a throw-away cluster, tests/pg_cluster.sh), one worker, the shipped model; 16 concurrent
# clients spread over the replicas: Submit throughput (rtn jobs into a queue no worker drains)
# and Sample throughput (batching on), with p50/p95/p99; then the failover time: kill -9 of the
# replica the worker is connected to while it runs a job, to the first Sample answered through
# the other replica and to the job's next progress there.
#   bash bench/replicas_load.sh           (after bash .ci/setup)
# Environment: STEPS (sampler steps, 20), REQUESTS (per client, 16), SECONDS_MAX (120),
# PAUSE_PID (a background job stopped while this runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin; steps=${STEPS:-20}; requests=${REQUESTS:-16}; secs=${SECONDS_MAX:-120}
out=bench/results/replicas_load.md
work=$(mktemp -d); pids=()
[ -n "${PAUSE_PID:-}" ] && kill -STOP "$PAUSE_PID"
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash tests/pg_cluster.sh stop "$work/pg"
  [ -n "${PAUSE_PID:-}" ] && kill -CONT "$PAUSE_PID" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
url=$(bash tests/pg_cluster.sh start "$work/pg")
base=$((30000 + RANDOM % 20000))
scheduler() {  # scheduler NAME PORT STORE
  "$bin/qdm-scheduler" --data "$work/data-${3%%:*}" --store "$3" --model-root models --listen 127.0.0.1:$2 \
    --metrics 127.0.0.1:$(($2 + 1)) --max-queued-jobs 1000000 --lease-seconds 5 >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do QDM_SERVER=127.0.0.1:$2 "$bin/qdm" models list >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "scheduler $1 did not start" >&2; exit 1
}
worker() {  # worker SCHEDULERS SLOTS
  "$bin/qdm-worker" --scheduler "$1" --listen 127.0.0.1:$((base + 20)) --advertise 127.0.0.1:$((base + 20)) \
    --metrics 127.0.0.1:$((base + 21)) --cache-dir "$work/w" --job-slots "$2" --classifier "$work/none" >>"$work/w.log" 2>&1 &
  wpid=$!; pids+=($wpid)
  for _ in $(seq 100); do "$bin/qdm" health --server 127.0.0.1:$((base + 20)) >/dev/null 2>&1 && return 0; sleep 0.2; done
}
load() {  # load LABEL SERVERS RPC
  "$bin/qdm_load_generator" --server "$2" --rpc "$3" --model fmnist-ddpm --clients 16 --requests "$requests" \
    --seconds "$secs" --num 1 --steps "$steps" --label "$1 | $3"
}
{
  echo "# Job store under load: SQLite, one scheduler, against PostgreSQL, two replicas"
  echo
  echo "\`bash bench/replicas_load.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d); 16 clients (spread over the replicas),"
  echo "one worker, model fmnist-ddpm; Submit: rtn jobs into a queue no worker drains; Sample: 1 image,"
  echo "$steps DDIM steps, batching on. Latency in seconds."
  echo
  echo "| store | rpc | clients | requests | requests/s | images/s | p50 | p95 | p99 | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$out"

scheduler one $base "sqlite:$work/one.db"
worker "127.0.0.1:$base" 0
QDM_SERVER=127.0.0.1:$base "$bin/qdm" generate --model fmnist-ddpm --num 1 --steps 2 --out "$work/warm" >/dev/null 2>&1
load "SQLite, 1 scheduler" "127.0.0.1:$base" submit >> "$out"
load "SQLite, 1 scheduler" "127.0.0.1:$base" sample >> "$out"
kill -9 "${pids[@]}" 2>/dev/null || true; pids=()

a=$((base + 2)) b=$((base + 4))
scheduler a $a "$url"; sa=$!
scheduler b $b "$url"
worker "127.0.0.1:$a,127.0.0.1:$b" 1
QDM_SERVER=127.0.0.1:$b "$bin/qdm" generate --model fmnist-ddpm --num 1 --steps 2 --out "$work/warm2" >/dev/null 2>&1
load "PostgreSQL, 2 replicas" "127.0.0.1:$a,127.0.0.1:$b" submit >> "$out"
# The submitted jobs would occupy the worker: cancel them through the database's replicas.
QDM_SERVER=127.0.0.1:$a "$bin/qdm" jobs list --all --state queued 2>/dev/null | awk '/^job-/ {print $1}' |
  xargs -r -P 8 -I{} env QDM_SERVER=127.0.0.1:$a "$bin/qdm" jobs cancel {} >/dev/null 2>&1 || true
load "PostgreSQL, 2 replicas" "127.0.0.1:$a,127.0.0.1:$b" sample >> "$out"

# Failover: a job running on the worker (connected to A), kill -9 of A.
job=$(QDM_SERVER=127.0.0.1:$b "$bin/qdm" submit --model fmnist-ddpm --recipe qdiffusion --steps 20 --calib-samples 4 \
  --iters 2000 --act-iters 0 --report-samples 0)
for _ in $(seq 600); do
  [ "$(QDM_SERVER=127.0.0.1:$b "$bin/qdm" jobs get "$job" | sed -n 's/^state: *//p')" = running ] && break; sleep 0.1
done
progress() { QDM_SERVER=127.0.0.1:$b "$bin/qdm" jobs get "$job" --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("updated",""))'; }
before=$(progress)
kill -9 "$sa"; t0=$(date +%s.%N)
until "$bin/qdm_load_generator" --server 127.0.0.1:$b --model fmnist-ddpm --clients 1 --requests 1 --steps 2 --label x 2>/dev/null | grep -q '| 1 | 1 |'; do sleep 0.05; done
t_sample=$(echo "$(date +%s.%N) - $t0" | bc)
until [ "$(progress)" != "$before" ]; do sleep 0.1; done
t_progress=$(echo "$(date +%s.%N) - $t0" | bc)
QDM_SERVER=127.0.0.1:$b "$bin/qdm" jobs cancel "$job" >/dev/null 2>&1 || true
{
  echo
  echo "Failover (kill -9 of the replica the worker was connected to, mid-job): first Sample answered"
  echo "through the other replica after $(printf %.2f "$t_sample") s; the running job's next progress seen there after"
  echo "$(printf %.2f "$t_progress") s (the worker's reconnection; its lease stayed in the database)."
} >> "$out"
cat "$out"
