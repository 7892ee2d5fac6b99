#include "engine/quant/uniform_quant.h"

namespace qdm {
namespace {

at::Tensor per_channel(const at::Tensor& v, const at::Tensor& x) {
  if (v.numel() == 1) return v.reshape({});
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = v.numel();
  return v.reshape(shape);
}

}  // namespace

at::Tensor fake_quant(const at::Tensor& x, const QuantParams& p) {
  const at::Tensor s = per_channel(p.scale, x), z = per_channel(p.zero_point, x);
  return (at::clamp(at::round(x / s) + z, 0, static_cast<double>(qmax(p.bits))) - z) * s;
}

at::Tensor quantize_codes(const at::Tensor& x, const QuantParams& p) {
  const at::Tensor s = per_channel(p.scale, x), z = per_channel(p.zero_point, x);
  return at::clamp(at::round(x / s) + z, 0, static_cast<double>(qmax(p.bits))).to(at::kByte);
}

at::Tensor dequantize_codes(const at::Tensor& q, const QuantParams& p) {
  return (q.to(at::kFloat) - per_channel(p.zero_point, q)) * per_channel(p.scale, q);
}

QuantParams params_from_range(const at::Tensor& lo_in, const at::Tensor& hi_in, int bits) {
  const at::Tensor lo = at::clamp_max(lo_in.to(at::kFloat), 0.0);
  const at::Tensor hi = at::clamp_min(hi_in.to(at::kFloat), 0.0);
  QuantParams p;
  p.bits = bits;
  p.scale = at::clamp_min((hi - lo) / static_cast<double>(qmax(bits)), 1e-8);
  p.zero_point = at::clamp(at::round(-lo / p.scale), 0, static_cast<double>(qmax(bits)));
  return p;
}

QuantParams minmax_weight_params(const at::Tensor& w, int bits) {
  const at::Tensor flat = w.reshape({w.size(0), -1});
  return params_from_range(std::get<0>(flat.min(1)), std::get<0>(flat.max(1)), bits);
}

QuantParams mse_weight_params(const at::Tensor& w, int bits, double p, int candidates) {
  const at::Tensor flat = w.reshape({w.size(0), -1}).to(at::kFloat);
  const at::Tensor lo = std::get<0>(flat.min(1)), hi = std::get<0>(flat.max(1));
  QuantParams best = params_from_range(lo, hi, bits);
  at::Tensor best_err = at::full({w.size(0)}, std::numeric_limits<float>::infinity());
  for (int i = 0; i < candidates; ++i) {
    const double shrink = 1.0 - 0.01 * i;
    QuantParams cand = params_from_range(lo * shrink, hi * shrink, bits);
    const at::Tensor err = (fake_quant(flat, cand) - flat).abs().pow(p).sum(1);
    const at::Tensor better = err < best_err;
    best.scale = at::where(better, cand.scale, best.scale);
    best.zero_point = at::where(better, cand.zero_point, best.zero_point);
    best_err = at::where(better, err, best_err);
  }
  return best;
}

}  // namespace qdm
