#include "engine/model/unet_2d.h"

#include <stdexcept>

#include "format/graph/unet_2d.h"

namespace qdm {

using graph::Input;

UNet2DModelImpl::UNet2DModelImpl(const UNetConfig& config)
    : GraphModuleImpl(graph::describe_unet_2d(config)), config_(config) {}

at::Tensor UNet2DModelImpl::broadcast_timesteps(const at::Tensor& timesteps, int64_t batch) const {
  at::Tensor t = timesteps.reshape({-1});
  if (t.numel() == 1) return t.expand({batch});
  if (t.numel() != batch)
    throw std::invalid_argument("UNet2DModel: " + std::to_string(t.numel()) + " timesteps for a batch of " +
                                std::to_string(batch));
  return t;
}

void UNet2DModelImpl::set_prompt_states(const at::Tensor& states, std::optional<int> null_row) {
  if (!states.defined()) {
    prompt_states_ = at::Tensor();
    prompt_null_.reset();
    return;
  }
  if (!config_.text_conditioned()) throw std::invalid_argument(config_.class_name + ": prompt states need a text model");
  if (config_.conditional())
    throw std::invalid_argument(config_.class_name + ": prompt tables on a model that also takes class labels are not supported");
  if (states.dim() != 3 || states.size(0) < 1 || states.size(2) != *config_.cross_attention_dim)
    throw std::invalid_argument(config_.class_name + ": prompt states must be (K, L, " + std::to_string(*config_.cross_attention_dim) + ")");
  if (null_row && (*null_row < 0 || *null_row >= states.size(0)))
    throw std::invalid_argument(config_.class_name + ": the null prompt row is outside the table");
  prompt_states_ = states.to(at::kFloat).contiguous();
  prompt_null_ = null_row;
}

bool UNet2DModelImpl::takes_labels() const { return config_.conditional() || prompt_states_.defined(); }

std::vector<int> UNet2DModelImpl::user_labels() const {
  if (!prompt_states_.defined()) return config_.user_labels();
  std::vector<int> rows;
  for (int i = 0; i < static_cast<int>(prompt_states_.size(0)); ++i)
    if (!prompt_null_ || i != *prompt_null_) rows.push_back(i);
  return rows;
}

std::optional<int> UNet2DModelImpl::null_label() const {
  return prompt_states_.defined() ? prompt_null_ : config_.null_class;
}

void UNet2DModelImpl::add_prompt_rows(Values& values, const at::Tensor& labels, int64_t batch) const {
  if (!prompt_states_.defined()) throw std::invalid_argument(config_.class_name + ": give text states (or set a prompt table)");
  if (!labels.defined()) throw std::invalid_argument(config_.class_name + ": give text states or prompt rows");
  const at::Tensor l = labels.reshape({-1}).to(at::kLong);
  if (l.numel() != batch)
    throw std::invalid_argument(config_.class_name + ": " + std::to_string(l.numel()) + " prompt rows for a batch of " +
                                std::to_string(batch));
  if (l.min().item<int64_t>() < 0 || l.max().item<int64_t>() >= prompt_states_.size(0))
    throw std::invalid_argument(config_.class_name + ": prompt rows must be in [0, " + std::to_string(prompt_states_.size(0)) + ")");
  // The table stays where it was set; the rows go where the module's weights are.
  const c10::Device device = parameters().empty() ? c10::Device(c10::kCPU) : parameters().front().device();
  values[graph().input(Input::kTextStates)] = prompt_states_.index_select(0, l.to(prompt_states_.device())).to(device);
}

void UNet2DModelImpl::add_class_input(Values& values, const at::Tensor& labels, int64_t batch) const {
  const auto& cfg = config_;
  if (prompt_states_.defined()) return;  // labels are prompt rows (add_prompt_rows)
  if (!cfg.conditional()) {
    if (labels.defined()) throw std::invalid_argument("UNet2DModel: this model is not class-conditional; pass no class labels");
    return;
  }
  if (!labels.defined()) throw std::invalid_argument("UNet2DModel: this class-conditional model needs class labels");
  if (cfg.class_embed_type == "identity") {
    if (labels.dim() != 2 || labels.size(0) != batch || labels.size(1) != cfg.time_embed_dim())
      throw std::invalid_argument("UNet2DModel: \"identity\" class embeddings must be (N, " +
                                  std::to_string(cfg.time_embed_dim()) + ")");
    values[graph().input(Input::kClassEmbedding)] = labels.to(at::kFloat);
    return;
  }
  const at::Tensor l = labels.reshape({-1});
  if (l.numel() != batch)
    throw std::invalid_argument("UNet2DModel: " + std::to_string(l.numel()) + " class labels for a batch of " +
                                std::to_string(batch));
  if (cfg.class_embed_type == "timestep") {
    values[graph().input(Input::kClassLabel)] = l.to(at::kFloat);
    return;
  }
  const int64_t lo = l.min().item<int64_t>(), hi = l.max().item<int64_t>();
  if (lo < 0 || hi >= *cfg.num_class_embeds)
    throw std::invalid_argument("UNet2DModel: class labels must be in [0, " + std::to_string(*cfg.num_class_embeds) + ")");
  values[graph().input(Input::kClassLabel)] = l.to(at::kLong);
}

UNet2DModelImpl::Values UNet2DModelImpl::inputs(const at::Tensor& sample, const at::Tensor& timesteps,
                                                const at::Tensor& class_labels, const at::Tensor& text) const {
  const auto& cfg = config_;
  if (sample.dim() != 4 || sample.size(1) != cfg.in_channels)
    throw std::invalid_argument("UNet2DModel: sample must be (N, " + std::to_string(cfg.in_channels) + ", H, W), got " +
                                c10::str(sample.sizes()));
  const int64_t factor = int64_t{1} << (cfg.block_out_channels.size() - 1);
  if (sample.size(2) % factor != 0 || sample.size(3) % factor != 0)
    throw std::invalid_argument("UNet2DModel: height and width must be multiples of " + std::to_string(factor));
  Values v;
  v[graph().input(Input::kSample)] = sample;
  v[graph().input(Input::kTimestep)] = broadcast_timesteps(timesteps, sample.size(0));
  add_class_input(v, class_labels, sample.size(0));
  if (cfg.text_conditioned() && !text.defined() && prompt_states_.defined()) {
    add_prompt_rows(v, class_labels, sample.size(0));
  } else if (cfg.text_conditioned()) {
    if (!text.defined() || text.dim() != 3 || text.size(0) != sample.size(0) || text.size(2) != *cfg.cross_attention_dim)
      throw std::invalid_argument(cfg.class_name + ": encoder_hidden_states must be (N, L, " +
                                  std::to_string(*cfg.cross_attention_dim) + ") for a batch of " + std::to_string(sample.size(0)));
    v[graph().input(Input::kTextStates)] = text.to(at::kFloat);
  } else if (text.defined()) {
    throw std::invalid_argument("UNet2DModel: this model takes no text states");
  }
  return v;
}

at::Tensor UNet2DModelImpl::forward(const at::Tensor& sample, const at::Tensor& timesteps, const at::Tensor& class_labels,
                                    const at::Tensor& encoder_hidden_states) {
  return run(inputs(sample, timesteps, class_labels, encoder_hidden_states), graph().output);
}

at::Tensor UNet2DModelImpl::forward_with_features(const at::Tensor& sample, const at::Tensor& timesteps,
                                                  const std::vector<at::Tensor>& features, const at::Tensor& labels) {
  const auto& cfg = config_;
  if (sample.dim() != 4 || sample.size(1) != cfg.in_channels)
    throw std::invalid_argument("UNet2DModel: sample must be (N, " + std::to_string(cfg.in_channels) + ", H, W)");
  const std::vector<int> slots = graph().temporal_features();
  if (features.size() != slots.size())
    throw std::invalid_argument("UNet2DModel: " + std::to_string(features.size()) + " temporal features for " +
                                std::to_string(slots.size()) + " resnets");
  Values v;
  v[graph().input(Input::kSample)] = sample;
  v[graph().input(Input::kTimestep)] = broadcast_timesteps(timesteps, sample.size(0));
  for (size_t i = 0; i < slots.size(); ++i) v[slots[i]] = features[i];
  if (cfg.text_conditioned()) add_prompt_rows(v, labels, sample.size(0));
  return run(v, graph().output);
}

at::Tensor UNet2DModelImpl::time_embed(const at::Tensor& timesteps, const at::Tensor& class_labels) {
  const at::Tensor t = timesteps.reshape({-1});
  Values v;
  v[graph().input(Input::kTimestep)] = t;
  add_class_input(v, class_labels, t.size(0));
  return run(v, graph().find_value("temb"));
}

std::vector<at::Tensor> UNet2DModelImpl::temporal_features(const at::Tensor& timesteps, const at::Tensor& class_labels) {
  at::Tensor t = timesteps.reshape({-1});
  if (class_labels.defined() && t.numel() == 1) t = t.expand({class_labels.size(0)});
  Values v;
  v[graph().input(Input::kTimestep)] = t;
  add_class_input(v, class_labels, t.size(0));
  return run(v, graph().temporal_features());
}

std::vector<std::string> UNet2DModelImpl::temporal_feature_layers() const {
  std::vector<std::string> out;
  for (int v : graph().temporal_features()) out.push_back(graph().producer(v).name);
  return out;
}

at::Tensor UNet2DModelImpl::block_forward(const std::string& name, const at::Tensor& x, const at::Tensor& temb,
                                          const at::Tensor& feature, const at::Tensor& labels) {
  const graph::Block* b = graph().find_block(name);
  if (!b) throw std::invalid_argument("UNet2DModel: no block '" + name + "'");
  Values v;
  v[b->input] = x;
  if (b->kind == "resnet") {
    const int slot = graph().find_value(name + ".time_emb_proj");
    if (feature.defined()) v[slot] = feature;
    else v[graph().find_value("temb")] = temb;
  }
  if (b->kind == "transformer" && config_.text_conditioned()) add_prompt_rows(v, labels, x.size(0));
  return run(v, b->output);
}

at::Tensor UNet2DModelImpl::class_table() const {
  if (config_.class_embed_type || !config_.num_class_embeds) return {};
  return tensor("class_embedding.weight");
}

int64_t UNet2DModelImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace qdm
