// Trains the UNet2DConditionModel of a latent text-to-image pipeline on Fashion-MNIST: images
// encoded once by the pipeline's trained VAE (posterior means times scaling_factor, cached),
// captions drawn per step from the training templates and encoded by the frozen text encoder,
// a fraction replaced by the empty prompt (classifier-free guidance's unconditional branch),
// the epsilon objective with min-SNR weighting, EMA weights. Each write completes the diffusers
// StableDiffusionPipeline folder: unet/, scheduler/, model_index.json.
#pragma once

#include <functional>
#include <string>

#include "engine/train/training_loop.h"
#include "format/noise_schedule.h"
#include "format/unet_config.h"

namespace qdm {

struct TextToImageTrainOptions {
  TrainingLoopOptions loop;  // out_dir: the pipeline folder, holding vae/, text_encoder/, tokenizer/;
                             // the checkpoint, log and latent cache go into unet/
  std::string data_dir;
  UNetConfig config;          // a UNet2DConditionModel; default: fmnist_text_unet_config(...), or init_from's
  bool default_config = true;
  // Warm start: the UNet weights of this pipeline folder (or UNet2DConditionModel folder), whose
  // config is the one trained unless `config` is given (then they must agree). A checkpoint in
  // out_dir/unet, when there is one, is resumed instead.
  std::string init_from;
  SchedulerConfig scheduler;  // Stable Diffusion's: scaled_linear 0.00085..0.012, no clipping
  int batch_size = 64;
  double text_dropout = 0.1;
  double min_snr_gamma = 5.0;
  int threads = 1;
};

// The shipped shape: two levels (64, 128 channels) over the VAE's latents, cross-attention in
// both and in the mid block, 4 heads, text states of the encoder's width.
UNetConfig fmnist_text_unet_config(int latent_channels, int latent_size, int cross_attention_dim);
SchedulerConfig stable_diffusion_scheduler();

int64_t train_text_to_image(const TextToImageTrainOptions& options,
                            const std::function<bool(const TrainingStep&)>& on_log = nullptr);

// model_index.json of a StableDiffusionPipeline folder.
void write_model_index(const std::string& dir);

}  // namespace qdm
