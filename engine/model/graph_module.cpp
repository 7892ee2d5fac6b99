#include "engine/model/graph_module.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace qdm {
namespace {

using graph::Layout;
using graph::Op;

// A module that only holds children (a dotted path's inner parts).
class ContainerImpl : public torch::nn::Module {};
TORCH_MODULE(Container);

// A fixed tensor (a Fourier projection's frequencies): a buffer named "weight".
class FixedTensorImpl : public torch::nn::Module {
 public:
  explicit FixedTensorImpl(const std::vector<int64_t>& shape, double scale) {
    weight = register_buffer("weight", at::randn(shape) * scale);
  }
  at::Tensor weight;
};
TORCH_MODULE(FixedTensor);

// A trained table added to a sequence row by row (CLIP's position_embedding): "weight".
class PositionTableImpl : public torch::nn::Module {
 public:
  explicit PositionTableImpl(const std::vector<int64_t>& shape) {
    weight = register_parameter("weight", at::empty(shape));
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(weight, 0.0, 0.01);
  }
  at::Tensor weight;
};
TORCH_MODULE(PositionTable);

at::Tensor unsqueeze_hw(const at::Tensor& v) { return v.unsqueeze(-1).unsqueeze(-1); }  // (N, C) -> (N, C, 1, 1)

}  // namespace

at::Tensor sinusoidal_embedding(const at::Tensor& t, int dim, bool flip_sin_to_cos, double freq_shift) {
  const int half = dim / 2;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(t.device());
  at::Tensor exponent = at::arange(half, f32) * (-std::log(10000.0) / (half - freq_shift));
  at::Tensor args = t.to(at::kFloat).reshape({-1, 1}) * at::exp(exponent).reshape({1, -1});
  at::Tensor emb = flip_sin_to_cos ? at::cat({at::cos(args), at::sin(args)}, -1) : at::cat({at::sin(args), at::cos(args)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1, 0, 0});
  return emb;
}

GraphModuleImpl::GraphModuleImpl(graph::Graph g) : graph_(std::move(g)) {
  graph_.validate();
  modules_.resize(graph_.nodes.size());
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const graph::Node& n = graph_.nodes[i];
    node_index_.emplace(n.name, i);
    auto param = [&](size_t k) -> const graph::TensorDecl& { return graph_.tensor(n.params.at(k)); };
    // The leaf module's place: "a.b.conv1" -> child "conv1" of the container "a.b".
    const auto dot = n.name.rfind('.');
    const std::string parent = dot == std::string::npos ? "" : n.name.substr(0, dot);
    const std::string leaf = dot == std::string::npos ? n.name : n.name.substr(dot + 1);
    std::shared_ptr<torch::nn::Module> m;
    switch (n.op) {
      case Op::kConv2d: {
        const auto& w = param(0).shape;
        m = container(parent).register_module(
            leaf, Conv2dLayer(static_cast<int>(w[1]), static_cast<int>(w[0]), n.attrs.kernel, n.attrs.stride, n.attrs.padding));
        break;
      }
      case Op::kLinear: {
        const auto& w = param(0).shape;
        m = container(parent).register_module(leaf, LinearLayer(static_cast<int>(w[1]), static_cast<int>(w[0]), n.attrs.bias));
        break;
      }
      case Op::kLayerNorm: {
        const int c = graph_.values[static_cast<size_t>(n.output)].c;
        m = container(parent).register_module(leaf, torch::nn::LayerNorm(torch::nn::LayerNormOptions({c}).eps(n.attrs.eps)));
        break;
      }
      case Op::kPositionEmbedding:
        m = container(parent).register_module(leaf, PositionTable(param(0).shape));
        break;
      case Op::kGroupNorm: {
        const int c = graph_.values[static_cast<size_t>(n.output)].c;
        m = container(parent).register_module(
            leaf, torch::nn::GroupNorm(torch::nn::GroupNormOptions(n.attrs.groups, c).eps(n.attrs.eps).affine(n.attrs.affine)));
        break;
      }
      case Op::kEmbedding:
      case Op::kFourierProj: {
        // A table or fixed tensor a later node shares ("timestep" class embeddings) is made once.
        for (size_t j = 0; j < i && !m; ++j)
          if (graph_.nodes[j].name == n.name && modules_[j]) m = modules_[j];
        if (m) break;
        const auto& w = param(0).shape;
        if (n.op == Op::kEmbedding) m = container(parent).register_module(leaf, torch::nn::Embedding(w[0], w[1]));
        else m = container(parent).register_module(leaf, FixedTensor(w, 16.0));
        break;
      }
      default:
        break;
    }
    modules_[i] = m;
  }
  for (const auto& p : named_parameters()) tensors_[p.key()] = p.value();
  for (const auto& b : named_buffers()) tensors_[b.key()] = b.value();
  for (const auto& t : graph_.tensors)
    if (!tensors_.count(t.name)) throw std::logic_error("GraphModule: no module holds tensor " + t.name);
  for (size_t b = 0; b < graph_.blocks.size(); ++b) blocks_by_output_[graph_.blocks[b].output].push_back(b);
}

