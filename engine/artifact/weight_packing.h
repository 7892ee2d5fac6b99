// Packing of integer weight codes for artifacts: 4-bit (and narrower) codes two per byte,
// low nibble first; 5-8 bit codes one per byte.
#pragma once

#include <ATen/ATen.h>

namespace qdm {

// codes: (rows, K) uint8 -> (rows, ceil(K / 2)) uint8 for bits <= 4, else a copy.
at::Tensor pack_codes(const at::Tensor& codes, int bits);
// Inverse of pack_codes: (rows, packed) -> (rows, K).
at::Tensor unpack_codes(const at::Tensor& packed, int bits, int64_t k);

}  // namespace qdm
