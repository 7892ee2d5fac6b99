#include "format/sampler_options.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "format/echo.h"

namespace qdm {

SamplerKind parse_sampler(const std::string& name) {
  if (name == "ddim") return SamplerKind::kDDIM;
  if (name == "ddpm") return SamplerKind::kDDPM;
  if (name == "dpmpp2m") return SamplerKind::kDpmSolver2M;
  throw std::invalid_argument("unknown sampler " + echo(name) + "; use ddim, ddpm or dpmpp2m");
}

const char* sampler_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::kDDIM: return "ddim";
    case SamplerKind::kDDPM: return "ddpm";
    case SamplerKind::kDpmSolver2M: return "dpmpp2m";
  }
  return "?";
}

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = {"ddim", "ddpm", "dpmpp2m"};
  return names;
}

nlohmann::json SamplerOptions::to_json() const {
  nlohmann::json j = {{"sampler", sampler_name(kind)}, {"steps", steps}, {"eta", eta}, {"spacing", spacing_name(spacing)}};
  if (!timesteps.empty()) j["schedule"] = timesteps;
  return j;
}

SamplerOptions SamplerOptions::from_json(const nlohmann::json& j) {
  SamplerOptions o;
  try {
    o.kind = parse_sampler(j.at("sampler").get<std::string>());
    o.steps = j.at("steps").get<int>();
    o.eta = j.at("eta").get<double>();
    o.spacing = parse_spacing(j.at("spacing").get<std::string>());
    if (j.contains("schedule")) o.timesteps = j.at("schedule").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("sampler fields: ") + e.what());
  }
  o.validate();
  return o;
}

void SamplerOptions::validate() const {
  if (steps < 1) throw std::invalid_argument("steps must be >= 1, got " + std::to_string(steps));
  if (!std::isfinite(eta) || eta < 0 || eta > 1) throw std::invalid_argument("eta must be a number in [0, 1]");
  if (eta != 0 && kind != SamplerKind::kDDIM) throw std::invalid_argument("eta applies to DDIM only");
  if (!timesteps.empty()) {
    if (static_cast<int>(timesteps.size()) != steps)
      throw std::invalid_argument("an explicit schedule of " + std::to_string(timesteps.size()) + " timesteps needs steps " +
                                  std::to_string(timesteps.size()));
    for (size_t i = 0; i < timesteps.size(); ++i)
      if (timesteps[i] < 0 || (i > 0 && timesteps[i] >= timesteps[i - 1]))
        throw std::invalid_argument("an explicit schedule must be strictly descending non-negative timesteps");
  }
}

std::vector<int> sampler_timesteps(const NoiseSchedule& schedule, const SamplerOptions& options) {
  if (!options.timesteps.empty()) {
    if (options.timesteps.front() >= schedule.num_train_timesteps())
      throw std::invalid_argument("the explicit schedule starts at " + std::to_string(options.timesteps.front()) +
                                  ", past the model's " + std::to_string(schedule.num_train_timesteps()) + " training timesteps");
    return options.timesteps;
  }
  return make_timesteps(schedule.num_train_timesteps(), options.steps, options.spacing, schedule.config.steps_offset);
}

}  // namespace qdm
