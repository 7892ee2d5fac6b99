// diffusers spatial self-attention (Attention with residual_connection=True as used by
// AttnDownBlock2D / AttnUpBlock2D / UNetMidBlock2D): group_norm -> to_q/to_k/to_v ->
// softmax(q k^T / sqrt(d)) v per head -> to_out.0 -> + residual -> / rescale_output_factor.
// Checkpoints saved before diffusers 0.14 name the projections query/key/value/proj_attn;
// model_folder.cpp maps those names on load.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <optional>

#include "engine/model/layers.h"

namespace qdm {

// Replaces softmax(q k^T * scale) v; q, k, v: (N, heads, L, d) -> (N, heads, L, d).
class AttentionCoreOverride {
 public:
  virtual ~AttentionCoreOverride() = default;
  virtual at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) = 0;
};

class AttentionBlockImpl : public torch::nn::Module {
 public:
  // groups: GroupNorm groups, or nullopt for no norm (diffusers' mid block with scale_shift).
  AttentionBlockImpl(int channels, int head_dim, std::optional<int> groups, double eps,
                     double rescale_output_factor);
  at::Tensor forward(const at::Tensor& x);  // (N, C, H, W) -> (N, C, H, W)

  torch::nn::GroupNorm group_norm{nullptr};
  LinearLayer to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [0]: LinearLayer (diffusers keeps dropout at [1])
  int channels, heads, head_dim;
  double rescale_output_factor;
  std::shared_ptr<AttentionCoreOverride> core_override_;
  BlockTap tap;
};
TORCH_MODULE(AttentionBlock);

}  // namespace qdm
