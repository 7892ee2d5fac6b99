// diffusers AutoencoderKL configuration (a pipeline's vae/config.json), with diffusers' defaults.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "format/json_fields.h"  // ConfigError

namespace qdm {

struct AutoencoderKLConfig {
  int in_channels = 3;
  int out_channels = 3;
  std::vector<int> block_out_channels = {64};  // one DownEncoderBlock2D / UpDecoderBlock2D per entry
  int layers_per_block = 1;
  int latent_channels = 4;
  int norm_num_groups = 32;
  int sample_size = 32;
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;  // SD3/Flux; latents = (z - shift) * scale
  bool mid_block_add_attention = true;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;

  // Image pixels per latent pixel along each side: 2^(levels - 1).
  int factor() const { return 1 << (block_out_channels.size() - 1); }
  static AutoencoderKLConfig from_json(const nlohmann::json& j);
  static AutoencoderKLConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
  void validate() const;  // throws ConfigError naming the field ("vae/config.json: field ...")
};

}  // namespace qdm
