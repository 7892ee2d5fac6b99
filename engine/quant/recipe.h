// A quantization recipe: a named, documented set of options that turns a model and its own
// calibration data into a QuantizedUNet.
//
//   rtn         min-max round-to-nearest for weights (per channel) and activations (per
//               tensor, one range over all steps): the naive baseline.
//
// (qdiffusion, tfmq and tfmq+cache are described in ../shared/methods.md and not built yet.)
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model/model_folder.h"
#include "engine/quant/calibration.h"
#include "engine/quant/quant_model.h"

namespace qdm {

struct RecipeOptions {
  std::string recipe = "rtn";
  QuantSpec spec;
  SamplerOptions sampler;  // the schedule the artifact is calibrated for
  int calib_samples = 32;  // trajectories; each contributes one x_t per step
  uint64_t calib_seed = 1234;
  int batch = 64;

  nlohmann::json to_json() const;
};

struct QuantizeProgress {
  std::string stage;  // "calibration data", "activation ranges", "weights", ...
  int done = 0, total = 0;
  double loss = 0;
};
using QuantizeCallback = std::function<bool(const QuantizeProgress&)>;  // false: cancel

class QuantizeCancelled : public std::runtime_error {
 public:
  QuantizeCancelled() : std::runtime_error("quantization cancelled") {}
};

struct QuantizeResult {
  std::unique_ptr<QuantizedUNet> model;
  std::vector<int> timesteps;
  nlohmann::json timings;  // seconds per stage
};

// Names of the recipes this build has.
std::vector<std::string> recipe_names();
// Throws std::invalid_argument for an unknown recipe or bad options, QuantizeCancelled.
QuantizeResult quantize_model(const DiffusionModel& model, const RecipeOptions& options,
                              const QuantizeCallback& progress = nullptr);

}  // namespace qdm
