// Trains an AutoencoderKL on Fashion-MNIST: reconstruction (mean squared error of the decoded
// posterior sample) plus a small KL term, through the shared training loop. Each write is a
// diffusers vae/ folder whose scaling_factor is 1 / std of the training latents (as Stable
// Diffusion's was chosen), with report.json holding the test-set PSNR.
#pragma once

#include <functional>
#include <string>

#include <ATen/ATen.h>

#include "engine/model/autoencoder_kl.h"
#include "engine/train/training_loop.h"
#include "format/autoencoder_kl_config.h"

namespace qdm {

struct VaeTrainOptions {
  TrainingLoopOptions loop;
  std::string data_dir;
  AutoencoderKLConfig config;
  int batch_size = 32;
  double kl_weight = 1e-4;  // per latent element, against the per-pixel squared error
  bool hflip = true;
  int eval_images = 1000;  // test images the report's PSNR averages over
  int threads = 1;
};

// The shipped fmnist-t2i VAE's shape: one channel, 32x32 -> 4 x 8 x 8.
AutoencoderKLConfig fmnist_vae_config();

// Mean PSNR (dB, images in [0, 1]) of encode-mean -> decode over images (N, C, H, W) in [-1, 1].
double reconstruction_psnr(AutoencoderKLImpl& vae, const at::Tensor& images, int batch = 100);

int64_t train_vae(const VaeTrainOptions& options, const std::function<bool(const TrainingStep&)>& on_log = nullptr);

}  // namespace qdm
