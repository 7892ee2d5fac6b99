// diffusers UNet2DModel configuration (config.json), with diffusers' defaults for missing fields.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/util/json_fields.h"  // ConfigError

namespace qdm {

struct UNetConfig {
  int sample_size = 32;  // square; diffusers allows [h, w], which must be equal here
  int in_channels = 3;
  int out_channels = 3;
  bool center_input_sample = false;
  std::string time_embedding_type = "positional";  // positional | fourier | learned
  std::optional<int> time_embedding_dim;           // default 4 * block_out_channels[0]
  int freq_shift = 0;
  bool flip_sin_to_cos = true;
  std::vector<std::string> down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                               "AttnDownBlock2D"};
  std::vector<std::string> up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                                             "UpBlock2D"};
  bool has_mid_block = true;  // mid_block_type "UNetMidBlock2D" or null
  std::vector<int> block_out_channels = {224, 448, 672, 896};
  int layers_per_block = 2;
  double mid_block_scale_factor = 1.0;
  int downsample_padding = 1;
  double dropout = 0.0;
  std::optional<int> attention_head_dim = 8;  // null: one head of the block's width
  int norm_num_groups = 32;
  std::optional<int> attn_norm_num_groups;
  double norm_eps = 1e-5;
  std::string resnet_time_scale_shift = "default";  // default | scale_shift
  bool add_attention = true;
  std::optional<int> num_train_timesteps;  // only for time_embedding_type "learned"

  int time_embed_dim() const { return time_embedding_dim.value_or(4 * block_out_channels.at(0)); }
  int head_dim_for(int channels) const { return attention_head_dim.value_or(channels); }

  // Parses and validates; throws ConfigError naming the offending field.
  static UNetConfig from_json(const nlohmann::json& j);
  static UNetConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
  void validate() const;
};

}  // namespace qdm
