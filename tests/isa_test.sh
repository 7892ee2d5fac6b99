#!/usr/bin/env bash
# Runs a test binary with QDM_ISA=ISA, so every plan and layer the process builds without naming
# an ISA uses that path's kernel table, or skips (exit 77) when this CPU lacks the path.
#   bash tests/isa_test.sh ISA BINARY [ARGS...]
set -euo pipefail
isa=$1; shift
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
case $isa in
  scalar) ;;
  avx2) has avx2 || { echo "this CPU has no avx2: skipped"; exit 77; } ;;
  avxvnni) has avx2 avx_vnni || { echo "this CPU has no avxvnni: skipped"; exit 77; } ;;
  avx512vnni) has avx512f avx512bw avx512dq avx512vl avx512_vnni || { echo "this CPU has no avx512vnni: skipped"; exit 77; } ;;
  *) echo "unknown ISA $isa" >&2; exit 2 ;;
esac
QDM_ISA=$isa exec "$@"
