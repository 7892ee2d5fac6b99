// The checks an artifact's quantized tensors pass when opened, shared by the UNet's weights
// (artifact_weights.h) and a pipeline component's (component_weights.h): codes within their bits,
// scales positive and finite. Each throws ArtifactError naming the tensor (`what` prefixes it).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "format/artifact_metadata.h"

namespace qdm {

// n codes of `bits`-bit weights (one per byte): at most 2^bits - 1.
inline void check_codes(const uint8_t* codes, int64_t n, int bits, const std::string& tensor, const std::string& what = "") {
  const int64_t top = (int64_t{1} << bits) - 1;
  for (int64_t i = 0; i < n; ++i)
    if (codes[i] > top) throw ArtifactError(what + "tensor '" + tensor + "' holds codes above " + std::to_string(top));
}

// Activation (or weight) scales: positive and finite.
inline void check_scales(const std::vector<float>& scales, const std::string& tensor, const std::string& what = "") {
  for (const float v : scales)
    if (!std::isfinite(v) || v <= 0) throw ArtifactError(what + "tensor '" + tensor + "' holds a scale that is not positive and finite");
}

}  // namespace qdm
