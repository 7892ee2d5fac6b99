#!/usr/bin/env bash
# Two qdm-scheduler replicas on one PostgreSQL store (a throw-away cluster) and one shared data
# folder, two workers: a job submitted through replica A is watched and leased through replica
# B; a sampling request arriving at B reaches a worker connected only to A; kill -9 of the
# replica a worker is connected to while its job runs: the worker fails over to the other, the
# job completes exactly once on its first lease, nothing acknowledged is lost. Prints the
# failover times (kill -9 to the job's next progress seen through the other replica). A third
# replica started while the database is down waits for it (--store-wait) and then serves; 16
# concurrent clients over two replicas never queue more than the bound.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/expect_error.sh"
source "$(cd "$(dirname "$0")" && pwd)/tiny_model.sh"
src="${QDM_SOURCE_DIR:?}"; qdm="${QDM_BIN:?}"; sched_bin="${QDM_SCHEDULER_BIN:?}"; worker_bin="${QDM_WORKER_BIN:?}"
work=$(mktemp -d)
pids=()
cleanup() {
  exec 2>/dev/null  # no "Killed" job notices
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$src/tests/pg_cluster.sh" stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f"; tail -15 "$f"; done >&2
  exit 1
}
store=$(bash "$src/tests/pg_cluster.sh" start "$work/pg")
base=$((20000 + RANDOM % 20000))
port_a=$base; port_b=$((base + 2))
export QDM_THREADS=1

# Replica B's wall clock runs an hour ahead of A's (libfaketime): leases and retry times are
# timed by the database's clock, so neither replica expires the other's leases early.
# The library itself, not the faketime wrapper, which would fork: the pid killed is the scheduler's.
libfaketime=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1)
[ -n "$libfaketime" ] || fail "libfaketime missing (Debian package faketime; .ci/setup installs it)"
skew=(env LD_PRELOAD="$libfaketime" FAKETIME=+1h FAKETIME_DONT_FAKE_MONOTONIC=1)
launch_replica() {  # launch_replica a|b|c PORT [MORE FLAGS]
  local clock=(); [ "$1" = b ] && clock=("${skew[@]}")
  "${clock[@]}" "$sched_bin" --data "$work/data" --store "$store" --model-root "$work/roots" --listen 127.0.0.1:$2 \
    --metrics 127.0.0.1:$(($2 + 1)) --lease-seconds 5 --max-queued-jobs 20 "${@:3}" >>"$work/scheduler_$1.log" 2>&1 &
  pids+=("$!")
}
wait_up() {
  for _ in $(seq 100); do QDM_SERVER=127.0.0.1:$1 "$qdm" models list >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "the replica on port $1 did not come up"
}
start_worker() {  # start_worker N SCHEDULERS
  local n=$1 port=$((base + 10 + 2 * $1))
  "$worker_bin" --scheduler "$2" --listen 127.0.0.1:$port --advertise 127.0.0.1:$port --id "w$n" \
    --metrics 127.0.0.1:$((port + 1)) --cache-dir "$work/worker$n" --classifier "$work/none" >>"$work/worker$n.log" 2>&1 &
  eval "worker$n=$!"; pids+=("$!")
}
on() { local r=$1; shift; QDM_SERVER="127.0.0.1:$r" "$qdm" "$@"; }
field() { on "$1" jobs get "$2" | sed -n "s/^$3: *//p"; }
wait_state() {  # wait_state PORT JOB STATE SECONDS
  for _ in $(seq $(($4 * 10))); do [ "$(field "$1" "$2" state)" = "$3" ] && return 0; sleep 0.1; done
  fail "job $2 not $3 after $4 s (is $(field "$1" "$2" state))"
}

mkdir -p "$work/roots"
tiny_model "$work/roots/tiny"

# Two replicas starting at once on the empty database: one migration, both serve.
launch_replica a $port_a; sched_a=$!
launch_replica b $port_b
wait_up $port_a; wait_up $port_b

# Uploaded through A, listed through B (the shared data folder).
on $port_a models upload "$work/roots/tiny" --name tiny-up >/dev/null || fail "upload through A"
on $port_b models list | grep -q "^tiny-up " || fail "a model uploaded through A is not listed by B"

# A job submitted through A is seen through B, with the same idempotency key answering the same job.
j=$(on $port_a submit --model tiny --recipe rtn --steps 4 --calib-samples 2 --report-samples 0 --idempotency-key k1)
[ "$(on $port_b submit --model tiny --recipe rtn --steps 4 --calib-samples 2 --report-samples 0 --idempotency-key k1)" = "$j" ] \
  || fail "the idempotency key did not return job $j through B"
[ "$(field $port_b "$j" state)" = queued ] || fail "job $j not queued as seen through B"

# Worker 1 talks to A first (B if A goes away); it leases the job.
start_worker 1 "127.0.0.1:$port_a,127.0.0.1:$port_b"
wait_state $port_b "$j" succeeded 60

# Sampling through B reaches worker 1, which is connected to A only.
on $port_b generate --model tiny --num 2 --steps 3 --seed 1 --out "$work/gen" >/dev/null 2>&1 \
  || fail "sampling through B did not reach the worker connected to A"
