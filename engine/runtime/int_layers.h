// Integer execution of a quantized artifact's conv and linear layers: the input is
// quantized to u8 with the layer's activation table entry for the current step (im2col for
// convolutions, padding with the zero point), multiplied with the packed int4/int8 weights
// by the integer GEMM (engine/kernels), and dequantized with the bias added. The fp32
// weights are released. Layers whose input stays fp32 and the attention core keep the
// simulation path.
#pragma once

#include <atomic>
#include <memory>

#include "engine/kernels/qgemm.h"
#include "engine/quant/quant_model.h"

namespace qdm {

class IntLayer : public LayerOverride {
 public:
  // Takes the layer's grid weights (fake_weight) and tables from `source`.
  IntLayer(const QuantLayer& source, QGemmIsa isa);
  at::Tensor forward(const at::Tensor& input) override;
  bool lane_convolution() const { return lane_conv_; }  // runs through qconv.h
  size_t weight_bytes() const { return weights_.bytes() + static_cast<size_t>(bias_.numel()) * 4; }

 private:
  at::Tensor conv_forward(const at::Tensor& x, ActQuant q);
  at::Tensor lane_conv_forward(const at::Tensor& x, ActQuant q);  // qconv.h, where available
  at::Tensor linear_forward(const at::Tensor& x, ActQuant q);
  at::Tensor gemm(const uint8_t* a, const int32_t* row_sums, int64_t m, ActQuant q);  // (m, n) float

  bool is_conv_;
  int act_bits_ = 8;
  bool lane_conv_ = false;
  int kernel_ = 1, stride_ = 1, padding_ = 0, in_channels_ = 0;
  PackedWeights weights_;
  at::Tensor bias_;
  std::vector<float> act_scale_, act_zero_;
  std::shared_ptr<StepContext> step_;
  QGemmIsa isa_;
};

// Seconds spent inside integer layers (convolutions, linear layers) and integer attention cores
// since the last reset: the per-layer path's share of a step, for profiles against the plan.
struct IntLayerTime {
  static std::atomic<double>& layers();
  static std::atomic<double>& attention();
  static void reset() { layers() = 0; attention() = 0; }
};

// Replaces every quantized layer of `model` whose input is quantized by an IntLayer and frees
// its fp32 weights. Returns the bytes of weights now resident for those layers.
size_t use_integer_kernels(QuantizedUNet& model, QGemmIsa isa);

}  // namespace qdm
