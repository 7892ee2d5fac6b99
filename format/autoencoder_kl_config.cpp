#include "format/autoencoder_kl_config.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace qdm {
namespace {

const char* const kFile = "vae/config.json";
[[noreturn]] void fail(const std::string& field, const std::string& what) { JsonFields::fail(kFile, field, what); }

void check_types(const nlohmann::json& j, const char* key, const char* want, size_t count) {
  if (!j.contains(key) || j[key].is_null()) return;
  if (!j[key].is_array() || j[key].size() != count) fail(key, "must list one block per block_out_channels entry");
  for (const auto& t : j[key])
    if (!t.is_string() || t.get<std::string>() != want) fail(key, std::string("may only hold ") + want);
}

}  // namespace

AutoencoderKLConfig AutoencoderKLConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError(std::string(kFile) + ": not a JSON object");
  const JsonFields f(j, kFile);
  if (j.contains("_class_name") && j["_class_name"] != "AutoencoderKL")
    fail("_class_name", "is " + j["_class_name"].dump().substr(0, 64) + "; only AutoencoderKL is supported");
  AutoencoderKLConfig c;
  f.read("in_channels", c.in_channels);
  f.read("out_channels", c.out_channels);
  f.read("block_out_channels", c.block_out_channels);
  f.read("layers_per_block", c.layers_per_block);
  f.read("latent_channels", c.latent_channels);
  f.read("norm_num_groups", c.norm_num_groups);
  if (j.contains("sample_size") && j["sample_size"].is_array()) {
    const auto& s = j["sample_size"];
    if (s.size() != 2 || s[0] != s[1] || !s[0].is_number_integer()) fail("sample_size", "must be an integer or a square [h, w]");
    c.sample_size = s[0].get<int>();
  } else {
    f.read("sample_size", c.sample_size);
  }
  f.read("scaling_factor", c.scaling_factor);
  f.read_optional("shift_factor", c.shift_factor);
  f.read("mid_block_add_attention", c.mid_block_add_attention);
  f.read("use_quant_conv", c.use_quant_conv);
  f.read("use_post_quant_conv", c.use_post_quant_conv);
  std::string act = "silu";
  f.read("act_fn", act);
  if (act != "silu" && act != "swish") fail("act_fn", "is '" + act.substr(0, 64) + "'; only silu is supported");
  check_types(j, "down_block_types", "DownEncoderBlock2D", c.block_out_channels.size());
  check_types(j, "up_block_types", "UpDecoderBlock2D", c.block_out_channels.size());
  c.validate();
  return c;
}

AutoencoderKLConfig AutoencoderKLConfig::from_file(const std::string& path) { return from_json(read_json_file(path, kFile)); }

nlohmann::json AutoencoderKLConfig::to_json() const {
  nlohmann::json j = {{"_class_name", "AutoencoderKL"},
                      {"in_channels", in_channels},
                      {"out_channels", out_channels},
                      {"down_block_types", std::vector<std::string>(block_out_channels.size(), "DownEncoderBlock2D")},
                      {"up_block_types", std::vector<std::string>(block_out_channels.size(), "UpDecoderBlock2D")},
                      {"block_out_channels", block_out_channels},
                      {"layers_per_block", layers_per_block},
                      {"act_fn", "silu"},
                      {"latent_channels", latent_channels},
                      {"norm_num_groups", norm_num_groups},
                      {"sample_size", sample_size},
                      {"scaling_factor", scaling_factor},
                      {"mid_block_add_attention", mid_block_add_attention},
                      {"use_quant_conv", use_quant_conv},
                      {"use_post_quant_conv", use_post_quant_conv}};
  j["shift_factor"] = shift_factor ? nlohmann::json(*shift_factor) : nlohmann::json();
  return j;
}

void AutoencoderKLConfig::validate() const {
  if (in_channels <= 0 || in_channels > 64) fail("in_channels", "must be in [1, 64]");
  if (out_channels <= 0 || out_channels > 64) fail("out_channels", "must be in [1, 64]");
  if (block_out_channels.empty() || block_out_channels.size() > 8) fail("block_out_channels", "must have 1 to 8 entries");
  if (norm_num_groups <= 0) fail("norm_num_groups", "must be positive");
  for (int ch : block_out_channels) {
    if (ch <= 0 || ch > 4096) fail("block_out_channels", "entries must be in [1, 4096]");
    if (ch % norm_num_groups != 0) fail("norm_num_groups", "must divide every entry of block_out_channels");
  }
  if (layers_per_block <= 0 || layers_per_block > 16) fail("layers_per_block", "must be in [1, 16]");
  if (latent_channels <= 0 || latent_channels > 64) fail("latent_channels", "must be in [1, 64]");
  if (sample_size <= 0 || sample_size % factor() != 0) fail("sample_size", "must be a positive multiple of " + std::to_string(factor()));
  if (!(scaling_factor > 0)) fail("scaling_factor", "must be positive");
}

}  // namespace qdm