torch::nn::Module& GraphModuleImpl::container(const std::string& path) {
  torch::nn::Module* m = this;
  size_t start = 0;
  while (!path.empty() && start <= path.size()) {
    const size_t dot = std::min(path.find('.', start), path.size());
    const std::string part = path.substr(start, dot - start);
    auto children = m->named_children();
    if (auto* found = children.find(part)) m = found->get();
    else m = m->register_module(part, Container()).get();
    start = dot + 1;
  }
  return *m;
}

Conv2dLayerImpl* GraphModuleImpl::conv(const std::string& name) const {
  const auto it = node_index_.find(name);
  return it == node_index_.end() || !modules_[it->second] ? nullptr : modules_[it->second]->as<Conv2dLayerImpl>();
}

LinearLayerImpl* GraphModuleImpl::linear(const std::string& name) const {
  const auto it = node_index_.find(name);
  return it == node_index_.end() || !modules_[it->second] ? nullptr : modules_[it->second]->as<LinearLayerImpl>();
}

at::Tensor GraphModuleImpl::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw std::invalid_argument("the model has no tensor '" + name + "'");
  return it->second;
}

void GraphModuleImpl::set_tap(const std::string& block, BlockTap tap) {
  if (!graph_.find_block(block)) throw std::invalid_argument("the model has no block '" + block + "'");
  if (tap) taps_[block] = std::move(tap);
  else taps_.erase(block);
}

void GraphModuleImpl::set_attention_core(const std::string& name, std::shared_ptr<AttentionCoreOverride> core) {
  const int i = graph_.find_node(name);
  if (i < 0 || graph_.nodes[static_cast<size_t>(i)].op != Op::kAttention)
    throw std::invalid_argument("the model has no attention '" + name + "'");
  if (core) cores_[name] = std::move(core);
  else cores_.erase(name);
}

std::shared_ptr<AttentionCoreOverride> GraphModuleImpl::attention_core(const std::string& name) const {
  const auto it = cores_.find(name);
  return it == cores_.end() ? nullptr : it->second;
}

std::vector<at::Tensor> GraphModuleImpl::run(const Values& given, const std::vector<int>& outputs) {
  const size_t count = graph_.values.size();
  std::vector<at::Tensor> values(count);
  std::vector<char> needed(count, 0);
  for (const auto& [v, t] : given) values.at(static_cast<size_t>(v)) = t;
  for (int v : outputs) needed.at(static_cast<size_t>(v)) = 1;
  // Which values the outputs need, walking back from them; given values stop the walk.
  for (size_t i = graph_.nodes.size(); i-- > 0;) {
    const graph::Node& n = graph_.nodes[i];
    if (!needed[static_cast<size_t>(n.output)] || values[static_cast<size_t>(n.output)].defined()) continue;
    if (n.op == Op::kInput)
      throw std::invalid_argument("the model needs its " + n.name + " input");
    for (int in : n.inputs) needed[static_cast<size_t>(in)] = 1;
  }
  for (const graph::Node& n : graph_.nodes) {
    const size_t out = static_cast<size_t>(n.output);
    if (!needed[out] || values[out].defined()) continue;
    values[out] = eval_node(n, values);
    if (!taps_.empty())
      if (auto it = blocks_by_output_.find(n.output); it != blocks_by_output_.end())
        for (size_t b : it->second) {
          const graph::Block& block = graph_.blocks[b];
          if (auto tap = taps_.find(block.name); tap != taps_.end())
            tap->second(values[static_cast<size_t>(block.input)], values[out]);
        }
  }
  std::vector<at::Tensor> result;
  for (int v : outputs) result.push_back(values[static_cast<size_t>(v)]);
  return result;
}

