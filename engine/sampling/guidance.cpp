#include "engine/sampling/guidance.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace qdm {

DenoiseFn guided_denoiser(ModelFn model, std::vector<int64_t> labels, std::optional<int> null_class, double guidance,
                          int64_t image_size) {
  if (!std::isfinite(guidance)) throw std::invalid_argument("guidance must be a finite number");
  if (guidance == 1.0 || labels.empty()) {
    if (guidance != 1.0) throw std::invalid_argument("guidance needs a class-conditional model");
    return [model = std::move(model), labels](const float* x, int n, int t, int step, float* eps) {
      model(x, n, t, step, labels.empty() ? nullptr : labels.data(), eps);
    };
  }
  if (!null_class) throw std::invalid_argument("this model has no null class: guidance must be 1");
  std::vector<int64_t> both = labels;
  both.insert(both.end(), labels.size(), *null_class);
  return [model = std::move(model), both, guidance, image_size](const float* x, int n, int t, int step, float* eps) {
    const int64_t count = static_cast<int64_t>(n) * image_size;
    thread_local std::vector<float> xx, ee;
    xx.resize(static_cast<size_t>(2 * count));
    ee.resize(xx.size());
    std::memcpy(xx.data(), x, sizeof(float) * count);
    std::memcpy(xx.data() + count, x, sizeof(float) * count);
    model(xx.data(), 2 * n, t, step, both.data(), ee.data());
    const float g = static_cast<float>(guidance);
    for (int64_t j = 0; j < count; ++j) {
      const float cond = ee[static_cast<size_t>(j)], uncond = ee[static_cast<size_t>(count + j)];
      eps[j] = uncond + g * (cond - uncond);
    }
  };
}

}  // namespace qdm
