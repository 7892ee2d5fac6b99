#include "engine/quant/act_quantizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>

#include "engine/quant/uniform_quant.h"

namespace qdm {
namespace {

std::pair<float, float> scale_zero(float lo, float hi, int bits) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  const float levels = static_cast<float>(qmax(bits));
  const float s = std::max((hi - lo) / levels, 1e-8f);
  const float z = std::clamp(std::round(-lo / s), 0.0f, levels);
  return {s, z};
}

}  // namespace

std::pair<float, float> mse_range(const at::Tensor& x, int bits) {
  const at::Tensor xf = x.detach().to(at::kFloat).flatten();
  const float lo = std::min(xf.min().item<float>(), 0.0f), hi = std::max(xf.max().item<float>(), 0.0f);
  if (hi - lo <= 0.0f) return {lo, hi};
  constexpr int64_t kBins = 2048, kCandidates = 80;
  const at::Tensor counts = at::histc(xf, kBins, lo, hi).unsqueeze(0);                               // (1, bins)
  const at::Tensor centers = (lo + (at::arange(kBins, at::kFloat) + 0.5) * ((hi - lo) / kBins)).unsqueeze(0);
  const at::Tensor alpha = (1.0 - 0.01 * at::arange(kCandidates, at::kFloat)).unsqueeze(1);         // (cand, 1)
  const double levels = static_cast<double>(qmax(bits));
  const at::Tensor c_lo = alpha * lo, c_hi = alpha * hi;
  const at::Tensor s = ((c_hi - c_lo) / levels).clamp_min(1e-8);
  const at::Tensor z = at::clamp(at::round(-c_lo / s), 0, levels);
  const at::Tensor deq = (at::clamp(at::round(centers / s) + z, 0, levels) - z) * s;               // (cand, bins)
  const int64_t best = ((deq - centers).pow(2) * counts).sum(1).argmin().item<int64_t>();
  return {c_lo[best][0].item<float>(), c_hi[best][0].item<float>()};
}

ActQuantizer::ActQuantizer(int b, int steps, bool unit)
    : bits(b), fixed_unit_range(unit),
      min_seen(static_cast<size_t>(steps), std::numeric_limits<float>::infinity()),
      max_seen(static_cast<size_t>(steps), -std::numeric_limits<float>::infinity()),
      ema_min(static_cast<size_t>(steps), 0.0f), ema_max(static_cast<size_t>(steps), 0.0f),
      batches_seen(static_cast<size_t>(steps), 0) {
  if (unit) {
    scale = {1.0f / static_cast<float>(qmax(bits))};
    zero_point = {0.0f};
  }
}

at::Tensor ActQuantizer::operator()(const at::Tensor& x, int step) {
  if (mode == Mode::kOff) return x;
  if (mode == Mode::kObserve) {
    if (step < 0 || step >= steps()) throw std::out_of_range("ActQuantizer: step outside the calibrated schedule");
    const size_t i = static_cast<size_t>(step);
    const float lo = x.min().item<float>(), hi = x.max().item<float>();
    min_seen[i] = std::min(min_seen[i], lo);
    max_seen[i] = std::max(max_seen[i], hi);
    if (batches_seen[i]++ == 0 && !mse_init) {
      ema_min[i] = lo;
      ema_max[i] = hi;
      return x;
    }
    if (batches_seen[i] == 1) std::tie(ema_min[i], ema_max[i]) = mse_range(x.narrow(0, 0, std::min<int64_t>(16, x.size(0))), bits);
    ema_min[i] = 0.95f * ema_min[i] + 0.05f * lo;
    ema_max[i] = 0.95f * ema_max[i] + 0.05f * hi;
    return x;
  }
  if (scale.empty()) throw std::logic_error("ActQuantizer: quantize mode without a table");
  if (learned_scale.defined()) {
    const double z = zero_point[0];
    const at::Tensor y = x / learned_scale;
    const at::Tensor rounded = y + (at::round(y) - y).detach();  // straight-through
    return (at::clamp(rounded + z, 0, static_cast<double>(qmax(bits))) - z) * learned_scale;
  }
  const size_t i = scale.size() == 1 ? 0 : static_cast<size_t>(step);
  if (i >= scale.size()) throw std::out_of_range("ActQuantizer: no table entry for step " + std::to_string(step));
  const double s = scale[i], z = zero_point[i];
  if (x.requires_grad()) {  // fine-tuning what comes before: the rounding passes gradients straight through
    const at::Tensor y = x / s;
    return (at::clamp(y + (at::round(y) - y).detach() + z, 0, static_cast<double>(qmax(bits))) - z) * s;
  }
  return (at::clamp(at::round(x / s) + z, 0, static_cast<double>(qmax(bits))) - z) * s;
}

void ActQuantizer::finalize_minmax_shared() {
  if (fixed_unit_range) return;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int i = 0; i < steps(); ++i) {
    if (!batches_seen[static_cast<size_t>(i)]) continue;
    lo = std::min(lo, min_seen[static_cast<size_t>(i)]);
    hi = std::max(hi, max_seen[static_cast<size_t>(i)]);
  }
  if (!std::isfinite(lo)) throw std::logic_error("ActQuantizer: nothing observed");
  auto [s, z] = scale_zero(lo, hi, bits);
  scale = {s};
  zero_point = {z};
}

void ActQuantizer::finalize_per_step() {
  if (fixed_unit_range) return;
  finalize_minmax_shared();
  const float shared_s = scale[0], shared_z = zero_point[0];
  scale.assign(static_cast<size_t>(steps()), shared_s);
  zero_point.assign(static_cast<size_t>(steps()), shared_z);
  for (size_t i = 0; i < scale.size(); ++i) {
    if (!batches_seen[i]) continue;
    auto [s, z] = scale_zero(ema_min[i], ema_max[i], bits);
    scale[i] = s;
    zero_point[i] = z;
  }
}

void ActQuantizer::begin_lsq() {
  if (scale.size() != 1 || fixed_unit_range) return;
  learned_scale = at::full({1}, scale[0]).set_requires_grad(true);
}

void ActQuantizer::finish_lsq() {
  if (!learned_scale.defined()) return;
  scale[0] = std::max(learned_scale.item<float>(), 1e-8f);
  learned_scale = at::Tensor();
}

void ActQuantizer::set_table(std::vector<float> s, std::vector<float> z) {
  if (s.empty() || s.size() != z.size()) throw std::invalid_argument("ActQuantizer: bad table");
  scale = std::move(s);
  zero_point = std::move(z);
}

}  // namespace qdm
