#include "engine/artifact/weight_packing.h"

#include <stdexcept>

namespace qdm {

at::Tensor pack_codes(const at::Tensor& codes, int bits) {
  if (codes.dim() != 2 || codes.scalar_type() != at::kByte) throw std::invalid_argument("pack_codes: (rows, K) uint8");
  if (bits > 4) return codes.contiguous().clone();
  const int64_t k = codes.size(1);
  const at::Tensor padded = k % 2 ? at::constant_pad_nd(codes, {0, 1}) : codes;
  const at::Tensor pairs = padded.reshape({codes.size(0), -1, 2});
  return (pairs.select(2, 0).bitwise_and(15)).bitwise_or(pairs.select(2, 1).bitwise_and(15).__lshift__(4)).contiguous();
}

at::Tensor unpack_codes(const at::Tensor& packed, int bits, int64_t k) {
  if (bits > 4) {
    if (packed.size(1) != k) throw std::invalid_argument("unpack_codes: width mismatch");
    return packed;
  }
  if (packed.size(1) != (k + 1) / 2) throw std::invalid_argument("unpack_codes: width mismatch");
  const at::Tensor lo = packed.bitwise_and(15), hi = packed.__rshift__(4).bitwise_and(15);
  return at::stack({lo, hi}, 2).reshape({packed.size(0), -1}).narrow(1, 0, k).contiguous();
}

}  // namespace qdm
