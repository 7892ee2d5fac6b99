#include "format/quantize_options.h"

#include "format/prompts.h"

#include <nlohmann/json.hpp>
#include <cmath>
#include <stdexcept>

#include <algorithm>

#include "format/echo.h"
#include "format/quantized_component.h"
#include "format/recipes.h"

namespace qdm {

nlohmann::json QuantSpec::to_json() const {
  return {{"weight_bits", weight_bits}, {"act_bits", act_bits},           {"steps", steps},
          {"keep_fp", keep_fp},         {"keep_fp_input", keep_fp_input}, {"quantize_attention", quantize_attention},
          {"keep_bits", keep_bits},
          {"fp32_layers", fp32_layers},
          {"layer_bits", layer_bits}};
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
  s.fp32_layers = j.value("fp32_layers", std::vector<std::string>{});
  if (j.contains("layer_bits")) s.layer_bits = j.at("layer_bits").get<std::map<std::string, std::pair<int, int>>>();
  s.validate();
  return s;
}

void QuantSpec::validate() const {
  if (weight_bits < 2 || weight_bits > 8) throw std::invalid_argument("wbits must be in [2, 8], got " + std::to_string(weight_bits));
  if (act_bits != 0 && (act_bits < 4 || act_bits > 8))
    throw std::invalid_argument("abits must be in [4, 8] or 0/32 for fp32 activations, got " + std::to_string(act_bits));
  if (steps < 1) throw std::invalid_argument("steps must be >= 1");
  for (const auto& [name, bits] : layer_bits)
    if (bits.first < 2 || bits.first > 8 || (bits.second != 0 && (bits.second < 4 || bits.second > 8)))
      throw std::invalid_argument("layer_bits of '" + name + "' must be weights 2..8 and activations 4..8 (or 0)");
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
          {"bias_samples", bias_samples},
          {"adaround_lr", recon.lr},
          {"adaround_lambda", recon.lambda},
          {"lsq_lr", recon.act_lr}};
  j.update(sampler.to_json());
  if (!prompts.empty()) j["prompts"] = prompts;
  if (components.size() > 1) j["components"] = components;
  if (const RecipeInfo* r = find_recipe(recipe); r && r->section == RecipeSection::kVq) j["vq"] = vq.to_json();
  if (const FinetuneOptions f = finetune_options(); f.iters > 0) j["finetune"] = f.to_json();
  return j;
}

nlohmann::json FinetuneOptions::to_json() const {
  return {{"iters", iters}, {"samples", samples}, {"holdout", holdout}, {"batch", batch},
          {"lr", lr},       {"evals", evals},     {"seed", seed}};
}

FinetuneOptions RecipeOptions::finetune_options() const {
  FinetuneOptions f = finetune;
  if (f.iters == -1) {
    const RecipeInfo* r = find_recipe(recipe);
    f.iters = r ? r->finetune_iters : 0;
  }
  return f;
}

void FinetuneOptions::validate() const {
  if (iters < -1) throw std::invalid_argument("finetune iters must be >= 0 (0: no fine-tuning; -1: the recipe's default)");
  if (iters <= 0) return;
  if (samples < 1 || holdout < 1) throw std::invalid_argument("finetune samples and holdout must be >= 1");
  if (batch < 1 || batch > samples) throw std::invalid_argument("finetune batch must be in [1, finetune samples]");
  if (!(lr > 0 && lr <= 0.1)) throw std::invalid_argument("finetune lr must be in (0, 0.1]");
  if (evals < 1) throw std::invalid_argument("finetune evals must be >= 1");
}

nlohmann::json VqOptions::to_json() const {
  return {{"codebooks", codebooks}, {"codebook_bits", codebook_bits}, {"group", group},
          {"beam", beam},           {"adam_steps", adam_steps},       {"lr", lr},
          {"max_rounds", max_rounds}, {"min_gain", min_gain},       {"step_stride", step_stride},
          {"seed", seed},           {"nominal_bits", nominal_bits()}};
}

void VqOptions::validate() const {
  if (codebooks < 1 || codebooks > 8) throw std::invalid_argument("vq codebooks must be in [1, 8]");
  if (codebook_bits < 1 || codebook_bits > 8)
    throw std::invalid_argument("vq codebook_bits must be in [1, 8] (codes are stored as bytes)");
  if (group != 4 && group != 8 && group != 16) throw std::invalid_argument("vq group must be 4, 8 or 16");
  if (beam < 1 || beam > 64) throw std::invalid_argument("vq beam must be in [1, 64]");
  if (adam_steps < 0 || max_rounds < 0 || step_stride < 1)
    throw std::invalid_argument("vq adam_steps and max_rounds must be >= 0, step_stride >= 1");
  if (!(lr > 0) || !(min_gain >= 0)) throw std::invalid_argument("vq lr must be > 0 and min_gain >= 0");
}

