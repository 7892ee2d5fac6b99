// A diffusers-style model folder's files, torch-free: config.json,
// diffusion_pytorch_model.safetensors and an optional scheduler/scheduler_config.json (or
// scheduler_config.json). The LibTorch loader (engine/model/model_folder.h) and the torch-free
// runtime (engine/runtime/served_model.h) both open folders through this.
#pragma once

#include <stdexcept>
#include <string>

#include "format/noise_schedule.h"
#include "format/unet_config.h"

namespace qdm {

class ModelLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelFolderFiles {
  std::string dir;
  UNetConfig config;
  SchedulerConfig scheduler;  // the defaults when the folder has no scheduler config
  std::string weights;        // path of diffusion_pytorch_model.safetensors
};

// Reads the configs and finds the weights; throws ModelLoadError (or ConfigError) naming the
// missing file or bad field.
ModelFolderFiles open_model_folder(const std::string& dir);

}  // namespace qdm
