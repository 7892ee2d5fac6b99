// transformers CLIPTextModel as LibTorch modules: its description (format/graph/clip_text.h)
// run by the graph interpreter; parameter names are transformers' state dict keys.
#pragma once

#include <torch/nn/pimpl.h>

#include <string>

#include "engine/model/graph_module.h"
#include "format/clip_text_config.h"

namespace qdm {

class ClipTextModelImpl : public GraphModuleImpl {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& config);
  // input_ids (N, L) integers, L <= max_position_embeddings -> hidden states (N, L, hidden_size):
  // last_hidden_state, or with clip_skip an earlier layer's through final_layer_norm.
  at::Tensor forward(const at::Tensor& input_ids);
  const ClipTextConfig& config() const { return config_; }

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextModel);

// text_encoder/config.json + model.safetensors (transformers' name; diffusers'
// diffusion_pytorch_model.safetensors accepted); the stored position_ids buffer and a
// text_projection are skipped. Throws ModelLoadError / ConfigError naming the file or tensor.
struct LoadedTextEncoder {
  ClipTextModel model{nullptr};
  std::string weights_sha256, weights_dtype;
};
LoadedTextEncoder load_text_encoder(const std::string& dir);
void save_text_encoder(const std::string& dir, ClipTextModelImpl& model);

}  // namespace qdm
