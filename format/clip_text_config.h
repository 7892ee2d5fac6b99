// transformers CLIPTextModel configuration (a pipeline's text_encoder/config.json), with
// transformers' defaults for missing fields, and which hidden state a pipeline reads.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "format/json_fields.h"  // ConfigError

namespace qdm {

struct ClipTextConfig {
  int vocab_size = 49408;
  int hidden_size = 512;
  int intermediate_size = 2048;
  int num_hidden_layers = 12;
  int num_attention_heads = 8;
  int max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";  // quick_gelu | gelu
  double layer_norm_eps = 1e-5;
  // Layers skipped from the end (diffusers' clip_skip): 0 gives last_hidden_state, 1 the
  // penultimate layer's states through final_layer_norm. qdm's extension (transformers ignores
  // it); a request may override it.
  int clip_skip = 0;

  int head_dim() const { return hidden_size / num_attention_heads; }
  // Parses and validates; throws ConfigError naming the field ("text_encoder/config.json: field ...").
  static ClipTextConfig from_json(const nlohmann::json& j);
  static ClipTextConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
  void validate() const;
};

}  // namespace qdm
