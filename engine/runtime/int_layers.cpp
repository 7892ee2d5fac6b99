#include "engine/runtime/int_layers.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>

#include <cstring>

#include "engine/kernels/qconv.h"
#include "engine/runtime/int_attention.h"

namespace qdm {

IntLayer::IntLayer(const QuantLayer& src, QGemmIsa isa)
    : is_conv_(src.conv != nullptr), act_bits_(src.act.bits), act_scale_(src.act.scale), act_zero_(src.act.zero_point),
      step_(src.step), isa_(isa) {
  if (!src.quant_input) throw std::invalid_argument("IntLayer: layer '" + src.name + "' has an fp32 input");
  const at::Tensor w = src.fake_weight.defined() ? src.fake_weight : fake_quant(src.fp_weight().detach(), src.weight_params);
  const int64_t n = w.size(0), k = w.numel() / n;
  at::Tensor codes = quantize_codes(w.reshape({n, k}), src.weight_params);
  // Convolutions gather patches from a channels-last copy of the input, so K runs
  // (ky, kx, channel): the weights are permuted to match once, here.
  if (src.conv) {
    const int64_t kk = src.conv->kernel, ch = k / (kk * kk);
    codes = codes.reshape({n, ch, kk, kk}).permute({0, 2, 3, 1}).reshape({n, k});
  }
  codes = codes.contiguous();
  lane_conv_ = src.conv && qconv_available(isa, src.conv->in_channels);
  const at::Tensor scale = src.weight_params.scale.to(at::kFloat).contiguous();
  const at::Tensor zero = src.weight_params.zero_point.to(at::kFloat).contiguous();
  weights_ = pack_weights(codes.data_ptr<uint8_t>(), static_cast<int>(n), static_cast<int>(k), src.weight_params.bits,
                          scale.data_ptr<float>(), zero.data_ptr<float>(),
                          lane_conv_ ? WeightLayout::kRows : layout_for(isa));
  bias_ = src.bias().detach().to(at::kFloat).contiguous().clone();
  if (is_conv_) {
    kernel_ = src.conv->kernel;
    stride_ = src.conv->stride;
    padding_ = src.conv->padding;
    in_channels_ = src.conv->in_channels;
  }
}

std::atomic<double>& IntLayerTime::layers() {
  static std::atomic<double> t{0};
  return t;
}
std::atomic<double>& IntLayerTime::attention() {
  static std::atomic<double> t{0};
  return t;
}

at::Tensor IntLayer::forward(const at::Tensor& input) {
  const auto start = std::chrono::steady_clock::now();
  const size_t i = act_scale_.size() == 1 ? 0 : static_cast<size_t>(step_->step);
  const ActQuant q{act_scale_.at(i), static_cast<int32_t>(std::lround(act_zero_.at(i))), (1 << act_bits_) - 1};
  at::Tensor out = !is_conv_ ? linear_forward(input, q) : lane_conv_ ? lane_conv_forward(input, q) : conv_forward(input, q);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  IntLayerTime::layers().store(IntLayerTime::layers().load() + secs);
  return out;
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
  quantize_rows(isa_, xc.data_ptr<float>(), static_cast<int>(m), static_cast<int>(k), q, a.data(), sums.data());
  std::vector<int64_t> shape = xc.sizes().vec();
  shape.back() = weights_.n;
  return gemm(a.data(), sums.data(), m, q).reshape(shape);
}

namespace {

// One image (C, H, W) to channels-last u8 codes (H, W, C), x / scale + zero rounded half to
// even like the simulation: (v + 1.5 * 2^23) - 1.5 * 2^23 rounds in the FPU's default mode
// without a libm call.
void quantize_image_hwc(const float* x, int64_t c, int64_t hw, ActQuant q, uint8_t* out) {
  constexpr float kMagic = 12582912.0f;
  const float zero = static_cast<float>(q.zero), scale = q.scale;
  thread_local std::vector<uint8_t> chw;
  chw.resize(static_cast<size_t>(c * hw));
  uint8_t* t = chw.data();
  for (int64_t i = 0; i < c * hw; ++i) {  // contiguous: vectorizes
    float v = std::clamp(x[i] / scale, -1024.0f, 1024.0f);
    v = (v + kMagic) - kMagic;
    t[i] = static_cast<uint8_t>(std::clamp(v + zero, 0.0f, static_cast<float>(q.qmax)));
  }
  for (int64_t i = 0; i < hw; ++i)
    for (int64_t ch = 0; ch < c; ++ch) out[i * c + ch] = t[ch * hw + i];
}

}  // namespace

// One parallel region per convolution: each task takes an image (or, for small batches, a
// block of its output pixels), quantizes the input it needs, gathers patches (a row per output
// pixel, K in (kh, kw, C) order like the permuted weights, padding holding the zero point), runs the
// integer GEMM and the dequantizing epilogue, and writes its slice of the NCHW output.
at::Tensor IntLayer::conv_forward(const at::Tensor& x, ActQuant q) {
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  const int64_t n = xc.size(0), c = xc.size(1), h = xc.size(2), w = xc.size(3);
  const int64_t ho = (h + 2 * padding_ - kernel_) / stride_ + 1, wo = (w + 2 * padding_ - kernel_) / stride_ + 1;
  const int64_t pix = ho * wo, kp = weights_.k_padded, image_numel = c * h * w, nout = weights_.n;
  at::Tensor out = at::empty({n, nout, ho, wo}, at::kFloat);
  const float* src = xc.data_ptr<float>();
  float* dst_all = out.data_ptr<float>();
  // Small batches: quantize once up front and split images into pixel blocks across threads.
  const bool per_image = n >= at::get_num_threads();
  std::vector<uint8_t> xq_all;
  if (!per_image) {
    xq_all.resize(static_cast<size_t>(xc.numel()));
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) quantize_image_hwc(src + i * image_numel, c, h * w, q, xq_all.data() + i * image_numel);
    });
  }
  const int64_t block = per_image ? pix : std::min<int64_t>(pix, std::max<int64_t>(1, 256 / wo) * wo);
  const int64_t blocks_per_image = (pix + block - 1) / block;
  const int k = kernel_, s = stride_, p = padding_;
  const uint8_t zp = static_cast<uint8_t>(q.zero);
  at::parallel_for(0, n * blocks_per_image, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> xq_img, a;
    std::vector<int32_t> sums, acc;
    std::vector<float> y;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t img = task / blocks_per_image, r0 = (task % blocks_per_image) * block;
      const int64_t rows = std::min(block, pix - r0);
      const uint8_t* hwc;  // (H, W, C) codes of this image
      if (per_image) {
        xq_img.resize(static_cast<size_t>(image_numel));
        quantize_image_hwc(src + img * image_numel, c, h * w, q, xq_img.data());
        hwc = xq_img.data();
      } else {
        hwc = xq_all.data() + img * image_numel;
      }
      a.resize(static_cast<size_t>(rows * kp));
      sums.resize(static_cast<size_t>(rows));
      // A row per output pixel: for each (ky, kx) the C channel codes of one input pixel,
      // copied contiguously; outside the image, the zero point.
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t oy = (r0 + r) / wo, ox = (r0 + r) % wo;
        uint8_t* d = a.data() + r * kp;
        for (int ky = 0; ky < k; ++ky) {
          const int64_t iy = oy * s - p + ky;
          for (int kx = 0; kx < k; ++kx, d += c) {
            const int64_t ix = ox * s - p + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) std::memset(d, zp, static_cast<size_t>(c));
            else std::memcpy(d, hwc + (iy * w + ix) * c, static_cast<size_t>(c));
          }
        }
      }
      const int64_t kreal = c * k * k;
      for (int64_t r = 0; r < rows; ++r) {
        uint8_t* row = a.data() + r * kp;
        std::fill(row + kreal, row + kp, 0);
        // Row sums over the real K (the padding is 0): a separate loop that vectorizes.
        uint32_t sum = 0;
        for (int64_t i = 0; i < kreal; ++i) sum += row[i];
        sums[static_cast<size_t>(r)] = static_cast<int32_t>(sum);
      }
      acc.resize(static_cast<size_t>(rows * nout));
      y.resize(static_cast<size_t>(rows * nout));
      qgemm_s32(isa_, a.data(), static_cast<int>(rows), weights_, acc.data());
      dequantize_output(acc.data(), static_cast<int>(rows), weights_, q, sums.data(), bias_.data_ptr<float>(), y.data());
      // (rows, N) -> out[img, :, r0 : r0 + rows]
      float* dst = dst_all + img * nout * pix + r0;
      for (int64_t ch = 0; ch < nout; ++ch)
        for (int64_t r = 0; r < rows; ++r) dst[ch * pix + r] = y[static_cast<size_t>(r * nout + ch)];
    }
  });
  return out;
}

