#include "engine/quant/bitops.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "engine/quant/quant_model.h"

namespace qdm {

CallCost call_cost(QuantizedUNet& q) {
  bool ran = false;
  for (const auto& l : q.layers) ran = ran || l->macs_per_image > 0;
  if (!ran) {
    at::NoGradGuard no_grad;
    const auto& cfg = q.unet->config();
    const at::Tensor x = at::zeros({1, cfg.in_channels, cfg.sample_size, cfg.sample_size});
    at::Tensor labels;
    // A text model without a prompt table (a loaded artifact): one stand-in text token; the
    // layers counted read the image tokens, whatever the text.
    const bool stand_in = cfg.text_conditioned() && !q.unet->prompt_states().defined();
    if (stand_in) q.unet->set_prompt_states(at::zeros({1, 1, *cfg.cross_attention_dim}), 0);
    if (q.unet->takes_labels()) labels = at::full({1}, static_cast<int64_t>(q.unet->null_label().value_or(0)), at::kLong);
    q.forward(x, 999, 0, labels);
    if (stand_in) q.unet->set_prompt_states(at::Tensor(), std::nullopt);
  }
  CallCost c;
  for (const auto& l : q.layers) {
    if (q.has_temporal_cache() && is_temporal_layer(l->name)) continue;  // never runs
    const double macs = static_cast<double>(l->macs_per_image);
    const int wbits = l->weight_params.scale.defined() ? l->weight_bits : 32;
    const int abits = l->quant_input ? l->act.bits : 32;
    c.macs += macs;
    c.bitops += macs * wbits * abits;
  }
  for (const auto& a : q.attention) {
    const double macs = static_cast<double>(a->tokens) * static_cast<double>(a->tokens) * static_cast<double>(a->channels);
    const bool quantized = q.spec.quantize_attention;
    c.macs += 2 * macs;
    c.bitops += quantized ? macs * (a->q.bits * a->k.bits + a->probs.bits * a->v.bits) : 2 * macs * 32 * 32;
  }
  return c;
}

}  // namespace qdm
