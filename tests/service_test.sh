#!/usr/bin/env bash
# The service as users and operators meet it: a real qdm-scheduler and real qdm-worker
# processes on loopback, driven through the qdm CLI. Covers upload, submit/watch/cancel,
# idempotent resubmit, a bounded queue, two workers sharing jobs, kill -9 of a worker mid-job
# (lease expiry, requeue, the job completes once), kill -9 of the scheduler (nothing
# acknowledged is lost, running jobs resume), sampling (stream, unary, artifacts, deadline),
# bad input for every RPC (status code + message, the service keeps serving) and /metrics.
# QDM_TEST_STORE=postgresql runs all of it on the PostgreSQL job store (a throw-away cluster).
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/expect_error.sh"
source "$(cd "$(dirname "$0")" && pwd)/tiny_model.sh"
src="${QDM_SOURCE_DIR:?}"; qdm="${QDM_BIN:?}"; sched_bin="${QDM_SCHEDULER_BIN:?}"; worker_bin="${QDM_WORKER_BIN:?}"
work=$(mktemp -d)
pids=()
store=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ ${#store[@]} -gt 0 ] && bash "$src/tests/pg_cluster.sh" stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
if [ "${QDM_TEST_STORE:-sqlite}" = postgresql ]; then
  store=(--store "$(bash "$src/tests/pg_cluster.sh" start "$work/pg")")
fi
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f"; tail -15 "$f"; done >&2
  exit 1
}
base=$((20000 + RANDOM % 20000))
sched_port=$base; sched_metrics=$((base + 1))
export QDM_SERVER=127.0.0.1:$sched_port
export QDM_THREADS=1

start_scheduler() {
  "$sched_bin" --data "$work/data" "${store[@]}" --model-root "$work/roots" --listen 127.0.0.1:$sched_port \
    --metrics 127.0.0.1:$sched_metrics --lease-seconds 5 --max-queued-jobs 3 --max-images 16 --max-job-memory 1073741824 --max-sample-memory 512Mi >>"$work/scheduler.log" 2>&1 &
  sched_pid=$!; pids+=("$sched_pid")
  for _ in $(seq 100); do "$qdm" models list >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "scheduler did not come up"
}
start_worker() {  # start_worker N [extra flags]
  local n=$1; shift
  local port=$((base + 10 + 2 * n))
  "$worker_bin" --scheduler 127.0.0.1:$sched_port --listen 127.0.0.1:$port --advertise 127.0.0.1:$port --id "w$n" \
    --metrics 127.0.0.1:$((port + 1)) --cache-dir "$work/worker$n" --classifier "$work/none" --max-batch 8 --max-queue-delay-ms 1000 \
    --drain-seconds 5 "$@" >>"$work/worker$n.log" 2>&1 &
  eval "worker${n}_pid=$!"; pids+=("$!")
}
job_field() { "$qdm" jobs get "$1" | sed -n "s/^$2: *//p"; }
wait_state() {  # wait_state JOB STATE SECONDS
  for _ in $(seq $(($3 * 10))); do [ "$(job_field "$1" state)" = "$2" ] && return 0; sleep 0.1; done
  fail "job $1 not $2 after $3 s (is $(job_field "$1" state), stage $(job_field "$1" stage))"
}

# A tiny model in a read-only model root, and a second copy to upload.
mkdir -p "$work/roots"
tiny_model "$work/roots/tiny"