nlohmann::json SearchOptions::to_json() const {
  return {{"steps", steps},
          {"base_steps", base_steps},
          {"group_power", group_power},
          {"weight_bits", weight_bits},
          {"act_bits", act_bits},
          {"population", population},
          {"top", top},
          {"mutations", mutations},
          {"crossovers", crossovers},
          {"generations", generations},
          {"mutation_prob", mutation_prob},
          {"seed", seed},
          {"fitness_images", fitness_images},
          {"final_candidates", final_candidates},
          {"final_images", final_images},
          {"bitops_cap", bitops_cap},
          {"ms_cap", ms_cap}};
}

void SearchOptions::validate() const {
  if (steps < 1 || steps > base_steps) throw std::invalid_argument("search steps must be in [1, base_steps]");
  if (base_steps < 1) throw std::invalid_argument("base_steps must be >= 1");
  auto bits_ok = [](const std::vector<int>& bits, int lo, const char* what) {
    if (bits.empty()) throw std::invalid_argument(std::string(what) + " must list at least one bit width");
    for (int b : bits)
      if (b < lo || b > 8) throw std::invalid_argument(std::string(what) + " must be in [" + std::to_string(lo) + ", 8]");
  };
  bits_ok(weight_bits, 2, "search weight bits");
  bits_ok(act_bits, 4, "search activation bits");
  if (population < 2 || top < 1 || top > population || mutations < 0 || crossovers < 0 || generations < 1)
    throw std::invalid_argument("search: population >= 2, 1 <= top <= population, generations >= 1");
  if (!(mutation_prob >= 0 && mutation_prob <= 1)) throw std::invalid_argument("mutation_prob must be in [0, 1]");
  // Each generation breeds at most a population (the search tries 50 times per child).
  if (mutations > population || crossovers > population)
    throw std::invalid_argument("search mutations and crossovers must be in [0, population]");
  if (fitness_images < 1 || final_images < 0 || final_candidates < 1 || final_candidates > population)
    throw std::invalid_argument("search fitness_images must be >= 1, final_candidates in [1, population], final_images >= 0");
  if (!(bitops_cap > 0) || !(ms_cap >= 0)) throw std::invalid_argument("bitops_cap must be > 0 and ms_cap >= 0");
  if (!(group_power >= 1 && group_power <= 4))
    throw std::invalid_argument("group_power must be in [1, 4] (2: the paper's groups, 1: even groups)");
}

std::vector<std::pair<int, int>> timestep_groups(int T, int n, double power) {
  if (n < 1 || n > T) throw std::invalid_argument("groups must be in [1, T]");
  if (!(power >= 1 && power <= 4)) throw std::invalid_argument("group_power must be in [1, 4]");
  std::vector<int> edges = {0};
  const double top = std::pow(0.8 * T, 1 / power);
  for (int i = 1; i < n; ++i) {  // linspace(0, top, n) point i, to the power; the last is 0.8 T
    const double v = top * i / (n - 1);
    edges.push_back(static_cast<int>(std::floor(std::pow(v, power) + 1e-9)));
  }
  edges.push_back(T);
  std::vector<std::pair<int, int>> groups;
  for (int i = 0; i < n; ++i) groups.emplace_back(edges[static_cast<size_t>(i)], edges[static_cast<size_t>(i) + 1]);
  return groups;
}

bool RecipeOptions::quantizes(const std::string& component) const {
  return std::find(components.begin(), components.end(), component) != components.end();
}

void RecipeOptions::validate() const {
  const RecipeInfo& info = recipe_info(recipe);
  spec.validate();
  sampler.validate();
  if (recon.iters < 0 || recon.act_iters < 0 || recon.batch < 1 || recon_step_stride < 1)
    throw std::invalid_argument("reconstruction iterations must be >= 0, batch and step stride >= 1");
  if (calib_samples < 1) throw std::invalid_argument("calib_samples must be >= 1");
  if (bias_samples < 0) throw std::invalid_argument("bias_samples must be >= 0 (0: no eps bias correction)");
  if (batch < 1) throw std::invalid_argument("batch must be >= 1");
  if (prompts.size() > static_cast<size_t>(kMaxPrompts))
    throw std::invalid_argument("at most " + std::to_string(kMaxPrompts) + " calibration prompts");
  for (const auto& p : prompts)
    if (p.size() > kMaxPromptBytes)
      throw std::invalid_argument("a calibration prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes");
  for (const auto& c : components)
    if (std::find(component_names().begin(), component_names().end(), c) == component_names().end())
      throw std::invalid_argument("components: unknown component (choose from unet, text_encoder, vae_decoder)");
  if (!quantizes("unet")) throw std::invalid_argument("components must include unet (the UNet is always quantized)");
  if (info.section == RecipeSection::kSearch) search.validate();
  finetune_options().validate();
  if (info.section == RecipeSection::kVq) {
    vq.validate();
    if (spec.act_bits != 0 && spec.act_bits != 8)
      throw std::invalid_argument(std::string("recipe ") + info.name + " runs with act_bits 8 or 32 (fp32)");
  }
}

}  // namespace qdm
