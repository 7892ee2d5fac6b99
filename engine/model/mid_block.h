// diffusers UNetMidBlock2D: resnet -> [attention] -> resnet, scaled by mid_block_scale_factor.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "engine/model/time_context.h"
#include "format/unet_config.h"

namespace qdm {

class MidBlockImpl : public torch::nn::Module {
 public:
  MidBlockImpl(const UNetConfig& cfg, int channels);
  at::Tensor forward(const at::Tensor& x, TimeContext& time);  // (N, C, H, W) -> same

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
};
TORCH_MODULE(MidBlock);

}  // namespace qdm
