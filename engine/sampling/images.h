// Model-space images (N, C, H, W) in [-1, 1] to bytes, and sample grids.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "format/png.h"

namespace qdm {

// (N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8, rounding to nearest.
at::Tensor to_uint8_hwc(const at::Tensor& images);
// (N, C, H, W) float -> one grid image (1, C, rows*(H+pad)+pad, cols*(W+pad)+pad), pad value -1.
at::Tensor make_grid(const at::Tensor& images, int columns, int padding = 2);
// One PNG of image i of a (N, C, H, W) float batch.
std::vector<uint8_t> encode_image_png(const at::Tensor& images, int64_t index, const PngText& text = {});
void write_image_png(const std::string& path, const at::Tensor& images, int64_t index, const PngText& text = {});

}  // namespace qdm
