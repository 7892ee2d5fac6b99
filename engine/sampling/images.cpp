#include "engine/sampling/images.h"

#include "engine/sampling/image_bytes.h"

#include <cmath>
#include <fstream>
#include <stdexcept>

namespace qdm {

at::Tensor to_uint8_hwc(const at::Tensor& images) {
  return ((images.clamp(-1, 1) + 1) * 127.5).round().to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor make_grid(const at::Tensor& images, int columns, int padding) {
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  columns = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(columns, n)));
  const int64_t rows = (n + columns - 1) / columns;
  at::Tensor grid = at::full({1, c, rows * (h + padding) + padding, columns * (w + padding) + padding}, -1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = (i / columns) * (h + padding) + padding, x = (i % columns) * (w + padding) + padding;
    grid[0].narrow(1, y, h).narrow(2, x, w).copy_(images[i]);
  }
  return grid;
}

std::vector<uint8_t> encode_image_png(const at::Tensor& images, int64_t index, const PngText& text) {
  const at::Tensor img = images[index].to(at::kFloat).contiguous().cpu();
  return image_png(img.data_ptr<float>(), static_cast<int>(img.size(0)), static_cast<int>(img.size(1)),
                   static_cast<int>(img.size(2)), text);
}

void write_image_png(const std::string& path, const at::Tensor& images, int64_t index, const PngText& text) {
  const at::Tensor img = images[index].to(at::kFloat).contiguous().cpu();
  const int c = static_cast<int>(img.size(0)), h = static_cast<int>(img.size(1)), w = static_cast<int>(img.size(2));
  std::vector<uint8_t> pixels(static_cast<size_t>(c) * h * w);
  image_to_bytes(img.data_ptr<float>(), c, h, w, pixels.data());
  write_png(path, pixels.data(), w, h, c, text);
}

}  // namespace qdm
