// diffusers Downsample2D (3x3 stride-2 conv; padding 0 pads right/bottom by one first) and
// Upsample2D (nearest 2x, then 3x3 conv). Both keep their conv under the name `conv`.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "engine/model/layers.h"

namespace qdm {

class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int channels, int padding);
  at::Tensor forward(const at::Tensor& x);  // (N, C, H, W) -> (N, C, H/2, W/2)
  Conv2dLayer conv{nullptr};
  int padding;
};
TORCH_MODULE(Downsample2D);

class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int channels);
  at::Tensor forward(const at::Tensor& x);  // (N, C, H, W) -> (N, C, 2H, 2W)
  Conv2dLayer conv{nullptr};
};
TORCH_MODULE(Upsample2D);

}  // namespace qdm
