#include "format/recipes.h"

#include <stdexcept>

#include "format/echo.h"

namespace qdm {

const std::vector<RecipeInfo>& recipes() {
  // name, summary, section, fine-tuning, min-max weights, per-step tables, temporal, feature cache, reconstruction
  static const std::vector<RecipeInfo> all = {
      {"rtn", "min-max round-to-nearest weights (per channel) and activations (one range for all steps)",
       RecipeSection::kNone, 0, true, false, false, false, false},
      {"qdiffusion",
       "Q-Diffusion: L2.4 weight ranges, BRECQ block reconstruction with AdaRound, LSQ activation step sizes",
       RecipeSection::kNone, 0, false, false, false, false, true},
      {"tfmq",
       "TFMQ-DM: the temporal information block reconstructed alone first (TIAR), then the other blocks; "
       "per-step activation tables (FSC)",
       RecipeSection::kNone, 0, false, true, true, false, true},
      {"tfmq+cache", "TFMQ-DM with the fp32 temporal features of every step (and class) stored instead of a quantized TIB",
       RecipeSection::kNone, 0, false, true, true, true, true},
      {"tmpq",
       "TMPQ-DM: the sampling timesteps (one per non-uniform group) and each layer's weight and activation bits searched "
       "together by evolution, image quality under a BitOPs or measured-time budget",
       RecipeSection::kSearch, 0, false, true, false, true, false},
      {"vq",
       "VQDM: additive vector quantization of the weights (M codebooks of 2^B vectors per group of 8 inputs, about "
       "M*B/8 bits), layer by layer on X^T X from the model's trajectories; TFMQ-DM's quantized temporal information "
       "block (TIAR) and per-step activation tables; then fine-tuned against the fp32 model (codebooks, scales, biases, norms)",
       RecipeSection::kVq, 600, false, true, true, false, true},
      {"vq+cache", "VQDM with the fp32 temporal features of every step (and class) stored instead of a quantized TIB",
       RecipeSection::kVq, 600, false, true, true, true, true},
  };
  return all;
}

const RecipeInfo* find_recipe(const std::string& name) {
  for (const auto& r : recipes())
    if (name == r.name) return &r;
  return nullptr;
}

const RecipeInfo& recipe_info(const std::string& name) {
  if (const RecipeInfo* r = find_recipe(name)) return *r;
  throw std::invalid_argument("unknown recipe " + echo(name) + "; use " + recipe_list());
}

std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  for (const auto& r : recipes()) names.push_back(r.name);
  return names;
}

std::string recipe_list() {
  std::string out;
  const auto& all = recipes();
  for (size_t i = 0; i < all.size(); ++i) out += std::string(i == 0 ? "" : i + 1 == all.size() ? " or " : ", ") + all[i].name;
  return out;
}

}  // namespace qdm
