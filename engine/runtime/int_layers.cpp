#include "engine/runtime/int_layers.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "engine/runtime/int_attention.h"
#include <cstring>

namespace qdm {

IntLayer::IntLayer(const QuantLayer& src, QGemmIsa isa)
    : is_conv_(src.conv != nullptr), act_scale_(src.act.scale), act_zero_(src.act.zero_point), step_(src.step), isa_(isa) {
  if (!src.quant_input) throw std::invalid_argument("IntLayer: layer '" + src.name + "' has an fp32 input");
  const at::Tensor w = src.fake_weight.defined() ? src.fake_weight : fake_quant(src.fp_weight().detach(), src.weight_params);
  const int64_t n = w.size(0), k = w.numel() / n;
  const at::Tensor codes = quantize_codes(w.reshape({n, k}), src.weight_params).contiguous();
  const at::Tensor scale = src.weight_params.scale.to(at::kFloat).contiguous();
  const at::Tensor zero = src.weight_params.zero_point.to(at::kFloat).contiguous();
  weights_ = pack_weights(codes.data_ptr<uint8_t>(), static_cast<int>(n), static_cast<int>(k), src.weight_params.bits,
                          scale.data_ptr<float>(), zero.data_ptr<float>(), layout_for(isa));
  bias_ = src.bias().detach().to(at::kFloat).contiguous().clone();
  if (is_conv_) {
    kernel_ = src.conv->kernel;
    stride_ = src.conv->stride;
    padding_ = src.conv->padding;
    in_channels_ = src.conv->in_channels;
  }
}

at::Tensor IntLayer::forward(const at::Tensor& input) {
  const size_t i = act_scale_.size() == 1 ? 0 : static_cast<size_t>(step_->step);
  const ActQuant q{act_scale_.at(i), static_cast<int32_t>(std::lround(act_zero_.at(i)))};
  return is_conv_ ? conv_forward(input, q) : linear_forward(input, q);
}

at::Tensor IntLayer::gemm(const uint8_t* a, const int32_t* row_sums, int64_t m, ActQuant q) {
  at::Tensor y = at::empty({m, weights_.n}, at::kFloat);
  std::vector<int32_t> acc(static_cast<size_t>(m) * weights_.n);
  // Rows split across LibTorch's intra-op threads; each chunk is an independent GEMM.
  at::parallel_for(0, m, 64, [&](int64_t begin, int64_t end) {
    const int rows = static_cast<int>(end - begin);
    qgemm_s32(isa_, a + begin * weights_.k_padded, rows, weights_, acc.data() + begin * weights_.n);
    dequantize_output(acc.data() + begin * weights_.n, rows, weights_, q, row_sums + begin,
                      bias_.data_ptr<float>(), y.data_ptr<float>() + begin * weights_.n);
  });
  return y;
}

at::Tensor IntLayer::linear_forward(const at::Tensor& x, ActQuant q) {
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  const int64_t k = xc.size(-1), m = xc.numel() / k;
  std::vector<uint8_t> a(static_cast<size_t>(m) * weights_.k_padded);
  std::vector<int32_t> sums(static_cast<size_t>(m));
  quantize_rows(xc.data_ptr<float>(), static_cast<int>(m), static_cast<int>(k), q, a.data(), sums.data());
  std::vector<int64_t> shape = xc.sizes().vec();
  shape.back() = weights_.n;
  return gemm(a.data(), sums.data(), m, q).reshape(shape);
}

at::Tensor IntLayer::conv_forward(const at::Tensor& x, ActQuant q) {
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  const int64_t n = xc.size(0), c = xc.size(1), h = xc.size(2), w = xc.size(3);
  const int64_t ho = (h + 2 * padding_ - kernel_) / stride_ + 1, wo = (w + 2 * padding_ - kernel_) / stride_ + 1;
  const int64_t m = n * ho * wo, kp = weights_.k_padded;
  // Quantize once, then gather patches: a row per output pixel, K in (C, kh, kw) order like
  // the weights, spatial padding holding the zero point (the code of 0.0).
  std::vector<uint8_t> xq(static_cast<size_t>(xc.numel()));
  {
    const float* src = xc.data_ptr<float>();
    at::parallel_for(0, xc.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        xq[static_cast<size_t>(i)] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::nearbyint(src[i] / q.scale)) + q.zero, 0, 255));
    });
  }
  std::vector<uint8_t> a(static_cast<size_t>(m) * kp);
  std::vector<int32_t> sums(static_cast<size_t>(m));
  const int k = kernel_, s = stride_, p = padding_;
  at::parallel_for(0, m, 256, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / (ho * wo), oy = (row / wo) % ho, ox = row % wo;
      uint8_t* out = a.data() + row * kp;
      int32_t sum = 0;
      int64_t col = 0;
      // Columns of the kernel window that fall inside the image (the rest hold the zero point).
      const int64_t x0 = ox * s - p;
      const int kx_lo = static_cast<int>(std::max<int64_t>(0, -x0)), kx_hi = static_cast<int>(std::min<int64_t>(k, w - x0));
      const uint8_t zp = static_cast<uint8_t>(q.zero);
      for (int64_t ch = 0; ch < c; ++ch) {
        const uint8_t* plane = xq.data() + (img * c + ch) * h * w;
        for (int ky = 0; ky < k; ++ky, col += k) {
          const int64_t iy = oy * s - p + ky;
          uint8_t* dst = out + col;
          if (iy < 0 || iy >= h) {
            std::memset(dst, zp, static_cast<size_t>(k));
            sum += k * q.zero;
            continue;
          }
          const uint8_t* src = plane + iy * w + x0;
          for (int kx = 0; kx < kx_lo; ++kx) dst[kx] = zp;
          for (int kx = kx_lo; kx < kx_hi; ++kx) sum += dst[kx] = src[kx];
          for (int kx = std::max(kx_hi, kx_lo); kx < k; ++kx) dst[kx] = zp;
          sum += (k - std::max(0, kx_hi - kx_lo)) * q.zero;
        }
      }
      std::fill(out + col, out + kp, 0);
      sums[static_cast<size_t>(row)] = sum;
    }
  });
  return gemm(a.data(), sums.data(), m, q).reshape({n, ho, wo, weights_.n}).permute({0, 3, 1, 2}).contiguous();
}

size_t use_integer_kernels(QuantizedUNet& model, QGemmIsa isa) {
  size_t bytes = 0;
  for (auto& l : model.layers) {
    if (!l->quant_input) continue;
    auto layer = std::make_shared<IntLayer>(*l, isa);
    bytes += layer->weight_bytes();
    if (l->conv) {
      l->conv->override_ = layer;
      l->conv->weight.set_data(at::empty({0}));
    } else {
      l->linear->override_ = layer;
      l->linear->weight.set_data(at::empty({0}));
    }
    l->fake_weight = at::Tensor();
  }
  // Attention cores: the integer core keeps the simulated one (its tables) alive.
  for (const auto& item : model.unet->named_modules("", false)) {
    auto* attn = item.value()->as<AttentionBlockImpl>();
    if (!attn || !attn->core_override_) continue;
    auto core = std::dynamic_pointer_cast<QuantAttentionCore>(attn->core_override_);
    if (!core) continue;
    attn->core_override_ = std::make_shared<IntAttentionCore>(core, isa);
  }
  return bytes;
}

}  // namespace qdm
