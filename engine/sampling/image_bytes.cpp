#include "engine/sampling/image_bytes.h"

#include <algorithm>
#include <cmath>

namespace qdm {

void image_to_bytes(const float* image, int channels, int height, int width, uint8_t* out) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  for (int c = 0; c < channels; ++c)
    for (int64_t p = 0; p < plane; ++p) {
      const float v = (std::clamp(image[c * plane + p], -1.0f, 1.0f) + 1.0f) * 127.5f;
      out[p * channels + c] = static_cast<uint8_t>(std::nearbyint(v));
    }
}

std::vector<uint8_t> image_png(const float* image, int channels, int height, int width, const PngText& text) {
  std::vector<uint8_t> pixels(static_cast<size_t>(channels) * height * width);
  image_to_bytes(image, channels, height, width, pixels.data());
  return encode_png(pixels.data(), width, height, channels, text);
}

}  // namespace qdm
