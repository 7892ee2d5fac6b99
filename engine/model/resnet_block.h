// diffusers ResnetBlock2D: norm1 -> SiLU -> conv1 -> (+ time_emb_proj(SiLU(temb))) -> norm2 ->
// SiLU -> conv2, plus a (1x1 conv_shortcut) skip; (skip + h) / output_scale_factor.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "engine/model/layers.h"

namespace qdm {

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  ResnetBlock2DImpl(int in_channels, int out_channels, int temb_channels, int groups, double eps,
                    bool scale_shift, double output_scale_factor);
  // x: (N, C_in, H, W), temb: (N, T) -> (N, C_out, H, W)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb);
  // The temporal feature this block adds: time_emb_proj(SiLU(temb)), (N, C_out or 2*C_out).
  at::Tensor temporal_feature(const at::Tensor& temb);
  // forward() with the temporal feature already computed (TFMQ-DM caches it per step).
  at::Tensor forward_with_feature(const at::Tensor& x, const at::Tensor& feature);

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  Conv2dLayer conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  LinearLayer time_emb_proj{nullptr};
  bool scale_shift;
  BlockTap tap;
  double output_scale_factor;
};
TORCH_MODULE(ResnetBlock2D);

}  // namespace qdm
