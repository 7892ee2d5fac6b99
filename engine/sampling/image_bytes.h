// Model-space images ((C, H, W) floats in [-1, 1]) to pixels and PNGs, torch-free: every path
// that writes an image (the worker, qdm-sampler, `qdm sample`) rounds through here.
#pragma once

#include <cstdint>
#include <vector>

#include "format/png.h"

namespace qdm {

// (C, H, W) floats -> (H, W, C) bytes: round((clamp(x, -1, 1) + 1) * 127.5), ties to even.
void image_to_bytes(const float* image, int channels, int height, int width, uint8_t* out);
std::vector<uint8_t> image_png(const float* image, int channels, int height, int width, const PngText& text = {});

}  // namespace qdm
