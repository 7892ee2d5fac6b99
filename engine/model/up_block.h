// diffusers UpBlock2D / AttnUpBlock2D: (layers_per_block + 1) x (cat(x, skip) -> resnet
// [-> attention]), then an optional Upsample2D. Skips are consumed from the back.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "engine/model/time_context.h"
#include "format/unet_config.h"

namespace qdm {

class UpBlockImpl : public torch::nn::Module {
 public:
  UpBlockImpl(const UNetConfig& cfg, int in_channels, int prev_output_channels, int out_channels,
              bool has_attention, bool add_upsample);
  at::Tensor forward(const at::Tensor& x, TimeContext& time, std::vector<at::Tensor>& skips);

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(UpBlock);

}  // namespace qdm
