// Conv2d and Linear layers of the UNet. They hold diffusers-named `weight` and `bias`
// parameters and compute in fp32 unless an override is installed: quantization installs a
// fake-quant or integer-kernel override per layer without touching the UNet code.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>

namespace qdm {

// Observes a block's input and output during forward (block reconstruction captures its
// calibration pairs through it).
using BlockTap = std::function<void(const at::Tensor& input, const at::Tensor& output)>;

// Replaces a layer's computation: input (N, C_in, ...) -> output, given the layer itself.
class LayerOverride {
 public:
  virtual ~LayerOverride() = default;
  virtual at::Tensor forward(const at::Tensor& input) = 0;
};

class Conv2dLayerImpl : public torch::nn::Module {
 public:
  Conv2dLayerImpl(int in_channels, int out_channels, int kernel, int stride = 1, int padding = 1);
  // x: (N, C_in, H, W) -> (N, C_out, H', W')
  at::Tensor forward(const at::Tensor& x);
  at::Tensor forward_fp(const at::Tensor& x) const;  // ignores any override

  int in_channels, out_channels, kernel, stride, padding;
  at::Tensor weight;  // (C_out, C_in, k, k)
  at::Tensor bias;    // (C_out)
  std::shared_ptr<LayerOverride> override_;
};
TORCH_MODULE(Conv2dLayer);

class LinearLayerImpl : public torch::nn::Module {
 public:
  LinearLayerImpl(int in_features, int out_features, bool bias = true);
  // x: (..., in) -> (..., out)
  at::Tensor forward(const at::Tensor& x);
  at::Tensor forward_fp(const at::Tensor& x) const;

  int in_features, out_features;
  at::Tensor weight;  // (out, in)
  at::Tensor bias;    // (out); undefined for a layer without bias (diffusers' cross-attention to_q/k/v)
  std::shared_ptr<LayerOverride> override_;
};
TORCH_MODULE(LinearLayer);

}  // namespace qdm
