#!/usr/bin/env bash
# Service hardening, against a real qdm-scheduler and qdm-worker on loopback: uploads checked
# against their config without LibTorch (shapes, dtypes, size limits) with messages that name
# the field or tensor and never a server path; bad model roots skipped; non-finite floats and
# path-like names refused on scheduler and worker; empty ids; typed report fields in Get and
# Watch; report_samples 0 and 1; the artifact's source model name; per-service health and
# reflection v1; readable job output and plain progress lines in a log; the job store on a
# full disk (RESOURCE_EXHAUSTED, logged, counted, nothing acknowledged unstored) and a
# read-only state directory.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/expect_error.sh"
source "$(cd "$(dirname "$0")" && pwd)/tiny_model.sh"
qdm="${QDM_BIN:?}"; sched_bin="${QDM_SCHEDULER_BIN:?}"; worker_bin="${QDM_WORKER_BIN:?}"; probe="${QDM_PROBE_BIN:?}"
work=$(mktemp -d)
pids=()
cleanup() {
  # The full-disk scheduler runs inside an unshare'd shell: its pid is in the file it wrote.
  [ -s "$work/full.pid" ] && pids+=("$(cat "$work/full.pid")")
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f"; tail -12 "$f"; done >&2
  exit 1
}
base=$((20000 + RANDOM % 20000))
export QDM_SERVER=127.0.0.1:$base QDM_THREADS=1
cd "$work"

# probe EXPECTED_CODE FRAGMENT METHOD JSON [--server ...]: one raw RPC.
probe_expect() {
  local code=$1 want=$2; shift 2
  out=$("$probe" --server "${PROBE_SERVER:-$QDM_SERVER}" "$@" 2>&1) || fail "probe $*: $out"
  [ "${out%% *}" = "$code" ] || fail "probe $* answered: ${out:0:300} (wanted $code)"
  grep -q -- "$want" <<<"$out" || fail "probe $* answered: ${out:0:300} (wanted: $want)"
}

mkdir -p roots
tiny_model roots/tiny
tiny_model roots/cond --conditional
# A model root folder whose weights do not match its config: skipped at start, never served.
cp -r roots/tiny roots/broken
python3 - roots/broken/config.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["block_out_channels"] = [8, 32]; json.dump(c, open(sys.argv[1], "w"))
PY

"$sched_bin" --data data --model-root roots --listen 127.0.0.1:$base --metrics 127.0.0.1:$((base + 1)) \
  --lease-seconds 5 >scheduler.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$qdm" models list >/dev/null 2>&1 && break; sleep 0.1; done
"$qdm" models list | grep -q "^tiny " || fail "tiny not listed"
"$qdm" models list | grep -q "^broken " && fail "a model root folder that does not match its config is served"
grep -q "skipping 'broken'.*block_out_channels\|skipping 'broken'.*shape" scheduler.log || fail "no warning for the broken root model"

