#!/usr/bin/env bash
# Trains models/fmnist-t2i from scratch, one component after another, each resumable (rerun the
# script after an interruption; a finished component is skipped): the VAE, the tokenizer and
# text encoder, then the text-conditioned UNet on the VAE's latents. Checkpoints stay in WORK;
# the shipped folder gets the weights, configs, reports and logs only.
#   WORK=out/fmnist-t2i THREADS=1 bash models/fmnist-t2i/train.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
qdm=${QDM:-$root/build/bin/qdm}
work=${WORK:-$root/out/fmnist-t2i}
threads=${THREADS:-1}
ship=${SHIP:-$root/models/fmnist-t2i}
[ -x "$qdm" ] || { echo "build qdm first: bash .ci/setup" >&2; exit 1; }
mkdir -p "$work"
export OMP_NUM_THREADS=$threads

"$qdm" train-vae --out "$work/vae" --threads "$threads" ${VAE_ITERS:+--iters $VAE_ITERS}
mkdir -p "$work/pipe/vae"
cp "$work/vae/config.json" "$work/vae/diffusion_pytorch_model.safetensors" "$work/vae/report.json" "$work/vae/train_log.jsonl" "$work/pipe/vae/"
"$qdm" train-text-encoder --out "$work/pipe" --threads "$threads" ${TEXT_ITERS:+--iters $TEXT_ITERS}
"$qdm" train-text-to-image --out "$work/pipe" --threads "$threads" ${UNET_ITERS:+--iters $UNET_ITERS}

# Ship everything but optimizer checkpoints and the latent cache.
mkdir -p "$ship"
(cd "$work/pipe" && find . -type f ! -name 'checkpoint.safetensors*' ! -name 'latents.safetensors' -print0) |
  while IFS= read -r -d '' f; do mkdir -p "$ship/$(dirname "$f")"; cp "$work/pipe/$f" "$ship/$f"; done
echo "shipped $ship"
