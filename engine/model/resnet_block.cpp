#include "engine/model/resnet_block.h"

namespace qdm {

ResnetBlock2DImpl::ResnetBlock2DImpl(int in_ch, int out_ch, int temb_ch, int groups, double eps,
                                     bool scale_shift_, double output_scale_factor_)
    : scale_shift(scale_shift_), output_scale_factor(output_scale_factor_) {
  using torch::nn::GroupNormOptions;
  norm1 = register_module("norm1", torch::nn::GroupNorm(GroupNormOptions(groups, in_ch).eps(eps)));
  conv1 = register_module("conv1", Conv2dLayer(in_ch, out_ch, 3, 1, 1));
  time_emb_proj = register_module("time_emb_proj", LinearLayer(temb_ch, scale_shift ? 2 * out_ch : out_ch));
  norm2 = register_module("norm2", torch::nn::GroupNorm(GroupNormOptions(groups, out_ch).eps(eps)));
  conv2 = register_module("conv2", Conv2dLayer(out_ch, out_ch, 3, 1, 1));
  if (in_ch != out_ch) conv_shortcut = register_module("conv_shortcut", Conv2dLayer(in_ch, out_ch, 1, 1, 0));
}

at::Tensor ResnetBlock2DImpl::temporal_feature(const at::Tensor& temb) {
  return time_emb_proj->forward(at::silu(temb));
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb) {
  return forward_with_feature(x, temporal_feature(temb));
}

at::Tensor ResnetBlock2DImpl::forward_with_feature(const at::Tensor& x, const at::Tensor& feature) {
  at::Tensor h = conv1->forward(at::silu(norm1->forward(x)));
  at::Tensor f = feature.unsqueeze(-1).unsqueeze(-1);  // (N, C, 1, 1)
  if (scale_shift) {
    auto parts = f.chunk(2, 1);
    h = norm2->forward(h) * (1 + parts[0]) + parts[1];
  } else {
    h = norm2->forward(h + f);
  }
  h = conv2->forward(at::silu(h));
  at::Tensor skip = conv_shortcut ? conv_shortcut->forward(x) : x;
  at::Tensor out = skip + h;
  if (output_scale_factor != 1.0) out = out / output_scale_factor;
  if (tap) tap(x, out);
  return out;
}

}  // namespace qdm
