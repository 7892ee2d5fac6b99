#include "engine/quant/vq/layer_moments.h"

#include <ATen/core/grad_mode.h>

#include <stdexcept>
#include <string>

namespace qdm::vq {

at::Tensor to_group_order(const at::Tensor& weight) {
  if (weight.dim() == 2) return weight.contiguous();
  if (weight.dim() != 4) throw std::invalid_argument("to_group_order: a conv (4-d) or linear (2-d) weight");
  return weight.permute({0, 2, 3, 1}).reshape({weight.size(0), -1}).contiguous();
}

at::Tensor from_group_order(const at::Tensor& rows, at::IntArrayRef shape) {
  if (shape.size() == 2) return rows.reshape(shape).contiguous();
  if (shape.size() != 4) throw std::invalid_argument("from_group_order: a conv (4-d) or linear (2-d) shape");
  return rows.reshape({shape[0], shape[2], shape[3], shape[1]}).permute({0, 3, 1, 2}).contiguous();
}

InputMoments::InputMoments(int64_t k, ConvGeometry geometry) : g_(geometry), sum_(at::zeros({k, k}, at::kDouble)) {}

void InputMoments::add(const at::Tensor& input) {
  at::NoGradGuard no_grad;
  const int64_t k = sum_.size(0);
  at::Tensor x;  // (rows, K) in group order
  if (g_.kernel == 0) {
    if (input.size(-1) != k) throw std::invalid_argument("InputMoments: input features differ from the layer's");
    x = input.reshape({-1, k});
  } else {
    if (input.dim() != 4) throw std::invalid_argument("InputMoments: a conv input must be (B, C, H, W)");
    const int64_t c = input.size(1), kk = static_cast<int64_t>(g_.kernel) * g_.kernel;
    if (c * kk != k) throw std::invalid_argument("InputMoments: input channels differ from the layer's");
    const at::Tensor cols = at::im2col(input.to(at::kFloat), {g_.kernel, g_.kernel}, {1, 1}, {g_.padding, g_.padding},
                                       {g_.stride, g_.stride});  // (B, C * kk, L) in (c, ky, kx) order
    x = cols.reshape({input.size(0), c, kk, -1}).permute({0, 3, 2, 1}).reshape({-1, k});
  }
  const at::Tensor xd = x.to(at::kDouble);
  sum_.addmm_(xd.t(), xd);
  count_ += x.size(0);
}

at::Tensor InputMoments::h() const {
  if (count_ == 0) throw std::logic_error("InputMoments: no inputs were added");
  return (sum_ / static_cast<double>(count_)).to(at::kFloat);
}

}  // namespace qdm::vq
