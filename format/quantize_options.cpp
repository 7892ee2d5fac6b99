#include "format/quantize_options.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "format/echo.h"
#include "format/recipes.h"

namespace qdm {

nlohmann::json QuantSpec::to_json() const {
  return {{"weight_bits", weight_bits}, {"act_bits", act_bits},           {"steps", steps},
          {"keep_fp", keep_fp},         {"keep_fp_input", keep_fp_input}, {"quantize_attention", quantize_attention},
          {"keep_bits", keep_bits}};
}

QuantSpec QuantSpec::from_json(const nlohmann::json& j) {
  QuantSpec s;
  s.weight_bits = j.at("weight_bits").get<int>();
  s.act_bits = j.at("act_bits").get<int>();
  s.steps = j.at("steps").get<int>();
  s.keep_fp = j.at("keep_fp").get<std::vector<std::string>>();
  s.keep_fp_input = j.at("keep_fp_input").get<std::vector<std::string>>();
  s.quantize_attention = j.at("quantize_attention").get<bool>();
  s.keep_bits = j.value("keep_bits", 0);
  s.validate();
  return s;
}

void QuantSpec::validate() const {
  if (weight_bits < 2 || weight_bits > 8) throw std::invalid_argument("wbits must be in [2, 8], got " + std::to_string(weight_bits));
  if (act_bits != 0 && (act_bits < 4 || act_bits > 8))
    throw std::invalid_argument("abits must be in [4, 8] or 0/32 for fp32 activations, got " + std::to_string(act_bits));
  if (steps < 1) throw std::invalid_argument("steps must be >= 1");
  if (keep_bits != 0 && (keep_bits < 2 || keep_bits > 8))
    throw std::invalid_argument("keep_bits must be 0 (fp32) or in [2, 8], got " + std::to_string(keep_bits));
}

nlohmann::json RecipeOptions::to_json() const {
  nlohmann::json j = {{"recipe", recipe},
          {"spec", spec.to_json()},
          {"calib_samples", calib_samples},
          {"calib_seed", calib_seed},
          {"recon_iters", recon.iters},
          {"recon_act_iters", recon.act_iters},
          {"recon_batch", recon.batch},
          {"recon_step_stride", recon_step_stride},
          {"adaround_lr", recon.lr},
          {"adaround_lambda", recon.lambda},
          {"lsq_lr", recon.act_lr}};
  j.update(sampler.to_json());
  return j;
}

void RecipeOptions::validate() const {
  if (!find_recipe(recipe)) throw std::invalid_argument("unknown recipe " + echo(recipe) + "; use " + recipe_list());
  spec.validate();
  sampler.validate();
  if (recon.iters < 0 || recon.act_iters < 0 || recon.batch < 1 || recon_step_stride < 1)
    throw std::invalid_argument("reconstruction iterations must be >= 0, batch and step stride >= 1");
  if (calib_samples < 1) throw std::invalid_argument("calib_samples must be >= 1");
  if (batch < 1) throw std::invalid_argument("batch must be >= 1");
}

}  // namespace qdm
