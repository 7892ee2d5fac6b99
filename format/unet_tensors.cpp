#include "format/unet_tensors.h"

#include <cstring>
#include <map>
#include <set>

#include "format/echo.h"
#include "format/graph/unet_2d.h"
#include "format/json_fields.h"
#include "format/safetensors.h"

namespace qdm {
namespace {

using Shape = std::vector<int64_t>;

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

std::vector<TensorSpec> tensor_specs(const graph::Graph& description) {
  std::vector<TensorSpec> out;
  for (const auto& t : description.tensors) out.push_back({t.name, t.shape});
  return out;
}

std::vector<TensorSpec> expected_unet_tensors(const UNetConfig& c) {
  // The model's own description (format/graph/unet_2d.h) at the smallest size its levels allow:
  // the tensors do not depend on the size.
  return tensor_specs(graph::describe_unet_2d(c, c.size_multiple(), c.size_multiple()));
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
  check_weights(expected_unet_tensors(config), weights, "config.json");
}

void check_weights(const std::vector<TensorSpec>& tensors, const SafeTensors& weights, const std::string& config_name,
                   const std::function<bool(const std::string&)>& ignored, const std::set<std::string>& optional) {
  std::map<std::string, Shape> expected;
  for (const auto& t : tensors) expected[t.name] = t.shape;
  std::set<std::string> seen;
  for (const auto& info : weights.tensors()) {
    if (ignored && ignored(info.name)) continue;
    const std::string name = canonical_tensor_name(info.name);
    auto it = expected.find(name);
    if (it == expected.end())
      fail("unexpected tensor " + echo(info.name) + ": " + config_name + " builds no such parameter (config and weights do not match)");
    if (!seen.insert(name).second) fail("tensor '" + name + "' is stored twice (old and new attention names)");
    if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16)
      fail("tensor '" + name + "' has dtype " + dtype_name(info.dtype) + "; model weights must be F32, F16 or BF16");
    const Shape shape(info.shape.begin(), info.shape.end());
    if (shape != it->second)
      fail("tensor '" + name + "' has shape " + shape_str(shape) + " but " + config_name + " implies " + shape_str(it->second));
  }
  for (const auto& [name, shape] : expected)
    if (!seen.count(name) && !optional.count(name)) fail("missing tensor '" + name + "' required by " + config_name);
}

}  // namespace qdm
