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

# Prompts on the shipped text-to-image pipeline (torch-free plans): per-image prompts, each PNG
# naming its own; the stage times logged; prompts refused on a model without a text encoder.
src="${QDM_SOURCE_DIR:?}"
"$qdm" sample --model "$src/models/fmnist-t2i" --prompt "a photo of a sneaker" --prompt "a dress" --guidance 3 --num 2 --steps 4 \
  --out "$work/t2i" > "$work/t2i.out" 2>&1 || fail "sample from prompts: $(cat "$work/t2i.out")"
grep -q "stages: text encoding" "$work/t2i.out" || fail "no stage times logged"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); assert b"qdm:prompt\x00a dress" in d, d[:400]' "$work/t2i/00001.png" \
  || fail "the second image does not name its prompt"
"$qdm" sample --model "$work/model" --num 1 --steps 2 --prompt "a sneaker" --out "$work/x" > "$work/np.out" 2>&1 \
  && fail "prompts on a model without a text encoder were accepted"
grep -q "no text encoder" "$work/np.out" || fail "the refusal does not say why: $(cat "$work/np.out")"

# The pipeline quantized (calibration prompts from its calibration_prompts.txt); the artifact,
# copied away from the source folder, samples from prompts and says what it carries.
"$qdm" quantize --model "$src/models/fmnist-t2i" --recipe rtn --wbits 8 --abits 8 --steps 4 --calib-samples 2 --report-samples 0 \
  --components unet,text_encoder,vae_decoder --out "$work/t2i.safetensors" > "$work/t2iq.out" 2>&1 || fail "quantize the pipeline: $(tail -5 "$work/t2iq.out")"
"$qdm" sample --artifact "$work/t2i.safetensors" --prompt "a bag" --guidance 3 --num 1 --out "$work/t2iq" > "$work/t2iqs.out" 2>&1 \
  || fail "sample the quantized pipeline: $(cat "$work/t2iqs.out")"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); assert b"qdm:prompt\x00a bag" in d and b"qdm:recipe\x00rtn" in d' \
  "$work/t2iq/00000.png" || fail "the quantized pipeline's PNG does not name its prompt and recipe"
"$qdm" inspect "$work/t2i.safetensors" > "$work/t2i.inspect" || fail "inspect the quantized pipeline"
grep -q "files embedded, [0-9]* bytes (text encoder, VAE decoder," "$work/t2i.inspect" || fail "inspect does not show the embedded pipeline (the VAE decoder alone): $(grep pipeline "$work/t2i.inspect")"
grep -q "vae_decoder quantized too: .* W8A8" "$work/t2i.inspect" || fail "inspect does not show the quantized VAE decoder"
"$qdm" quantize --model "$work/model" --recipe rtn --steps 4 --calib-samples 2 --report-samples 0 --calib-prompt "a bag" \
  --out "$work/x.safetensors" > "$work/cp.out" 2>&1 && fail "calibration prompts on a model without a text encoder were accepted"
grep -q "no text encoder" "$work/cp.out" || fail "the calibration prompt refusal does not say why: $(cat "$work/cp.out")"

# DPM-Solver++(2M), named in the PNG.
"$qdm" sample --model "$work/model" --num 1 --steps 4 --seed 9 --sampler dpmpp2m --out "$work/png_dpm" >/dev/null 2>&1 \
  || fail "sample with dpmpp2m"
grep -aq "dpmpp2m" "$work/png_dpm/00000.png" || fail "the PNG does not name the dpmpp2m sampler"

# Same seed, same image: the sampler is deterministic.
"$qdm" sample --model "$work/model" --num 1 --steps 4 --seed 9 --out "$work/png2" >/dev/null 2>&1 || fail "sample 2"
cmp -s <(tail -c +1 "$work/png2/00000.png" | python3 -c "import sys;d=sys.stdin.buffer.read();print(d[d.find(b'IDAT'):])") \
       <(tail -c +1 "$work/png/00002.png" | python3 -c "import sys;d=sys.stdin.buffer.read();print(d[d.find(b'IDAT'):])") \
  || fail "image for seed 9 differs between requests"

# forward: one UNet call on tensors a user wrote (here with a hand-made safetensors file).
python3 - "$work/in.safetensors" <<'PY'
import json, struct, sys
sample = struct.pack("<1024f", *([0.25] * 1024))
t = struct.pack("<f", 10.0)
header = json.dumps({"sample": {"dtype": "F32", "shape": [1, 1, 32, 32], "data_offsets": [0, 4096]},
                     "timestep": {"dtype": "F32", "shape": [1], "data_offsets": [4096, 4100]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + sample + t)
PY
"$qdm" forward --model "$work/model" --input "$work/in.safetensors" --out "$work/out.safetensors" >/dev/null 2>&1 || fail "forward"
python3 - "$work/out.safetensors" <<'PY' || fail "forward output"
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n])
assert h["out"]["shape"] == [1, 1, 32, 32], h
vals = struct.unpack("<1024f", data[8 + n:8 + n + 4096])
assert all(v == v for v in vals) and max(abs(v) for v in vals) > 0
PY

