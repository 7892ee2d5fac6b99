#include "engine/sampling/eps_bias.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace qdm {

at::Tensor EpsBias::at_timestep(int t) const {
  if (timesteps.empty()) throw std::logic_error("empty eps bias");
  size_t best = 0;
  for (size_t i = 1; i < timesteps.size(); ++i)
    if (std::abs(timesteps[i] - t) < std::abs(timesteps[best] - t)) best = i;
  return maps[static_cast<int64_t>(best)];
}

void EpsBias::check(int64_t channels, int64_t size) const {
  if (!maps.defined() || maps.dim() != 4 || maps.size(0) != static_cast<int64_t>(timesteps.size()) || timesteps.empty() ||
      maps.size(1) != channels || maps.size(2) != size || maps.size(3) != size)
    throw std::invalid_argument("the eps bias must hold one (" + std::to_string(channels) + ", " + std::to_string(size) +
                                ", " + std::to_string(size) + ") map per step of the schedule (" +
                                std::to_string(timesteps.size()) + " steps)");
}

Denoiser bias_corrected(Denoiser denoise, std::shared_ptr<const EpsBias> bias, const at::Tensor& labels,
                        std::optional<int> null_class) {
  at::Tensor mask;  // (N, 1, 1, 1) float: 1 where the bias applies; undefined: everywhere
  if (labels.defined()) {
    if (!null_class) return denoise;
    const at::Tensor is_null = labels.eq(*null_class);
    if (!is_null.any().item<bool>()) return denoise;
    mask = is_null.to(at::kFloat).view({-1, 1, 1, 1});
  }
  return [denoise = std::move(denoise), bias = std::move(bias), mask](const at::Tensor& x, int t, int step) {
    const at::Tensor eps = denoise(x, t, step);
    const at::Tensor map = bias->at_timestep(t).to(eps.device(), eps.scalar_type()).unsqueeze(0);
    return mask.defined() ? eps - mask.to(eps.device()) * map : eps - map;
  };
}

}  // namespace qdm