at::Tensor GraphModuleImpl::eval_node(const graph::Node& n, const std::vector<at::Tensor>& v) {
  auto in = [&](size_t k) -> const at::Tensor& { return v[static_cast<size_t>(n.inputs.at(k))]; };
  torch::nn::Module* m = modules_[static_cast<size_t>(&n - graph_.nodes.data())].get();
  const auto& a = n.attrs;
  switch (n.op) {
    case Op::kInput:
      throw std::logic_error("GraphModule: input " + n.name + " not given");
    case Op::kConv2d:
      return m->as<Conv2dLayerImpl>()->forward(in(0));
    case Op::kPadBottomRight:
      return at::constant_pad_nd(in(0), {0, a.padding, 0, a.padding});
    case Op::kLinear:
      return m->as<LinearLayerImpl>()->forward(in(0));
    case Op::kGroupNorm:
      return m->as<torch::nn::GroupNormImpl>()->forward(in(0));
    case Op::kSiLU:
      return at::silu(in(0));
    case Op::kAdd: {
      const auto& b = in(1);
      const bool broadcast = graph_.values[static_cast<size_t>(n.inputs[0])].layout == Layout::kImage &&
                             graph_.values[static_cast<size_t>(n.inputs[1])].layout == Layout::kVector;
      return in(0) + (broadcast ? unsqueeze_hw(b) : b);
    }
    case Op::kAffine: {
      at::Tensor y = in(0);
      if (a.alpha != 1.0) y = y * a.alpha;
      if (a.beta != 0.0) y = y + a.beta;
      if (a.divisor != 1.0) y = y / a.divisor;
      return y;
    }
    case Op::kScaleShift: {
      const auto parts = unsqueeze_hw(in(1)).chunk(2, 1);
      return in(0) * (1 + parts[0]) + parts[1];
    }
    case Op::kConcat:
      return at::cat({in(0), in(1)}, 1);
    case Op::kUpsample2x:
      return at::upsample_nearest2d(in(0), {in(0).size(2) * 2, in(0).size(3) * 2});
    case Op::kToSequence: {
      const auto& x = in(0);
      return x.reshape({x.size(0), x.size(1), x.size(2) * x.size(3)}).transpose(1, 2).contiguous();
    }
    case Op::kToImage: {
      const auto &x = in(0), &like = in(1);
      // A view with channels-last strides, which ATen carries into the convolutions after it
      // and into the module's output: read outputs through ATen, or .contiguous() before
      // data_ptr(). (Made contiguous, the LibTorch numerics shift by float rounding, enough to
      // change TMPQ's search on the conditional recipe test; kept as the view.)
      return x.transpose(1, 2).reshape({x.size(0), x.size(2), like.size(2), like.size(3)});
    }
    case Op::kAttention: {
      const int64_t batch = in(0).size(0), channels = in(0).size(2), d = channels / a.heads;
      auto heads = [&](const at::Tensor& y) {  // (N, L, C) -> (N, heads, L, d)
        return y.reshape({batch, y.size(1), a.heads, d}).permute({0, 2, 1, 3});
      };
      const at::Tensor q = heads(in(0)), k = heads(in(1)), val = heads(in(2));
      const double scale = 1.0 / std::sqrt(static_cast<double>(d));
      const auto core = attention_core(n.name);
      at::Tensor o;
      if (core) {
        if (a.causal) throw std::logic_error("GraphModule: no attention override for causal attention " + n.name);
        o = core->attend(q, k, val, scale);
      } else {
        at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;
        if (a.causal) {
          const int64_t lq = q.size(2), lk = k.size(2);
          const at::Tensor future = at::ones({lq, lk}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
          scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
        }
        o = at::matmul(at::softmax(scores, -1), val);
      }
      return o.permute({0, 2, 1, 3}).contiguous().reshape({batch, in(0).size(1), channels});
    }
    case Op::kTimestepProj:
      return sinusoidal_embedding(in(0), a.dim, a.flip, a.shift);
    case Op::kFourierProj: {
      const at::Tensor& w = m->as<FixedTensorImpl>()->weight;
      const at::Tensor proj = at::log(in(0).to(at::kFloat)).reshape({-1, 1}) * w.reshape({1, -1}) * (2 * M_PI);
      return at::cat({at::sin(proj), at::cos(proj)}, -1);
    }
    case Op::kEmbedding:
      return m->as<torch::nn::EmbeddingImpl>()->forward(in(0).to(at::kLong));  // (N) -> (N, D); (N, L) -> (N, L, D)
    case Op::kLayerNorm:
      return m->as<torch::nn::LayerNormImpl>()->forward(in(0));
    case Op::kGELU:
      return at::gelu(in(0));
    case Op::kQuickGELU:
      return in(0) * at::sigmoid(in(0) * 1.702);
    case Op::kGEGLU: {
      const auto parts = in(0).chunk(2, -1);
      return parts[0] * at::gelu(parts[1]);
    }
    case Op::kPositionEmbedding: {
      const at::Tensor& w = m->as<PositionTableImpl>()->weight;
      return in(0) + w.narrow(0, 0, in(0).size(1)).unsqueeze(0);
    }
    case Op::kSliceChannels:
      return in(0).narrow(1, a.offset, graph_.values[static_cast<size_t>(n.output)].c);
    case Op::kDivideByTimestep:
      return in(0) / in(1).to(at::kFloat).reshape({-1, 1, 1, 1});
  }
  throw std::logic_error(std::string("GraphModule: no LibTorch lowering of ") + graph::op_name(n.op));
}

}  // namespace qdm