# quantize -> sample from the artifact, with per-step tables refusing another schedule.
"$qdm" quantize --model "$work/model" --recipe tfmq --wbits 4 --abits 8 --steps 4 --calib-samples 2 --iters 2 \
  --report-samples 2 --classifier "$work/none" --out "$work/q.safetensors" >/dev/null 2>&1 || fail "quantize"
"$qdm" sample --artifact "$work/q.safetensors" --num 2 --out "$work/qpng" >/dev/null 2>&1 || fail "sample --artifact"
[ -s "$work/qpng/00001.png" ] || fail "no image from the artifact"
grep -q "qdm:recipe" "$work/qpng/00001.png" || fail "no recipe in the PNG"

# qdm bias-correct: the eps bias added to an existing artifact, shown by inspect, sampled from.
"$qdm" bias-correct --model "$work/model" --artifact "$work/q.safetensors" --out "$work/qb.safetensors" --bias-samples 2 \
  >/dev/null 2>&1 || fail "bias-correct"
"$qdm" inspect --json --no-resident "$work/qb.safetensors" | python3 -c '
import json, sys; j = json.load(sys.stdin); b = j["eps_bias"]
assert b["samples"] == 2 and b["bytes"] == 4 * 32 * 32 * 2, b' || fail "inspect shows no eps bias"
plain=$("$qdm" inspect --json --no-resident "$work/q.safetensors")  # captured: grep -q would end the pipe early
grep -q '"eps_bias": null' <<<"$plain" || fail "eps bias where none was measured"
"$qdm" sample --artifact "$work/qb.safetensors" --num 1 --out "$work/qbpng" >/dev/null 2>&1 || fail "sample the corrected artifact"

# qdm inspect: bits per weight over the weights an artifact stores. tfmq stores every conv and
# linear layer; tfmq+cache replaces the temporal block by its features, which then count in
# neither the bytes nor the weights; vq (its temporal block quantized) counts as its own report.
"$qdm" quantize --model "$work/model" --recipe tfmq+cache --wbits 4 --abits 8 --steps 4 --calib-samples 2 --iters 2 \
  --report-samples 0 --out "$work/qc.safetensors" >/dev/null 2>&1 || fail "quantize tfmq+cache"
"$qdm" quantize --model "$work/model" --recipe vq --codebooks 2 --codebook-bits 4 --vq-rounds 1 --steps 4 --calib-samples 2 \
  --finetune-iters 3 --finetune-samples 4 --finetune-holdout 2 --finetune-batch 2 \
  --iters 2 --report-samples 0 --out "$work/qv.safetensors" >/dev/null 2>&1 || fail "quantize vq"
for a in q qc qv; do "$qdm" inspect --json --no-resident "$work/$a.safetensors" > "$work/$a.inspect.json" || fail "inspect $a"; done
python3 - "$work" <<'PY' || fail "inspect's bits per weight"
import json, struct, sys
work = sys.argv[1]
raw = open(f"{work}/model/diffusion_pytorch_model.safetensors", "rb").read()
header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
def numel(shape):
    n = 1
    for d in shape: n *= d
    return n
weights = {k[:-7]: numel(v["shape"]) for k, v in header.items() if k.endswith(".weight") and len(v["shape"]) >= 2}
temporal = sum(n for k, n in weights.items() if k.startswith("time_embedding.") or k.endswith(".time_emb_proj"))
assert temporal > 0
ins = {a: json.load(open(f"{work}/{a}.inspect.json")) for a in ("q", "qc", "qv")}
for a, j in ins.items():
    assert abs(j["bits_per_weight"] - 8 * j["weight_bytes"] / j["conv_linear_weights"]) < 1e-9, (a, j["bits_per_weight"])
assert ins["q"]["conv_linear_weights"] == sum(weights.values()), (ins["q"]["conv_linear_weights"], sum(weights.values()))
assert ins["qc"]["conv_linear_weights"] == sum(weights.values()) - temporal, ins["qc"]["conv_linear_weights"]
vq = ins["qv"]["report"]["vq"]
assert ins["qv"]["conv_linear_weights"] == vq["weights"], (ins["qv"]["conv_linear_weights"], vq["weights"])
assert abs(ins["qv"]["bits_per_weight"] / vq["bits_per_weight"] - 1) < 0.1, (ins["qv"]["bits_per_weight"], vq["bits_per_weight"])
PY

# Ctrl-C during quantize: the command stops with an error and leaves no artifact behind.
"$qdm" quantize --model "$work/model" --recipe qdiffusion --steps 50 --calib-samples 64 --iters 100000 \
  --out "$work/int.safetensors" >"$work/int.log" 2>&1 &
