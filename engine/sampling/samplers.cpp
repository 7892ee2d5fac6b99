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
  at::Tensor previous_x0;  // DPM-Solver++(2M): the data prediction of the step before
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
    } else if (options.kind == SamplerKind::kDpmSolver2M) {
      // Lu et al. 2022 (DPM-Solver++), the multistep second-order update in log-SNR
      // lambda = log(alpha / sigma), alpha = sqrt(a), sigma = sqrt(1 - a), as diffusers'
      // DPMSolverMultistepScheduler (solver_order 2, midpoint, final sigma 0) steps it. First
      // order on the first step, and into timestep 0 (leading spacing ends there: lambda jumps
      // by ~3.5 from t = 100 at 10 steps and the extrapolated data prediction overshoots; diffusers'
      // grids stop short of 0 and take their last step first order).
      const at::Tensor x0 = predict_x0(schedule, x, eps, a_t);
      if (prev_t < 0) {
        x = x0;  // the last step lands on sigma 0: first order, which is the data prediction
      } else {
        auto lambda = [&](int step_t) {
          const double a = schedule.alphas_cumprod[static_cast<size_t>(step_t)];
          return 0.5 * std::log(a) - 0.5 * std::log1p(-a);
        };
        const double a_next = schedule.alphas_cumprod[static_cast<size_t>(prev_t)];
        const double h = lambda(prev_t) - lambda(t);
        const double phi = std::expm1(-h);  // exp(-h) - 1
        const double ratio = std::sqrt((1.0 - a_next) / (1.0 - a_t)), alpha_next = std::sqrt(a_next);
        if (i == 0 || prev_t == 0) {
          x = ratio * x - alpha_next * phi * x0;
        } else {
          const double r0 = (lambda(t) - lambda(ts[static_cast<size_t>(i - 1)])) / h;
          const at::Tensor d1 = (x0 - previous_x0) / r0;
          x = ratio * x - alpha_next * phi * x0 - 0.5 * alpha_next * phi * d1;
        }
      }
      previous_x0 = x0;
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
