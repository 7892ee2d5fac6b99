#!/usr/bin/env bash
# qdm-sampler, the sampling-only node without LibTorch: its binary and the runtime library link
# no LibTorch; it registers with a real scheduler as sampling-only and is never leased a
# quantize job (one stays queued until a qdm-worker comes); it serves Sample and SampleStream
# for fp32 models and artifacts through the scheduler, with the images `qdm sample` makes
# locally (the same pixels); it refuses kernels sim with what to do; SIGTERM drains it.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/expect_error.sh"
source "$(cd "$(dirname "$0")" && pwd)/tiny_model.sh"
src="${QDM_SOURCE_DIR:?}"; qdm="${QDM_BIN:?}"; sched_bin="${QDM_SCHEDULER_BIN:?}"; worker_bin="${QDM_WORKER_BIN:?}"
sampler_bin="${QDM_SAMPLER_BIN:?}"; runtime_libs="${QDM_RUNTIME_LIBS:?}"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f"; tail -15 "$f"; done >&2
  exit 1
}

# --- no LibTorch in the sampler's link ---------------------------------------------------------
ldd "$sampler_bin" > "$work/sampler.ldd"; ldd "$worker_bin" > "$work/worker.ldd"
if grep -E 'lib(torch|c10)' "$work/sampler.ldd"; then fail "qdm-sampler links LibTorch"; fi
grep -q 'libtorch' "$work/worker.ldd" || fail "control: qdm-worker should link LibTorch (is ldd working?)"
for lib in $runtime_libs; do
  nm -C --undefined-only "$lib" > "$work/undefined.txt"
  if grep -E ' (at|c10|torch)::' "$work/undefined.txt" > "$work/torch_symbols.txt"; then
    fail "$(basename "$lib") refers to LibTorch symbols: $(head -3 "$work/torch_symbols.txt")"
  fi
  grep -q ' qdm::\| std::' "$work/undefined.txt" || fail "control: nm lists no undefined symbols of $(basename "$lib")"
done

base=$((20000 + RANDOM % 20000))
sched_port=$base
export QDM_SERVER=127.0.0.1:$sched_port QDM_THREADS=1
mkdir -p "$work/roots"
tiny_model "$work/roots/tiny"
"$sched_bin" --data "$work/data" --model-root "$work/roots" --listen 127.0.0.1:$sched_port --metrics 127.0.0.1:$((base + 1)) \
  --lease-seconds 5 --max-images 16 >>"$work/scheduler.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do "$qdm" models list >/dev/null 2>&1 && break; sleep 0.1; done
"$qdm" models list >/dev/null 2>&1 || fail "scheduler did not come up"

sp=$((base + 10))
start=$(date +%s%N)
"$sampler_bin" --scheduler 127.0.0.1:$sched_port --listen 127.0.0.1:$sp --advertise 127.0.0.1:$sp --id s1 \
  --metrics 127.0.0.1:$((sp + 1)) --cache-dir "$work/sampler" --max-batch 8 >>"$work/sampler.log" 2>&1 &
sampler_pid=$!; pids+=("$sampler_pid")
for _ in $(seq 100); do grep -q "connected to the scheduler" "$work/sampler.log" && break; sleep 0.1; done
grep -q "connected to the scheduler" "$work/sampler.log" || fail "the sampler did not register"
grep -q "sampler s1 at 127.0.0.1:$sp: 0 job slots" "$work/scheduler.log" || fail "the scheduler did not see a sampler"
grep -q "sampling only" "$work/sampler.log" || fail "the sampler does not say it samples only"

# A quantize job is never leased to it.
job=$("$qdm" submit --model tiny --recipe rtn --steps 4 --calib-samples 2 --report-samples 2)
sleep 4
state=$("$qdm" jobs get "$job" | sed -n 's/^state: *//p')
[ "$state" = queued ] || fail "job $job is $state with only a sampler connected, not queued"
grep -q "leased to worker s1" "$work/scheduler.log" && fail "a job was leased to the sampler"

# Sampling through the scheduler (stream and unary), the same pixels as `qdm sample` locally.
"$qdm" generate --model tiny --num 3 --steps 3 --seed 5 --out "$work/gen" >/dev/null 2>&1 || fail "generate (stream) on the sampler"
"$qdm" generate --model tiny --num 2 --steps 3 --seed 5 --unary --out "$work/gen_unary" >/dev/null 2>&1 || fail "generate (unary) on the sampler"
grep -q "loaded model 'tiny'.*fp32 plan" "$work/sampler.log" || fail "the sampler did not load the model on the plan"
"$qdm" sample --model "$work/roots/tiny" --num 3 --steps 3 --seed 5 --out "$work/local" >/dev/null 2>&1 || fail "qdm sample"
same_pixels() { python3 - "$1" "$2" <<'PY'
import sys, zlib, struct
def pixels(path):
    data = open(path, 'rb').read()
    idat, pos = b'', 8
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if kind == b'IDAT': idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return zlib.decompress(idat)
sys.exit(0 if pixels(sys.argv[1]) == pixels(sys.argv[2]) else 1)
PY
}
n=0
for i in 00000 00001 00002; do
  f="$work/local/$i.png"; remote="$work/gen/$i.png"
  [ -f "$f" ] && [ -f "$remote" ] || fail "image $i missing (local: $(ls "$work/local"); streamed: $(ls "$work/gen"))"
  same_pixels "$f" "$remote" || fail "image $i from the sampler differs from qdm sample's"
  n=$((n + 1))
done
[ "$n" = 3 ] || fail "expected 3 local images, compared $n"

# A worker takes the job; its artifact is then served by the sampler alone.
wp=$((base + 20))
"$worker_bin" --scheduler 127.0.0.1:$sched_port --listen 127.0.0.1:$wp --advertise 127.0.0.1:$wp --id w1 \
  --metrics 127.0.0.1:$((wp + 1)) --cache-dir "$work/worker" --classifier "$work/none" >>"$work/worker.log" 2>&1 &
worker_pid=$!; pids+=("$worker_pid")
for _ in $(seq 600); do
  state=$("$qdm" jobs get "$job" | sed -n 's/^state: *//p')
  [ "$state" = succeeded ] && break
  [ "$state" = failed ] && fail "job $job failed on the worker"
  sleep 0.1
done
[ "$state" = succeeded ] || fail "job $job is $state a minute after a worker came"
grep -q "leased to worker w1" "$work/scheduler.log" || fail "the job was not leased to the worker"
artifact=$("$qdm" jobs get "$job" | sed -n 's/^artifact: *//p')
[ -n "$artifact" ] || fail "job $job names no artifact"
kill -TERM "$worker_pid"; wait "$worker_pid" 2>/dev/null || true
"$qdm" generate --artifact "$artifact" --num 2 --seed 3 --out "$work/gen_art" >/dev/null 2>&1 || fail "generate from the artifact on the sampler"
grep -q "loaded artifact '$artifact'.*int plan" "$work/sampler.log" || fail "the sampler did not load the artifact on the plan"
[ "$(ls "$work"/gen_art/*.png | wc -l)" = 2 ] || fail "expected 2 images from the artifact"
expect_error INVALID_ARGUMENT "integer kernels only" generate --artifact "$artifact" --num 1 --kernels sim --out "$work/x"

kill -TERM "$sampler_pid"
for _ in $(seq 100); do kill -0 "$sampler_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sampler_pid" 2>/dev/null && fail "the sampler did not exit on SIGTERM"
grep -q "drained; bye" "$work/sampler.log" || fail "the sampler did not drain"
echo "sampler_test: ok"
