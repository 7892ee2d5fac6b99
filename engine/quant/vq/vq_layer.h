// A layer whose weights are additive-quantization codes (recipe vq): installing the codes on a
// QuantLayer, and their tensors in the artifact:
//   <layer>.vq_codes      U8  (rows, groups, M) codeword indices
//   <layer>.vq_codebooks  I8  (M, 2^B, group) integer codebooks whose M-term sums fit int8
//   <layer>.vq_scales     F32 (rows)
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "engine/model_io/tensor_io.h"
#include "engine/quant/quant_layers.h"
#include "engine/quant/vq/additive_quantizer.h"

namespace qdm::vq {

// The 8-bit grid the decode of integer codebooks lies on: w = scale * (code - 128) per row.
QuantParams int8_grid(const AqCodes& q);

// fake_weight = the decode (in the layer's weight layout), weight_params = int8_grid, the codes
// kept for the artifact and the kernels.
void install(QuantLayer& layer, AqCodes codes);

void add_tensors(TensorMap& out, const std::string& layer, const AqCodes& q);
// Throws std::invalid_argument naming the tensor when shapes, dtypes or values disagree with
// `rows` x `cols` weights under M codebooks of 2^bits vectors of `group`.
AqCodes from_tensors(const at::Tensor& codes, const at::Tensor& codebooks, const at::Tensor& scales, int m, int bits,
                     int group, int64_t rows, int64_t cols);

}  // namespace qdm::vq
