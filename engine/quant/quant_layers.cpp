#include "engine/quant/quant_layers.h"

namespace qdm {

QuantLayer::QuantLayer(std::string n, Conv2dLayerImpl* c, LinearLayerImpl* l, int act_bits, int steps,
                       std::shared_ptr<StepContext> s, int wbits)
    : name(std::move(n)), conv(c), linear(l), quant_input(act_bits > 0), weight_bits(wbits),
      act(act_bits > 0 ? act_bits : 8, steps), step(std::move(s)) {}

at::Tensor QuantLayer::fp_weight() const { return conv ? conv->weight : linear->weight; }
at::Tensor QuantLayer::bias() const { return conv ? conv->bias : linear->bias; }

void QuantLayer::set_weight_quant(const QuantParams& params) {
  weight_params = params;
  fake_weight = fake_quant(fp_weight().detach(), params);
}

void QuantLayer::replace_with(std::shared_ptr<LayerOverride> runtime) {
  if (conv) {
    conv->override_ = std::move(runtime);
    conv->weight.set_data(at::empty({0}));
  } else {
    linear->override_ = std::move(runtime);
    linear->weight.set_data(at::empty({0}));
  }
  fake_weight = at::Tensor();
}

void QuantLayer::begin_adaround() { adaround = std::make_shared<AdaRound>(fp_weight(), weight_params); }

void QuantLayer::finish_adaround() {
  if (!adaround) return;
  fake_weight = adaround->hard_weight();
  adaround.reset();
}

at::Tensor QuantLayer::forward(const at::Tensor& input) {
  if (input.dim() >= 2 && input.size(0) > 0) {  // for budgets (BitOPs): per image
    const int64_t per_image = input.numel() / input.size(0);
    if (conv) {
      const int64_t h = input.size(2), w = input.size(3);
      const int64_t ho = (h + 2 * conv->padding - conv->kernel) / conv->stride + 1;
      const int64_t wo = (w + 2 * conv->padding - conv->kernel) / conv->stride + 1;
      macs_per_image = ho * wo * conv->out_channels * conv->in_channels * conv->kernel * conv->kernel;
    } else {
      macs_per_image = per_image / linear->in_features * linear->in_features * linear->out_features;
    }
  }
  const at::Tensor x = act(input, step->step);
  if (input_tap) input_tap(x);
  const at::Tensor w = adaround ? adaround->soft_weight() : fake_weight.defined() ? fake_weight : fp_weight();
  if (conv) return at::conv2d(x, w, conv->bias, {conv->stride, conv->stride}, {conv->padding, conv->padding});
  return at::linear(x, w, linear->bias);
}

QuantAttentionCore::QuantAttentionCore(std::string n, int act_bits, int steps, std::shared_ptr<StepContext> s)
    : name(std::move(n)), q(act_bits, steps), k(act_bits, steps), v(act_bits, steps),
      probs(act_bits, steps, /*unsigned_range=*/true), step(std::move(s)) {}

void QuantAttentionCore::set_mode(ActQuantizer::Mode mode) {
  q.mode = k.mode = v.mode = mode;
  // The softmax output has a fixed range: nothing to observe.
  probs.mode = mode == ActQuantizer::Mode::kObserve ? ActQuantizer::Mode::kOff : mode;
}

at::Tensor QuantAttentionCore::attend(const at::Tensor& qt, const at::Tensor& kt, const at::Tensor& vt,
                                      double scale) {
  const int s = step->step;
  tokens = qt.size(2);
  channels = qt.size(1) * qt.size(3);
  const at::Tensor p = at::softmax(at::matmul(q(qt, s), k(kt, s).transpose(-1, -2)) * scale, -1);
  return at::matmul(probs(p, s), v(vt, s));
}

}  // namespace qdm
