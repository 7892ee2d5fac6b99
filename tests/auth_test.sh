#!/usr/bin/env bash
# TLS and bearer tokens against a running scheduler and worker: no token, a wrong token and a
# read-only token submitting are refused with the right status; plaintext, untrusted and
# expired certificates are refused; client certificates when required; the worker token on the
# worker protocol; health stays reachable for probes on the plaintext health port.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/expect_error.sh"
qdm="${QDM_BIN:?}"; sched_bin="${QDM_SCHEDULER_BIN:?}"; worker_bin="${QDM_WORKER_BIN:?}"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f"; tail -8 "$f"; done >&2; exit 1; }
cd "$work"

# A CA, a server certificate for localhost, a client certificate, an expired server
# certificate, and a second (untrusted) CA.
ossl() { openssl "$@" >/dev/null 2>&1 || fail "openssl $1"; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=qdm test CA"
ossl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 30 -subj "/CN=other CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
ossl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
ossl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile san.ext
ossl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=qdm client"
ossl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 30
mkdir -p ca/newcerts && touch ca/index.txt && echo 01 > ca/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
dir = ./ca
database = ./ca/index.txt
new_certs_dir = ./ca/newcerts
serial = ./ca/serial
default_md = sha256
policy = any
copy_extensions = copy
[any]
commonName = supplied
CNF
ossl req -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
  -startdate 20200101000000Z -enddate 20200102000000Z

base=$((20000 + RANDOM % 20000))
port=$base; health=$((base + 2))
mkdir -p roots
echo '{"sample_size": 32, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
  "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
  "layers_per_block": 1, "norm_num_groups": 4}' > tiny.json
"$qdm" train --out roots/tiny --iters 1 --batch 2 --config tiny.json >train.log 2>&1 || fail "train"

# The worker protocol is closed by default: API tokens or TLS without a worker token refuse
# to start, saying which flag to set; only the fully open development mode runs, with a warning.
refuses() {  # LOG MESSAGE BIN ARGS...
  local log=$1 msg=$2; shift 2
  if timeout 20 "$@" >"$log" 2>&1; then fail "$* started"; fi
  grep -q -- "$msg" "$log" || fail "$*: no '$msg' in: $(tail -3 "$log")"
}
refuses open1.log "Set --worker-token" "$sched_bin" --data open1 --model-root roots --listen 127.0.0.1:$((base + 11)) \
  --metrics 127.0.0.1:$((base + 12)) --tokens rtok:read
QDM_TOKENS=wtok:write refuses open2.log "Set --worker-token" "$sched_bin" --data open2 --model-root roots \
  --listen 127.0.0.1:$((base + 11)) --metrics 127.0.0.1:$((base + 12))
refuses open3.log "Set --worker-token" "$sched_bin" --data open3 --model-root roots --listen 127.0.0.1:$((base + 11)) \
  --metrics 127.0.0.1:$((base + 12)) --tls-cert server.pem --tls-key server.key
refuses open4.log "Set --worker-token" "$worker_bin" --scheduler localhost:$port --scheduler-ca ca.pem \
  --listen 127.0.0.1:$((base + 13)) --metrics 127.0.0.1:$((base + 14)) --cache-dir w0
"$sched_bin" --data open5 --model-root roots --listen 127.0.0.1:$((base + 11)) --metrics 127.0.0.1:$((base + 12)) >open5.log 2>&1 &
dev=$!
for _ in $(seq 50); do grep -q "listening" open5.log && break; sleep 0.1; done
kill -9 $dev
grep -q "development mode" open5.log || fail "the open development mode gives no warning: $(tail -3 open5.log)"

"$sched_bin" --data data --model-root roots --listen 127.0.0.1:$port --metrics 127.0.0.1:$((base + 1)) \
  --health-listen 127.0.0.1:$health --tls-cert server.pem --tls-key server.key \
  --tokens rtok:read,wtok:write --worker-token wk >scheduler.log 2>&1 &
