// A diffusers-style model folder: config.json, diffusion_pytorch_model.safetensors and an
// optional scheduler/scheduler_config.json (or scheduler_config.json).
#pragma once

#include <string>

#include "engine/model/unet_2d.h"
#include "format/model_folder.h"  // ModelLoadError
#include "format/unet_config.h"
#include "format/unet_tensors.h"
#include "format/noise_schedule.h"

namespace qdm {

class SafeTensors;

struct DiffusionModel {
  std::string dir;
  UNetConfig config;
  SchedulerConfig scheduler;
  UNet2DModel unet{nullptr};
  std::string weights_sha256;  // of diffusion_pytorch_model.safetensors
  std::string weights_dtype;   // as stored: F32, F16 or BF16
};

// Loads and validates; weights are converted to fp32. Throws ModelLoadError / ConfigError /
// SafeTensorsError with a message naming the file, field or tensor at fault.
DiffusionModel load_model_folder(const std::string& dir);

// Copies weights into `unet` by diffusers name (accepting the pre-0.14 attention names).
// Every tensor of the module must be present with its shape, and no unused tensor may remain.
// Returns the stored dtype name.
std::string load_unet_weights(UNet2DModelImpl& unet, const SafeTensors& file);

// Writes config.json, diffusion_pytorch_model.safetensors (F32) and scheduler/scheduler_config.json.
void save_model_folder(const std::string& dir, UNet2DModelImpl& unet, const SchedulerConfig& scheduler);

}  // namespace qdm
