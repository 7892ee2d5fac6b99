#include "format/recipes.h"

namespace qdm {

const std::vector<RecipeInfo>& recipes() {
  static const std::vector<RecipeInfo> all = {
      {"rtn", "min-max round-to-nearest weights (per channel) and activations (one range for all steps)", false},
      {"qdiffusion",
       "Q-Diffusion: L2.4 weight ranges, BRECQ block reconstruction with AdaRound, LSQ activation step sizes", false},
      {"tfmq",
       "TFMQ-DM: the temporal information block reconstructed alone first (TIAR), then the other blocks; "
       "per-step activation tables (FSC)",
       true},
      {"tfmq+cache", "TFMQ-DM with the fp32 temporal features of every step (and class) stored instead of a quantized TIB",
       true},
      {"tmpq",
       "TMPQ-DM: the sampling timesteps (one per non-uniform group) and each layer's weight and activation bits searched "
       "together by evolution, image quality under a BitOPs or measured-time budget",
       true},
      {"vq",
       "VQDM: additive vector quantization of the weights (M codebooks of 2^B vectors per group of 8 inputs, about "
       "M*B/8 bits), layer by layer on X^T X from the model's trajectories; TFMQ-DM's cached temporal features and "
       "per-step activation tables; then fine-tuned against the fp32 model (codebooks, scales, biases, norms)",
       true, 600},
  };
  return all;
}

const RecipeInfo* find_recipe(const std::string& name) {
  for (const auto& r : recipes())
    if (name == r.name) return &r;
  return nullptr;
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
