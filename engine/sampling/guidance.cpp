#include "engine/sampling/guidance.h"

#include <cmath>
#include <stdexcept>

namespace qdm {

Denoiser guided_denoiser(ModelDenoiser model, at::Tensor labels, std::optional<int> null_class, double guidance) {
  if (!std::isfinite(guidance)) throw std::invalid_argument("guidance must be a finite number");
  if (guidance == 1.0 || !labels.defined()) {
    if (guidance != 1.0) throw std::invalid_argument("guidance needs a class-conditional model");
    return [model = std::move(model), labels](const at::Tensor& x, int t, int step) { return model(x, t, step, labels); };
  }
  if (!null_class) throw std::invalid_argument("this model has no null class: guidance must be 1");
  const at::Tensor both = at::cat({labels, at::full_like(labels, *null_class)});
  return [model = std::move(model), both, guidance](const at::Tensor& x, int t, int step) {
    const at::Tensor eps = model(at::cat({x, x}), t, step, both.to(x.device()));
    const int64_t n = x.size(0);
    const at::Tensor cond = eps.narrow(0, 0, n), uncond = eps.narrow(0, n, n);
    return uncond + guidance * (cond - uncond);
  };
}

ModelDenoiser unconditional(Denoiser denoise) {
  return [denoise = std::move(denoise)](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
    if (labels.defined()) throw std::invalid_argument("this model is not class-conditional");
    return denoise(x, t, step);
  };
}

}  // namespace qdm
