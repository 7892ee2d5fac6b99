#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests, from Debian's postgresql package (.ci/setup installs
# it): unix socket only (no TCP port to collide on), trust auth for the user qdm, fsync off.
#   bash tests/pg_cluster.sh start DIR   -> prints the libpq URL of database postgres
#   bash tests/pg_cluster.sh stop DIR    -> stops it (immediate) and removes it
#   bash tests/pg_cluster.sh halt DIR    -> stops the server, keeping the cluster
#   bash tests/pg_cluster.sh resume DIR  -> starts a halted cluster again (same URL)
# The cluster lives in a fresh /tmp/qdmpg.XXXXXX (short socket paths, reachable by nobody: as
# root it runs as nobody, PostgreSQL refuses to run as root); DIR/location names it.
set -euo pipefail
cmd=$1 dir=$2
bin=${QDM_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg_cluster: PostgreSQL server binaries not found (apt-get install postgresql, or run .ci/setup)" >&2
  exit 1
fi
as_owner=()
[ "$(id -u)" -eq 0 ] && as_owner=(runuser -u nobody --)
port=5432
start_server() {  # start_server HOME
  "${as_owner[@]}" "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
    -o "-k $1 -c listen_addresses= -p $port -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null ||
    { cat "$1/server.log" >&2; exit 1; }
}
case $cmd in
  start)
    mkdir -p "$dir"
    home=$(mktemp -d /tmp/qdmpg.XXXXXX)
    echo "$home" > "$dir/location"
    chmod 755 "$home"
    [ "$(id -u)" -eq 0 ] && chown nobody:nogroup "$home"
    dir=$home
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U qdm --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    start_server "$dir"
    echo "postgresql:///postgres?host=$dir&port=$port&user=qdm"
    ;;
  halt)
    home=$(cat "$dir/location")
    "${as_owner[@]}" "$bin/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null
    ;;
  resume)
    start_server "$(cat "$dir/location")"
    ;;
  stop)
    [ -f "$dir/location" ] || exit 0
    home=$(cat "$dir/location")
    rm -rf "$dir"
    dir=$home
    [ -d "$dir/data" ] && "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: pg_cluster.sh start|stop|halt|resume DIR" >&2; exit 2 ;;
esac
