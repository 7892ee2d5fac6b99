#include "engine/sampling/eps_bias.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace qdm {

const float* EpsBias::at_timestep(int t) const {
  if (timesteps.empty()) throw std::logic_error("empty eps bias");
  size_t best = 0;
  for (size_t i = 1; i < timesteps.size(); ++i)
    if (std::abs(timesteps[i] - t) < std::abs(timesteps[best] - t)) best = i;
  return maps.data() + static_cast<int64_t>(best) * map_size;
}

void EpsBias::check(int64_t channels, int64_t height, int64_t width) const {
  if (timesteps.empty() || map_size != channels * height * width ||
      static_cast<int64_t>(maps.size()) != static_cast<int64_t>(timesteps.size()) * map_size)
    throw std::invalid_argument("the eps bias must hold one (" + std::to_string(channels) + ", " + std::to_string(height) +
                                ", " + std::to_string(width) + ") map per step of the schedule (" +
                                std::to_string(timesteps.size()) + " steps)");
}

DenoiseFn bias_corrected(DenoiseFn denoise, std::shared_ptr<const EpsBias> bias, const std::vector<int64_t>& labels,
                         std::optional<int> null_class) {
  std::vector<char> applies;  // per image; empty: every image
  if (!labels.empty()) {
    if (!null_class) return denoise;
    bool any = false;
    for (int64_t l : labels) {
      applies.push_back(l == *null_class);
      any = any || l == *null_class;
    }
    if (!any) return denoise;
  }
  return [denoise = std::move(denoise), bias = std::move(bias), applies](const float* x, int n, int t, int step, float* eps) {
    denoise(x, n, t, step, eps);
    const float* map = bias->at_timestep(t);
    const int64_t size = bias->map_size;
    for (int i = 0; i < n; ++i) {
      if (!applies.empty() && !applies[static_cast<size_t>(i)]) continue;
      float* e = eps + i * size;
      for (int64_t j = 0; j < size; ++j) e[j] = e[j] - map[j];
    }
  };
}

}  // namespace qdm