# --- scheduler alone: uploads, jobs persisted, bounded queue, idempotency, no worker --------
start_scheduler
"$qdm" models upload "$work/roots/tiny" --name tiny-up >/dev/null || fail "upload"
"$qdm" models list | grep -q "^tiny-up " || fail "uploaded model not listed"
"$qdm" models describe tiny-up | grep -q '"block_out_channels"' || fail "describe shows no config"
expect_error ALREADY_EXISTS "exists" models upload "$work/roots/tiny" --name tiny-up
mkdir -p "$work/bad" && cp "$work/roots/tiny/config.json" "$work/bad/" && printf 'garbage!' > "$work/bad/diffusion_pytorch_model.safetensors"
expect_error INVALID_ARGUMENT "not valid" models upload "$work/bad" --name bad
"$qdm" models list | grep -q "^bad " && fail "an invalid upload was stored"
expect_error INVALID_ARGUMENT "not a model name" models upload "$work/roots/tiny" --name "../escape"
expect_error NOT_FOUND "no model or artifact named" models describe nothing
expect_error FAILED_PRECONDITION "read-only model root" models delete tiny
expect_error UNAVAILABLE "no worker is connected" generate --model tiny --num 1 --steps 2 --out "$work/x"
# Text-to-image pipelines upload like model folders; every component is checked against its
# config without LibTorch, and parts that do not fit are refused naming the field.
"$qdm" models upload "$src/models/fmnist-t2i" --name t2i >/dev/null || fail "pipeline upload"
"$qdm" models describe t2i | grep -q '"StableDiffusionPipeline"' || fail "describe shows no model_index.json"
cp -r "$src/models/fmnist-t2i" "$work/bad-pipe"
sed -i 's/"cross_attention_dim": [0-9]*/"cross_attention_dim": 24/' "$work/bad-pipe/unet/config.json"
expect_error INVALID_ARGUMENT "unet/config.json: field 'cross_attention_dim' must equal the text encoder's hidden_size" \
  models upload "$work/bad-pipe" --name bad-pipe
"$qdm" models list | grep -q "^bad-pipe " && fail "an invalid pipeline was stored"

quick=(--recipe rtn --steps 4 --calib-samples 2 --report-samples 2)
j1=$("$qdm" submit --model tiny "${quick[@]}" --idempotency-key key-1)
j1b=$("$qdm" submit --model tiny "${quick[@]}" --idempotency-key key-1)
[ "$j1" = "$j1b" ] || fail "resubmit with the same key gave $j1b, not $j1"
j2=$("$qdm" submit --model tiny-up "${quick[@]}")
j3=$("$qdm" submit --model tiny --recipe tfmq --steps 4 --calib-samples 2 --iters 2 --report-samples 2)
expect_error RESOURCE_EXHAUSTED "queue is full" submit --model tiny "${quick[@]}"
[ "$("$qdm" submit --model tiny "${quick[@]}" --idempotency-key key-1)" = "$j1" ] || fail "idempotent resubmit refused when full"
[ "$(job_field "$j2" 'queue pos')" = "1" ] || fail "queue position of the second job: $(job_field "$j2" 'queue pos')"
expect_error NOT_FOUND "no fp32 model named" submit --model nothing "${quick[@]}"
expect_error INVALID_ARGUMENT "recipe 'magic' is unknown" submit --model tiny --recipe magic
expect_error INVALID_ARGUMENT "weight_bits is 9" submit --model tiny --wbits 9
expect_error INVALID_ARGUMENT "act_bits is 3" submit --model tiny --abits 3
# A job's cost is known before it is queued: legal options whose estimated peak memory (here
# 1,024 trajectories of 1,000 steps: an 8 GB calibration set) is over --max-job-memory are
# refused, naming the estimate and the limit; --dry-run answers the estimate and queues nothing
# (the queue is full here); every Job carries it.
expect_error RESOURCE_EXHAUSTED "over the 1.0 GiB a job may use here" submit --model tiny --calib-samples 1024 --steps 1000
dry=$("$qdm" submit --model tiny "${quick[@]}" --dry-run) || fail "dry run refused"
[[ "$dry" == "valid: tiny rtn w4a8, estimated peak memory "*" MiB ("*" bytes)" ]] || fail "dry run answered: $dry"
[ "$(job_field "$j2" 'queue pos')" = "1" ] || fail "the dry run moved the queue"
job_field "$j1" memory | grep -q "^about .*MiB (" || fail "a job without its estimate: $("$qdm" jobs get "$j1")"
expect_error INVALID_ARGUMENT "steps is 5000" submit --model tiny --steps 5000
expect_error INVALID_ARGUMENT "keep_bits must be 0 (fp32) or in" submit --model tiny --keep-bits 9
expect_error INVALID_ARGUMENT "bias_samples must be 0.." submit --model tiny --bias-samples -1
expect_error INVALID_ARGUMENT "options.finetune: iters must be 0.." submit --model tiny --finetune-iters -1
expect_error INVALID_ARGUMENT "finetune batch must be in" submit --model tiny --finetune-iters 5 --finetune-samples 4 --finetune-batch 8
expect_error FAILED_PRECONDITION "used by a queued or running job" models delete tiny-up
expect_error NOT_FOUND "no job with id" jobs get job-nope
expect_error NOT_FOUND "no job with id" jobs watch job-nope
expect_error NOT_FOUND "no job with id" jobs cancel job-nope
expect_error INVALID_ARGUMENT "page_size" jobs list --page-size 1000