pids+=($!)
"$worker_bin" --scheduler localhost:$port --scheduler-ca ca.pem --worker-token wk --listen 127.0.0.1:$((base + 3)) \
  --advertise 127.0.0.1:$((base + 3)) --metrics 127.0.0.1:$((base + 4)) --cache-dir w1 >worker.log 2>&1 &
pids+=($!)
"$worker_bin" --scheduler localhost:$port --scheduler-ca ca.pem --worker-token wrong --listen 127.0.0.1:$((base + 5)) \
  --advertise 127.0.0.1:$((base + 5)) --metrics 127.0.0.1:$((base + 6)) --cache-dir w2 --id intruder >intruder.log 2>&1 &
pids+=($!)

export QDM_SERVER=localhost:$port
tls=(--tls-ca ca.pem)
for _ in $(seq 100); do "$qdm" health --server 127.0.0.1:$health >/dev/null 2>&1 && break; sleep 0.1; done
"$qdm" health --server 127.0.0.1:$health | grep -q SERVING || fail "health on the plaintext port"

expect_error UNAUTHENTICATED "needs a bearer token" models list "${tls[@]}"
expect_error UNAUTHENTICATED "not valid" models list "${tls[@]}" --token nope
"$qdm" models list "${tls[@]}" --token rtok | grep -q "^tiny " || fail "read token cannot list"
expect_error PERMISSION_DENIED "read-only" submit --model tiny --recipe rtn --steps 2 --calib-samples 1 --report-samples 0 "${tls[@]}" --token rtok
expect_error PERMISSION_DENIED "read-only" generate --model tiny --num 1 --steps 2 --out x "${tls[@]}" --token rtok
job=$("$qdm" submit --model tiny --recipe rtn --steps 2 --calib-samples 1 --report-samples 0 "${tls[@]}" --token wtok) \
  || fail "write token cannot submit"
"$qdm" jobs watch "$job" "${tls[@]}" --token rtok >/dev/null 2>&1 || fail "job $job did not succeed over TLS"
"$qdm" generate --model tiny --num 2 --steps 2 --out gen "${tls[@]}" --token wtok >/dev/null 2>&1 || fail "generate over TLS"
[ -s gen/00001.png ] || fail "no image"
expect_error UNAVAILABLE "" models list --token rtok                              # plaintext to a TLS port
expect_error UNAVAILABLE "" models list --tls-ca other-ca.pem --token rtok         # untrusted server certificate
grep -q "heartbeat failed (16)" intruder.log || fail "a worker with a wrong token was not refused"
grep -q "intruder" scheduler.log && fail "the scheduler accepted the intruder"

# An expired server certificate is refused by clients.
kill -9 "${pids[0]}"
"$sched_bin" --data data2 --model-root roots --listen 127.0.0.1:$((base + 7)) --metrics 127.0.0.1:$((base + 8)) \
  --tls-cert expired.pem --tls-key expired.key --worker-token wk >expired.log 2>&1 &
pids+=($!)
sleep 1
expect_error UNAVAILABLE "" models list "${tls[@]}" --server localhost:$((base + 7))

# Client certificates required.
"$sched_bin" --data data3 --model-root roots --listen 127.0.0.1:$((base + 9)) --metrics 127.0.0.1:$((base + 10)) \
  --tls-cert server.pem --tls-key server.key --tls-client-ca ca.pem --worker-token wk >mtls.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do "$qdm" models list "${tls[@]}" --tls-cert client.pem --tls-key client.key --server localhost:$((base + 9)) >/dev/null 2>&1 && break; sleep 0.1; done
"$qdm" models list "${tls[@]}" --tls-cert client.pem --tls-key client.key --server localhost:$((base + 9)) | grep -q "^tiny " \
  || fail "a client certificate signed by the CA was refused"
expect_error UNAVAILABLE "" models list "${tls[@]}" --server localhost:$((base + 9))
echo "auth_test: all passed"