pid=$!
# Once the job runs (its first stage logged): a background job of a script starts with SIGINT
# ignored until qdm installs its handler, so an earlier signal would be lost, not a failure.
for _ in $(seq 600); do grep -q "stage:" "$work/int.log" 2>/dev/null && break; sleep 0.2; done
kill -INT "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "interrupted quantize still ran a minute after SIGINT"; }
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" -ne 0 ] || fail "interrupted quantize exited 0"
grep -q "cancelled" "$work/int.log" || fail "interrupted quantize did not say it was cancelled: $(tail -2 "$work/int.log")"
[ ! -e "$work/int.safetensors" ] && [ ! -e "$work/int.safetensors.tmp" ] || fail "interrupted quantize left a file"

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
expect_error "unknown device 'gpu'" sample --model "$work/model" --device gpu --num 1 --out "$work/x"
if ! "$qdm" --version | grep -q "cuda"; then  # Debian's LibTorch: CPU only; the message says what to use
  expect_error "no CUDA support.*--device cpu" sample --model "$work/model" --device cuda --num 1 --out "$work/x"
fi
printf 'garbage' > "$work/bad.safetensors"
expect_error "too short" forward --model "$work/model" --input "$work/bad.safetensors" --out "$work/o.safetensors"

expect_error "calibrated per step" sample --artifact "$work/q.safetensors" --num 1 --steps 5 --out "$work/x"
expect_error "not a qdm artifact" sample --artifact "$work/model/diffusion_pytorch_model.safetensors" --num 1 --out "$work/x"
expect_error "exactly one of --model or --artifact" sample --num 1 --out "$work/x"
expect_error "recipe" quantize --model "$work/model" --recipe magic --out "$work/m.safetensors"
expect_error "abits" quantize --model "$work/model" --abits 3 --out "$work/m.safetensors"
[ ! -e "$work/m.safetensors" ] || fail "a refused quantize left a file"

# A class-conditional model: labels by name or index, one per image or "all", with guidance;
# the eval's per-class accuracy and FID; bad labels named with the valid ones.
"$qdm" train --out "$work/cond" --config "$work/tiny.json" --conditional --iters 2 --batch 4 >/dev/null 2>&1 || fail "train --conditional"
# Its scheduler does not clip x0: guided DDIM with clipped x0 saturates.
grep -q '"clip_sample": false' "$work/cond/scheduler/scheduler_config.json" || fail "train --conditional wrote a clipping scheduler"
"$qdm" sample --model "$work/cond" --num 4 --steps 3 --class-label all --guidance 2 --out "$work/cond-png" > "$work/cond.out" 2>&1 \
  || fail "sample with labels"
! grep -q "clip_sample" "$work/cond.out" || fail "a warning about x0 clipping for a model that does not clip"
# A user's conditional model whose scheduler clips x0 (diffusers' default) samples guided with a
# warning that says what to change.
cp -r "$work/cond" "$work/cond-clip"
sed -i 's/"clip_sample": false/"clip_sample": true/' "$work/cond-clip/scheduler/scheduler_config.json"
"$qdm" sample --model "$work/cond-clip" --num 2 --steps 2 --class-label 1 --guidance 2 --out "$work/clip-png" > "$work/clip.out" 2>&1 \
  || fail "guided sample from a clipping scheduler"
grep -q 'set "clip_sample": false in its scheduler_config.json' "$work/clip.out" || fail "no clipping warning: $(cat "$work/clip.out")"
[ "$(grep -c clip_sample "$work/clip.out")" = 1 ] || fail "the clipping warning is not said once"
grep -qa "qdm:class_name.Pullover" "$work/cond-png/00002.png" || fail "sample --class-label all: image 2 is not a pullover"
"$qdm" eval --model "$work/cond" --num 20 --steps 2 --class-label all --guidance 1.5 --classifier "${QDM_SOURCE_DIR:?}/models/fmnist-classifier" \
  > "$work/eval.json" 2>/dev/null || fail "eval with labels"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert 0 <= j["class_accuracy"] <= 1 and j["per_class"]["Bag"]["images"] == 2, j' \
  "$work/eval.json" || fail "eval reports no per-class accuracy"
set +e; out=$("$qdm" sample --model "$work/cond" --num 2 --steps 2 --class-label horse --out "$work/x" 2>&1); rc=$?; set -e
[ $rc -ne 0 ] && grep -q "unknown class label 'horse'; valid: 0 T-shirt/top" <<<"$out" || fail "bad label: $out"
set +e; out=$("$qdm" sample --model "$work/model" --num 1 --steps 2 --class-label 1 --out "$work/x" 2>&1); rc=$?; set -e
[ $rc -ne 0 ] && grep -q "not class-conditional" <<<"$out" || fail "label on an unconditional model: $out"

echo "cli_test: all passed"
