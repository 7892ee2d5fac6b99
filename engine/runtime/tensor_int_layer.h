// Integer execution of a quantized conv or linear layer composed of ATen operations, so it runs
// on the device its tensors live on: a CUDA worker's GPU, where the product is the dp4a GEMM of
// engine/kernels/qgemm_cuda.cu; on the CPU the product is an exact float64 GEMM, which makes
// this composition testable against IntLayer here (the CPU serves with IntLayer).
//
// The input is quantized to u8 codes with the layer's activation entry for the current step;
// convolutions gather patches with im2col (K in (channel, ky, kx) order, padding holding the
// zero point); K is padded with zeros to a multiple of 64. With unsigned weight codes w
// (0 .. 2^bits - 1) and zero points z_w:
//   y[m, n] = s_a s_w[n] (acc[m, n] - z_w[n] rowsum(a)[m] - z_a colsum(w)[n] + K z_a z_w[n]) + bias[n]
// where the integer part is exact int32 arithmetic, as in qgemm.h's epilogue.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <vector>

#include "engine/quant/quant_model.h"

namespace qdm {

class TensorIntLayer : public LayerOverride {
 public:
  // Takes the layer's grid weights (fake_weight) and tables from `source`; its tensors are
  // placed on `device`.
  TensorIntLayer(const QuantLayer& source, c10::Device device);
  at::Tensor forward(const at::Tensor& input) override;
  size_t weight_bytes() const;

 private:
  at::Tensor product(const at::Tensor& a) const;                        // (m, k_padded) u8 -> (m, n) int32
  at::Tensor dequantize(const at::Tensor& a, float scale, int32_t zero) const;  // (m, k_padded) u8 -> (m, n) float

  bool is_conv_;
  int kernel_ = 1, stride_ = 1, padding_ = 0, bits_ = 8, act_qmax_ = 255;
  int64_t n_ = 0, k_ = 0, k_padded_ = 0;
  at::Tensor weights_;  // CUDA and bits <= 4: (n, k_padded / 2) nibbles (qgemm_cuda.h); else (n, k_padded) u8 codes
  at::Tensor zero_w_;   // (n) int32
  at::Tensor col_sum_;  // (n) int32, sum over K of w
  at::Tensor scale_w_;  // (n) float
  at::Tensor bias_;     // (n) float
  std::vector<float> act_scale_, act_zero_;
  std::shared_ptr<StepContext> step_;
};

// (n, k_padded) u8 codes <= 15 -> (n, k_padded / 2) in qgemm_cuda.h's nibble layout.
at::Tensor pack_nibbles(const at::Tensor& codes);

// Replaces every quantized layer of `model` whose input is quantized by a TensorIntLayer on
// `device` and frees its fp32 weights. Returns the bytes of weights now resident for them.
size_t use_tensor_integer_kernels(QuantizedUNet& model, c10::Device device);

}  // namespace qdm
