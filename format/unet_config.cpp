#include "format/unet_config.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace qdm {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  JsonFields::fail("config.json", field, what);
}

// A field given as one integer for every block or one integer per block (missing or null: `fallback`).
std::vector<int> per_block_ints(const nlohmann::json& j, const char* key, size_t blocks, int fallback) {
  if (!j.contains(key) || j[key].is_null()) return std::vector<int>(blocks, fallback);
  const auto& v = j[key];
  if (v.is_number_integer()) return std::vector<int>(blocks, v.get<int>());
  if (v.is_array() && v.size() == blocks && std::all_of(v.begin(), v.end(), [](const auto& x) { return x.is_number_integer(); }))
    return v.get<std::vector<int>>();
  fail(key, "must be an integer or one integer per block_out_channels entry");
}

}  // namespace

UNetConfig UNetConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError("config.json: not a JSON object");
  UNetConfig c;
  const JsonFields f(j, "config.json");
  if (j.contains("_class_name") && j["_class_name"] != "UNet2DModel" && j["_class_name"] != "UNet2DConditionModel")
    fail("_class_name", "is " + j["_class_name"].dump().substr(0, 64) + "; supported: UNet2DModel, UNet2DConditionModel");
  const bool text = j.contains("_class_name") && j["_class_name"] == "UNet2DConditionModel";
  if (text) {  // UNet2DConditionModel's defaults
    c.class_name = "UNet2DConditionModel";
    c.sample_size = 64;
    c.in_channels = c.out_channels = 4;
    c.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
    c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
    c.block_out_channels = {320, 640, 1280, 1280};
    c.mid_cross_attention = true;
    c.cross_attention_dim = 1280;
  }
  if (j.contains("sample_size") && !j["sample_size"].is_null()) {
    const auto& s = j["sample_size"];
    if (s.is_number_integer()) {
      c.sample_size = s.get<int>();
    } else if (s.is_array() && s.size() == 2 && s[0].is_number_integer() && s[0] == s[1]) {
      c.sample_size = s[0].get<int>();
    } else {
      fail("sample_size", "must be an integer or a square [h, w], got " + s.dump());
    }
  }
  f.read("in_channels", c.in_channels);
  f.read("out_channels", c.out_channels);
  f.read("center_input_sample", c.center_input_sample);
  f.read("time_embedding_type", c.time_embedding_type);
  f.read_optional("time_embedding_dim", c.time_embedding_dim);
  f.read("freq_shift", c.freq_shift);
  f.read("flip_sin_to_cos", c.flip_sin_to_cos);
  f.read("down_block_types", c.down_block_types);
  f.read("up_block_types", c.up_block_types);
  if (j.contains("mid_block_type")) {
    if (j["mid_block_type"].is_null()) {
      c.has_mid_block = false;
      c.mid_cross_attention = false;
    } else if (text && j["mid_block_type"] == "UNetMidBlock2DCrossAttn") {
      c.mid_cross_attention = true;
    } else if (j["mid_block_type"] != "UNetMidBlock2D") {
      fail("mid_block_type", "is " + j["mid_block_type"].dump().substr(0, 64) +
                                 (text ? "; supported: UNetMidBlock2DCrossAttn, UNetMidBlock2D or null" : "; only UNetMidBlock2D or null"));
    } else {
      c.mid_cross_attention = false;
    }
  }
  f.read("block_out_channels", c.block_out_channels);
  f.read("layers_per_block", c.layers_per_block);
  f.read("mid_block_scale_factor", c.mid_block_scale_factor);
  f.read("downsample_padding", c.downsample_padding);
  f.read("dropout", c.dropout);
  if (text) {
    // Heads per block: attention_head_dim as an int or a list (diffusers' naming quirk).
    const size_t blocks = c.block_out_channels.size();
    c.heads_per_block = per_block_ints(j, "attention_head_dim", blocks, 8);
    if (j.contains("num_attention_heads") && !j["num_attention_heads"].is_null())
      fail("num_attention_heads", "must be null (diffusers counts heads in attention_head_dim)");
    c.transformer_layers_per_block = per_block_ints(j, "transformer_layers_per_block", blocks, 1);
    if (j.contains("cross_attention_dim")) {
      if (!j["cross_attention_dim"].is_number_integer()) fail("cross_attention_dim", "must be one integer (per-block lists are not supported)");
      c.cross_attention_dim = j["cross_attention_dim"].get<int>();
    }
    f.read("use_linear_projection", c.use_linear_projection);
    // Settings beyond Stable Diffusion 1.x / 2.x, refused by name.
    for (const char* key : {"addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type", "time_cond_proj_dim",
                            "projection_class_embeddings_input_dim", "reverse_transformer_layers_per_block",
                            "cross_attention_norm", "class_embeddings_concat", "timestep_post_act", "attention_type_extra"})
      if (j.contains(key) && !j[key].is_null()) fail(key, "is not supported (must be null)");
    for (const char* key : {"only_cross_attention", "dual_cross_attention", "mid_block_only_cross_attention"})
      if (j.contains(key) && !j[key].is_null() && j[key] != false) fail(key, "must be false");
    if (j.contains("attention_type") && !j["attention_type"].is_null() && j["attention_type"] != "default")
      fail("attention_type", "must be \"default\"");
    for (const char* key : {"conv_in_kernel", "conv_out_kernel"})
      if (j.contains(key) && !j[key].is_null() && j[key] != 3) fail(key, "must be 3");
    c.attention_head_dim.reset();
  } else {
    f.read_optional("attention_head_dim", c.attention_head_dim);
  }
  f.read("norm_num_groups", c.norm_num_groups);
  f.read_optional("attn_norm_num_groups", c.attn_norm_num_groups);
  f.read("norm_eps", c.norm_eps);
  f.read("resnet_time_scale_shift", c.resnet_time_scale_shift);
  f.read("add_attention", c.add_attention);
  f.read_optional("num_train_timesteps", c.num_train_timesteps);

  // Fields we understand only in their default form.
  std::string act_fn = "silu";
  f.read("act_fn", act_fn);
  if (act_fn != "silu" && act_fn != "swish") fail("act_fn", "is '" + act_fn + "'; only silu is supported");
  f.read_optional("class_embed_type", c.class_embed_type);
  f.read_optional("num_class_embeds", c.num_class_embeds);
  f.read("class_names", c.class_names);
  f.read_optional("null_class", c.null_class);
  for (const char* key : {"downsample_type", "upsample_type"})
    if (j.contains(key) && !j[key].is_null() && j[key] != "conv")
      fail(key, "is " + j[key].dump() + "; only \"conv\" is supported");
  c.validate();
  return c;
}

