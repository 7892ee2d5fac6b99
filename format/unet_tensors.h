// The tensors a UNet2DModel config implies, by diffusers name and shape, from its description
// (format/graph/unet_2d.h) without building the model: the scheduler checks uploads and model
// roots with it, and the engine's loader checks the same names. Also the size limits a service
// puts on the configs it accepts.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "format/unet_config.h"

namespace qdm {

class SafeTensors;
namespace graph {
class Graph;
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// The tensors a description declares, in declaration order.
std::vector<TensorSpec> tensor_specs(const graph::Graph& description);
// Every parameter and buffer of the model `config` builds, in registration order.
std::vector<TensorSpec> expected_unet_tensors(const UNetConfig& config);
int64_t parameter_count(const std::vector<TensorSpec>& tensors);

// Bounds on what a model may cost before it is built (a worker must never be asked to
// allocate an absurd model). Defaults fit models of a few hundred million parameters.
struct ModelLimits {
  int64_t max_parameters = 1'000'000'000;
  int max_channels = 4096;        // any entry of block_out_channels, in/out channels, time_embed_dim
  int max_levels = 8;             // entries of block_out_channels
  int max_layers_per_block = 16;
  int max_sample_size = 1024;
  int max_class_embeds = 100'000;
};

// Throws ConfigError naming the field over its limit (before any size is multiplied out).
void check_model_limits(const UNetConfig& config, const ModelLimits& limits);

// Checks a weights file against its config without reading tensor data: every expected
// tensor present once (the pre-0.14 attention names accepted) with its shape and a float
// dtype (F32, F16, BF16), and nothing else. Throws ConfigError naming the tensor at fault.
void check_unet_weights(const UNetConfig& config, const SafeTensors& weights);
// The same for any component: `tensors` from its description, `ignored` stored tensors skipped,
// `optional` ones (today's names) checked where stored and allowed absent.
void check_weights(const std::vector<TensorSpec>& tensors, const SafeTensors& weights, const std::string& config_name,
                   const std::function<bool(const std::string&)>& ignored = nullptr, const std::set<std::string>& optional = {});

// The pre-0.14 attention names (query/key/value/proj_attn) mapped to today's, other names as is.
std::string canonical_tensor_name(const std::string& stored);

}  // namespace qdm
