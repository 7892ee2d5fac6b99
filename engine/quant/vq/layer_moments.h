// A layer's weights and inputs in additive quantization's group order, and the second moment of
// its inputs that the per-layer objective tr(dW H dW^T) needs.
//
// A conv weight (N, C, kh, kw) becomes rows of K = kh * kw * C in (ky, kx, c) order, so a group
// of consecutive values is that many input channels at one kernel position (the order the
// integer kernels read); a linear weight (N, C) is already rows. H = X^T X / count over the
// layer's inputs unfolded the same way (im2col for a conv).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace qdm::vq {

struct ConvGeometry {
  int kernel = 1, stride = 1, padding = 0;  // kernel 0: a linear layer
};

at::Tensor to_group_order(const at::Tensor& weight);                    // (N, K)
at::Tensor from_group_order(const at::Tensor& rows, at::IntArrayRef shape);  // back to `shape`

// Accumulates X^T X over inputs (B, C, H, W) of a conv or (..., C) of a linear layer, in float64.
class InputMoments {
 public:
  InputMoments(int64_t k, ConvGeometry geometry);
  void add(const at::Tensor& input);
  int64_t count() const { return count_; }
  at::Tensor h() const;  // (K, K) float32, divided by count; throws when nothing was added

 private:
  ConvGeometry g_;
  at::Tensor sum_;
  int64_t count_ = 0;
};

}  // namespace qdm::vq
