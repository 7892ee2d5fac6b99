// How to sample: the sampler, its step count, DDIM's eta and the timestep spacing, with the one
// set of defaults every interface uses (the CLI, the service, artifacts, reference caches).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "format/noise_schedule.h"
#include "format/timesteps.h"

namespace qdm {

// DDIM (eta 0: deterministic), DDPM (ancestral), DPM-Solver++(2M) (Lu et al. 2022: a
// deterministic second-order multistep solver of the probability-flow ODE in data prediction,
// diffusers' DPMSolverMultistepScheduler defaults: first order on the first step and, below 15
// steps, on the last; made for few steps).
enum class SamplerKind { kDDIM, kDDPM, kDpmSolver2M };
SamplerKind parse_sampler(const std::string& name);  // throws std::invalid_argument
const char* sampler_name(SamplerKind kind);
const std::vector<std::string>& sampler_names();  // every name parse_sampler takes

struct SamplerOptions {
  SamplerKind kind = SamplerKind::kDDIM;
  int steps = 100;
  double eta = 0.0;  // DDIM only: 0 deterministic, 1 DDPM-like
  TimestepSpacing spacing = TimestepSpacing::kLeading;
  // An explicit schedule (descending training timesteps; a searched artifact's, e.g. TMPQ-DM's):
  // when set it is what the sampler visits, and steps equals its length.
  std::vector<int> timesteps;

  // {"sampler", "steps", "eta", "spacing"} (+ "schedule" when explicit): the artifact
  // metadata's and cache keys' fields.
  nlohmann::json to_json() const;
  static SamplerOptions from_json(const nlohmann::json& j);  // throws std::invalid_argument
  // Throws std::invalid_argument naming the field: steps >= 1, eta finite in [0, 1], eta only
  // with DDIM, an explicit schedule strictly descending and non-negative.
  void validate() const;
};

// The timesteps `options` visits for this schedule (descending); throws std::invalid_argument
// for steps outside [1, T].
std::vector<int> sampler_timesteps(const NoiseSchedule& schedule, const SamplerOptions& options);

}  // namespace qdm
