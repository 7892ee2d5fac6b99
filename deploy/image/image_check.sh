#!/usr/bin/env bash
# The Dockerfile's images, emulated without a Docker engine: for the build, scheduler and CPU
# worker stages, a Debian 12 minbase root filesystem (what debian:12-slim is), the packages the
# stage installs, the binaries it copies from build/bin, its user and QDM_* environment. Then the
# scheduler and a worker run from those filesystems, as user 10001 with only the image's
# environment (addresses moved to loopback ports), and the host's qdm client lists models,
# generates images and runs a quantize job through them.
#   sudo bash deploy/image/image_check.sh [WORK]      (after bash .ci/setup; WORK=var/image_check)
#   sudo BUILD=1 bash deploy/image/image_check.sh     (the build stage compiles the binaries too)
# Needs root (chroot, mounts), debootstrap and deb.debian.org: it downloads about 1 GB the first
# time (kept under WORK for the next run), so it is a deployment check, not a CI test.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD; work=$(realpath -m "${1:-var/image_check}"); bin=$src/build/bin
stages="python3 $src/deploy/image/dockerfile_stages.py $src/Dockerfile"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (chroot)"
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
mkdir -p "$work"

# debian:12-slim is a minbase bootstrap with the bookworm, -updates and -security sources.
if [ ! -f "$work/base/.done" ]; then
  rm -rf "$work/base"
  debootstrap --variant=minbase bookworm "$work/base" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || fail "debootstrap (log: $work/debootstrap.log)"
  cat > "$work/base/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  touch "$work/base/.done"
fi

mounts=()
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true; wait 2>/dev/null || true
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

# rootfs STAGE: the stage's filesystem, packages installed as its RUN line does.
rootfs() {
  local stage=$1 root=$work/$1 packages copies b missing
  packages=$($stages "$stage" packages | tr '\n' ' '); copies=$($stages "$stage" copies)
  if [ ! -f "$root/.packages" ] || [ "$(cat "$root/.packages")" != "$packages" ]; then
    rm -rf "$root"; cp -a "$work/base" "$root"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
      $packages >"$work/$stage.apt.log" 2>&1 || fail "$stage: apt-get install (log: $work/$stage.apt.log)"
    chroot "$root" useradd --system --uid 10001 --home /var/lib/qdm qdm 2>/dev/null  # as the Dockerfile
    echo "$packages" > "$root/.packages"
  fi
  mkdir -p "$root/var/lib/qdm" "$root/opt/qdm"; chroot "$root" chown qdm /var/lib/qdm
  for b in $copies; do install -m 755 "$bin/$b" "$root/usr/local/bin/$b"; done
  echo "image_check: $stage filesystem ready ($(du -sxh "$root" | cut -f1))"
  for d in proc dev sys; do mount --bind "/$d" "$root/$d"; mounts+=("$root/$d"); done
  for b in $copies; do
    missing=$(chroot "$root" ldd "/usr/local/bin/$b" | grep "not found" || true)
    [ -z "$missing" ] || fail "$stage: $b cannot load: $missing"
  done
}

# start STAGE VAR=VALUE...: the entrypoint as user 10001 with the image's environment, overridden.
start() {
  local stage=$1; shift
  local env=() kv
  while read -r kv; do env+=("$kv"); done < <($stages "$stage" env)
  chroot --userspec=10001:10001 "$work/$stage" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/lib/qdm \
    "${env[@]}" "$@" "$($stages "$stage" entrypoint)" >"$work/$stage.log" 2>&1 &
}

# The build stage: its packages, the committed tree as /src, and its CMake configure step (BUILD=1:
# its whole RUN line, about 30 minutes on 2 cores; the runtime images then get those binaries).
rootfs build
rm -rf "$work/build/src"; mkdir -p "$work/build/src"; git archive HEAD | tar -x -C "$work/build/src"
configure=$($stages build runs | grep -m1 "cmake -S")
[ "${BUILD:-0}" = 1 ] || configure=${configure%%&& cmake --build*}
chroot "$work/build" /bin/sh -c "cd /src && $configure" >"$work/build.cmake.log" 2>&1 \
  || { tail -30 "$work/build.cmake.log"; fail "build stage: $configure"; }
echo "image_check: build stage ran: $configure"
[ "${BUILD:-0}" = 1 ] && bin=$work/build/src/build/bin

rootfs scheduler
rm -rf "$work/scheduler/opt/qdm/models"; cp -r "$src/models" "$work/scheduler/opt/qdm/models"
chroot "$work/scheduler" chown -R qdm /opt/qdm/models; rm -rf "$work/scheduler/var/lib/qdm/"*
rootfs worker
rm -rf "$work/worker/opt/qdm/models"; mkdir -p "$work/worker/opt/qdm/models"
cp -r "$src/models/fmnist-classifier" "$work/worker/opt/qdm/models/"

start scheduler QDM_LISTEN=127.0.0.1:58051 QDM_METRICS=127.0.0.1:58464
start worker QDM_SCHEDULER=127.0.0.1:58051 QDM_LISTEN=127.0.0.1:58052 QDM_ADVERTISE=127.0.0.1:58052 \
  QDM_METRICS=127.0.0.1:58465
export QDM_SERVER=127.0.0.1:58051
qdm=$bin/qdm
for _ in $(seq 150); do "$qdm" health >/dev/null 2>&1 && break; sleep 0.2; done
"$qdm" health >/dev/null || { cat "$work/scheduler.log"; fail "the scheduler image does not serve"; }
"$qdm" models list | grep -q fmnist-ddpm || fail "the scheduler image does not list the shipped model"
out=$work/out; rm -rf "$out"
"$qdm" generate --model fmnist-ddpm --num 2 --steps 10 --seed 1 --out "$out/fp" >/dev/null 2>&1 \
  || { tail -20 "$work/worker.log"; fail "generate through the images"; }
[ "$(ls "$out/fp"/*.png | wc -l)" = 2 ] || fail "generate wrote no PNGs"
job=$("$qdm" submit --model fmnist-ddpm --recipe rtn --wbits 4 --abits 8 --steps 10 --calib-samples 2 --report-samples 0)
"$qdm" jobs watch "$job" >/dev/null 2>&1 || { tail -20 "$work/worker.log"; fail "quantize job $job in the images"; }
artifact=$("$qdm" jobs get "$job" | sed -n 's/^artifact: *//p')
"$qdm" generate --artifact "$artifact" --num 2 --out "$out/w4a8" >/dev/null 2>&1 || fail "generate from the artifact"
curl -sf http://127.0.0.1:58464/metrics | grep -q '^qdm_' || fail "scheduler metrics"
curl -sf http://127.0.0.1:58465/metrics | grep -q '^qdm_' || fail "worker metrics"
ls "$work/scheduler/var/lib/qdm" | grep -q . || fail "the scheduler wrote nothing under QDM_DATA"
echo "image_check: scheduler and worker images serve: models, generate, quantize job $job, W4A8 generate, metrics"