// The lane convolution (qconv.h): whole images per task when the batch fills the threads
// (quantized into a per-thread buffer, so one parallel region), otherwise all images quantized
// first and their pixels split into blocks across threads.
at::Tensor IntLayer::lane_conv_forward(const at::Tensor& x, ActQuant q) {
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  const int64_t n = xc.size(0);
  const QConvShape s{static_cast<int>(xc.size(1)), static_cast<int>(xc.size(2)), static_cast<int>(xc.size(3)),
                     kernel_, stride_, padding_};
  const int64_t pix = static_cast<int64_t>(s.ho()) * s.wo(), nout = weights_.n, image_numel = xc[0].numel();
  at::Tensor out = at::empty({n, nout, s.ho(), s.wo()}, at::kFloat);
  const float* src = xc.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const QConvPlan plan = qconv_plan(isa_, s, weights_, q, bias_.data_ptr<float>());
  const size_t padded = s.padded_bytes();
  if (n >= at::get_num_threads()) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      thread_local std::vector<uint8_t> image;
      image.resize(padded);
      for (int64_t i = begin; i < end; ++i) {
        qconv_quantize_image(isa_, src + i * image_numel, s, q, image.data());
        qconv_pixels(plan, image.data(), 0, static_cast<int>(pix), dst + i * nout * pix);
      }
    });
    return out;
  }
  std::vector<uint8_t> images(padded * static_cast<size_t>(n));
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) qconv_quantize_image(isa_, src + i * image_numel, s, q, images.data() + i * padded);
  });
  const int64_t block = 256, blocks = (pix + block - 1) / block;
  at::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i = t / blocks, r0 = (t % blocks) * block;
      qconv_pixels(plan, images.data() + i * padded, static_cast<int>(r0),
                   static_cast<int>(std::min(block, pix - r0)), dst + i * nout * pix);
    }
  });
  return out;
}

size_t use_integer_kernels(QuantizedUNet& model, QGemmIsa isa) {
  size_t bytes = 0;
  for (auto& l : model.layers) {
    if (!l->quant_input) continue;
    auto layer = std::make_shared<IntLayer>(*l, isa);
    bytes += layer->weight_bytes();
    l->replace_with(layer);
  }
  // Attention cores: the integer core keeps the simulated one (its tables) alive.
  for (const auto& core : model.attention)
    model.unet->set_attention_core(core->name, std::make_shared<IntAttentionCore>(core, isa));
  return bytes;
}

}  // namespace qdm