UNetConfig UNetConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot open '" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": not valid JSON: " + e.what());
  }
  try {
    return from_json(j);
  } catch (const ConfigError& e) {
    throw ConfigError(path + ": " + e.what());
  }
}

void UNetConfig::validate() const {
  if (sample_size <= 0) fail("sample_size", "must be positive");
  if (in_channels <= 0) fail("in_channels", "must be positive");
  if (out_channels <= 0) fail("out_channels", "must be positive");
  if (block_out_channels.empty()) fail("block_out_channels", "must not be empty");
  if (norm_num_groups <= 0) fail("norm_num_groups", "must be positive");
  if (attention_head_dim && *attention_head_dim <= 0) fail("attention_head_dim", "must be positive");
  for (int ch : block_out_channels) {
    if (ch <= 0) fail("block_out_channels", "entries must be positive");
    if (ch % norm_num_groups != 0)
      fail("norm_num_groups", "(" + std::to_string(norm_num_groups) + ") must divide every entry of block_out_channels (" +
                                  std::to_string(ch) + ")");
    if (attention_head_dim && ch % *attention_head_dim != 0)
      fail("attention_head_dim", "(" + std::to_string(*attention_head_dim) +
                                     ") must divide every entry of block_out_channels (" + std::to_string(ch) + ")");
  }
  if (down_block_types.size() != block_out_channels.size())
    fail("down_block_types", "must have one entry per block_out_channels entry");
  if (up_block_types.size() != block_out_channels.size())
    fail("up_block_types", "must have one entry per block_out_channels entry");
  const bool text = text_conditioned();
  for (const auto& t : down_block_types)
    if (t != "DownBlock2D" && (text ? t != "CrossAttnDownBlock2D" : t != "AttnDownBlock2D"))
      fail("down_block_types", "contains '" + t.substr(0, 64) + "'; supported: DownBlock2D, " +
                                   (text ? "CrossAttnDownBlock2D" : "AttnDownBlock2D"));
  for (const auto& t : up_block_types)
    if (t != "UpBlock2D" && (text ? t != "CrossAttnUpBlock2D" : t != "AttnUpBlock2D"))
      fail("up_block_types", "contains '" + t.substr(0, 64) + "'; supported: UpBlock2D, " + (text ? "CrossAttnUpBlock2D" : "AttnUpBlock2D"));
  if (text) {
    if (!cross_attention_dim || *cross_attention_dim <= 0 || *cross_attention_dim > 8192)
      fail("cross_attention_dim", "must be in [1, 8192]");
    if (heads_per_block.size() != block_out_channels.size()) fail("attention_head_dim", "must give one head count per block");
    if (transformer_layers_per_block.size() != block_out_channels.size())
      fail("transformer_layers_per_block", "must give one count per block");
    for (size_t i = 0; i < block_out_channels.size(); ++i) {
      if (heads_per_block[i] <= 0 || block_out_channels[i] % heads_per_block[i] != 0)
        fail("attention_head_dim", "(heads) must divide block_out_channels[" + std::to_string(i) + "]");
      // up block i reads block_out_channels reversed with the heads reversed: the same pairs
      if (transformer_layers_per_block[i] <= 0 || transformer_layers_per_block[i] > 16)
        fail("transformer_layers_per_block", "entries must be in [1, 16]");
    }
    if (has_mid_block && !add_attention) fail("add_attention", "must be true for UNet2DConditionModel");
  }
  if (layers_per_block <= 0) fail("layers_per_block", "must be positive");
  const int downsamples = static_cast<int>(block_out_channels.size()) - 1;
  if (sample_size % (1 << downsamples) != 0)
    fail("sample_size", "must be divisible by 2^" + std::to_string(downsamples));
  static const std::set<std::string> kTimeTypes = {"positional", "fourier", "learned"};
  if (!kTimeTypes.count(time_embedding_type))
    fail("time_embedding_type", "is '" + time_embedding_type + "'; supported: positional, fourier, learned");
  if (time_embedding_type == "learned" && !num_train_timesteps)
    fail("num_train_timesteps", "is required when time_embedding_type is \"learned\"");
  if (time_embedding_type == "positional" && block_out_channels[0] % 2 != 0)
    fail("block_out_channels", "[0] must be even for a positional time embedding");
  if (resnet_time_scale_shift != "default" && resnet_time_scale_shift != "scale_shift")
    fail("resnet_time_scale_shift", "is '" + resnet_time_scale_shift + "'; supported: default, scale_shift");
  if (downsample_padding != 0 && downsample_padding != 1) fail("downsample_padding", "must be 0 or 1");
  if (class_embed_type && *class_embed_type != "timestep" && *class_embed_type != "identity")
    fail("class_embed_type", "is '" + *class_embed_type + "'; supported: null, \"timestep\", \"identity\"");
  if (num_class_embeds && *num_class_embeds <= 0) fail("num_class_embeds", "must be positive");
  if (!class_names.empty()) {
    if (!conditional()) fail("class_names", "needs a class-conditional model (num_class_embeds or class_embed_type)");
    if (class_embed_type == "identity") fail("class_names", "cannot name \"identity\" class embeddings");
    if (num_class_embeds && static_cast<int>(class_names.size()) > *num_class_embeds)
      fail("class_names", "has more names than num_class_embeds (" + std::to_string(*num_class_embeds) + ")");
    for (const auto& name : class_names)
      if (name.empty() || name.size() > 64) fail("class_names", "entries must be 1 to 64 characters");
  }
  if (null_class) {
    if (label_count() == 0) fail("null_class", "needs integer class labels (num_class_embeds or class_names)");
    if (*null_class < 0 || *null_class >= label_count())
      fail("null_class", "must be a label in [0, " + std::to_string(label_count()) + ")");
    if (*null_class < static_cast<int>(class_names.size()))
      fail("null_class", "must not be one of the named classes");
  }
}

