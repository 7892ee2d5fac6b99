#include "format/unet_tensors.h"

#include <cstring>
#include <map>
#include <set>

#include "format/echo.h"
#include "format/json_fields.h"
#include "format/safetensors.h"

namespace qdm {
namespace {

using Shape = std::vector<int64_t>;

class Builder {
 public:
  std::vector<TensorSpec> out;
  void add(const std::string& name, Shape shape) { out.push_back({name, std::move(shape)}); }
  void conv(const std::string& p, int64_t in, int64_t o, int64_t k) {
    add(p + ".weight", {o, in, k, k});
    add(p + ".bias", {o});
  }
  void linear(const std::string& p, int64_t in, int64_t o) {
    add(p + ".weight", {o, in});
    add(p + ".bias", {o});
  }
  void norm(const std::string& p, int64_t c) {
    add(p + ".weight", {c});
    add(p + ".bias", {c});
  }
  void resnet(const std::string& p, const UNetConfig& c, int64_t in, int64_t o) {
    norm(p + ".norm1", in);
    conv(p + ".conv1", in, o, 3);
    linear(p + ".time_emb_proj", c.time_embed_dim(), c.resnet_time_scale_shift == "scale_shift" ? 2 * o : o);
    norm(p + ".norm2", o);
    conv(p + ".conv2", o, o, 3);
    if (in != o) conv(p + ".conv_shortcut", in, o, 1);
  }
  void attention(const std::string& p, int64_t ch, bool has_norm) {
    if (has_norm) norm(p + ".group_norm", ch);
    linear(p + ".to_q", ch, ch);
    linear(p + ".to_k", ch, ch);
    linear(p + ".to_v", ch, ch);
    linear(p + ".to_out.0", ch, ch);
  }
};

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

[[noreturn]] void fail(const std::string& what) { throw ConfigError(what); }

}  // namespace

std::string canonical_tensor_name(const std::string& stored) {
  static const std::pair<const char*, const char*> kOld[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  if (stored.find("attentions.") == std::string::npos) return stored;
  for (const auto& [old_name, new_name] : kOld) {
    const auto pos = stored.find(old_name);
    if (pos != std::string::npos) return stored.substr(0, pos) + new_name + stored.substr(pos + std::strlen(old_name));
  }
  return stored;
}

std::vector<TensorSpec> expected_unet_tensors(const UNetConfig& c) {
  Builder b;
  const auto& boc = c.block_out_channels;
  const int64_t temb = c.time_embed_dim();
  int64_t time_in = boc[0];
  if (c.time_embedding_type == "fourier") {
    b.add("time_proj.weight", {boc[0]});
    time_in = 2 * boc[0];
  } else if (c.time_embedding_type == "learned") {
    b.add("time_proj.weight", {*c.num_train_timesteps, boc[0]});
  }
  b.conv("conv_in", c.in_channels, boc[0], 3);
  b.linear("time_embedding.linear_1", time_in, temb);
  b.linear("time_embedding.linear_2", temb, temb);
  if (c.class_embed_type == "timestep") {
    b.linear("class_embedding.linear_1", time_in, temb);
    b.linear("class_embedding.linear_2", temb, temb);
  } else if (!c.class_embed_type && c.num_class_embeds) {
    b.add("class_embedding.weight", {*c.num_class_embeds, temb});
  }
  int64_t out_ch = boc[0];
  for (size_t i = 0; i < boc.size(); ++i) {
    const int64_t in_ch = out_ch;
    out_ch = boc[i];
    const std::string p = "down_blocks." + std::to_string(i);
    const bool attn = c.down_block_types[i] == "AttnDownBlock2D";
    for (int j = 0; j < c.layers_per_block; ++j) {
      b.resnet(p + ".resnets." + std::to_string(j), c, j == 0 ? in_ch : out_ch, out_ch);
      if (attn) b.attention(p + ".attentions." + std::to_string(j), out_ch, true);
    }
    if (i + 1 < boc.size()) b.conv(p + ".downsamplers.0.conv", out_ch, out_ch, 3);
  }
  if (c.has_mid_block) {
    const int64_t ch = boc.back();
    b.resnet("mid_block.resnets.0", c, ch, ch);
    if (c.add_attention)
      b.attention("mid_block.attentions.0", ch, c.attn_norm_num_groups || c.resnet_time_scale_shift == "default");
    b.resnet("mid_block.resnets.1", c, ch, ch);
  }
  const std::vector<int> rev(boc.rbegin(), boc.rend());
  out_ch = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    const int64_t prev_out = out_ch;
    out_ch = rev[i];
    const int64_t in_ch = rev[std::min(i + 1, rev.size() - 1)];
    const std::string p = "up_blocks." + std::to_string(i);
    const bool attn = c.up_block_types[i] == "AttnUpBlock2D";
    const int layers = c.layers_per_block + 1;
    for (int j = 0; j < layers; ++j) {
      const int64_t skip = j == layers - 1 ? in_ch : out_ch;
      b.resnet(p + ".resnets." + std::to_string(j), c, (j == 0 ? prev_out : out_ch) + skip, out_ch);
      if (attn) b.attention(p + ".attentions." + std::to_string(j), out_ch, true);
    }
    if (i + 1 < rev.size()) b.conv(p + ".upsamplers.0.conv", out_ch, out_ch, 3);
  }
  b.norm("conv_norm_out", boc[0]);
  b.conv("conv_out", boc[0], c.out_channels, 3);
  return b.out;
}

int64_t parameter_count(const std::vector<TensorSpec>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) {
    int64_t k = 1;
    for (int64_t d : t.shape) k *= d;
    n += k;
  }
  return n;
}