# kill -9 the scheduler: every acknowledged job is still there after a restart.
kill -9 "$sched_pid"; wait "$sched_pid" 2>/dev/null || true
start_scheduler
for j in "$j1" "$j2" "$j3"; do [ "$(job_field "$j" state)" = "queued" ] || fail "job $j lost or changed by the restart"; done
"$qdm" jobs cancel "$j2" | grep -q cancelled || fail "cancel a queued job"
expect_error FAILED_PRECONDITION "already finished" jobs cancel "$j2"
"$qdm" models delete tiny-up >/dev/null || fail "delete an uploaded model once its job is cancelled"

# --- two workers share the queue --------------------------------------------------------------
start_worker 1
start_worker 2
"$qdm" jobs watch "$j1" >/dev/null 2>&1 || fail "job $j1 did not succeed: $(job_field "$j1" error)"
wait_state "$j3" succeeded 60
more=()
# The first of these quantizes the output conv too, with the kept layers' weights fp32, is
# fine-tuned for 5 steps and measures the eps bias correction on 4 trajectories.
for extra in "--keep-bits 0 --fp32-layers-none --bias-samples 4 --finetune-iters 5 --finetune-samples 4 --finetune-holdout 2 --finetune-batch 2" "" ""; do
  # shellcheck disable=SC2086  # extra is a list of flags
  more+=("$("$qdm" submit --model tiny "${quick[@]}" $extra)")
done
for j in "${more[@]}"; do wait_state "$j" succeeded 60; done
spec_of() { "$qdm" models describe "$(job_field "$1" artifact)" | sed -n 's/^recipe: *//p' \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); s=r["spec"]; print(s["keep_bits"], s["fp32_layers"], r["bias_samples"], r.get("finetune", {}).get("iters", 0))'; }
[ "$(spec_of "${more[0]}")" = "0 [] 4 5" ] || fail "keep_bits 0 / no fp32 layers / bias samples / fine-tuning not applied: $(spec_of "${more[0]}")"
[ "$(spec_of "${more[1]}")" = "8 ['conv_out'] 0 0" ] || fail "default keep_bits / fp32 layers / bias samples / fine-tuning: $(spec_of "${more[1]}")"
used=$(for j in "$j1" "$j3" "${more[@]}"; do job_field "$j" worker; done | sort -u | wc -l)
[ "$used" -eq 2 ] || fail "jobs ran on $used worker(s), expected both"
art3=$(job_field "$j3" artifact)
"$qdm" models list --artifacts | grep -q "^$art3 " || fail "artifact $art3 not listed"
"$qdm" models describe "$art3" | grep -q '"recipe":"tfmq"' || fail "artifact describe has no recipe"

# TMPQ-DM through the service: a small search; the artifact samples with its own schedule.
jt=$("$qdm" submit --model tiny --recipe tmpq --steps 3 --base-steps 12 --population 4 --top 2 --mutations 2 --crossovers 1 --generations 2 \
  --fitness-images 2 --final-images 0 --calib-samples 2 --report-samples 2) || fail "submit tmpq"
wait_state "$jt" succeeded 120
"$qdm" jobs get "$jt" --json | python3 -c 'import json,sys; r=json.loads(json.load(sys.stdin)["report"]["json"]); assert len(r["search"]["timesteps"]) == 3 and len(r["search"]["history"]) == 2, r' \
  || fail "tmpq job report has no search"
artt=$(job_field "$jt" artifact)
"$qdm" generate --artifact "$artt" --num 2 --out "$work/gen_tmpq" >/dev/null 2>&1 || fail "generate from a tmpq artifact"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); assert b"qdm:steps\x003" in d, "not 3 steps"' "$work/gen_tmpq/00000.png" \
  || fail "the tmpq artifact did not sample its own 3-step schedule"

# VQDM through the service: vector-quantized layers in the report and the artifact, which samples
# on the integer kernels' tile decoding; bad vq options are refused at submit.
expect_error INVALID_ARGUMENT "vq codebook_bits must be in" submit --model tiny --recipe vq --codebook-bits 9
jv=$("$qdm" submit --model tiny --recipe vq --codebooks 2 --codebook-bits 4 --vq-rounds 2 --steps 3 --calib-samples 2 \
  --finetune-samples 4 --finetune-holdout 2 --finetune-batch 2 --report-samples 2) || fail "submit vq"
