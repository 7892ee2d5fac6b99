#include "engine/runtime/tensor_int_layer.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <cmath>
#include <stdexcept>

#include "engine/kernels/qgemm.h"
#ifdef QDM_CUDA_INT_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "engine/kernels/qgemm_cuda.h"
#endif

namespace qdm {
namespace {

// u8 activation codes as a float tensor: x / scale rounded half to even (torch.round), as the
// simulation and quantize_rows do, plus the zero point, clamped to [0, qmax].
at::Tensor activation_codes(const at::Tensor& x, float scale, float zero, int qmax) {
  return at::clamp(at::round(x.to(at::kFloat) / scale) + zero, 0, qmax);
}

}  // namespace

at::Tensor pack_nibbles(const at::Tensor& codes) {
  const int64_t n = codes.size(0), kp = codes.size(1);
  if (kp % kKBlock != 0) throw std::invalid_argument("pack_nibbles: K must be padded to a multiple of 64");
  // Per 64-wide block: byte j = code[j] | code[j + 32] << 4.
  const at::Tensor blocks = codes.to(at::kByte).reshape({n, kp / kKBlock, 2, kKBlock / 2});
  const at::Tensor lo = blocks.select(2, 0), hi = blocks.select(2, 1);
  return at::bitwise_or(lo, at::bitwise_left_shift(hi, 4)).reshape({n, kp / 2}).contiguous();
}

TensorIntLayer::TensorIntLayer(const QuantLayer& src, c10::Device device)
    : is_conv_(src.conv != nullptr), bits_(src.weight_params.bits), act_qmax_((1 << src.act.bits) - 1), act_scale_(src.act.scale),
      act_zero_(src.act.zero_point), step_(src.step) {
  if (!src.quant_input) throw std::invalid_argument("TensorIntLayer: layer '" + src.name + "' has an fp32 input");
  const at::Tensor w = src.fake_weight.defined() ? src.fake_weight : fake_quant(src.fp_weight().detach(), src.weight_params);
  n_ = w.size(0);
  k_ = w.numel() / n_;
  k_padded_ = padded_k(static_cast<int>(k_));
  if (k_padded_ > kMaxK) throw std::invalid_argument("TensorIntLayer: layer '" + src.name + "' has K > 16384");
  // (n, K) codes, K in the conv weight's own (channel, ky, kx) order, which is im2col's.
  const at::Tensor codes = at::constant_pad_nd(quantize_codes(w.reshape({n_, k_}).cpu(), src.weight_params), {0, k_padded_ - k_}, 0);
  col_sum_ = codes.sum(1, false, at::kInt);
  zero_w_ = src.weight_params.zero_point.reshape({-1}).to(at::kFloat).round().to(at::kInt).expand({n_}).contiguous();
  scale_w_ = src.weight_params.scale.reshape({-1}).to(at::kFloat).expand({n_}).contiguous();
  bias_ = src.bias().detach().to(at::kFloat).reshape({n_}).clone();
  weights_ = device.is_cuda() && bits_ <= 4 ? pack_nibbles(codes) : codes.contiguous();
  weights_ = weights_.to(device);
  col_sum_ = col_sum_.to(device);
  zero_w_ = zero_w_.to(device);
  scale_w_ = scale_w_.to(device);
  bias_ = bias_.to(device);
  if (is_conv_) {
    kernel_ = src.conv->kernel;
    stride_ = src.conv->stride;
    padding_ = src.conv->padding;
  }
}

size_t TensorIntLayer::weight_bytes() const {
  return static_cast<size_t>(weights_.numel()) + 4 * static_cast<size_t>(col_sum_.numel() + zero_w_.numel() +
                                                                         scale_w_.numel() + bias_.numel());
}

at::Tensor TensorIntLayer::product(const at::Tensor& a) const {
  const int64_t m = a.size(0);
  if (a.is_cuda()) {
#ifdef QDM_CUDA_INT_KERNELS
    const c10::DeviceGuard guard(a.device());
    at::Tensor acc = at::empty({m, n_}, a.options().dtype(at::kInt));
    // On LibTorch's current stream, ordered with the ATen operations around it.
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(a.device().index()).stream();
    qgemm_u8_cuda_device(a.data_ptr<uint8_t>(), static_cast<int>(m), weights_.data_ptr<uint8_t>(), static_cast<int>(n_),
                         static_cast<int>(k_padded_), bits_, acc.data_ptr<int32_t>(), stream);
    return acc;
#else
    throw std::runtime_error("integer kernels on CUDA are not in this build (needs a CUDA LibTorch and nvcc)");
#endif
  }
  // Exact: every partial sum is an integer below 2^31, well inside float64's 53 bits.
  return at::mm(a.to(at::kDouble), weights_.to(at::kDouble).t()).to(at::kInt);
}

at::Tensor TensorIntLayer::dequantize(const at::Tensor& a, float scale, int32_t zero) const {
  const at::Tensor row_sum = a.sum(1, true, at::kInt);                                          // (m, 1)
  const at::Tensor term = col_sum_ * (-zero) + zero_w_ * static_cast<int32_t>(k_ * zero);     // (n)
  const at::Tensor exact = product(a) - zero_w_ * row_sum + term;                               // (m, n) int32
  return exact.to(at::kFloat) * (scale_w_ * scale) + bias_;
}

at::Tensor TensorIntLayer::forward(const at::Tensor& input) {
  const size_t i = act_scale_.size() == 1 ? 0 : static_cast<size_t>(step_->step);
  const float scale = act_scale_.at(i);
  const int32_t zero = static_cast<int32_t>(std::lround(act_zero_.at(i)));
  if (!is_conv_) {
    const at::Tensor q = activation_codes(input, scale, static_cast<float>(zero), act_qmax_).reshape({-1, k_});
    const at::Tensor a = at::constant_pad_nd(q, {0, k_padded_ - k_}, 0).to(at::kByte).contiguous();
    std::vector<int64_t> shape = input.sizes().vec();
    shape.back() = n_;
    return dequantize(a, scale, zero).reshape(shape);
  }
  // (N, C, H, W) -> codes, padded with the zero point -> patches (N, C k k, L) -> rows (N L, K).
  const int64_t batch = input.size(0);
  const int64_t ho = (input.size(2) + 2 * padding_ - kernel_) / stride_ + 1;
  const int64_t wo = (input.size(3) + 2 * padding_ - kernel_) / stride_ + 1;
  at::Tensor q = activation_codes(input, scale, static_cast<float>(zero), act_qmax_);
  if (padding_ > 0) q = at::constant_pad_nd(q, {padding_, padding_, padding_, padding_}, static_cast<double>(zero));
  const at::Tensor patches = at::im2col(q, {kernel_, kernel_}, {1, 1}, {0, 0}, {stride_, stride_});
  const at::Tensor rows = patches.transpose(1, 2).reshape({batch * ho * wo, k_});
  const at::Tensor a = at::constant_pad_nd(rows, {0, k_padded_ - k_}, 0).to(at::kByte).contiguous();
  // (N L, n) -> (N, n, Ho, Wo)
  return dequantize(a, scale, zero).reshape({batch, ho * wo, n_}).transpose(1, 2).reshape({batch, n_, ho, wo});
}

size_t use_tensor_integer_kernels(QuantizedUNet& model, c10::Device device) {
  size_t bytes = 0;
  for (auto& l : model.layers) {
    if (!l->quant_input) continue;
    auto layer = std::make_shared<TensorIntLayer>(*l, device);
    bytes += layer->weight_bytes();
    l->replace_with(layer);
  }
  return bytes;
}

}  // namespace qdm
