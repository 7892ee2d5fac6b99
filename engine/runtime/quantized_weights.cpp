#include "engine/runtime/quantized_weights.h"

#include "format/graph/unet_2d.h"

#include <ATen/core/grad_mode.h>

#include <stdexcept>

#include "engine/quant/quant_model.h"
#include "engine/quant/vq/additive_quantizer.h"
#include "engine/runtime/plan/execution_plan.h"

namespace qdm {
namespace {

std::vector<float> floats(const at::Tensor& t) {
  if (!t.defined()) return {};  // a layer without bias
  const at::Tensor c = t.detach().to(at::kFloat).contiguous().cpu();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

template <typename T>
std::vector<T> values(const at::Tensor& t, at::ScalarType type) {
  const at::Tensor c = t.detach().to(type).contiguous().cpu();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

plan::ActTable act_table(const ActQuantizer& a) { return {a.scale, a.zero_point, a.bits}; }

at::Tensor layer_weight(const GraphModuleImpl& m, const std::string& name) {
  if (auto* c = m.conv(name)) return c->weight;
  if (auto* l = m.linear(name)) return l->weight;
  throw std::invalid_argument("the model has no layer '" + name + "'");
}
at::Tensor layer_bias(const GraphModuleImpl& m, const std::string& name) {
  if (auto* c = m.conv(name)) return c->bias;
  return m.linear(name)->bias;
}

}  // namespace

bool QuantizedWeights::fp32_attention() const { return q_.attention.empty(); }

std::string QuantizedWeights::unsupported() const {
  for (const auto& l : q_.layers)
    if (l->quant_input && l->act.bits > 8) return "activations over 8 bits";
  return "";
}

plan::LayerSource QuantizedWeights::layer(const std::string& name, int n, int k) const {
  at::NoGradGuard no_grad;
  plan::LayerSource out;
  out.n = n;
  out.k = k;
  const auto l = q_.layer(name);
  if (!l) {  // left in fp32
    out.f32 = floats(layer_weight(*q_.unet, name));
    out.bias = floats(layer_bias(*q_.unet, name));
    return out;
  }
  out.bias = floats(l->bias());
  if (l->quant_input) out.act = act_table(l->act);
  if (l->vq && l->quant_input) {  // with an fp32 input: the 8-bit grid its decode lies on, below
    const vq::AqCodes& v = *l->vq;
    out.kind = plan::LayerSource::Kind::kVq;
    out.vq_codes = values<uint8_t>(v.codes, at::kByte);
    out.vq_codewords = values<int8_t>(v.codebooks.round(), at::kChar);
    out.scale = floats(v.scales);
    out.vq_codebooks = static_cast<int>(v.codes.size(2));
    out.vq_bits = vq::codebook_bits(v);
    out.vq_group = v.group;
    return out;
  }
  if (!l->quant_input && !l->fake_weight.defined()) {  // a kept layer without grid weights
    out.f32 = floats(l->fp_weight());
    return out;
  }
  // The grid weights' codes (nearest or learned rounding: exact).
  const at::Tensor w = l->fake_weight.defined() ? l->fake_weight : fake_quant(l->fp_weight().detach(), l->weight_params);
  out.kind = plan::LayerSource::Kind::kCodes;
  out.codes = values<uint8_t>(quantize_codes(w.reshape({n, k}), l->weight_params), at::kByte);
  out.bits = l->weight_params.bits;
  out.scale = floats(l->weight_params.scale.reshape({-1}).expand({n}));
  out.zero = floats(l->weight_params.zero_point.reshape({-1}).expand({n}));
  return out;
}

std::vector<float> QuantizedWeights::tensor(const std::string& name) const { return floats(q_.unet->tensor(name)); }

std::optional<std::vector<plan::ActTable>> QuantizedWeights::attention(const std::string& name) const {
  for (const auto& a : q_.attention)
    if (a->name == name) return std::vector<plan::ActTable>{act_table(a->q), act_table(a->k), act_table(a->v), act_table(a->probs)};
  return std::nullopt;
}

std::optional<plan::FeatureCache> QuantizedWeights::temporal_cache(size_t i) const {
  if (!q_.has_temporal_cache()) return std::nullopt;
  std::vector<at::Tensor> steps;
  for (const auto& step : q_.temporal_cache) steps.push_back(step.at(i));
  const at::Tensor all = at::cat(steps, 0).cpu().contiguous();
  plan::FeatureCache c;
  c.rows = static_cast<int>(q_.temporal_cache.front()[i].size(0));
  c.channels = static_cast<int>(all.size(1));
  if (QuantizedUNet::holds_f16_values(all)) {
    const at::Tensor h = all.to(at::kHalf);
    const at::Half* p = h.data_ptr<at::Half>();
    c.f16.resize(static_cast<size_t>(h.numel()));
    for (size_t j = 0; j < c.f16.size(); ++j) c.f16[j] = p[j].x;
  } else {
    c.f32 = floats(all);
  }
  return c;
}

plan::LayerSource ModuleWeights::layer(const std::string& name, int n, int k) const {
  at::NoGradGuard no_grad;
  plan::LayerSource out;
  out.n = n;
  out.k = k;
  out.f32 = floats(layer_weight(*unet_, name));
  out.bias = floats(layer_bias(*unet_, name));
  return out;
}

std::vector<float> ModuleWeights::tensor(const std::string& name) const { return floats(unet_->tensor(name)); }

std::string plan_unsupported(const QuantizedUNet& model) {
  return ExecutionPlan::unsupported(model.unet->graph(), QuantizedWeights(model));
}

namespace {

// The module's description, at its prompt table's text length when it has one (the module's
// own is described at 77 tokens; the plan sizes its text buffers from it).
graph::Graph plan_graph(const UNet2DModelImpl& unet) {
  const at::Tensor& states = unet.prompt_states();
  if (!states.defined()) return unet.graph();
  return graph::describe_unet_2d(unet.config(), 0, 0, static_cast<int>(states.size(1)));
}

}  // namespace

std::shared_ptr<ExecutionPlan> make_plan(const QuantizedUNet& model, QGemmIsa isa, int threads) {
  return std::make_shared<ExecutionPlan>(plan_graph(*model.unet), QuantizedWeights(model), isa, threads);
}

std::shared_ptr<ExecutionPlan> make_plan(UNet2DModel unet, QGemmIsa isa, int threads) {
  return std::make_shared<ExecutionPlan>(plan_graph(*unet), ModuleWeights(unet), isa, threads);
}

}  // namespace qdm
