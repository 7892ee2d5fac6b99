// A diffusers-style model folder: config.json, diffusion_pytorch_model.safetensors and an
// optional scheduler/scheduler_config.json (or scheduler_config.json).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/model/unet_2d.h"
#include "format/model_folder.h"  // ModelLoadError
#include "format/unet_config.h"
#include "format/unet_tensors.h"
#include "format/noise_schedule.h"

namespace qdm {

class SafeTensors;
struct TextToImagePipeline;

// A model as quantization sees it: a UNet with its noise schedule. A text-to-image pipeline is
// its UNet2DConditionModel, run by label: rows of the UNet's prompt table (use_prompts), the
// pipeline's text encoder and VAE beside it.
struct DiffusionModel {
  std::string dir;
  UNetConfig config;
  SchedulerConfig scheduler;
  UNet2DModel unet{nullptr};
  std::string weights_sha256;  // of diffusion_pytorch_model.safetensors (a pipeline: its UNet's)
  std::string weights_dtype;   // as stored: F32, F16 or BF16
  std::shared_ptr<TextToImagePipeline> pipeline;  // text-to-image pipelines; null otherwise
  std::vector<std::string> prompts;               // the prompt table's prompts, by row

  // Samples as images: a pipeline's latents (N, latent_channels, h, w) through its VAE decoder
  // (clamped to [-1, 1]); a pixel-space model's samples as they are.
  at::Tensor images(const at::Tensor& samples) const;
};

// Loads and validates; weights are converted to fp32. A folder with model_index.json loads as
// a text-to-image pipeline. Throws ModelLoadError / ConfigError / SafeTensorsError with a
// message naming the file, field or tensor at fault.
DiffusionModel load_model_folder(const std::string& dir);

// A pipeline's prompt table for quantization: the text states of `prompts` and then of the
// empty prompt (the null label guidance and the eps bias use) set on its UNet, which the model
// shares with its copies. Throws std::invalid_argument for a model without a text encoder or
// with no prompts.
void use_prompts(DiffusionModel& model, const std::vector<std::string>& prompts);
// The calibration prompts of a pipeline folder: calibration_prompts.txt, one per line (blank
// lines and lines starting with # skipped); empty when there is no such file.
std::vector<std::string> folder_calibration_prompts(const std::string& dir);

// Copies weights into `unet` by diffusers name (accepting the pre-0.14 attention names).
// Every tensor of the module must be present with its shape, and no unused tensor may remain.
// Returns the stored dtype name.
std::string load_unet_weights(UNet2DModelImpl& unet, const SafeTensors& file);

// Writes config.json, diffusion_pytorch_model.safetensors (F32) and scheduler/scheduler_config.json.
void save_model_folder(const std::string& dir, UNet2DModelImpl& unet, const SchedulerConfig& scheduler);

}  // namespace qdm
