#include "engine/model/resample.h"

namespace qdm {

Downsample2DImpl::Downsample2DImpl(int channels, int pad) : padding(pad) {
  conv = register_module("conv", Conv2dLayer(channels, channels, 3, 2, pad));
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  return conv->forward(padding == 0 ? at::constant_pad_nd(x, {0, 1, 0, 1}) : x);
}

Upsample2DImpl::Upsample2DImpl(int channels) {
  conv = register_module("conv", Conv2dLayer(channels, channels, 3, 1, 1));
}

at::Tensor Upsample2DImpl::forward(const at::Tensor& x) {
  return conv->forward(at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}));
}

}  // namespace qdm
