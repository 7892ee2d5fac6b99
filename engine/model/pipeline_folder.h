// A diffusers StableDiffusionPipeline folder: model_index.json, unet/ (UNet2DConditionModel),
// vae/ (AutoencoderKL), text_encoder/ (CLIPTextModel), tokenizer/ (CLIP BPE) and scheduler/.
// Loaded as LibTorch modules (the training, calibration and reference path).
#pragma once

#include <string>

#include "engine/model/autoencoder_kl.h"
#include "engine/model/clip_text_model.h"
#include "engine/model/unet_2d.h"
#include "format/clip_tokenizer.h"
#include "format/noise_schedule.h"

namespace qdm {

// Whether dir holds model_index.json (a pipeline rather than a single UNet folder).
bool is_pipeline_folder(const std::string& dir);

struct TextToImagePipeline {
  std::string dir;
  ClipTokenizer tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNet2DModel unet{nullptr};  // a UNet2DConditionModel config
  AutoencoderKL vae{nullptr};
  SchedulerConfig scheduler;
  std::string unet_sha256, vae_sha256, text_encoder_sha256;
  std::string unet_dtype;  // as stored: F32, F16 or BF16

  // Image pixels per latent pixel, and the default image size.
  int factor() const { return vae->config().factor(); }
  int default_size() const { return unet->config().sample_size * factor(); }
};

// Checks model_index.json names the supported classes, each component against its config, and
// that the parts fit (the UNet's in_channels are the VAE's latent_channels, its
// cross_attention_dim the text encoder's width). Throws ModelLoadError / ConfigError naming the
// component and field.
TextToImagePipeline load_pipeline(const std::string& dir);

}  // namespace qdm
