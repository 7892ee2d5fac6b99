#include "engine/model/autoencoder_kl.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/model/module_weights.h"
#include "engine/model_io/tensor_io.h"
#include "format/graph/autoencoder_kl.h"
#include "format/model_folder.h"
#include "format/safetensors.h"
#include "format/sha256.h"
#include "format/unet_tensors.h"  // canonical_tensor_name

namespace qdm {
namespace fs = std::filesystem;

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& config)
    : GraphModuleImpl(graph::describe_autoencoder_kl(config)), config_(config) {
  moments_ = graph().find_value("moments");
}

at::Tensor AutoencoderKLImpl::moments(const at::Tensor& image) {
  const int f = config_.factor();
  if (image.dim() != 4 || image.size(1) != config_.in_channels || image.size(2) % f != 0 || image.size(3) % f != 0)
    throw std::invalid_argument("VAE encoder: the image must be (N, " + std::to_string(config_.in_channels) +
                                ", H, W) with H and W multiples of " + std::to_string(f));
  return run({{graph().input(graph::Input::kSample), image.to(at::kFloat)}}, moments_);
}

at::Tensor AutoencoderKLImpl::encode_mean(const at::Tensor& image) { return moments(image).narrow(1, 0, config_.latent_channels); }

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& latent) {
  if (latent.dim() != 4 || latent.size(1) != config_.latent_channels)
    throw std::invalid_argument("VAE decoder: the latent must be (N, " + std::to_string(config_.latent_channels) + ", h, w)");
  return run({{graph().input(graph::Input::kLatent), latent.to(at::kFloat)}}, graph().output);
}

LoadedVae load_vae(const std::string& dir) {
  const AutoencoderKLConfig config = AutoencoderKLConfig::from_file(dir + "/config.json");
  const std::string weights = dir + "/diffusion_pytorch_model.safetensors";
  if (!fs::exists(weights)) throw ModelLoadError("vae: no diffusion_pytorch_model.safetensors");
  const SafeTensors file = SafeTensors::read_file(weights);
  LoadedVae out;
  out.model = AutoencoderKL(config);
  WeightNames names;
  names.canonical = canonical_tensor_name;
  out.weights_dtype = load_module_weights(*out.model, file, "vae/config.json", names);
  out.weights_sha256 = sha256_file(weights);
  out.model->eval();
  return out;
}

void save_vae(const std::string& dir, AutoencoderKLImpl& model) {
  fs::create_directories(dir);
  TensorMap tensors;
  for (const auto& p : model.named_parameters()) tensors[p.key()] = p.value().detach().contiguous();
  save_tensors(dir + "/diffusion_pytorch_model.safetensors", tensors, {{"format", "pt"}});
  std::ofstream(dir + "/config.json") << model.config().to_json().dump(2) << "\n";
}

}  // namespace qdm
