// AdaRound learned rounding (Nagel et al. 2020) for one layer's weight:
//   w~ = s (clamp(floor(w / s) + h(a) + z, 0, 2^b - 1) - z),  h(a) = clamp(1.2 sigmoid(a) - 0.1, 0, 1)
// with `a` initialised so that h(a) equals the fractional part (round-to-nearest at start),
// the regulariser lambda * sum(1 - |2h - 1|^beta) pushing h to 0 or 1, and hard rounding
// (h = [a >= 0]) at the end.
#pragma once

#include <ATen/ATen.h>

#include "engine/quant/uniform_quant.h"

namespace qdm {

class AdaRound {
 public:
  AdaRound(const at::Tensor& weight, const QuantParams& params);

  at::Tensor soft_weight() const;  // differentiable in alpha
  at::Tensor hard_weight() const;
  at::Tensor regularizer(double beta) const;  // sum(1 - |2h - 1|^beta)

  at::Tensor alpha;  // requires grad

 private:
  at::Tensor h() const;
  at::Tensor floor_, scale_, zero_;
  int bits_;
};

// beta annealed from 20 to 2 after `warmup` of the iterations (no regularisation before).
double adaround_beta(int iter, int iters, double warmup);

}  // namespace qdm
