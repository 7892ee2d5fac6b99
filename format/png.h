// PNG encoding (libpng) with tEXt chunks for generation parameters. An engine-only build without
// libpng compiles, and its encode/decode throw std::runtime_error saying so.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qdm {

using PngText = std::vector<std::pair<std::string, std::string>>;

// pixels: height x width x channels bytes, row-major; channels 1 (grey), 3 (RGB) or 4 (RGBA).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels,
                                const PngText& text = {});
void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels,
               const PngText& text = {});

struct DecodedPng {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
  PngText text;
};
DecodedPng decode_png(const std::vector<uint8_t>& bytes);  // throws std::runtime_error

}  // namespace qdm
