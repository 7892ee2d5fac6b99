// The forward-process noise schedule and its diffusers scheduler config
// (scheduler/scheduler_config.json or scheduler_config.json in a model folder).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace qdm {

struct SchedulerConfig {
  int num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";  // linear | scaled_linear | squaredcos_cap_v2
  std::string prediction_type = "epsilon";
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;  // DDIM: alpha_cumprod of the step after the last is 1
  int steps_offset = 0;

  // Throws ConfigError naming the field (unsupported prediction types, trained_betas, ...).
  static SchedulerConfig from_json(const nlohmann::json& j);
  static SchedulerConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
};

// betas and cumulative alphas, in double precision.
struct NoiseSchedule {
  SchedulerConfig config;
  std::vector<double> betas;
  std::vector<double> alphas_cumprod;

  explicit NoiseSchedule(const SchedulerConfig& config);
  int num_train_timesteps() const { return config.num_train_timesteps; }
  // alpha_cumprod at t, where t < 0 means "before the first step" (1, or alphas_cumprod[0]).
  double alpha_cumprod(int t) const;
};

}  // namespace qdm
