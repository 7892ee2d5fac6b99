// diffusers DownBlock2D / AttnDownBlock2D: layers_per_block x (resnet [-> attention]), then an
// optional Downsample2D. Returns the output and every intermediate for the skip connections.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "engine/model/time_context.h"
#include "format/unet_config.h"

namespace qdm {

class DownBlockImpl : public torch::nn::Module {
 public:
  DownBlockImpl(const UNetConfig& cfg, int in_channels, int out_channels, bool has_attention,
                bool add_downsample);
  // x: (N, C_in, H, W) -> (N, C_out, H/2 or H, ...); appends each resnet/attention output and
  // the downsampled output to `skips`.
  at::Tensor forward(const at::Tensor& x, TimeContext& time, std::vector<at::Tensor>& skips);

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
};
TORCH_MODULE(DownBlock);

}  // namespace qdm
