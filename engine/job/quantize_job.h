// One whole quantization as a user asks for it: run a recipe on a model folder, measure the
// quality report against the fp32 model on the same seeds, and write the packed artifact
// (atomically: a cancelled or failed run leaves no file). `qdm quantize` and the worker's
// quantize jobs both run through this.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model/model_folder.h"
#include "engine/quant/recipe.h"
#include "format/quantize_options.h"

namespace qdm {


struct QuantizeJobProgress {
  std::string stage;
  int done = 0, total = 0;  // within the stage
  double loss = 0;
  double overall = 0;       // 0..1 over the whole job (stage weights are fixed estimates)
};
using QuantizeJobCallback = std::function<bool(const QuantizeJobProgress&)>;  // false: cancel

struct QuantizeJobResult {
  std::vector<uint8_t> figure_png;  // the recipe's figure (tmpq: fitness against BitOPs), also in the artifact
  nlohmann::json report;
  nlohmann::json timings;
  double seconds = 0;
};

// Throws QuantizeCancelled when the callback returns false, std::invalid_argument for bad options.
QuantizeJobResult quantize_to_artifact(const DiffusionModel& model, const QuantizeJobOptions& options,
                                       const std::string& out_path, const QuantizeJobCallback& progress = nullptr);

}  // namespace qdm
