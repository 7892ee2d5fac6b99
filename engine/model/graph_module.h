// A model graph (format/graph/graph.h) as LibTorch modules: training, calibration and the `sim`
// oracle run it. Every conv and linear node is a Conv2dLayer / LinearLayer (quantization
// installs its overrides there), every group norm a torch::nn::GroupNorm, every embedding
// table a torch::nn::Embedding, every fixed tensor a buffer; each is registered under the
// node's name in nested modules, so named_parameters() gives diffusers' keys, and created in
// node order (the architecture's registration order: the same initialisation as diffusers'
// modules from the same seed). run() interprets the nodes with ATen.
//
// Layouts: images (N, C, H, W), sequences (N, L, C), vectors (N, C), scalars (N).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/layers.h"
#include "format/graph/graph.h"

namespace qdm {

// Replaces softmax(q k^T * scale) v; q, k, v: (N, heads, L, d) -> (N, heads, L, d).
class AttentionCoreOverride {
 public:
  virtual ~AttentionCoreOverride() = default;
  virtual at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) = 0;
};

// diffusers' get_timestep_embedding (scale 1, max_period 10000): t (N) -> (N, dim).
at::Tensor sinusoidal_embedding(const at::Tensor& t, int dim, bool flip_sin_to_cos, double freq_shift);

class GraphModuleImpl : public torch::nn::Module {
 public:
  explicit GraphModuleImpl(graph::Graph graph);
  const graph::Graph& graph() const { return graph_; }

  // Values by id: the graph's inputs, and any value given instead of computed (its producer,
  // and whatever only that producer needed, do not run).
  using Values = std::map<int, at::Tensor>;
  // Computes `outputs` from `given`, running only the nodes they need, in order.
  std::vector<at::Tensor> run(const Values& given, const std::vector<int>& outputs);
  at::Tensor run(const Values& given, int output) { return run(given, std::vector<int>{output}).front(); }

  // The layer modules of conv / linear nodes, by node name (nullptr when there is none).
  Conv2dLayerImpl* conv(const std::string& name) const;
  LinearLayerImpl* linear(const std::string& name) const;
  // A parameter or buffer by its tensor name ("class_embedding.weight").
  at::Tensor tensor(const std::string& name) const;

  // Called with (block input, block output) whenever a block's output is computed.
  void set_tap(const std::string& block, BlockTap tap);
  // Replaces the attention core of the attention node `name` (nullptr: the plain one).
  void set_attention_core(const std::string& name, std::shared_ptr<AttentionCoreOverride> core);
  std::shared_ptr<AttentionCoreOverride> attention_core(const std::string& name) const;

 private:
  at::Tensor eval_node(const graph::Node& node, const std::vector<at::Tensor>& values);
  torch::nn::Module& container(const std::string& path);  // creates the nested modules of a dotted path

  graph::Graph graph_;
  std::vector<std::shared_ptr<torch::nn::Module>> modules_;  // per node: its leaf module, or null
  std::map<std::string, size_t> node_index_;                 // first node of a name
  std::map<std::string, at::Tensor> tensors_;                 // graph tensor name -> parameter / buffer
  std::map<int, std::vector<size_t>> blocks_by_output_;       // value -> blocks ending in it
  std::map<std::string, BlockTap> taps_;
  std::map<std::string, std::shared_ptr<AttentionCoreOverride>> cores_;
};
TORCH_MODULE(GraphModule);

}  // namespace qdm
