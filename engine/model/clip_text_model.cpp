#include "engine/model/clip_text_model.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/model/module_weights.h"
#include "engine/model_io/tensor_io.h"
#include "format/graph/clip_text.h"
#include "format/model_folder.h"
#include "format/pipeline_folder.h"
#include "format/safetensors.h"
#include "format/sha256.h"

namespace qdm {
namespace fs = std::filesystem;

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& config)
    : GraphModuleImpl(graph::describe_clip_text(config)), config_(config) {}

at::Tensor ClipTextModelImpl::forward(const at::Tensor& input_ids) {
  if (input_ids.dim() != 2 || input_ids.size(1) < 1 || input_ids.size(1) > config_.max_position_embeddings)
    throw std::invalid_argument("text encoder: input_ids must be (N, L) with 1 <= L <= " +
                                std::to_string(config_.max_position_embeddings));
  const at::Tensor ids = input_ids.to(at::kLong);
  if (ids.numel() > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= config_.vocab_size))
    throw std::invalid_argument("text encoder: input_ids must lie in [0, " + std::to_string(config_.vocab_size) + ")");
  return run({{graph().input(graph::Input::kTokenIds), ids}}, graph().output);
}

LoadedTextEncoder load_text_encoder(const std::string& dir) {
  const ClipTextConfig config = ClipTextConfig::from_file(dir + "/config.json");
  std::string weights = dir + "/model.safetensors";
  if (!fs::exists(weights)) weights = dir + "/diffusion_pytorch_model.safetensors";
  if (!fs::exists(weights)) throw ModelLoadError("text_encoder: no model.safetensors");
  const SafeTensors file = SafeTensors::read_file(weights);
  LoadedTextEncoder out;
  out.model = ClipTextModel(config);
  WeightNames names;
  names.ignored = ignored_text_encoder_tensor;
  out.weights_dtype = load_module_weights(*out.model, file, "text_encoder/config.json", names);
  out.weights_sha256 = sha256_file(weights);
  out.model->eval();
  return out;
}

void save_text_encoder(const std::string& dir, ClipTextModelImpl& model) {
  fs::create_directories(dir);
  TensorMap tensors;
  for (const auto& p : model.named_parameters()) tensors[p.key()] = p.value().detach().contiguous();
  save_tensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  std::ofstream(dir + "/config.json") << model.config().to_json().dump(2) << "\n";
}

}  // namespace qdm