wait_state "$jv" succeeded 120
"$qdm" jobs get "$jv" --json | python3 -c 'import json,sys; r=json.loads(json.load(sys.stdin)["report"]["json"]); assert r["vq"]["vq_layers"] > 0, r' \
  || fail "vq job report has no vector-quantized layers"
artv=$(job_field "$jv" artifact)
desc=$("$qdm" models describe "$artv")  # captured: grep -q would end the pipe early (pipefail)
grep -q '"codebooks":2' <<< "$desc" || fail "the vq artifact's recipe does not carry its codebooks"
grep -q '"finetune":{[^}]*"iters":600' <<< "$desc" || fail "the vq job did not fine-tune by default (600 steps): $desc"
"$qdm" generate --artifact "$artv" --num 2 --out "$work/gen_vq" >/dev/null 2>&1 || fail "generate from a vq artifact"
[ -s "$work/gen_vq/00001.png" ] || fail "no images from the vq artifact"

# --- sampling ---------------------------------------------------------------------------------
"$qdm" generate --model tiny --num 3 --steps 3 --seed 5 --out "$work/gen" >/dev/null 2>&1 || fail "generate (stream)"
"$qdm" generate --model tiny --num 2 --steps 3 --seed 6 --unary --out "$work/gen_unary" >/dev/null 2>&1 || fail "generate (unary)"
# The sampler travels with the request: DPM-Solver++(2M) through the service, named in the PNG.
"$qdm" generate --model tiny --num 1 --steps 3 --seed 6 --sampler dpmpp2m --out "$work/gen_dpm" >/dev/null 2>&1 \
  || fail "generate with dpmpp2m"
grep -aq "dpmpp2m" "$work/gen_dpm/00000.png" || fail "the PNG does not name the dpmpp2m sampler"
python3 - "$work/gen_dpm/00000.png" "$work/gen_unary/00000.png" <<'PY' || fail "dpmpp2m gave the DDIM image"
import sys
pixels = [open(p, "rb").read() for p in sys.argv[1:]]
pixels = [d[d.find(b"IDAT"):] for d in pixels]
sys.exit(0 if pixels[0] != pixels[1] else 1)
PY
cmp -s "$work/gen/00001.png" "$work/gen_unary/00000.png" || fail "seed 6 differs between a stream and a unary request"
grep -q "qdm:seed" "$work/gen/00002.png" || fail "no generation parameters in the PNG"
"$qdm" generate --artifact "$art3" --num 2 --out "$work/gen_q" >/dev/null 2>&1 || fail "generate from an artifact"
[ -s "$work/gen_q/00001.png" ] || fail "no image from the artifact"
expect_error INVALID_ARGUMENT "calibrated per step" generate --artifact "$art3" --num 1 --steps 7 --out "$work/x"
expect_error INVALID_ARGUMENT "num_images is 100" generate --model tiny --num 100 --out "$work/x"
expect_error INVALID_ARGUMENT "num_images is 100" generate --model tiny --num 100 --unary --out "$work/x"
expect_error INVALID_ARGUMENT "paths are refused" generate --model ../roots/tiny --num 1 --out "$work/x"
expect_error NOT_FOUND "no artifact named" generate --artifact nothing --num 1 --out "$work/x"
expect_error INVALID_ARGUMENT "kernels applies to artifacts only" generate --model tiny --kernels sim --num 1 --out "$work/x"
expect_error DEADLINE_EXCEEDED "" generate --model tiny --num 16 --steps 1000 --timeout 1 --out "$work/x"
"$qdm" generate --model tiny --num 1 --steps 2 --out "$work/after" >/dev/null 2>&1 || fail "not serving after a deadline"

# Prompts: the uploaded text-to-image pipeline samples per-image prompts with guidance on the
# worker's execution plans; each PNG names its prompt, and a prompt past the tokenizer's limit
# comes back marked truncated. Prompts on a model without a text encoder, class labels on a
# pipeline and sizes off its grid are INVALID_ARGUMENT.
"$qdm" generate --model t2i --num 2 --steps 4 --guidance 3 --prompt "a photo of a sneaker" \
  --prompt "$(printf 'a very long caption about a sneaker %.0s' {1..12})" --negative-prompt "a bag" --out "$work/gen_t2i" \
  >/dev/null 2>"$work/gen_t2i.err" || fail "generate from prompts: $(cat "$work/gen_t2i.err")"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); assert b"qdm:prompt\x00a photo of a sneaker" in d and b"qdm:negative_prompt\x00a bag" in d' \
  "$work/gen_t2i/00000.png" || fail "the PNG does not name its prompt and negative prompt"
