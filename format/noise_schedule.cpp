#include "format/noise_schedule.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/json_fields.h"

namespace qdm {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  JsonFields::fail("scheduler_config.json", field, what);
}

}  // namespace

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError("scheduler_config.json: not a JSON object");
  SchedulerConfig c;
  const JsonFields f(j, "scheduler_config.json");
  f.read("num_train_timesteps", c.num_train_timesteps);
  f.read("beta_start", c.beta_start);
  f.read("beta_end", c.beta_end);
  f.read("beta_schedule", c.beta_schedule);
  f.read("prediction_type", c.prediction_type);
  f.read("clip_sample", c.clip_sample);
  f.read("clip_sample_range", c.clip_sample_range);
  f.read("set_alpha_to_one", c.set_alpha_to_one);
  f.read("steps_offset", c.steps_offset);
  if (c.num_train_timesteps < 1 || c.num_train_timesteps > 100000)
    fail("num_train_timesteps", "must be in [1, 100000]");
  if (c.beta_schedule != "linear" && c.beta_schedule != "scaled_linear" && c.beta_schedule != "squaredcos_cap_v2")
    fail("beta_schedule", "is '" + c.beta_schedule + "'; supported: linear, scaled_linear, squaredcos_cap_v2");
  if (c.prediction_type != "epsilon")
    fail("prediction_type", "is '" + c.prediction_type + "'; only 'epsilon' is supported for now");
  if (j.contains("trained_betas") && !j["trained_betas"].is_null())
    fail("trained_betas", "is set; explicit beta tables are not supported");
  if (j.contains("thresholding") && j["thresholding"].is_boolean() && j["thresholding"].get<bool>())
    fail("thresholding", "is true; dynamic thresholding is not supported");
  if (c.beta_start <= 0 || c.beta_end <= 0 || c.beta_end >= 1 || c.beta_start > c.beta_end)
    fail("beta_start", "and beta_end must satisfy 0 < beta_start <= beta_end < 1");
  if (c.clip_sample_range <= 0) fail("clip_sample_range", "must be positive");
  return c;
}

SchedulerConfig SchedulerConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot open '" + path + "'");
  try {
    return from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": not valid JSON: " + e.what());
  } catch (const ConfigError& e) {
    throw ConfigError(path + ": " + e.what());
  }
}

nlohmann::json SchedulerConfig::to_json() const {
  return {{"_class_name", "DDPMScheduler"},  {"num_train_timesteps", num_train_timesteps},
          {"beta_start", beta_start},        {"beta_end", beta_end},
          {"beta_schedule", beta_schedule},  {"prediction_type", prediction_type},
          {"clip_sample", clip_sample},      {"clip_sample_range", clip_sample_range},
          {"set_alpha_to_one", set_alpha_to_one}, {"steps_offset", steps_offset},
          {"variance_type", "fixed_small"}};
}

NoiseSchedule::NoiseSchedule(const SchedulerConfig& c) : config(c) {
  const int T = c.num_train_timesteps;
  betas.resize(static_cast<size_t>(T));
  for (int i = 0; i < T; ++i) {
    const double frac = T == 1 ? 0.0 : static_cast<double>(i) / (T - 1);
    if (c.beta_schedule == "linear") {
      betas[i] = c.beta_start + frac * (c.beta_end - c.beta_start);
    } else if (c.beta_schedule == "scaled_linear") {
      const double s = std::sqrt(c.beta_start) + frac * (std::sqrt(c.beta_end) - std::sqrt(c.beta_start));
      betas[i] = s * s;
    } else {  // squaredcos_cap_v2 (Nichol & Dhariwal cosine schedule)
      auto alpha_bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
      betas[i] = std::min(1.0 - alpha_bar((i + 1.0) / T) / alpha_bar(static_cast<double>(i) / T), 0.999);
    }
  }
  alphas_cumprod.resize(betas.size());
  double prod = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) alphas_cumprod[i] = prod *= 1.0 - betas[i];
}

double NoiseSchedule::alpha_cumprod(int t) const {
  if (t < 0) return config.set_alpha_to_one ? 1.0 : alphas_cumprod.front();
  return alphas_cumprod.at(static_cast<size_t>(t));
}

}  // namespace qdm
