#include "engine/model/attention_block.h"

#include <cmath>

namespace qdm {

AttentionBlockImpl::AttentionBlockImpl(int ch, int hd, std::optional<int> groups, double eps,
                                       double rescale)
    : channels(ch), heads(ch / hd), head_dim(hd), rescale_output_factor(rescale) {
  if (groups)
    group_norm = register_module(
        "group_norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(*groups, ch).eps(eps)));
  to_q = register_module("to_q", LinearLayer(ch, ch));
  to_k = register_module("to_k", LinearLayer(ch, ch));
  to_v = register_module("to_v", LinearLayer(ch, ch));
  to_out = register_module("to_out", torch::nn::ModuleList());
  to_out->push_back(LinearLayer(ch, ch));
}

at::Tensor AttentionBlockImpl::forward(const at::Tensor& x) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3), len = h * w;
  at::Tensor t = group_norm ? group_norm->forward(x) : x;
  t = t.reshape({n, channels, len}).transpose(1, 2).contiguous();  // (N, L, C)
  auto split_heads = [&](const at::Tensor& y) {       // (N, L, C) -> (N, heads, L, d)
    return y.reshape({n, len, heads, head_dim}).permute({0, 2, 1, 3});
  };
  at::Tensor q = split_heads(to_q->forward(t));
  at::Tensor k = split_heads(to_k->forward(t));
  at::Tensor v = split_heads(to_v->forward(t));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  at::Tensor o = core_override_ ? core_override_->attend(q, k, v, scale)
                                : at::matmul(at::softmax(at::matmul(q, k.transpose(-1, -2)) * scale, -1), v);
  o = o.permute({0, 2, 1, 3}).contiguous().reshape({n, len, channels});
  o = to_out[0]->as<LinearLayer>()->forward(o);
  o = o.transpose(1, 2).reshape({n, channels, h, w});
  o = o + x;
  if (rescale_output_factor != 1.0) o = o / rescale_output_factor;
  if (tap) tap(x, o);
  return o;
}

}  // namespace qdm