grep -q "image 1: its prompt is longer" "$work/gen_t2i.err" || fail "the truncated prompt was not reported"
# Each stage of a prompted batch is timed: text encoding, denoising and VAE decoding.
for n in 1 2; do curl -sf "http://127.0.0.1:$((base + 10 + 2 * n + 1))/metrics"; done > "$work/stages.prom"
for stage in text_encoding denoising vae_decoding; do
  grep -E "^qdm_sample_stage_duration_seconds_count\{stage=\"$stage\"\} [1-9]" "$work/stages.prom" >/dev/null \
    || fail "no $stage time observed"
done
grep -q "image 0" "$work/gen_t2i.err" && fail "a short prompt was reported truncated"
"$qdm" generate --model t2i --num 1 --steps 2 --width 64 --unary --out "$work/gen_t2i_wide" >/dev/null 2>&1 || fail "a wide unprompted image"
python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); assert struct.unpack(">II", d[16:24]) == (64, 32), d[16:24]' \
  "$work/gen_t2i_wide/00000.png" || fail "the wide image is not 64 x 32"
expect_error INVALID_ARGUMENT "has no text encoder" generate --model tiny --num 1 --prompt "a sneaker" --out "$work/x"
expect_error INVALID_ARGUMENT "takes prompts, not class labels" generate --model t2i --num 1 --class-label 3 --out "$work/x"
expect_error INVALID_ARGUMENT "multiples of 8" generate --model t2i --num 1 --height 36 --out "$work/x"
expect_error RESOURCE_EXHAUSTED "pixels a request may ask for" generate --model t2i --num 16 --height 4096 --width 4096 --out "$work/x"
# Its cost before any work: one 1024x1024 image passes the pixel bound, but self-attention over
# its 256x256 latent holds 2^32 scores per head: over --max-sample-memory, naming the estimate.
expect_error RESOURCE_EXHAUSTED "UNet attention scores .* a sample request may use here" \
  generate --model t2i --num 1 --height 1024 --width 1024 --out "$work/x"
expect_error INVALID_ARGUMENT "one for every image or one per image" generate --model t2i --num 3 --prompt a --prompt b --out "$work/x"

# A quantize job on the pipeline (its calibration_prompts.txt, the UNet on the worker), then its
# artifact samples from prompts on the worker's integer plan (its text encoder quantized too);
# calibration prompts and components for a model without a text encoder are refused at submit.
tj=$("$qdm" submit --model t2i --recipe tfmq --steps 4 --calib-samples 2 --iters 2 --act-iters 0 --report-samples 2 \
  --components unet,text_encoder)
wait_state "$tj" succeeded 240
artp=$(job_field "$tj" artifact)
"$qdm" models describe "$artp" > "$work/t2i_art.json" || fail "describe the pipeline artifact"
grep -q '"pipeline"' "$work/t2i_art.json" || fail "the pipeline artifact does not list its embedded files"
grep -q 'quantized/text_encoder.safetensors' "$work/t2i_art.json" || fail "the job did not quantize the text encoder (options.components)"
"$qdm" generate --artifact "$artp" --num 2 --guidance 3 --prompt "a photo of a sneaker" --prompt "a coat" --out "$work/gen_t2i_q" \
  >/dev/null 2>"$work/gen_t2i_q.err" || fail "generate from a quantized pipeline: $(cat "$work/gen_t2i_q.err")"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); assert b"qdm:prompt\x00a coat" in d and b"qdm:recipe\x00tfmq" in d' \
  "$work/gen_t2i_q/00001.png" || fail "the quantized pipeline's PNG does not name its prompt and recipe"
