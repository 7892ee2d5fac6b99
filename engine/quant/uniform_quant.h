// Uniform affine quantization: q = clamp(round(x / s) + z, 0, 2^b - 1), x^ = s (q - z).
// Weights per output channel (dim 0), activations per tensor.
#pragma once

#include <ATen/ATen.h>

namespace qdm {

struct QuantParams {
  at::Tensor scale;       // (C) per channel or (1) per tensor, float
  at::Tensor zero_point;  // same shape, float holding integers in [0, 2^b - 1]
  int bits = 8;
};

inline int64_t qmax(int bits) { return (int64_t{1} << bits) - 1; }

// Broadcasts per-channel params over dim 0 of x.
at::Tensor fake_quant(const at::Tensor& x, const QuantParams& p);
at::Tensor quantize_codes(const at::Tensor& x, const QuantParams& p);    // uint8 codes
at::Tensor dequantize_codes(const at::Tensor& q, const QuantParams& p);  // float

// Params covering [lo, hi] (tensors of equal shape; the range is widened to contain 0).
QuantParams params_from_range(const at::Tensor& lo, const at::Tensor& hi, int bits);
// Per-output-channel min-max range of a weight (C_out, ...).
QuantParams minmax_weight_params(const at::Tensor& w, int bits);
// Per-output-channel range by search: shrink min and max together in 1% steps (80
// candidates) and keep, per channel, the one with the lowest L_p error (p = 2.4).
QuantParams mse_weight_params(const at::Tensor& w, int bits, double p = 2.4, int candidates = 80);

}  // namespace qdm
