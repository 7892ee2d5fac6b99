#include "engine/train/adamw.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <stdexcept>

namespace qdm {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, Options options)
    : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
    lr_scale_.push_back(1.0);
  }
}

void AdamW::set_lr_scale(const std::string& prefix, double scale) {
  if (!(scale > 0)) throw std::invalid_argument("AdamW: a learning-rate scale must be positive");
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].first.rfind(prefix, 0) == 0) lr_scale_[i] = scale;
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    const double lr_i = lr * lr_scale_[i];
    if (options_.weight_decay > 0) p.mul_(1.0 - lr_i * options_.weight_decay);
    m_[i].mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    v_[i].mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    const at::Tensor denom = (v_[i] / bc2).sqrt_().add_(options_.eps);
    p.addcdiv_(m_[i], denom, -lr_i / bc1);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_) {
    at::Tensor g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

void AdamW::save_state(TensorMap& out, const std::string& prefix) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    out[prefix + params_[i].first + ".m"] = m_[i];
    out[prefix + params_[i].first + ".v"] = v_[i];
  }
}

void AdamW::load_state(const TensorMap& in, const std::string& prefix, int64_t step) {
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [suffix, dst] : {std::pair{".m", &m_[i]}, std::pair{".v", &v_[i]}}) {
      auto it = in.find(prefix + params_[i].first + suffix);
      if (it == in.end()) throw std::runtime_error("checkpoint lacks optimizer state for " + params_[i].first);
      dst->copy_(it->second);
    }
  }
  step_ = step;
}

}  // namespace qdm