expect_error INVALID_ARGUMENT "has no text encoder" submit --model tiny --calib-prompt "a sneaker" "${quick[@]}"
expect_error INVALID_ARGUMENT "quantize only its unet" submit --model tiny --components unet,vae_decoder "${quick[@]}"
expect_error INVALID_ARGUMENT "unknown component" submit --model t2i --components unet,vae "${quick[@]}"
cp -r "$src/models/fmnist-t2i" "$work/nocal" && rm "$work/nocal/calibration_prompts.txt"
"$qdm" models upload "$work/nocal" --name t2i-nocal >/dev/null || fail "upload a pipeline without calibration prompts"
expect_error INVALID_ARGUMENT "calibration_prompts.txt" submit --model t2i-nocal "${quick[@]}"
expect_error INVALID_ARGUMENT "takes prompts, not class labels" generate --artifact "$artp" --num 1 --class-label 3 --out "$work/x"

# Concurrent compatible requests are batched (the workers wait up to 1 s for company, so
# separately started CLI processes on a loaded machine still arrive within one window).
gens=()
for i in 1 2 3 4; do "$qdm" generate --model tiny --num 2 --steps 20 --seed $((10 * i)) --out "$work/b$i" >"$work/b$i.out" 2>&1 & gens+=($!); done
for p in "${gens[@]}"; do wait "$p" || fail "a concurrent generate failed"; done
grep -h -o "batch of [0-9]*" "$work"/b?.out | sort | tail -1 | grep -q -v "batch of 2$" || fail "no request was batched with another: $(cat "$work"/b?.out)"

# --- kill -9 of a worker mid-job: the lease expires, the job is requeued and completes once ----
long=$("$qdm" submit --model tiny --recipe qdiffusion --steps 20 --calib-samples 4 --iters 100 --act-iters 0 --report-samples 2)
wait_state "$long" running 30
victim=$(job_field "$long" worker)
[ "$victim" = w1 ] && kill -9 "$worker1_pid" || kill -9 "$worker2_pid"
wait_state "$long" succeeded 240
[ "$(job_field "$long" attempt)" = "2" ] || fail "job $long finished on attempt $(job_field "$long" attempt), expected 2"
[ "$(job_field "$long" worker)" != "$victim" ] || fail "job $long finished on the killed worker"
art=$(job_field "$long" artifact)
[ "$("$qdm" models list --artifacts | grep -c "^$art ")" = 1 ] || fail "artifact $art stored other than once"

# --- kill -9 of the scheduler mid-job: the worker keeps its lease and the job completes -------
[ "$victim" = w1 ] && start_worker 1 || start_worker 2
mid=$("$qdm" submit --model tiny --recipe qdiffusion --steps 20 --calib-samples 4 --iters 100 --act-iters 0 --report-samples 2)
wait_state "$mid" running 30
kill -9 "$sched_pid"; wait "$sched_pid" 2>/dev/null || true
sleep 1
start_scheduler
wait_state "$mid" succeeded 240
[ "$(job_field "$mid" attempt)" = "1" ] || fail "job $mid was not resumed (attempt $(job_field "$mid" attempt))"

# Cancel a running job: the worker stops it and nothing is stored.
c=$("$qdm" submit --model tiny --recipe qdiffusion --steps 20 --calib-samples 4 --iters 100000 --act-iters 0 --report-samples 0)
wait_state "$c" running 30
"$qdm" jobs cancel "$c" >/dev/null || fail "cancel a running job"
sleep 3
[ "$(job_field "$c" state)" = "cancelled" ] || fail "cancelled job is $(job_field "$c" state)"
grep -q "job $c: stopped" "$work"/worker?.log || fail "the worker did not stop the cancelled job"

# --- /metrics on scheduler and worker ---------------------------------------------------------
expect_error INVALID_ARGUMENT "weight_bits" submit --model tiny --wbits 1   # counted since the last restart
sleep 1
curl -sf "http://127.0.0.1:$sched_metrics/metrics" > "$work/sched.prom" || fail "scheduler /metrics"
wport=$((base + 10 + 2 + 1))
curl -sf "http://127.0.0.1:$wport/metrics" > "$work/worker.prom" || fail "worker /metrics"
python3 - "$work/sched.prom" "$work/worker.prom" "$src/deploy/grafana/qdm.json" "$src/deploy/prometheus/alerts.yaml" \
  "$src/deploy/prometheus/adapter-values.yaml" <<'PY' || fail "metrics"
