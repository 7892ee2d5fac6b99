#include "engine/sampling/samplers.h"

#include <algorithm>
#include <cmath>

#include "engine/sampling/noise.h"

namespace qdm {
namespace {

// The data prediction x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t), clipped as the scheduler says.
void predict_x0(const NoiseSchedule& s, const float* x, const float* eps, double a_t, float* x0, int64_t count) {
  const float c_eps = static_cast<float>(std::sqrt(1.0 - a_t)), c_div = static_cast<float>(std::sqrt(a_t));
  const bool clip = s.config.clip_sample;
  const float range = static_cast<float>(s.config.clip_sample_range);
  for (int64_t i = 0; i < count; ++i) {
    float v = (x[i] - c_eps * eps[i]) / c_div;
    if (clip) v = std::min(std::max(v, -range), range);
    x0[i] = v;
  }
}

}  // namespace

void run_sampler(const NoiseSchedule& schedule, const SamplerOptions& options, const DenoiseFn& denoise,
                 const std::vector<uint64_t>& seeds, int64_t image_size, float* x, const StepCallback& on_step) {
  if (options.eta < 0) throw std::invalid_argument("eta must be >= 0");
  const int n = static_cast<int>(seeds.size());
  const int64_t count = static_cast<int64_t>(n) * image_size;
  const std::vector<int> ts = sampler_timesteps(schedule, options);
  uint32_t draw = 0;
  std::vector<float> noise(static_cast<size_t>(count));
  auto next_noise = [&] {
    for (int i = 0; i < n; ++i) gaussian_noise(seeds[static_cast<size_t>(i)], draw, noise.data() + i * image_size, image_size);
    ++draw;
  };
  next_noise();
  std::copy(noise.begin(), noise.end(), x);
  std::vector<float> eps(static_cast<size_t>(count)), x0(eps.size()), previous_x0;  // DPM-Solver++(2M): the step before's x0
  const int total = static_cast<int>(ts.size());
  for (int i = 0; i < total; ++i) {
    const int t = ts[static_cast<size_t>(i)];
    const int prev_t = i + 1 < total ? ts[static_cast<size_t>(i + 1)] : -1;
    denoise(x, n, t, i, eps.data());
    const double a_t = schedule.alpha_cumprod(t);
    predict_x0(schedule, x, eps.data(), a_t, x0.data(), count);
    if (options.kind == SamplerKind::kDDIM) {
      // Song et al. 2021, eq. 12, in diffusers' DDIMScheduler form.
      const double a_prev = schedule.alpha_cumprod(prev_t);
      const double variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
      const double std_dev = options.eta * std::sqrt(std::max(variance, 0.0));
      const float c0 = static_cast<float>(std::sqrt(a_prev)),
                  ce = static_cast<float>(std::sqrt(std::max(1.0 - a_prev - std_dev * std_dev, 0.0)));
      for (int64_t j = 0; j < count; ++j) x[j] = c0 * x0[static_cast<size_t>(j)] + ce * eps[static_cast<size_t>(j)];
      if (options.eta > 0) {
        next_noise();
        const float s = static_cast<float>(std_dev);
        for (int64_t j = 0; j < count; ++j) x[j] = x[j] + s * noise[static_cast<size_t>(j)];
      }
    } else if (options.kind == SamplerKind::kDpmSolver2M) {
      // Lu et al. 2022 (DPM-Solver++), the multistep second-order update in log-SNR
      // lambda = log(alpha / sigma), alpha = sqrt(a), sigma = sqrt(1 - a), as diffusers'
      // DPMSolverMultistepScheduler (solver_order 2, midpoint, final sigma 0) steps it. First
      // order on the first step, and into timestep 0 (leading spacing ends there: lambda jumps
      // by ~3.5 from t = 100 at 10 steps and the extrapolated data prediction overshoots; diffusers'
      // grids stop short of 0 and take their last step first order).
      if (prev_t < 0) {
        std::copy(x0.begin(), x0.end(), x);  // the last step lands on sigma 0: first order, the data prediction
      } else {
        auto lambda = [&](int step_t) {
          const double a = schedule.alphas_cumprod[static_cast<size_t>(step_t)];
          return 0.5 * std::log(a) - 0.5 * std::log1p(-a);
        };
        const double a_next = schedule.alphas_cumprod[static_cast<size_t>(prev_t)];
        const double h = lambda(prev_t) - lambda(t);
        const double phi = std::expm1(-h);  // exp(-h) - 1
        const double ratio = std::sqrt((1.0 - a_next) / (1.0 - a_t)), alpha_next = std::sqrt(a_next);
        const float cr = static_cast<float>(ratio), c0 = static_cast<float>(alpha_next * phi);
        if (i == 0 || prev_t == 0) {
          for (int64_t j = 0; j < count; ++j) x[j] = cr * x[j] - c0 * x0[static_cast<size_t>(j)];
        } else {
          const double r0 = (lambda(t) - lambda(ts[static_cast<size_t>(i - 1)])) / h;
          const float cd = static_cast<float>(0.5 * alpha_next * phi), r = static_cast<float>(r0);
          for (int64_t j = 0; j < count; ++j) {
            const float d1 = (x0[static_cast<size_t>(j)] - previous_x0[static_cast<size_t>(j)]) / r;
            x[j] = cr * x[j] - c0 * x0[static_cast<size_t>(j)] - cd * d1;
          }
        }
      }
      previous_x0 = x0;
    } else {
      // Ho et al. 2020 posterior q(x_{t-1} | x_t, x_0) with the "fixed_small" variance, over
      // the (possibly strided) schedule as diffusers' DDPMScheduler does.
      const double a_prev = prev_t >= 0 ? schedule.alphas_cumprod[static_cast<size_t>(prev_t)] : 1.0;
      const double alpha = a_t / a_prev, beta = 1.0 - alpha;
      const float c0 = static_cast<float>(std::sqrt(a_prev) * beta / (1.0 - a_t));
      const float ct = static_cast<float>(std::sqrt(alpha) * (1.0 - a_prev) / (1.0 - a_t));
      for (int64_t j = 0; j < count; ++j) x[j] = c0 * x0[static_cast<size_t>(j)] + ct * x[j];
      if (t > 0) {
        next_noise();
        const float s = static_cast<float>(std::sqrt(std::max((1.0 - a_prev) / (1.0 - a_t) * beta, 1e-20)));
        for (int64_t j = 0; j < count; ++j) x[j] = x[j] + s * noise[static_cast<size_t>(j)];
      }
    }
    if (on_step && !on_step(i + 1, total)) throw SamplingCancelled();
  }
}

}  // namespace qdm
