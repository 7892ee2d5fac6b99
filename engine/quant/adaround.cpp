#include "engine/quant/adaround.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

namespace qdm {
namespace {

at::Tensor per_channel(const at::Tensor& v, const at::Tensor& w) {
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[0] = v.numel();
  return v.reshape(shape);
}

}  // namespace

AdaRound::AdaRound(const at::Tensor& weight, const QuantParams& p) : bits_(p.bits) {
  at::NoGradGuard no_grad;
  scale_ = per_channel(p.scale, weight).detach();
  zero_ = per_channel(p.zero_point, weight).detach();
  const at::Tensor ws = weight.detach() / scale_;
  floor_ = at::floor(ws);
  const at::Tensor rest = (ws - floor_).clamp(1e-4, 1 - 1e-4);
  // h(alpha) = rest  <=>  sigmoid(alpha) = (rest + 0.1) / 1.2
  alpha = (-at::log(1.2 / (rest + 0.1) - 1)).set_requires_grad(true);
}

at::Tensor AdaRound::h() const { return at::clamp(at::sigmoid(alpha) * 1.2 - 0.1, 0, 1); }

at::Tensor AdaRound::soft_weight() const {
  return (at::clamp(floor_ + h() + zero_, 0, static_cast<double>(qmax(bits_))) - zero_) * scale_;
}

at::Tensor AdaRound::hard_weight() const {
  at::NoGradGuard no_grad;
  return (at::clamp(floor_ + (alpha >= 0).to(at::kFloat) + zero_, 0, static_cast<double>(qmax(bits_))) - zero_) * scale_;
}

at::Tensor AdaRound::regularizer(double beta) const { return (1 - (2 * h() - 1).abs().pow(beta)).sum(); }

double adaround_beta(int iter, int iters, double warmup) {
  const double start = warmup * iters;
  if (iter < start) return 0;  // no regularisation during warm-up
  const double frac = (iter - start) / std::max(1.0, iters - start);
  return 2 + (20 - 2) * (1 - frac);
}

}  // namespace qdm