import re, sys
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|[Nn]a[Nn]|[+-]?[Ii]nf)( [0-9]+)?$')
want = {
  0: ["qdm_requests_total", "qdm_request_duration_seconds_bucket", "qdm_queue_depth", "qdm_queue_wait_seconds_bucket",
      "qdm_jobs", "qdm_job_duration_seconds_bucket", "qdm_workers", "qdm_process_resident_memory_bytes",
      "qdm_build_info", "qdm_sample_requests_in_flight"],
  1: ["qdm_requests_total", "qdm_request_duration_seconds_bucket", "qdm_queue_depth", "qdm_queue_wait_seconds_bucket",
      "qdm_sample_step_duration_seconds_bucket", "qdm_batch_size_bucket", "qdm_loaded_model_bytes",
      "qdm_process_resident_memory_bytes", "qdm_build_info", "qdm_images_generated_total", "qdm_worker_jobs_running",
      "qdm_worker_device_info"],
}
scraped = set()
for i, path in enumerate(sys.argv[1:3]):
    names = set()
    for line in open(path):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"{path}: unparsable line {line!r}"
        names.add(m.group(1)); scraped.add(m.group(1))
        assert "job-" not in line and "seed" not in line, f"high-cardinality label: {line}"
    missing = [n for n in want[i] if n not in names]
    assert not missing, f"{path}: missing {missing}"
# Every qdm_ metric the dashboard, the alerts and the autoscaling adapter use is in a live scrape.
for path in sys.argv[3:6]:
    used = set(re.findall(r"\b(qdm_[a-z_]+)", open(path).read()))
    unknown = sorted(u for u in used if u not in scraped)
    assert not unknown, f"{path} uses metrics no process exports: {unknown}"
wtext = open(sys.argv[2]).read()
assert 'qdm_worker_device_info{device="cpu"} 1' in wtext, "worker does not say it samples on the CPU"
assert re.search(r'qdm_sample_step_duration_seconds_count\{[^}]*device="cpu"[^}]*precision="fp32"', wtext), \
    "step latency has no device label: " + str(re.findall(r"qdm_sample_step_duration_seconds_count.*", wtext))
text = open(sys.argv[1]).read()
assert re.search(r'qdm_jobs\{state="succeeded"\} [1-9]', text), "no succeeded jobs counted"
assert re.search(r'qdm_workers 2', text), "scheduler does not count 2 workers: " + str(re.findall(r"qdm_workers .*", text))
def series(t, name):
    """(labels, value) of every sample of metric `name` in exposition text t."""
    out = []
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", t, re.M):
        out.append((dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))), float(m.group(2))))
    return out
def count(t, **labels):
    return sum(v for l, v in series(t, "qdm_requests_total") if all(l.get(k) == w for k, w in labels.items()))
assert count(text, code="INVALID_ARGUMENT", method="QuantizeJobs/Submit") >= 1, \
    "refused Submit not counted: " + str(re.findall(r"qdm_requests_total.*", text))
# A Sample is answered by the scheduler and by a worker: each says which, and every dashboard and
# alert query over the request metrics picks one component, so no call counts twice.
for t, component in ((text, "scheduler"), (wtext, "worker")):
    for name in ("qdm_requests_total", "qdm_request_duration_seconds_count"):
        s = series(t, name)
        assert s and all(l.get("component") == component for l, _ in s), f"{component} {name}: {s[:3]}"
assert any(l.get("method") == "Sampling/SampleStream" for l, _ in series(wtext, "qdm_requests_total")), "no worker Sampling series"
for path in sys.argv[3:5]:
    for q in re.findall(r"qdm_request(?:s_total|_duration_seconds_bucket)(\{[^}]*\})?", open(path).read()):
        assert "component=" in q, f"{path}: a query over the request metrics counts both components: {q or 'no selector'}"
PY
# Both exports pass Prometheus' own lint (names, types, HELP) where promtool is installed.
if command -v promtool >/dev/null; then
  for export in sched worker; do
    promtool check metrics < "$work/$export.prom" > "$work/promtool.txt" 2>&1 || { cat "$work/promtool.txt"; fail "$export metrics fail promtool"; }
  done
fi

# --- SIGTERM drains a worker: it stops taking work and exits cleanly -------------------------------
kill -TERM "$worker2_pid" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$worker2_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$worker2_pid" 2>/dev/null && fail "worker 2 did not exit on SIGTERM"
grep -q "drained" "$work/worker2.log" || fail "worker 2 did not drain"
echo "service_test: all passed"
