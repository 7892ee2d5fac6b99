#!/usr/bin/env bash
# The main job on the embedded defaults: qdm-scheduler (SQLite job store and artifact folder in
# var/qdm, the shipped models/ as a read-only model root) plus one local qdm-worker; submits a
# TFMQ-DM W4A8 quantize job for the shipped Fashion-MNIST model, watches it, and generates
# images from the artifact on the integer kernels into out/generated.
#   bash deploy/local/main_job.sh           (after bash .ci/setup)
# Environment: ITERS (reconstruction iterations per block, default 200), NUM (images, 16), GUIDANCE (3),
# KEEP_RUNNING=1 leaves the service up afterwards (QDM_SERVER=localhost:50051).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bin
mkdir -p var/logs out
export QDM_SERVER=localhost:50051
"$bin/qdm-scheduler" --data var/qdm --model-root models --listen 127.0.0.1:50051 --metrics 127.0.0.1:9464 \
  >>var/logs/scheduler.log 2>&1 &
sched=$!
"$bin/qdm-worker" --scheduler 127.0.0.1:50051 --listen 127.0.0.1:50052 --advertise 127.0.0.1:50052 \
  --metrics 127.0.0.1:9465 --cache-dir var/qdm-worker >>var/logs/worker.log 2>&1 &
worker=$!
stop() { [ "${KEEP_RUNNING:-0}" = 1 ] || kill -TERM "$worker" "$sched" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 100); do "$bin/qdm" models list >/dev/null 2>&1 && break; sleep 0.2; done
echo "service up: scheduler $QDM_SERVER (metrics :9464), worker :50052 (metrics :9465); logs in var/logs"
"$bin/qdm" models list

job=$("$bin/qdm" submit --model fmnist-ddpm --recipe tfmq --wbits 4 --abits 8 --steps 100 \
  --iters "${ITERS:-200}" --idempotency-key "main-job-tfmq-w4a8-${ITERS:-200}")
echo "submitted $job"
"$bin/qdm" jobs watch "$job"
artifact=$("$bin/qdm" jobs get "$job" | sed -n 's/^artifact: *//p')
# The shipped model is class-conditional: an even spread of the ten classes, guidance 3.
labels=()
grep -q '"num_class_embeds": *[1-9]' models/fmnist-ddpm/config.json && labels=(--class-label all --guidance "${GUIDANCE:-3}")
"$bin/qdm" generate --artifact "$artifact" --num "${NUM:-16}" --seed 0 "${labels[@]}" --out out/generated
echo "images in out/generated; artifact $artifact in var/qdm/artifacts"
