# tiny_model DIR [qdm train flags...]: the service tests' model, a 2-level 8/16-channel UNet
# with attention at 32 x 32, trained 2 steps into DIR (weights only: the training checkpoint is
# removed, so DIR is a plain model folder). Needs $qdm and fail() from the sourcing script.
tiny_model() {
  local dir=$1; shift
  local config log
  config=$(mktemp)
  log=$(mktemp)
  cat > "$config" <<'JSON'
{"sample_size": 32, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
 "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
 "layers_per_block": 1, "attention_head_dim": 8, "norm_num_groups": 4}
JSON
  "$qdm" train --out "$dir" --config "$config" --iters 2 --batch 4 "$@" >"$log" 2>&1 || { rm -f "$config"; fail "train $dir: $(tail -3 "$log")"; }
  rm -f "$config" "$log" "$dir/checkpoint.safetensors"
}
