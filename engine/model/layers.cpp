#include "engine/model/layers.h"

#include <torch/nn/init.h>

#include <cmath>

namespace qdm {

// Both layers start with PyTorch's default initialisation (kaiming-uniform a=sqrt(5), bias
// uniform in +-1/sqrt(fan_in)), so a freshly built UNet trains as diffusers' would.
Conv2dLayerImpl::Conv2dLayerImpl(int in_ch, int out_ch, int k, int s, int p)
    : in_channels(in_ch), out_channels(out_ch), kernel(k), stride(s), padding(p) {
  weight = register_parameter("weight", at::empty({out_ch, in_ch, k, k}));
  bias = register_parameter("bias", at::empty({out_ch}));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_ch * k * k));
  bias.uniform_(-bound, bound);
}

at::Tensor Conv2dLayerImpl::forward(const at::Tensor& x) {
  return override_ ? override_->forward(x) : forward_fp(x);
}

at::Tensor Conv2dLayerImpl::forward_fp(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

LinearLayerImpl::LinearLayerImpl(int in_f, int out_f, bool has_bias) : in_features(in_f), out_features(out_f) {
  weight = register_parameter("weight", at::empty({out_f, in_f}));
  if (has_bias) bias = register_parameter("bias", at::empty({out_f}));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_f));
  if (has_bias) bias.uniform_(-bound, bound);
}

at::Tensor LinearLayerImpl::forward(const at::Tensor& x) {
  return override_ ? override_->forward(x) : forward_fp(x);
}

at::Tensor LinearLayerImpl::forward_fp(const at::Tensor& x) const { return at::linear(x, weight, bias); }

}  // namespace qdm
