// A quantized model's systematic noise-prediction error: per timestep of its schedule, the mean
// of eps_q(x_t) - eps_fp(x_t) over fp32 trajectories of unconditional images, one (C, H, W) map
// shared by every sample. Quantization shifts all samples the same way (on the shipped model
// TFMQ W4A8's unguided samples drift towards some classes; bench/results/quant/experiments/
// dpm10/bias_correction.md); subtracting the map at sampling removes that part of the error.
// The map describes unconditional predictions only: it corrects images of an unconditional model
// and images with the null label (whose guided prediction is the unconditional one at any
// guidance), never labelled images. Torch-free.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/sampling/samplers.h"

namespace qdm {

struct EpsBias {
  std::vector<int> timesteps;  // one per map, as the artifact's schedule
  int64_t map_size = 0;        // C * H * W
  std::vector<float> maps;     // timesteps.size() maps of map_size floats

  // The map for timestep t: its own, or the nearest timestep's (schedules that visit other
  // timesteps: the error at t depends on x_t's distribution, which every sampler approximates).
  const float* at_timestep(int t) const;
  // Throws std::invalid_argument unless it holds one (channels, height, width) map per timestep.
  void check(int64_t channels, int64_t height, int64_t width) const;
  size_t bytes() const { return maps.size() * sizeof(float); }
};

// `denoise` for one batch with the bias subtracted from the images it applies to: every image
// when `labels` is empty (an unconditional model), else those labelled `null_class`.
DenoiseFn bias_corrected(DenoiseFn denoise, std::shared_ptr<const EpsBias> bias, const std::vector<int64_t>& labels,
                         std::optional<int> null_class);

}  // namespace qdm
