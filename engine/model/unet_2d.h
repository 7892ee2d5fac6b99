// diffusers UNet2DModel: the noise-prediction network. Submodule names equal diffusers' state
// dict keys (conv_in, time_embedding.linear_1, down_blocks.0.resnets.0.conv1, ...).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "engine/model/layers.h"
#include "engine/model/mid_block.h"
#include "engine/model/timestep_embedding.h"
#include "format/unet_config.h"

namespace qdm {

class ResnetBlock2DImpl;
struct TimeContext;

class UNet2DModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DModelImpl(const UNetConfig& config);

  // sample: (N, C_in, H, W); timesteps: (N) or a single element; class_labels: (N) integer
  // labels (a class-conditional model needs them, an unconditional one refuses them), or
  // (N, time_embed_dim) embeddings for class_embed_type "identity" -> (N, C_out, H, W)
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timesteps, const at::Tensor& class_labels = {});
  // Same, with every resnet's temporal feature given (see temporal_features()).
  at::Tensor forward_with_features(const at::Tensor& sample, const at::Tensor& timesteps,
                                   const std::vector<at::Tensor>& features);

  // timesteps (N), class_labels (N) or undefined -> time embedding (N, time_embed_dim), the
  // class embedding added as diffusers adds it
  at::Tensor time_embed(const at::Tensor& timesteps, const at::Tensor& class_labels = {});
  // The Temporal Information Block's outputs: time_emb_proj(SiLU(emb)) of every resnet, in
  // model order (down blocks, mid block, up blocks). They depend on t (and the class) alone.
  std::vector<at::Tensor> temporal_features(const at::Tensor& timesteps, const at::Tensor& class_labels = {});
  // Every ResnetBlock2D in model order, with its qualified name.
  std::vector<std::pair<std::string, ResnetBlock2DImpl*>> resnets_in_order();

  int64_t parameter_count() const;
  const UNetConfig& config() const { return config_; }

  // Registered as `time_proj` when time_embedding_type is fourier or learned.
  GaussianFourierProjection fourier_proj{nullptr};
  torch::nn::Embedding learned_proj{nullptr};
  TimestepEmbedding time_embedding{nullptr};
  // Registered as `class_embedding`: a table (num_class_embeds) or, for class_embed_type
  // "timestep", a TimestepEmbedding over the projected label.
  torch::nn::Embedding class_table{nullptr};
  TimestepEmbedding class_timestep{nullptr};
  Conv2dLayer conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};

 private:
  at::Tensor run(const at::Tensor& sample, const at::Tensor& timesteps, TimeContext& time);
  at::Tensor broadcast_timesteps(const at::Tensor& timesteps, int64_t batch) const;
  at::Tensor time_proj(const at::Tensor& t);
  at::Tensor class_embed(const at::Tensor& class_labels, int64_t batch);
  UNetConfig config_;
};
TORCH_MODULE(UNet2DModel);

}  // namespace qdm
