// Which training timesteps an N-step sampler visits, in descending order.
#pragma once

#include <string>
#include <vector>

namespace qdm {

enum class TimestepSpacing {
  kLeading,   // diffusers default: i * (T / N) for i < N, + steps_offset
  kTrailing,  // diffusers "trailing": round(T - i * T / N) - 1
  kUniform,   // DDIM / Q-Diffusion papers' skip_type "uniform": range(0, T, T / N)
  kQuad,      // DDIM paper's skip_type "quad": (linspace(0, sqrt(0.8 T), N))^2
};

TimestepSpacing parse_spacing(const std::string& name);  // throws std::invalid_argument
const char* spacing_name(TimestepSpacing spacing);

// Descending timesteps; throws std::invalid_argument when steps < 1 or steps > T.
std::vector<int> make_timesteps(int num_train_timesteps, int steps, TimestepSpacing spacing,
                                int steps_offset = 0);

}  // namespace qdm