# --- uploads checked against their config --------------------------------------------------
# bad_upload NAME PYTHON-EDIT: a copy of tiny, edited by python (c: config dict, t: tensors).
bad_upload() {
  rm -rf up && cp -r roots/tiny up
  python3 - up "$2" <<'PY'
import json, struct, sys
d, edit = sys.argv[1], sys.argv[2]
c = json.load(open(d + "/config.json"))
raw = open(d + "/diffusion_pytorch_model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = raw[8 + n:]
t = {k: v for k, v in header.items() if k != "__metadata__"}
exec(edit)
blobs, out, off = [], {}, 0
for k, v in t.items():
    b = v.pop("bytes", None)
    if b is None: b = data[v["data_offsets"][0]:v["data_offsets"][1]]
    out[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(out).encode()
open(d + "/diffusion_pytorch_model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump(c, open(d + "/config.json", "w"))
PY
  expect_error INVALID_ARGUMENT "$3" models upload up --name "$1"
  grep -q "/data/\|$work" <<<"$out" && fail "upload refusal shows a server path: $out"
  "$qdm" models list | grep -q "^$1 " && fail "invalid upload $1 was stored"
  return 0
}
bad_upload shape 't["conv_in.weight"].update(shape=[1], bytes=b"\0" * 4)' "tensor 'conv_in.weight' has shape \[1\] but config.json implies"
bad_upload extra 't["extra.weight"] = {"dtype": "F32", "shape": [1], "bytes": b"\0" * 4}' "unexpected tensor 'extra.weight'"
bad_upload missing 'del t["conv_out.bias"]' "missing tensor 'conv_out.bias'"
bad_upload dtype 't["conv_out.bias"].update(dtype="I32")' "conv_out.bias' has dtype I32"
bad_upload channels 'c["block_out_channels"] = [8, 100000]' "'block_out_channels' is 100000, over this service's limit"
bad_upload size 'c["sample_size"] = 2**30' "'sample_size' is 1073741824, over"
bad_upload layers 'c["layers_per_block"] = 10**7' "'layers_per_block' is 10000000, over"
bad_upload inch 'c["in_channels"] = 2**31 - 1' "'in_channels' is 2147483647, over"
# A 1 MB name (or id) is refused with the name cut, not echoed whole.
for field in model name id; do python3 -c "import json; print(json.dumps({'$field': 'a' * 1000000}))" > long-$field.json; done
for call in QuantizeJobs/Submit:model Sampling/Sample:model Models/Describe:name QuantizeJobs/Get:id; do
  out=$("$probe" --server "$QDM_SERVER" "${call%%:*}" "@long-${call##*:}.json" 2>&1 || true)
  grep -q "^INVALID_ARGUMENT " <<<"$out" || fail "1 MB name on ${call%%:*}: ${out:0:300}"
  [ ${#out} -lt 600 ] || fail "1 MB name on ${call%%:*} echoed back (${#out} characters)"
  grep -q "cut at 80 of 1000000 characters" <<<"$out" || fail "1 MB name on ${call%%:*}: no cut marker: ${out:0:300}"
done

# --- names, ids and floats ----------------------------------------------------------------
for name in '../../etc' '/etc/passwd' '.hidden'; do
  probe_expect INVALID_ARGUMENT "not a model or artifact name" QuantizeJobs/Submit "{\"model\": \"$name\"}"
  probe_expect INVALID_ARGUMENT "not a model or artifact name" Sampling/Sample "{\"model\": \"$name\", \"numImages\": 1}"
  probe_expect INVALID_ARGUMENT "not a model or artifact name" Models/Describe "{\"name\": \"$name\"}"
  probe_expect INVALID_ARGUMENT "not a model or artifact name" Models/Delete "{\"name\": \"$name\"}"
done
for m in Get Cancel Watch; do probe_expect INVALID_ARGUMENT "id is empty" QuantizeJobs/$m '{"id": ""}'; done
probe_expect INVALID_ARGUMENT "eta must be a number" QuantizeJobs/Submit '{"model": "tiny", "options": {"sampler": {"eta": "NaN"}}}'
probe_expect INVALID_ARGUMENT "eta must be a number" Sampling/Sample '{"model": "tiny", "numImages": 1, "sampler": {"eta": "NaN"}}'
probe_expect INVALID_ARGUMENT "eta must be a number" Sampling/SampleStream '{"model": "tiny", "numImages": 1, "sampler": {"eta": "Infinity"}}'
probe_expect INVALID_ARGUMENT "guidance_scale must be a number" Sampling/Sample '{"model": "tiny", "numImages": 1, "guidanceScale": "NaN"}'
probe_expect INVALID_ARGUMENT "not class-conditional" Sampling/Sample '{"model": "tiny", "numImages": 1, "classLabels": ["3"]}'
probe_expect INVALID_ARGUMENT "report_samples" QuantizeJobs/Submit '{"model": "tiny", "options": {"reportSamples": -1}}'

# --- health per service, reflection v1 ----------------------------------------------------
for s in qdm.v1.QuantizeJobs qdm.v1.Models qdm.v1.Sampling qdm.v1.WorkerGateway; do
  "$qdm" health --service $s | grep -qx SERVING || fail "health of $s"
done
probe_expect OK "qdm.v1.QuantizeJobs" ReflectionV1 '{"listServices": ""}'
probe_expect OK "grpc.reflection.v1.ServerReflection" ReflectionV1 '{"listServices": ""}'
probe_expect OK "qdm/v1/jobs.proto" ReflectionV1 '{"fileContainingSymbol": "qdm.v1.QuantizeJobs"}'
grep -q "qdm/v1/common.proto" <<<"$out" || fail "reflection v1 leaves out the imports: $out"

# --- a worker: its own checks, jobs with reports ------------------------------------------
wport=$((base + 3))
"$worker_bin" --scheduler 127.0.0.1:$base --listen 127.0.0.1:$wport --advertise 127.0.0.1:$wport --id w1 \
  --metrics 127.0.0.1:$((base + 4)) --cache-dir worker --classifier none >worker.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$qdm" health --server 127.0.0.1:$wport >/dev/null 2>&1 && break; sleep 0.1; done
"$qdm" health --server 127.0.0.1:$wport --service qdm.v1.Sampling | grep -qx SERVING || fail "worker health by service"
PROBE_SERVER=127.0.0.1:$wport probe_expect INVALID_ARGUMENT "eta must be a number" Sampling/Sample '{"model": "tiny", "numImages": 1, "sampler": {"eta": "NaN"}}'
PROBE_SERVER=127.0.0.1:$wport probe_expect INVALID_ARGUMENT "not a model or artifact name" Sampling/Sample '{"model": "../x", "numImages": 1}'
PROBE_SERVER=127.0.0.1:$wport probe_expect INVALID_ARGUMENT "guidance_scale" Sampling/SampleStream '{"model": "tiny", "numImages": 1, "guidanceScale": "-Infinity"}'

# Every string field of every RPC 10,000 characters long, on the scheduler (every service) and
# the worker: bounded answers, no echo of the input, no server path; an enum value the
# protocol does not define is refused by name.
"${QDM_LONG_STRINGS_BIN:?}" --server "$QDM_SERVER" --forbid "$work" >long-strings.log 2>&1 \
  || fail "long strings on the scheduler: $(grep -A2 FINDING long-strings.log | head -20)"
"${QDM_LONG_STRINGS_BIN:?}" --server 127.0.0.1:$wport --services qdm.v1.Sampling --forbid "$work" >long-strings-worker.log 2>&1 \
  || fail "long strings on the worker: $(grep -A2 FINDING long-strings-worker.log | head -20)"
probe_expect INVALID_ARGUMENT "kernels is 3, which the protocol does not define" Sampling/SampleStream '{"model": "tiny", "numImages": 1, "kernels": 3}'
PROBE_SERVER=127.0.0.1:$wport probe_expect INVALID_ARGUMENT "sampler.kind is 7" Sampling/Sample '{"model": "tiny", "numImages": 1, "sampler": {"kind": 7}}'
probe_expect INVALID_ARGUMENT "states is 9" QuantizeJobs/List '{"states": [9]}'
# A 10,000-digit page token: refused in a few words, not echoed.
python3 -c "print('{\"pageToken\": \"' + '9' * 10000 + '\"}')" > long-token.json
probe_expect INVALID_ARGUMENT "page_token is not one this service returned" QuantizeJobs/List @long-token.json
[ ${#out} -lt 300 ] || fail "a long page token is echoed (${#out} characters)"

# Class labels and guidance: checked at the scheduler against the model's classes, batched per
# image on the worker, written into the PNGs.
expect_error INVALID_ARGUMENT "unknown class label 'horse'; valid: 0 T-shirt/top, 1 Trouser" \
  generate --model cond --num 1 --steps 2 --class-label horse --out x
expect_error INVALID_ARGUMENT "one per image (3)" generate --model cond --num 3 --steps 2 --class-label bag sneaker --out x
expect_error INVALID_ARGUMENT "not class-conditional" generate --model tiny --num 1 --steps 2 --guidance 2 --out x
"$qdm" generate --model cond --num 3 --steps 2 --class-label sneaker 8 trouser --guidance 2.5 --out labelled >/dev/null 2>&1 \
  || fail "generate with labels"
python3 - labelled <<'PY' || fail "PNG text chunks lack the labels or guidance"
import struct, sys, zlib
def text(path):
    data, out, i = open(path, "rb").read(), {}, 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8]); body = data[i + 8:i + 8 + n]; i += 12 + n
        if kind == b"tEXt": k, v = body.split(b"\0", 1); out[k.decode()] = v.decode()
    return out
for index, (label, name) in enumerate([("7", "Sneaker"), ("8", "Bag"), ("1", "Trouser")]):
    t = text(f"{sys.argv[1]}/{index:05d}.png")
    assert t["qdm:class_label"] == label and t["qdm:class_name"] == name, t
    assert float(t["qdm:guidance"]) == 2.5, t
PY
"$qdm" generate --model cond --num 1 --steps 2 --out unlabelled >/dev/null 2>&1 || fail "generate from a conditional model without labels"

quick=(--recipe rtn --steps 4 --calib-samples 2)
j0=$("$qdm" submit --model tiny "${quick[@]}" --report-samples 0) || fail "submit report_samples 0"
j1=$("$qdm" submit --model tiny "${quick[@]}" --report-samples 1) || fail "submit report_samples 1"
j2=$("$qdm" submit --model tiny "${quick[@]}" --report-samples 3) || fail "submit report_samples 3"
"$qdm" jobs watch "$j2" > watch.log 2>/dev/null || fail "job $j2: $(cat watch.log)"
grep -q "^$j2: .*% after" watch.log || fail "watch into a log printed no progress lines: $(head -5 watch.log)"
for j in "$j0" "$j1"; do "$qdm" jobs watch "$j" >/dev/null 2>&1 || fail "job $j did not succeed"; done
# Typed report fields in Get and Watch, not only the JSON text.
probe_expect OK '"images":3' QuantizeJobs/Get "{\"id\": \"$j2\"}"
grep -q '"psnrVsFp":[1-9]' <<<"$out" || fail "Get has no typed psnr_vs_fp: $out"
probe_expect OK '"images":3' QuantizeJobs/Watch "{\"id\": \"$j2\"}"
"$qdm" jobs get "$j2" | grep -q "PSNR vs fp32 *[0-9.]* dB" || fail "jobs get shows no readable report: $("$qdm" jobs get "$j2")"
"$qdm" jobs get "$j2" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["report"]["images"] == 3' \
  || fail "jobs get --json"
"$qdm" jobs get "$j1" | grep -q "1 images" || fail "report_samples 1: $("$qdm" jobs get "$j1")"
"$qdm" jobs get "$j0" | grep -q "report: *none" || fail "report_samples 0: $("$qdm" jobs get "$j0")"
# Every artifact is listed and described, whatever its report; the source model by name.
job_artifact() { "$qdm" jobs get "$1" | sed -n 's/^artifact: *//p'; }
art0=$(job_artifact "$j0"); art1=$(job_artifact "$j1")
"$qdm" models list --artifacts | grep -q "^$art0 " || fail "the report_samples 0 artifact is not listed"
"$qdm" models list --artifacts | grep -q "^$art1 " || fail "the report_samples 1 artifact is not listed"
probe_expect OK '"sourceModelName":"tiny"' Models/Describe "{\"name\": \"$art0\"}"
grep -q '"sourceModel":"[0-9a-f]\{64\}"' <<<"$out" || fail "describe lost the source sha256: $out"
"$qdm" generate --artifact "$art1" --num 2 --out gen > gen.log 2>/dev/null || fail "generate: $(cat gen.log)"
grep -q "^generate: .*% after" gen.log || fail "generate into a log printed no progress lines: $(cat gen.log)"

# --- the job store on a full disk, and a read-only state directory ------------------------
# In a mount namespace of its own, the scheduler's state lives on a 3 MB tmpfs; filling the
# disk after start makes SQLite fail. Submit must answer RESOURCE_EXHAUSTED, log the failure
# and count it, and no job it refused may appear later.
fifo=$work/fill; mkfifo "$fifo"
sport=$((base + 6))
unshare --user --map-root-user --mount bash -c '
  set -e; mkdir -p "$1/full" && mount -t tmpfs -o size=3m tmpfs "$1/full"
  "$2" --data "$1/full/data" --model-root "$1/roots" --listen 127.0.0.1:$3 --metrics 127.0.0.1:$(($3 + 1)) >"$1/full.log" 2>&1 &
  echo $! > "$1/full.pid"
  read -r _ < "$4"
  dd if=/dev/zero of="$1/full/filler" bs=64k >/dev/null 2>&1 || true
  echo filled > "$4"
  read -r _ < "$4"   # after the refused upload: what its scratch space holds
  find "$1/full/data/tmp" -mindepth 1 | wc -l > "$1/leftover"
  echo listed > "$4"
  wait' _ "$work" "$sched_bin" $sport "$fifo" &
pids+=($!)
for _ in $(seq 100); do "$qdm" models list --server 127.0.0.1:$sport >/dev/null 2>&1 && break; sleep 0.1; done
ok=$("$qdm" submit --model tiny "${quick[@]}" --server 127.0.0.1:$sport) || fail "submit before the disk filled"
echo go > "$fifo"; read -r _ < "$fifo"
full=0
for i in $(seq 20); do   # the WAL may hold a few pages: submit until the disk refuses
  set +e; out=$("$qdm" submit --model tiny "${quick[@]}" --server 127.0.0.1:$sport --idempotency-key "k$i" 2>&1); rc=$?; set -e
  if [ $rc -ne 0 ]; then full=1; break; fi
done
[ $full = 1 ] || fail "20 submits succeeded on a full disk"
grep -q "error: RESOURCE_EXHAUSTED: .*disk is full" <<<"$out" || fail "full disk answered: $out"
grep -q "\[error\].*the job store failed" full.log || fail "the store failure was not logged: $(tail -3 full.log)"
curl -s 127.0.0.1:$((sport + 1))/metrics > full.metrics
grep -q '^qdm_store_errors_total{method="QuantizeJobs/Submit"} [1-9]' full.metrics || fail "qdm_store_errors_total did not count it"
"$qdm" jobs list --server 127.0.0.1:$sport | grep -q "$ok" || fail "the acknowledged job is gone"
# An upload to the full disk: RESOURCE_EXHAUSTED without a server path, nothing half-written
# left in the scratch space, nothing listed.
expect_error RESOURCE_EXHAUSTED "disk is full" models upload roots/tiny --name big --server 127.0.0.1:$sport
grep -q "$work\|/data/" <<<"$out" && fail "the full-disk upload answer names a server path: $out"
"$qdm" models list --server 127.0.0.1:$sport | grep -q "^big " && fail "the refused upload is listed"
echo go > "$fifo"; read -r _ < "$fifo"
[ "$(cat leftover)" = 0 ] || fail "the refused upload left $(cat leftover) file(s) in the scratch space"
# A read-only state directory: the scheduler exits with a message saying so.
set +e
unshare --user --map-root-user --mount bash -c '
  mkdir -p "$1/ro" && mount -t tmpfs tmpfs "$1/ro" && mkdir -p "$1/ro/data" && mount -o remount,ro "$1/ro" &&
  "$2" --data "$1/ro/data" --model-root "$1/roots" --listen 127.0.0.1:$3 --metrics 127.0.0.1:$(($3 + 1))' \
  _ "$work" "$sched_bin" $((base + 8)) >ro.log 2>&1
rc=$?; set -e
[ $rc -ne 0 ] || fail "a scheduler on a read-only state directory started"
grep -qi "read-only\|readonly" ro.log || fail "read-only state directory: $(cat ro.log)"

# --- secrets never logged --------------------------------------------------------------------
# A PostgreSQL store URL with passwords in its user info and as parameters, logged by a
# scheduler that cannot reach it, in both log formats: the secrets are redacted, the rest stays.
for fmt in text json; do
  set +e
  "$sched_bin" --data redact --model-root roots --listen 127.0.0.1:$((base + 9)) --metrics 127.0.0.1:$((base + 10)) \
    --store 'postgresql://qdm:pw-userinfo-1@127.0.0.1:1/qdm?password=pw-param-2&sslpassword=pw-ssl-3' --store-wait 0 \
    $([ $fmt = json ] && echo --log-json) >redact-$fmt.log 2>&1
  rc=$?; set -e
  [ $rc -ne 0 ] || fail "a scheduler with an unreachable store started"
  grep -q 'postgresql://qdm:\*\*\*@127.0.0.1:1/qdm?password=\*\*\*&sslpassword=\*\*\*' redact-$fmt.log \
    || fail "$fmt log: the store URL is not logged redacted: $(head -3 redact-$fmt.log)"
  grep -q 'pw-userinfo-1\|pw-param-2\|pw-ssl-3' redact-$fmt.log && fail "$fmt log: a store password was logged"
done
echo "hardening_test: all passed"
