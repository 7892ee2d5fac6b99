// diffusers UNet2DModel as LibTorch modules: its description (format/graph/unet_2d.h) run by
// the graph interpreter (graph_module.h). Parameter names equal diffusers' state dict keys
// (conv_in.weight, time_embedding.linear_1.weight, down_blocks.0.resnets.0.conv1.weight, ...).
#pragma once

#include <torch/nn/pimpl.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/model/graph_module.h"
#include "format/unet_config.h"

namespace qdm {

class UNet2DModelImpl : public GraphModuleImpl {
 public:
  explicit UNet2DModelImpl(const UNetConfig& config);

  // sample: (N, C_in, H, W); timesteps: (N) or a single element; class_labels: (N) integer
  // labels (a class-conditional model needs them, an unconditional one refuses them), or
  // (N, time_embed_dim) embeddings for class_embed_type "identity" -> (N, C_out, H, W)
  // encoder_hidden_states: (N, L, cross_attention_dim) text states, which a UNet2DConditionModel
  // needs and a UNet2DModel refuses.
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timesteps, const at::Tensor& class_labels = {},
                     const at::Tensor& encoder_hidden_states = {});
  // Same, with every resnet's temporal feature given (see temporal_features()); `labels` as
  // forward's (a text model's prompt rows).
  at::Tensor forward_with_features(const at::Tensor& sample, const at::Tensor& timesteps,
                                   const std::vector<at::Tensor>& features, const at::Tensor& labels = {});

  // A text model sampled by label, as quantization runs every model: `states` (K, L, D) are the
  // text states of K prompts and `null_row` the empty prompt's; forward(x, t, labels) without
  // text states then reads labels as rows of this table (the calibration set, the reports and
  // guidance stay label-driven). An undefined tensor removes the table.
  void set_prompt_states(const at::Tensor& states, std::optional<int> null_row);
  const at::Tensor& prompt_states() const { return prompt_states_; }
  // Whether forward takes labels: a class-conditional model's class labels, or a text model's
  // prompt rows once set_prompt_states gave it a table.
  bool takes_labels() const;
  // The labels a caller may ask for (not the null one), and the null one (guidance's
  // unconditional branch): the config's classes, or the prompt table's rows.
  std::vector<int> user_labels() const;
  std::optional<int> null_label() const;

  // timesteps (N), class_labels (N) or undefined -> time embedding (N, time_embed_dim), the
  // class embedding added as diffusers adds it
  at::Tensor time_embed(const at::Tensor& timesteps, const at::Tensor& class_labels = {});
  // The Temporal Information Block's outputs: time_emb_proj(SiLU(emb)) of every resnet, in
  // model order (down blocks, mid block, up blocks). They depend on t (and the class) alone.
  std::vector<at::Tensor> temporal_features(const at::Tensor& timesteps, const at::Tensor& class_labels = {});
  // The layers whose outputs those are (every resnet's time_emb_proj), in the same order.
  std::vector<std::string> temporal_feature_layers() const;
  // Block `name` (a resnet or an attention block) alone on its input x; a resnet also takes
  // its temporal feature, or the time embedding to compute it from.
  // A transformer block of a text model reads the text states of `labels` (prompt rows).
  at::Tensor block_forward(const std::string& name, const at::Tensor& x, const at::Tensor& temb,
                           const at::Tensor& feature = {}, const at::Tensor& labels = {});

  // The class embedding table (num_class_embeds, time_embed_dim); undefined when there is none.
  at::Tensor class_table() const;
  int64_t parameter_count() const;
  const UNetConfig& config() const { return config_; }

 private:
  Values inputs(const at::Tensor& sample, const at::Tensor& timesteps, const at::Tensor& class_labels,
               const at::Tensor& text = {}) const;
  at::Tensor broadcast_timesteps(const at::Tensor& timesteps, int64_t batch) const;
  void add_class_input(Values& values, const at::Tensor& class_labels, int64_t batch) const;
  // The prompt table's rows for `labels` (n of them) as the text-states input.
  void add_prompt_rows(Values& values, const at::Tensor& labels, int64_t batch) const;
  UNetConfig config_;
  at::Tensor prompt_states_;
  std::optional<int> prompt_null_;
};
TORCH_MODULE(UNet2DModel);

}  // namespace qdm