[ "$(ls "$work/gen" | grep -c '\.png$')" = 2 ] || fail "sampling through B wrote $(ls "$work/gen" | wc -l) files"

# Store-wide gauges (jobs by state, the quantize queue, connected workers) read the same on
# both replicas: the dashboard and the alerts take their max over replicas, never the sum.
store_gauges() { curl -sf "http://127.0.0.1:$(($1 + 1))/metrics" | grep -E '^qdm_(jobs|workers|queue_depth)[{ ]' | sort; }
same=""
for _ in $(seq 50); do
  ga=$(store_gauges $port_a); gb=$(store_gauges $port_b)
  if [ "$ga" = "$gb" ] && grep -q '^qdm_jobs{state="succeeded"} 1$' <<<"$ga" && grep -q '^qdm_workers 1$' <<<"$ga"; then
    same=1; break
  fi
  sleep 0.2
done
[ -n "$same" ] || fail "store-wide gauges differ between the replicas or miss the job and the worker:
A: $ga
B: $gb"

# kill -9 of replica A while worker 1 runs a job: it fails over to B, the job completes once,
# on its first lease.
long=$(on $port_b submit --model tiny --recipe qdiffusion --steps 20 --calib-samples 4 --iters 150 --act-iters 0 --report-samples 2)
wait_state $port_b "$long" running 60
grep -q "$long" "$work/worker1.log" || fail "worker 1 did not take job $long"
before=$(on $port_b jobs get "$long" | sed -n 's/^progress: *//p')
kill -9 "$sched_a"; t0=$(date +%s.%N)
on $port_b models list >/dev/null || fail "B does not answer after A was killed"
t_call=$(echo "$(date +%s.%N) - $t0" | bc)
t_progress=""
for _ in $(seq 300); do
  now=$(on $port_b jobs get "$long" | sed -n 's/^progress: *//p')
  if [ "$now" != "$before" ]; then t_progress=$(echo "$(date +%s.%N) - $t0" | bc); break; fi
  sleep 0.1
done
[ -n "$t_progress" ] || fail "no progress of job $long through B within 30 s of killing A"
wait_state $port_b "$long" succeeded 240
[ "$(field $port_b "$long" attempt)" = 1 ] || fail "job $long completed on attempt $(field $port_b "$long" attempt), not its first lease"
art=$(field $port_b "$long" artifact)
[ "$(on $port_b models list --artifacts | grep -c "^$art ")" = 1 ] || fail "artifact $art stored other than once"
# Everything acknowledged is still there.
for id in "$j" "$long"; do [ "$(field $port_b "$id" state)" = succeeded ] || fail "job $id lost"; done
# A replica that starts while the database is down waits for it (--store-wait) and then serves.
bash "$src/tests/pg_cluster.sh" halt "$work/pg"
port_c=$((base + 4))
launch_replica c $port_c --store-wait 60; sched_c=$!
for _ in $(seq 100); do grep -q "cannot connect to the PostgreSQL store.*retrying" "$work/scheduler_c.log" && break; sleep 0.1; done
grep -q "retrying" "$work/scheduler_c.log" || fail "replica C did not say it waits for the database"
kill -0 "$sched_c" 2>/dev/null || fail "replica C exited while the database was down"
bash "$src/tests/pg_cluster.sh" resume "$work/pg"
wait_up $port_c
[ "$(field $port_c "$long" state)" = succeeded ] || fail "job $long not seen through replica C"

# 16 concurrent clients over replicas B and C, 3 submissions each, nothing leasing: the queue
# bound (20) holds exactly across the replicas; every other submission is RESOURCE_EXHAUSTED.
kill -9 "$worker1"
clients=()
for c in $(seq 16); do
  ( port=$port_b; [ $((c % 2)) = 0 ] && port=$port_c
    for k in 1 2 3; do
      if out=$(on $port submit --model tiny --recipe rtn --steps 4 --calib-samples 2 --report-samples 0 2>&1); then
        echo "ok $out"
      else
        grep -q "error: RESOURCE_EXHAUSTED: " <<<"$out" && echo full || echo "other $out"
      fi
    done ) > "$work/client$c.out" &
  clients+=("$!")
done
wait "${clients[@]}"
cat "$work"/client*.out > "$work/clients.out"
[ "$(grep -c '^ok ' "$work/clients.out")" = 20 ] || fail "$(grep -c '^ok ' "$work/clients.out") of 48 concurrent submissions accepted under a bound of 20"
[ "$(grep -c '^full$' "$work/clients.out")" = 28 ] || fail "submissions refused otherwise than RESOURCE_EXHAUSTED: $(grep '^other' "$work/clients.out" | head -3)"
for port in $port_b $port_c; do
  n=$(on $port jobs list --state queued --page-size 100 | grep -c '^job-' || true)
  [ "$n" = 20 ] || fail "$n queued jobs seen through port $port, not 20"
done

echo "failover: first call through B after kill -9 of A: ${t_call} s; the running job's next progress through B: ${t_progress} s"
echo "replicas_test: ok"
