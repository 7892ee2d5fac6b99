#include "format/timesteps.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace qdm {

TimestepSpacing parse_spacing(const std::string& name) {
  if (name == "leading") return TimestepSpacing::kLeading;
  if (name == "trailing") return TimestepSpacing::kTrailing;
  if (name == "uniform") return TimestepSpacing::kUniform;
  if (name == "quad") return TimestepSpacing::kQuad;
  throw std::invalid_argument("unknown timestep spacing '" + name + "'; use leading, trailing, uniform or quad");
}

const char* spacing_name(TimestepSpacing spacing) {
  switch (spacing) {
    case TimestepSpacing::kLeading: return "leading";
    case TimestepSpacing::kTrailing: return "trailing";
    case TimestepSpacing::kUniform: return "uniform";
    case TimestepSpacing::kQuad: return "quad";
  }
  return "?";
}

std::vector<int> make_timesteps(int T, int steps, TimestepSpacing spacing, int steps_offset) {
  if (steps < 1 || steps > T)
    throw std::invalid_argument("steps must be in [1, " + std::to_string(T) + "], got " + std::to_string(steps));
  std::vector<int> ts;
  switch (spacing) {
    case TimestepSpacing::kLeading: {
      const int ratio = T / steps;
      for (int i = 0; i < steps; ++i) ts.push_back(i * ratio + steps_offset);
      break;
    }
    case TimestepSpacing::kTrailing: {
      const double ratio = static_cast<double>(T) / steps;
      for (int i = 0; i < steps; ++i) ts.push_back(static_cast<int>(std::round(T - i * ratio)) - 1);
      break;
    }
    case TimestepSpacing::kUniform: {
      const int skip = T / steps;
      for (int t = 0; t < T; t += skip) ts.push_back(t);
      break;
    }
    case TimestepSpacing::kQuad: {
      const double top = std::sqrt(0.8 * T);
      for (int i = 0; i < steps; ++i) {
        const double s = steps == 1 ? 0.0 : top * i / (steps - 1);
        ts.push_back(static_cast<int>(s * s));
      }
      break;
    }
  }
  for (int& t : ts) t = std::clamp(t, 0, T - 1);
  std::sort(ts.begin(), ts.end(), std::greater<int>());
  ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
  return ts;
}

}  // namespace qdm