void check_model_limits(const UNetConfig& c, const ModelLimits& l) {
  auto over = [](const char* field, int64_t value, int64_t limit) {
    if (value > limit)
      JsonFields::fail("config.json", field, "is " + std::to_string(value) + ", over this service's limit of " +
                                                 std::to_string(limit));
  };
  over("block_out_channels", static_cast<int64_t>(c.block_out_channels.size()), l.max_levels);
  for (int ch : c.block_out_channels) over("block_out_channels", ch, l.max_channels);
  over("in_channels", c.in_channels, l.max_channels);
  over("out_channels", c.out_channels, l.max_channels);
  if (c.time_embedding_dim) over("time_embedding_dim", *c.time_embedding_dim, l.max_channels);
  over("layers_per_block", c.layers_per_block, l.max_layers_per_block);
  over("sample_size", c.sample_size, l.max_sample_size);
  if (c.num_class_embeds) over("num_class_embeds", *c.num_class_embeds, l.max_class_embeds);
  if (c.num_train_timesteps) over("num_train_timesteps", *c.num_train_timesteps, 100'000);
  const int64_t params = parameter_count(expected_unet_tensors(c));
  if (params > l.max_parameters)
    fail("config.json implies " + std::to_string(params) + " parameters, over this service's limit of " +
         std::to_string(l.max_parameters));
}

void check_unet_weights(const UNetConfig& config, const SafeTensors& weights) {
  std::map<std::string, Shape> expected;
  for (auto& t : expected_unet_tensors(config)) expected[t.name] = t.shape;
  std::set<std::string> seen;
  for (const auto& info : weights.tensors()) {
    const std::string name = canonical_tensor_name(info.name);
    auto it = expected.find(name);
    if (it == expected.end())
      fail("unexpected tensor " + echo(info.name) + ": config.json builds no such parameter (config and weights do not match)");
    if (!seen.insert(name).second) fail("tensor '" + name + "' is stored twice (old and new attention names)");
    if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16)
      fail("tensor '" + name + "' has dtype " + dtype_name(info.dtype) + "; model weights must be F32, F16 or BF16");
    const Shape shape(info.shape.begin(), info.shape.end());
    if (shape != it->second)
      fail("tensor '" + name + "' has shape " + shape_str(shape) + " but config.json implies " + shape_str(it->second));
  }
  for (const auto& [name, shape] : expected)
    if (!seen.count(name)) fail("missing tensor '" + name + "' required by config.json");
}

}  // namespace qdm
