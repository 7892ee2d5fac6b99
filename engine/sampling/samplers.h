// DDIM, DDPM (ancestral) and DPM-Solver++(2M) samplers as free functions over a denoise callback
// on float buffers, so they run with any noise predictor: the execution plan, the fp32 or
// fake-quant UNet through tensor_sampling.h, or an analytic model in tests. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "format/noise_schedule.h"
#include "format/sampler_options.h"
#include "format/timesteps.h"

namespace qdm {

// Predicts the noise in x_t for n images of `image_size` floats each (NCHW per image): t the
// training timestep, step the index in the schedule (0 = first, noisiest) -> eps, same shape.
using DenoiseFn = std::function<void(const float* x, int n, int t, int step, float* eps)>;
// Called after each step; returns false to cancel.
using StepCallback = std::function<bool(int step, int total)>;

class SamplingCancelled : public std::runtime_error {
 public:
  SamplingCancelled() : std::runtime_error("sampling cancelled") {}
};

// Runs the reverse process for one image per seed: x (seeds.size() * image_size floats) starts
// as each image's draw-0 noise (noise.h) and ends as x_0, values nominally in [-1, 1]. Noise
// added on the way (DDPM, DDIM with eta > 0) is the image's draws 1, 2, ...
void run_sampler(const NoiseSchedule& schedule, const SamplerOptions& options, const DenoiseFn& denoise,
                 const std::vector<uint64_t>& seeds, int64_t image_size, float* x, const StepCallback& on_step = nullptr);

}  // namespace qdm
