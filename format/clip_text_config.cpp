#include "format/clip_text_config.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace qdm {
namespace {

const char* const kFile = "text_encoder/config.json";
[[noreturn]] void fail(const std::string& field, const std::string& what) { JsonFields::fail(kFile, field, what); }

}  // namespace

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError(std::string(kFile) + ": not a JSON object");
  const JsonFields f(j, kFile);
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    const std::string arch = j["architectures"][0].is_string() ? j["architectures"][0].get<std::string>() : "";
    if (arch != "CLIPTextModel" && arch != "CLIPTextModelWithProjection")
      fail("architectures", "names '" + arch.substr(0, 64) + "'; supported: CLIPTextModel, CLIPTextModelWithProjection");
  }
  ClipTextConfig c;
  f.read("vocab_size", c.vocab_size);
  f.read("hidden_size", c.hidden_size);
  f.read("intermediate_size", c.intermediate_size);
  f.read("num_hidden_layers", c.num_hidden_layers);
  f.read("num_attention_heads", c.num_attention_heads);
  f.read("max_position_embeddings", c.max_position_embeddings);
  f.read("hidden_act", c.hidden_act);
  f.read("layer_norm_eps", c.layer_norm_eps);
  f.read("clip_skip", c.clip_skip);
  c.validate();
  return c;
}

ClipTextConfig ClipTextConfig::from_file(const std::string& path) { return from_json(read_json_file(path, kFile)); }

nlohmann::json ClipTextConfig::to_json() const {
  return {{"architectures", {"CLIPTextModel"}},
          {"model_type", "clip_text_model"},
          {"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"num_hidden_layers", num_hidden_layers},
          {"num_attention_heads", num_attention_heads},
          {"max_position_embeddings", max_position_embeddings},
          {"hidden_act", hidden_act},
          {"layer_norm_eps", layer_norm_eps},
          {"clip_skip", clip_skip},
          {"torch_dtype", "float32"}};
}

void ClipTextConfig::validate() const {
  if (vocab_size <= 0 || vocab_size > 1'000'000) fail("vocab_size", "must be in [1, 1000000]");
  if (hidden_size <= 0 || hidden_size > 8192) fail("hidden_size", "must be in [1, 8192]");
  if (intermediate_size <= 0 || intermediate_size > 32768) fail("intermediate_size", "must be in [1, 32768]");
  if (num_hidden_layers <= 0 || num_hidden_layers > 64) fail("num_hidden_layers", "must be in [1, 64]");
  if (num_attention_heads <= 0 || hidden_size % num_attention_heads != 0)
    fail("num_attention_heads", "must divide hidden_size (" + std::to_string(hidden_size) + ")");
  if (max_position_embeddings < 2 || max_position_embeddings > 4096) fail("max_position_embeddings", "must be in [2, 4096]");
  if (hidden_act != "quick_gelu" && hidden_act != "gelu")
    fail("hidden_act", "is '" + hidden_act.substr(0, 64) + "'; supported: quick_gelu, gelu");
  if (!(layer_norm_eps > 0)) fail("layer_norm_eps", "must be positive");
  if (clip_skip < 0 || clip_skip >= num_hidden_layers) fail("clip_skip", "must be in [0, num_hidden_layers)");
}

}  // namespace qdm
