// Small model configurations shared by the engine tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "format/unet_config.h"
#include "engine/model/model_folder.h"
#include "format/artifact_metadata.h"
#include "engine/quant/quant_model.h"

namespace qdm {
struct QuantizeResult;
}

namespace qdm::testing {

// A 2-level 1-channel 8x8 UNet with attention in both paths and the mid block (~30k params).
UNetConfig tiny_config();
// google/ddpm-cifar10-32's config.json as published (old attention names in its weights).
nlohmann::json ddpm_cifar10_config_json();
// The 128px DDPM of diffusers' unconditional training example.
nlohmann::json ddpm_128_config_json();
// Every layer quantized, inputs included (nothing kept in fp32), with `steps` table entries.
QuantSpec every_layer_quantized_spec(int steps);
// `config` made class-conditional (4 labels, the null class 3) with a random class embedding,
// saved as a model folder under `dir`/model and loaded back (seed the generator first).
DiffusionModel tiny_conditional_model(const std::string& dir, UNetConfig config);
// The metadata save_artifact needs for a recipe's result on `model`: configs, the result's
// schedule, the options as its recipe, the source's sha256.
ArtifactInfo artifact_info(const DiffusionModel& model, const QuantizeResult& result, const RecipeOptions& options);
// A fresh temporary directory, removed by the caller.
std::string temp_dir(const std::string& name);

}  // namespace qdm::testing
