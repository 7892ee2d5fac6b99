#include "engine/quant/quant_model.h"

#include <nlohmann/json.hpp>
#include <ATen/core/grad_mode.h>

#include <stdexcept>

namespace qdm {
namespace {

bool matches(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    if (name.find(p) != std::string::npos) return true;
  return false;
}

bool reads_text_states(const graph::Graph& g, const graph::Node& node) {
  if (node.inputs.empty()) return false;
  const graph::Node& src = g.producer(node.inputs[0]);
  return src.op == graph::Op::kInput && src.attrs.input == graph::Input::kTextStates;
}

}  // namespace

at::Tensor every_class_label(const UNetConfig& config) {
  if (!config.conditional()) return {};
  if (config.label_count() == 0)
    throw std::invalid_argument("quantization needs integer class labels (not \"identity\" class embeddings)");
  return at::arange(config.label_count(), at::kLong);
}

QuantizedUNet::QuantizedUNet(UNet2DModel u, QuantSpec s)
    : unet(std::move(u)), spec(std::move(s)), step(std::make_shared<StepContext>()) {
  spec.validate();
  // The model's layers and attention cores in node order (its description's).
  for (const graph::Node& node : unet->graph().nodes) {
    const std::string& name = node.name;
    if (node.op == graph::Op::kAttention) {
      if (spec.quantize_attention && spec.act_bits > 0) {
        auto core = std::make_shared<QuantAttentionCore>(name, spec.act_bits, spec.steps, step);
        unet->set_attention_core(name, core);
        attention.push_back(core);
      }
      continue;
    }
    Conv2dLayerImpl* conv = node.op == graph::Op::kConv2d ? unet->conv(name) : nullptr;
    LinearLayerImpl* linear = node.op == graph::Op::kLinear ? unet->linear(name) : nullptr;
    if (!conv && !linear) continue;
    // Cross-attention's to_k / to_v read the text states, which no timestep changes: they run
    // once per request, in fp32 (the execution plan's text projection), so stay unquantized.
    if (reads_text_states(unet->graph(), node)) {
      kept_fp.push_back(name);
      continue;
    }
    const bool kept = matches(name, spec.keep_fp), fp32 = matches(name, spec.fp32_layers);
    if (kept || fp32) {
      kept_fp.push_back(name);
      if (fp32 || spec.keep_bits == 0) continue;  // fp32 weights: the layer is left alone
    }
    const bool quant_input = !kept && spec.act_bits > 0 && !matches(name, spec.keep_fp_input);
    int wbits = kept ? spec.keep_bits : spec.weight_bits, abits = quant_input ? spec.act_bits : 0;
    if (auto it = spec.layer_bits.find(name); it != spec.layer_bits.end()) {  // mixed precision
      wbits = it->second.first;
      if (quant_input) abits = it->second.second;
    }
    auto layer = std::make_shared<QuantLayer>(name, conv, linear, abits, spec.steps, step, wbits);
    if (conv) conv->override_ = layer; else linear->override_ = layer;
    layers.push_back(layer);
  }
}

void QuantizedUNet::set_act_mode(ActQuantizer::Mode mode) {
  for (auto& l : layers)
    if (l->quant_input) l->act.mode = mode;
  for (auto& a : attention) a->set_mode(mode);
}

at::Tensor QuantizedUNet::forward(const at::Tensor& x, int t, int step_index, const at::Tensor& labels) {
  step->step = step_index;
  const at::Tensor ts = at::full({x.size(0)}, static_cast<float>(t), x.options().dtype(at::kFloat));
  if (!has_temporal_cache()) return unet->forward(x, ts, labels);
  const auto& tables = temporal_cache.at(static_cast<size_t>(step_index));
  const int64_t rows = tables.front().size(0);
  if (unet->takes_labels() != labels.defined())
    throw std::invalid_argument(labels.defined() ? "this model is not class-conditional" : "this model needs class labels");
  at::Tensor rows_for_batch;  // the features depend on the class, not on a text model's prompt
  if (labels.defined() && unet->config().conditional()) {
    const at::Tensor l = labels.reshape({-1}).to(at::kLong);
    if (l.min().item<int64_t>() < 0 || l.max().item<int64_t>() >= rows)
      throw std::invalid_argument("class labels must be in [0, " + std::to_string(rows) + ")");
    rows_for_batch = l.to(tables.front().device());
  }
  std::vector<at::Tensor> features;
  for (const auto& f : tables)
    features.push_back(rows_for_batch.defined() ? f.index_select(0, rows_for_batch) : f.expand({x.size(0), -1}));
  return unet->forward_with_features(x, ts, features, labels);
}

void QuantizedUNet::cache_temporal_features(UNet2DModel fp, const std::vector<int>& timesteps) {
  at::NoGradGuard no_grad;
  temporal_cache.clear();
  // The TIB's own layers no longer run: nothing to calibrate or store for them.
  for (auto& l : layers)
    if (is_temporal_layer(l->name)) l->quant_input = false;
  const at::Tensor labels = every_class_label(fp->config());
  const int64_t rows = labels.defined() ? labels.size(0) : 1;
  for (int t : timesteps) {
    std::vector<at::Tensor> features = fp->temporal_features(at::full({rows}, static_cast<float>(t)), labels);
    for (auto& f : features)
      if (f.abs().max().item<float>() <= 65504.0f) f = f.to(at::kHalf).to(at::kFloat);  // F16's largest finite value
    temporal_cache.push_back(std::move(features));
  }
}

bool QuantizedUNet::holds_f16_values(const at::Tensor& t) { return t.to(at::kHalf).to(t.scalar_type()).equal(t); }

void QuantizedUNet::to(c10::Device device) {
  unet->to(device);
  for (auto& l : layers)
    if (l->fake_weight.defined()) l->fake_weight = l->fake_weight.to(device);
  for (auto& features : temporal_cache)
    for (auto& f : features) f = f.to(device);
}

std::shared_ptr<QuantLayer> QuantizedUNet::layer(const std::string& name) const {
  for (const auto& l : layers)
    if (l->name == name) return l;
  return nullptr;
}

}  // namespace qdm
