// The quantizer bank of a TMPQ-DM search (the paper's parameter sharing): each searched layer's
// weights quantized once per candidate weight bit width (per-channel MSE ranges), its input's
// activation table once per candidate activation bit width and base step (FSC: per-step EMA of
// min/max over the model's own trajectories), attention's tables per base step, and the fp32
// temporal features of every base step (TFMQ-DM's cache: the TIB is exact). A candidate is then
// assembled into the working model by index, with no recalibration.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/model/model_folder.h"
#include "engine/quant/quant_model.h"
#include "engine/quant/recipe.h"
#include "engine/quant/tmpq/candidate.h"

namespace qdm::tmpq {

struct LayerBank {
  std::string name;
  QuantLayer* layer = nullptr;  // in the working model
  bool act = false;             // its input is quantized: activation bits searched
  int64_t macs = 0;             // per image and call
  std::map<int, QuantParams> params;            // per weight bits
  std::map<int, at::Tensor> fake;               // grid weights per weight bits
  std::map<int, std::vector<float>> scale, zero;  // per activation bits: one entry per base step
};

struct QuantizerBank {
  std::vector<int> base;  // the base schedule's timesteps, descending
  std::map<int, size_t> index;  // timestep -> base step
  std::vector<LayerBank> layers;
  struct Attention {
    QuantAttentionCore* core = nullptr;
    std::vector<float> qs, qz, ks, kz, vs, vz;  // 8-bit tables per base step
    int64_t tokens = 0, channels = 0;
  };
  std::vector<Attention> attention;
  std::vector<std::vector<at::Tensor>> features;  // [base step][resnet]
  std::vector<std::pair<int64_t, int>> fixed_layers;  // kept layers: (macs, weight bits), fp32 inputs
  GeneSpace space;
};

// Calibrates the bank on `model`'s trajectories (the recipe's calibration settings, the search's
// base schedule) for the working model `q` (built from `options.spec` with `search.steps` table
// entries). Throws QuantizeCancelled when `report` returns false.
QuantizerBank build_bank(const DiffusionModel& model, QuantizedUNet& q, const RecipeOptions& options,
                         const std::function<bool(const std::string& stage, int done, int total)>& report);

// Puts candidate c into q: every searched layer's grid weights and tables for c's timesteps, the
// attention tables and temporal features of those steps, and the spec's per-layer bits.
void assemble(const QuantizerBank& bank, const Candidate& c, QuantizedUNet& q);

// BitOPs of one image's UNet call: multiply-adds times weight bits times activation bits (32 for
// fp32 inputs), attention's Q K^T and P V at 8 x 8 bits (TMPQ-DM's count; the cached TIB is free).
double bitops(const QuantizerBank& bank, const Candidate& c);
// The same with every searched layer at `bits` weights and activations.
double uniform_bitops(const QuantizerBank& bank, int bits);

}  // namespace qdm::tmpq
