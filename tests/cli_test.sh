#!/usr/bin/env bash
# The qdm command line as a user runs it: sample and forward on a freshly trained tiny model,
# and clear errors (non-zero exit, a message naming the problem) for bad input.
set -euo pipefail
qdm="${QDM_BIN:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$work/tiny.json" <<'JSON'
{"sample_size": 32, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
 "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
 "layers_per_block": 1, "attention_head_dim": 8, "norm_num_groups": 4}
JSON
"$qdm" train --out "$work/model" --config "$work/tiny.json" --iters 2 --batch 4 --log-every 1 >/dev/null 2>&1 \
  || fail "train"
[ -f "$work/model/config.json" ] || fail "train wrote no config.json"

"$qdm" sample --model "$work/model" --num 3 --steps 4 --seed 7 --out "$work/png" > "$work/sample.out" 2>&1 || fail "sample"
for f in 00000.png 00001.png 00002.png grid.png; do [ -s "$work/png/$f" ] || fail "missing $f"; done
grep -q "qdm:seed" "$work/png/00002.png" || fail "no generation parameters in the PNG"
python3 - "$work/png/00002.png" <<'PY' || fail "PNG text chunk"
import sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, texts = 8, {}
while pos < len(data):
    n = int.from_bytes(data[pos:pos+4], "big"); kind = data[pos+4:pos+8]; body = data[pos+8:pos+8+n]
    if kind == b"tEXt":
        k, v = body.split(b"\0", 1); texts[k.decode()] = v.decode()
    pos += 12 + n
assert texts["qdm:seed"] == "9", texts
assert texts["qdm:steps"] == "4"
PY

# Same seed, same image: the sampler is deterministic.
"$qdm" sample --model "$work/model" --num 1 --steps 4 --seed 9 --out "$work/png2" >/dev/null 2>&1 || fail "sample 2"
cmp -s <(tail -c +1 "$work/png2/00000.png" | python3 -c "import sys;d=sys.stdin.buffer.read();print(d[d.find(b'IDAT'):])") \
       <(tail -c +1 "$work/png/00002.png" | python3 -c "import sys;d=sys.stdin.buffer.read();print(d[d.find(b'IDAT'):])") \
  || fail "image for seed 9 differs between requests"

# Bad input: a clear message and exit code 1, never a crash.
expect_error() {  # expect_error "message fragment" args...
  local want="$1"; shift
  set +e; out=$("$qdm" "$@" 2>&1); rc=$?; set -e
  [ $rc -ne 0 ] || fail "'$*' succeeded"
  [ $rc -lt 128 ] || fail "'$*' crashed (exit $rc)"
  grep -q -- "$want" <<<"$out" || fail "'$*' said: $out (wanted: $want)"
}
expect_error "does not exist" sample --model "$work/nope" --num 1 --steps 2 --out "$work/x"
expect_error "sampler" sample --model "$work/model" --sampler euler
expect_error "steps must be in" sample --model "$work/model" --steps 1001 --num 1 --out "$work/x"
printf 'garbage' > "$work/bad.safetensors"
expect_error "too short" forward --model "$work/model" --input "$work/bad.safetensors" --out "$work/o.safetensors"

echo "cli_test: all passed"
