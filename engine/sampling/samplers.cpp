#include "engine/sampling/samplers.h"

#include <cmath>

namespace qdm {

namespace {

at::Tensor predict_x0(const NoiseSchedule& s, const at::Tensor& x, const at::Tensor& eps, double a_t) {
  at::Tensor x0 = (x - std::sqrt(1.0 - a_t) * eps) / std::sqrt(a_t);
  if (s.config.clip_sample) x0 = x0.clamp(-s.config.clip_sample_range, s.config.clip_sample_range);
  return x0;
}

}  // namespace

at::Tensor run_sampler(const NoiseSchedule& schedule, const SamplerOptions& options, const Denoiser& denoise,
                       SeededNoise& noise, int64_t channels, int64_t size, const StepCallback& on_step) {
  if (options.eta < 0) throw std::invalid_argument("eta must be >= 0");
  const std::vector<int> ts = sampler_timesteps(schedule, options);
  at::Tensor x = noise.next(channels, size, size);
  const int total = static_cast<int>(ts.size());
  for (int i = 0; i < total; ++i) {
    const int t = ts[static_cast<size_t>(i)];
    const int prev_t = i + 1 < total ? ts[static_cast<size_t>(i + 1)] : -1;
    const at::Tensor eps = denoise(x, t, i);
    const double a_t = schedule.alpha_cumprod(t);
    if (options.kind == SamplerKind::kDDIM) {
      // Song et al. 2021, eq. 12, in diffusers' DDIMScheduler form.
      const double a_prev = schedule.alpha_cumprod(prev_t);
      const at::Tensor x0 = predict_x0(schedule, x, eps, a_t);
      const double variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
      const double std_dev = options.eta * std::sqrt(std::max(variance, 0.0));
      x = std::sqrt(a_prev) * x0 + std::sqrt(std::max(1.0 - a_prev - std_dev * std_dev, 0.0)) * eps;
      if (options.eta > 0) x = x + std_dev * noise.next(channels, size, size);
    } else {
      // Ho et al. 2020 posterior q(x_{t-1} | x_t, x_0) with the "fixed_small" variance, over
      // the (possibly strided) schedule as diffusers' DDPMScheduler does.
      const double a_prev = prev_t >= 0 ? schedule.alphas_cumprod[static_cast<size_t>(prev_t)] : 1.0;
      const double alpha = a_t / a_prev, beta = 1.0 - alpha;
      const at::Tensor x0 = predict_x0(schedule, x, eps, a_t);
      const double c0 = std::sqrt(a_prev) * beta / (1.0 - a_t);
      const double ct = std::sqrt(alpha) * (1.0 - a_prev) / (1.0 - a_t);
      x = c0 * x0 + ct * x;
      if (t > 0) {
        const double variance = std::max((1.0 - a_prev) / (1.0 - a_t) * beta, 1e-20);
        x = x + std::sqrt(variance) * noise.next(channels, size, size);
      }
    }
    if (on_step && !on_step(i + 1, total)) throw SamplingCancelled();
  }
  return x;
}

}  // namespace qdm
