// diffusers UNet2DModel configuration (config.json), with diffusers' defaults for missing fields.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "format/json_fields.h"  // ConfigError

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
  // Class conditioning as diffusers defines it: `num_class_embeds` alone builds an embedding
  // table (time_embed_dim wide), class_embed_type "timestep" embeds the label like a timestep
  // (time_proj then a TimestepEmbedding), "identity" takes the class embedding itself. The
  // class embedding is added to the time embedding.
  std::optional<std::string> class_embed_type;
  std::optional<int> num_class_embeds;
  // qdm's extension (diffusers ignores keys it does not know): the names of the labels
  // 0..K-1, and the label trained as "no class" for classifier-free guidance.
  std::vector<std::string> class_names;
  std::optional<int> null_class;

  // UNet2DConditionModel (a Stable Diffusion denoiser): _class_name names it, and its
  // cross-attention blocks (CrossAttnDownBlock2D, CrossAttnUpBlock2D, UNetMidBlock2DCrossAttn)
  // hold Transformer2DModels reading text states of cross_attention_dim channels. As in
  // diffusers, its attention_head_dim (an int or one per down block) counts heads, and
  // num_attention_heads must be null. Missing fields take UNet2DConditionModel's defaults.
  std::string class_name = "UNet2DModel";
  std::optional<int> cross_attention_dim;
  std::vector<int> heads_per_block;               // per down block (up blocks: reversed; mid: the last)
  std::vector<int> transformer_layers_per_block;  // per down block, default 1
  bool use_linear_projection = false;
  bool mid_cross_attention = false;               // mid_block_type UNetMidBlock2DCrossAttn
  bool text_conditioned() const { return class_name == "UNet2DConditionModel"; }

  // Input pixels per pixel of the lowest level: the input's height and width are multiples of it.
  int size_multiple() const { return 1 << (block_out_channels.size() - 1); }
  int time_embed_dim() const { return time_embedding_dim.value_or(4 * block_out_channels.at(0)); }
  int head_dim_for(int channels) const { return attention_head_dim.value_or(channels); }
  bool conditional() const { return class_embed_type.has_value() || num_class_embeds.has_value(); }
  // Labels the interfaces accept (0..n-1, the null class included); 0 when the model takes no
  // integer labels (unconditional, or "identity" embeddings).
  int label_count() const;
  // Labels a user may ask for: every label but the null class.
  std::vector<int> user_labels() const;

  // Parses and validates; throws ConfigError naming the offending field.
  static UNetConfig from_json(const nlohmann::json& j);
  static UNetConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
  void validate() const;
};

}  // namespace qdm
