// The quantize job's stage for a text-to-image pipeline's other components
// (RecipeOptions::components): the text encoder calibrated on the model's prompt table (the
// calibration prompts and the empty prompt), the VAE decoder on the final latents of fp32
// trajectories (calib_samples of them over the recipe's schedule, unguided, spread over the
// prompts, seeds calib_seed + 3,000,000 + i). Their quantized files go into the artifact beside
// the UNet (format/quantized_component.h).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/model_folder.h"
#include "format/quantize_options.h"

namespace qdm {

struct ComponentStageResult {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;  // embedded file name, contents
  nlohmann::json report = nlohmann::json::object();                 // per component
};

// Nothing when options.components is the UNet alone. `progress` (done, total) returns false to
// cancel. Throws std::invalid_argument for a model that is not a pipeline.
ComponentStageResult quantize_components(const DiffusionModel& model, const RecipeOptions& options,
                                         const std::function<bool(int, int)>& progress = nullptr);

}  // namespace qdm
