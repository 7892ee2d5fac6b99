#include "engine/quant/vq/vq_layer.h"

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <stdexcept>

#include "engine/quant/vq/layer_moments.h"

namespace qdm::vq {

QuantParams int8_grid(const AqCodes& q) {
  return {q.scales.to(at::kFloat).contiguous(), at::full({q.scales.size(0)}, 128.0f), 8};
}

void install(QuantLayer& layer, AqCodes codes) {
  at::NoGradGuard no_grad;
  const at::Tensor w = layer.fp_weight();
  layer.fake_weight = from_group_order(decode(codes), w.sizes()).to(w.dtype());
  layer.weight_params = int8_grid(codes);
  layer.weight_bits = 8;
  layer.vq = std::make_shared<AqCodes>(std::move(codes));
}

void add_tensors(TensorMap& out, const std::string& layer, const AqCodes& q) {
  out[layer + ".vq_codes"] = q.codes.to(at::kByte).contiguous();
  out[layer + ".vq_codebooks"] = q.codebooks.round().to(at::kChar).contiguous();
  out[layer + ".vq_scales"] = q.scales.to(at::kFloat).contiguous();
}

AqCodes from_tensors(const at::Tensor& codes, const at::Tensor& codebooks, const at::Tensor& scales, int m, int bits,
                     int group, int64_t rows, int64_t cols) {
  if (group < 1 || cols % group != 0)
    throw std::invalid_argument("vq: " + std::to_string(cols) + " weights per row are not groups of " + std::to_string(group));
  const int64_t groups = cols / group, k = int64_t{1} << bits;
  if (codes.scalar_type() != at::kByte || codes.sizes() != at::IntArrayRef{rows, groups, m})
    throw std::invalid_argument("vq_codes must be U8 of shape [" + std::to_string(rows) + ", " + std::to_string(groups) + ", " +
                                std::to_string(m) + "]");
  if (codebooks.scalar_type() != at::kChar || codebooks.sizes() != at::IntArrayRef{m, k, group})
    throw std::invalid_argument("vq_codebooks must be I8 of shape [" + std::to_string(m) + ", " + std::to_string(k) + ", " +
                                std::to_string(group) + "]");
  if (scales.scalar_type() != at::kFloat || scales.dim() != 1 || scales.size(0) != rows)
    throw std::invalid_argument("vq_scales must be F32 with one entry per output channel");
  if (!at::isfinite(scales).all().item<bool>()) throw std::invalid_argument("vq_scales must be finite");
  if (codes.numel() > 0 && codes.max().item<int64_t>() >= k)
    throw std::invalid_argument("vq_codes holds indices beyond the " + std::to_string(k) + " codewords");
  // The kernels add M int8 codewords in int8: every codebook's largest magnitudes together fit.
  const int64_t bound = codebooks.to(at::kLong).abs().reshape({m, -1}).amax(1).sum().item<int64_t>();
  if (bound > 127) throw std::invalid_argument("vq_codebooks: the sum of the codebooks' largest magnitudes exceeds 127");
  AqCodes q;
  q.codes = codes.to(at::kLong);
  q.codebooks = codebooks.to(at::kFloat);
  q.scales = scales.clone();
  q.group = group;
  return q;
}

}  // namespace qdm::vq