int UNetConfig::label_count() const {
  if (!conditional() || class_embed_type == "identity") return 0;
  if (num_class_embeds) return *num_class_embeds;
  // "timestep" embeddings take any integer; the names (and the null class) bound the labels.
  return std::max(static_cast<int>(class_names.size()), null_class ? *null_class + 1 : 0);
}

std::vector<int> UNetConfig::user_labels() const {
  std::vector<int> labels;
  for (int i = 0; i < label_count(); ++i)
    if (!null_class || i != *null_class) labels.push_back(i);
  return labels;
}

nlohmann::json UNetConfig::to_json() const {
  nlohmann::json j;
  j["_class_name"] = class_name;
  j["sample_size"] = sample_size;
  j["in_channels"] = in_channels;
  j["out_channels"] = out_channels;
  j["center_input_sample"] = center_input_sample;
  j["time_embedding_type"] = time_embedding_type;
  j["time_embedding_dim"] = time_embedding_dim ? nlohmann::json(*time_embedding_dim) : nlohmann::json();
  j["freq_shift"] = freq_shift;
  j["flip_sin_to_cos"] = flip_sin_to_cos;
  j["down_block_types"] = down_block_types;
  j["up_block_types"] = up_block_types;
  j["mid_block_type"] = has_mid_block ? nlohmann::json(mid_cross_attention ? "UNetMidBlock2DCrossAttn" : "UNetMidBlock2D") : nlohmann::json();
  j["block_out_channels"] = block_out_channels;
  j["layers_per_block"] = layers_per_block;
  j["mid_block_scale_factor"] = mid_block_scale_factor;
  j["downsample_padding"] = downsample_padding;
  j["downsample_type"] = "conv";
  j["upsample_type"] = "conv";
  j["dropout"] = dropout;
  j["act_fn"] = "silu";
  j["attention_head_dim"] = attention_head_dim ? nlohmann::json(*attention_head_dim) : nlohmann::json();
  if (text_conditioned()) {
    j["attention_head_dim"] = heads_per_block;
    j["num_attention_heads"] = nullptr;
    j["cross_attention_dim"] = *cross_attention_dim;
    j["transformer_layers_per_block"] = transformer_layers_per_block;
    j["use_linear_projection"] = use_linear_projection;
    j["only_cross_attention"] = false;
  }
  j["norm_num_groups"] = norm_num_groups;
  j["attn_norm_num_groups"] = attn_norm_num_groups ? nlohmann::json(*attn_norm_num_groups) : nlohmann::json();
  j["norm_eps"] = norm_eps;
  j["resnet_time_scale_shift"] = resnet_time_scale_shift;
  j["add_attention"] = add_attention;
  j["class_embed_type"] = class_embed_type ? nlohmann::json(*class_embed_type) : nlohmann::json();
  j["num_class_embeds"] = num_class_embeds ? nlohmann::json(*num_class_embeds) : nlohmann::json();
  if (!class_names.empty()) j["class_names"] = class_names;
  if (null_class) j["null_class"] = *null_class;
  j["num_train_timesteps"] = num_train_timesteps ? nlohmann::json(*num_train_timesteps) : nlohmann::json();
  if (text_conditioned())  // UNet2DModel's fields a UNet2DConditionModel does not have
    for (const char* key : {"add_attention", "attn_norm_num_groups", "num_train_timesteps", "downsample_type", "upsample_type"})
      j.erase(key);
  return j;
}

}  // namespace qdm
