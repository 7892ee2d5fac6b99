// diffusers AutoencoderKL as LibTorch modules: one graph holding encoder and decoder
// (format/graph/autoencoder_kl.h), run by the graph interpreter; parameter names are diffusers'.
#pragma once

#include <torch/nn/pimpl.h>

#include <string>

#include "engine/model/graph_module.h"
#include "format/autoencoder_kl_config.h"

namespace qdm {

class AutoencoderKLImpl : public GraphModuleImpl {
 public:
  explicit AutoencoderKLImpl(const AutoencoderKLConfig& config);
  // image (N, in_channels, H, W) in [-1, 1], H and W multiples of factor() -> the posterior's
  // moments (N, 2 latent_channels, H / f, W / f): mean, then log-variance.
  at::Tensor moments(const at::Tensor& image);
  at::Tensor encode_mean(const at::Tensor& image);  // the first latent_channels of moments()
  // latent (N, latent_channels, h, w), already divided by scaling_factor -> image (N, out, h f, w f)
  at::Tensor decode(const at::Tensor& latent);
  const AutoencoderKLConfig& config() const { return config_; }
  // The factor latents are multiplied by for the denoiser (a trainer sets it from the data).
  void set_scaling_factor(double s) { config_.scaling_factor = s; }

 private:
  AutoencoderKLConfig config_;
  int moments_ = -1;
};
TORCH_MODULE(AutoencoderKL);

// vae/config.json + diffusion_pytorch_model.safetensors (the pre-0.14 attention names
// accepted). Throws ModelLoadError / ConfigError naming the file or tensor.
struct LoadedVae {
  AutoencoderKL model{nullptr};
  std::string weights_sha256, weights_dtype;
};
LoadedVae load_vae(const std::string& dir);
void save_vae(const std::string& dir, AutoencoderKLImpl& model);

}  // namespace qdm
