// Copies a weights file into a module's parameters and buffers by name: every tensor of the
// module present once with its shape and a float dtype (converted to fp32), nothing else in the
// file. Errors name the tensor and the config at fault. The UNet, the text encoder and the VAE
// load through it.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <string>

namespace qdm {

class SafeTensors;

struct WeightNames {
  // The name a stored tensor has in the module (old attention names mapped to today's); identity
  // when unset.
  std::function<std::string(const std::string&)> canonical;
  // Stored tensors the module does not use and the loader skips (CLIP's position_ids buffer).
  std::function<bool(const std::string&)> ignored;
};

// Returns the stored dtype name (F32, F16 or BF16). Throws ModelLoadError.
std::string load_module_weights(torch::nn::Module& module, const SafeTensors& file, const std::string& config_name,
                                const WeightNames& names = {});

}  // namespace qdm
