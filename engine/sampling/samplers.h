// DDIM, DDPM (ancestral) and DPM-Solver++(2M) samplers as free functions over a denoise callback, so they run
// with any noise predictor: the fp32 UNet, a fake-quant UNet, the integer-kernel UNet, or an
// analytic model in tests.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "format/noise_schedule.h"
#include "format/sampler_options.h"
#include "engine/sampling/seeded_noise.h"
#include "format/timesteps.h"

namespace qdm {


// Predicts the noise in x_t: x (N, C, H, W), t the training timestep, step the index in the
// schedule (0 = first, noisiest) -> eps (N, C, H, W).
using Denoiser = std::function<at::Tensor(const at::Tensor& x, int t, int step)>;
// Called after each step; returns false to cancel.
using StepCallback = std::function<bool(int step, int total)>;

class SamplingCancelled : public std::runtime_error {
 public:
  SamplingCancelled() : std::runtime_error("sampling cancelled") {}
};


// Runs the reverse process from noise.next() to x_0 (N, C, H, W), values nominally in [-1, 1].
at::Tensor run_sampler(const NoiseSchedule& schedule, const SamplerOptions& options, const Denoiser& denoise,
                       SeededNoise& noise, int64_t channels, int64_t size,
                       const StepCallback& on_step = nullptr);

}  // namespace qdm
