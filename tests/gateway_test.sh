#!/usr/bin/env bash
# qdm-gateway, the HTTP/JSON face of the public API, in front of a real scheduler and worker on
# loopback (bearer tokens and TLS on: the gateway dials the scheduler over TLS and serves HTTPS;
# without the scheduler's CA it gets nothing through), driven with curl as an HTTP client would: lists and describes
# models, submits a quantize job and watches it as streamed JSON to the end, samples PNGs
# (base64 in JSON) from a model and from the job's artifact, the same pixels as the gRPC client
# gets, streams a sampling request's progress, sees gRPC errors as their HTTP codes (401, 403,
# 404, 400) with the status message, and generates images from a prompt through the
# OpenAI-compatible POST /v1/images/generations.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/tiny_model.sh"
src="${QDM_SOURCE_DIR:?}"; qdm="${QDM_BIN:?}"; sched_bin="${QDM_SCHEDULER_BIN:?}"; worker_bin="${QDM_WORKER_BIN:?}"
gw_bin="${QDM_GATEWAY_BIN:?}"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/body" ] && { echo "--- last body"; head -c 600 "$work/body"; echo; } >&2
  for f in "$work"/*.log; do echo "--- $f"; tail -15 "$f"; done >&2
  exit 1
}
base=$((20000 + RANDOM % 20000))
sched_port=$base gw_port=$((base + 5))
export QDM_SERVER=localhost:$sched_port QDM_THREADS=1 QDM_TOKEN=wtok QDM_TLS_CA=$work/ca.pem
ossl() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1"; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 30 -subj "/CN=qdm test CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
ossl req -newkey rsa:2048 -nodes -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=localhost"
ossl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -out "$work/server.pem" -days 30 \
  -extfile "$work/san.ext"
tls=(--tls-cert "$work/server.pem" --tls-key "$work/server.key")
mkdir -p "$work/roots"
tiny_model "$work/roots/tiny"
cp -r "$src/models/fmnist-t2i" "$work/roots/t2i"
# The gateways start first: a gateway up before its scheduler (or while it restarts) redials
# within 2 s of it listening, not after gRPC's default backoff (by then ~6 s, up to 2 minutes).
"$gw_bin" --listen 127.0.0.1:$gw_port --scheduler localhost:$sched_port --scheduler-ca "$work/ca.pem" "${tls[@]}" \
  --images-model t2i --images-guidance 3 >>"$work/gateway.log" 2>&1 &
pids+=("$!")
# A second gateway that dials the scheduler in plaintext: nothing gets through.
"$gw_bin" --listen 127.0.0.1:$((gw_port + 1)) --scheduler localhost:$sched_port >>"$work/gateway-plain.log" 2>&1 &
pids+=("$!")
url=https://localhost:$gw_port
curl() { command curl --cacert "$work/ca.pem" "$@"; }
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$url/healthz" >/dev/null || fail "the gateway did not come up"
[ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer rtok" "$url/v1/models")" = 503 ] \
  || fail "GET /v1/models without a scheduler is not 503"
sleep 10
"$sched_bin" --data "$work/data" --model-root "$work/roots" --listen 127.0.0.1:$sched_port --metrics 127.0.0.1:$((base + 1)) \
  --tokens rtok:read,wtok:write --worker-token wk --lease-seconds 5 --max-images 16 "${tls[@]}" --worker-ca "$work/ca.pem" \
  >>"$work/scheduler.log" 2>&1 &
pids+=("$!")
for _ in $(seq 200); do grep -q "listening on port" "$work/scheduler.log" && break; sleep 0.1; done
up=""
for _ in $(seq 30); do
  [ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer rtok" "$url/v1/models")" = 200 ] && up=1 && break
  sleep 0.1
done
[ -n "$up" ] || fail "the gateway did not reach the scheduler within 3 s of it listening"
"$worker_bin" --scheduler localhost:$sched_port --scheduler-ca "$work/ca.pem" "${tls[@]}" --worker-token wk --listen 127.0.0.1:$((base + 2)) --advertise 127.0.0.1:$((base + 2)) \
  --id w1 --metrics 127.0.0.1:$((base + 3)) --cache-dir "$work/worker" --classifier "$work/none" --max-batch 8 >>"$work/worker.log" 2>&1 &
pids+=("$!")
command curl -sf "http://localhost:$gw_port/healthz" >/dev/null 2>&1 && fail "the HTTPS gateway answered plain HTTP"
for _ in $(seq 100); do grep -q "connected to the scheduler" "$work/worker.log" && break; sleep 0.1; done

# call METHOD PATH [JSON] [TOKEN]: the HTTP code; the body in $work/body.
call() {
  local method=$1 path=$2 body=${3:-} token=${4-wtok}
  local args=(-sS -X "$method" -o "$work/body" -w "%{http_code}")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H "Content-Type: application/json" -d "$body")
  curl "${args[@]}" "$url$path"
}
expect() {  # expect CODE TEXT METHOD PATH [JSON] [TOKEN]
  local want=$1 text=$2; shift 2
  local code; code=$(call "$@")
  [ "$code" = "$want" ] || fail "$1 $2: HTTP $code, expected $want"
  grep -q -- "$text" "$work/body" || fail "$1 $2: the answer does not say '$text'"
}
json() { python3 -c "import json, sys; d = json.load(open('$work/body')); print($1)"; }

for _ in $(seq 100); do command curl -sf "http://localhost:$((gw_port + 1))/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
code=$(command curl -sS -o "$work/body" -w "%{http_code}" -H "Authorization: Bearer wtok" "http://localhost:$((gw_port + 1))/v1/models")
[ "$code" = 503 ] || fail "a gateway dialing the TLS scheduler in plaintext answered HTTP $code, expected 503"

# Models: list and describe; errors as HTTP codes with the status message.
expect 200 '"name": *"tiny"' GET /v1/models
[ "$(json "sorted(m['name'] for m in d['models'])")" = "['t2i', 'tiny']" ] || fail "models list: $(cat "$work/body")"
expect 200 '"block_out_channels' GET /v1/models/tiny
expect 401 "needs a bearer token" GET /v1/models "" ""
expect 401 "not valid" GET /v1/models "" nope
expect 404 "no model or artifact named" GET /v1/models/nothing
expect 403 "read-only" POST /v1/jobs '{"model": "tiny", "options": {"recipe": "rtn"}}' rtok

# A quantize job: submit, then watch it as streamed JSON until it succeeds.
expect 400 "weight_bits" POST /v1/jobs '{"model": "tiny", "options": {"recipe": "rtn", "weight_bits": 99}}'
expect 200 '"id"' POST /v1/jobs '{"model": "tiny", "options": {"recipe": "rtn", "weight_bits": 8, "act_bits": 8,
  "sampler": {"steps": 4}, "calib_samples": 2, "report_samples": 2}}'
job=$(json "d['id']")
expect 200 "\"id\": *\"$job\"" GET "/v1/jobs/$job"
expect 200 "\"$job\"" GET "/v1/jobs?page_size=5"
timeout 240 curl --cacert "$work/ca.pem" -sS -N -H "Authorization: Bearer wtok" "$url/v1/jobs/$job:watch" > "$work/watch.ndjson" || fail "watch: $(tail -2 "$work/watch.ndjson")"
python3 - "$work/watch.ndjson" <<'PY' || fail "the watch stream: $(tail -c 400 "$work/watch.ndjson")"
import json, sys
events = [json.loads(line)["result"] for line in open(sys.argv[1]) if line.strip()]
assert events, "no event"
assert events[-1]["state"] == "SUCCEEDED", events[-1]["state"]
progress = [e["progress"] for e in events]
assert progress == sorted(progress), progress
PY
artifact=$(python3 -c "import json; print([json.loads(l)['result'] for l in open('$work/watch.ndjson') if l.strip()][-1]['artifact'])")
[ -n "$artifact" ] || fail "the finished job names no artifact"
expect 400 "finished" POST "/v1/jobs/$job:cancel" '{}'

# Sampling: PNGs as base64, the same as the gRPC client's; from the job's artifact too.
expect 200 '"png"' POST /v1/models/tiny:sample '{"num_images": 2, "seed": 3, "sampler": {"steps": 4}}'
python3 - "$work/body" "$work/http_png" <<'PY' || fail "the sampled images"
import base64, json, os, sys
d = json.load(open(sys.argv[1]))
os.makedirs(sys.argv[2])
assert [i["index"] for i in d["images"]] == [0, 1], d
for i in d["images"]:
    png = base64.b64decode(i["png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    open(os.path.join(sys.argv[2], "%05d.png" % i["index"]), "wb").write(png)
PY
"$qdm" generate --model tiny --num 2 --seed 3 --steps 4 --unary --out "$work/grpc_png" >/dev/null 2>&1 || fail "qdm generate"
python3 - "$work/http_png" "$work/grpc_png" <<'PY' || fail "the gateway's PNGs differ from the gRPC client's"
import sys, zlib
def pixels(path):  # the decompressed IDAT stream: the image, whatever the text chunks say
    d, i, idat = open(path, "rb").read(), 8, b""
    while i < len(d):
        n = int.from_bytes(d[i:i + 4], "big"); kind = d[i + 4:i + 8]
        if kind == b"IDAT": idat += d[i + 8:i + 8 + n]
        i += 12 + n
    return zlib.decompress(idat)
for k in ("00000.png", "00001.png"):
    assert pixels(sys.argv[1] + "/" + k) == pixels(sys.argv[2] + "/" + k), k
PY
expect 200 '"png"' POST "/v1/artifacts/$artifact:sample" '{"num_images": 1, "seed": 1}'
expect 404 "no fp32 model named" POST /v1/models/nothing:sample '{"num_images": 1}'
expect 400 "num_images" POST /v1/models/tiny:sample '{"num_images": 0}'
expect 400 "" POST /v1/models/tiny:sample '{"num_images": "two"}'
# SampleStream: progress events, then each image, then the timings.
code=$(call POST /v1/models/tiny:sampleStream '{"num_images": 1, "seed": 3, "sampler": {"steps": 4}}')
[ "$code" = 200 ] || fail "sampleStream: HTTP $code"
python3 - "$work/body" <<'PY' || fail "the sample stream: $(head -c 400 "$work/body")"
import json, sys
events = [json.loads(line)["result"] for line in open(sys.argv[1]) if line.strip()]
assert any("progress" in e and e["progress"] for e in events), events[:2]
assert sum(1 for e in events if e.get("image")) == 1
assert events[-1].get("done"), events[-1]
PY

# OpenAI's images API: a prompt to base64 PNGs of the requested size; its error shape.
expect 200 '"b64_json"' POST /v1/images/generations '{"prompt": "a photo of a sneaker", "n": 2, "size": "32x32", "response_format": "b64_json"}'
python3 - "$work/body" <<'PY' || fail "images/generations: $(head -c 300 "$work/body")"
import base64, json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d["created"], int) and len(d["data"]) == 2
for item in d["data"]:
    png = base64.b64decode(item["b64_json"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == (32).to_bytes(4, "big") * 2, png[:24]
    assert b"a photo of a sneaker" in png
PY
expect 200 '"b64_json"' POST /v1/images/generations '{"prompt": "a coat", "model": "t2i", "size": "64x32", "seed": 4}'
expect 400 '"invalid_request_error"' POST /v1/images/generations '{"prompt": "a coat", "response_format": "url"}'
expect 400 "prompt is required" POST /v1/images/generations '{"n": 1}'
expect 400 "size must be" POST /v1/images/generations '{"prompt": "a coat", "size": "big"}'
expect 400 "no text encoder" POST /v1/images/generations '{"prompt": "a coat", "model": "tiny"}'
expect 404 "no model or artifact named" POST /v1/images/generations '{"prompt": "a coat", "model": "dall-e-3"}'
expect 401 "authentication_error" POST /v1/images/generations '{"prompt": "a coat"}' ""
expect 405 "POST" GET /v1/images/generations
# The access log: one line per request, no tokens.
grep -q 'GET "/v1/models" 200' "$work/gateway.log" || fail "the gateway's access log has no line for GET /v1/models"
grep -q 'wtok' "$work/gateway.log" && fail "the gateway logged a token"
# Bodies over 4 MiB are refused before they are read.
head -c 5000000 /dev/zero | tr '\0' 'a' > "$work/big.txt"
code=$(curl -sS -o "$work/body" -w "%{http_code}" -H "Authorization: Bearer wtok" -H "Content-Type: application/json" \
  --data-binary @"$work/big.txt" "$url/v1/jobs")
[ "$code" = 413 ] || fail "a 5 MB body: HTTP $code, expected 413"
# gRPC from Python (examples/python/qdm_client.py) on stubs generated from the same protos.
/usr/bin/python3 -c "import grpc, google.protobuf" 2>/dev/null && [ -x /usr/bin/grpc_python_plugin ] \
  || fail "python3-grpcio, python3-protobuf or grpc_python_plugin missing (.ci/setup installs them)"
{
  googleapis=/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis
  mkdir -p "$work/pygen"
  (cd "$src" && protoc -I proto -I "$googleapis" --python_out="$work/pygen" --grpc_out="$work/pygen" \
    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin proto/qdm/v1/*.proto "$googleapis"/google/api/{annotations,http}.proto) \
    || fail "protoc for Python"
  PYTHONPATH="$work/pygen" /usr/bin/python3 "$src/examples/python/qdm_client.py" --server localhost:$sched_port --ca "$work/ca.pem" \
    --token wtok --model t2i --prompt "a photo of a sneaker" --steps 4 --out "$work/py.png" > "$work/py.out" 2>&1 \
    || fail "the Python client: $(tail -3 "$work/py.out")"
  grep -q "^model    t2i" "$work/py.out" || fail "the Python client did not list the models: $(head -3 "$work/py.out")"
  head -c 8 "$work/py.png" | od -An -c | grep -q "P   N   G" || fail "the Python client wrote no PNG"
  PYTHONPATH="$work/pygen" /usr/bin/python3 "$src/examples/python/qdm_client.py" --server localhost:$sched_port --ca "$work/ca.pem" \
    --model t2i --prompt x > "$work/py.out" 2>&1 && fail "the Python client without a token succeeded"
  grep -q "UNAUTHENTICATED" "$work/py.out" || fail "the Python client's error: $(tail -2 "$work/py.out")"
}

# The descriptor set Envoy's transcoder reads (deploy/envoy/envoy.yaml) holds the same services
# and HTTP rules.
if [ -n "${QDM_DESCRIPTOR_SET:-}" ]; then
  protoc --decode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto < "$QDM_DESCRIPTOR_SET" > "$work/descriptors.txt" \
    || fail "the descriptor set does not decode"
  for rule in '/v1/models/{model}:sample' '/v1/jobs/{id}:watch' '/v1/artifacts/{artifact}:sampleStream'; do
    grep -qF "$rule" "$work/descriptors.txt" || fail "the descriptor set lacks the HTTP rule $rule"
  done
  for service in $(sed -n 's/.*services: \[\(.*\)\]/\1/p' "$src/deploy/envoy/envoy.yaml" | tr -d ','); do
    grep -q "name: \"${service#qdm.v1.}\"" "$work/descriptors.txt" || fail "envoy.yaml names $service, which the descriptor set lacks"
  done
fi
echo "gateway_test: ok"
