#include "format/png.h"

#ifdef QDM_HAVE_PNG
#include <png.h>
#endif

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace qdm {

#ifdef QDM_HAVE_PNG
namespace {

void on_error(png_structp png, png_const_charp msg) {
  throw std::runtime_error(std::string("png: ") + msg);
  (void)png;
}
void on_warning(png_structp, png_const_charp) {}

void append(png_structp png, png_bytep data, png_size_t len) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + len);
}

struct ReadCursor {
  const std::vector<uint8_t>* bytes;
  size_t pos;
};

void consume(png_structp png, png_bytep data, png_size_t len) {
  auto* c = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (c->pos + len > c->bytes->size()) png_error(png, "truncated data");
  std::memcpy(data, c->bytes->data() + c->pos, len);
  c->pos += len;
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels, const PngText& text) {
  int color;
  switch (channels) {
    case 1: color = PNG_COLOR_TYPE_GRAY; break;
    case 3: color = PNG_COLOR_TYPE_RGB; break;
    case 4: color = PNG_COLOR_TYPE_RGBA; break;
    default: throw std::invalid_argument("png: channels must be 1, 3 or 4");
  }
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, on_error, on_warning);
  png_infop info = png_create_info_struct(png);
  try {
    png_set_write_fn(png, &out, append, nullptr);
    png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, color,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    std::vector<png_text> chunks(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
      chunks[i].key = const_cast<char*>(text[i].first.c_str());
      chunks[i].text = const_cast<char*>(text[i].second.c_str());
      chunks[i].text_length = text[i].second.size();
    }
    if (!chunks.empty()) png_set_text(png, info, chunks.data(), static_cast<int>(chunks.size()));
    png_write_info(png, info);
    for (int y = 0; y < height; ++y)
      png_write_row(png, const_cast<png_bytep>(pixels + static_cast<size_t>(y) * width * channels));
    png_write_end(png, nullptr);
  } catch (...) {
    png_destroy_write_struct(&png, &info);
    throw;
  }
  png_destroy_write_struct(&png, &info);
  return out;
}

DecodedPng decode_png(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 8 || png_sig_cmp(bytes.data(), 0, 8)) throw std::runtime_error("png: not a PNG file");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, on_error, on_warning);
  png_infop info = png_create_info_struct(png);
  DecodedPng d;
  ReadCursor cursor{&bytes, 0};
  try {
    png_set_read_fn(png, &cursor, consume);
    png_read_info(png, info);
    d.width = static_cast<int>(png_get_image_width(png, info));
    d.height = static_cast<int>(png_get_image_height(png, info));
    d.channels = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8) throw std::runtime_error("png: only 8-bit images are read");
    d.pixels.resize(static_cast<size_t>(d.width) * d.height * d.channels);
    for (int y = 0; y < d.height; ++y) png_read_row(png, d.pixels.data() + static_cast<size_t>(y) * d.width * d.channels, nullptr);
    png_textp chunks = nullptr;
    const int n = png_get_text(png, info, &chunks, nullptr);
    for (int i = 0; i < n; ++i) d.text.emplace_back(chunks[i].key, std::string(chunks[i].text, chunks[i].text_length));
  } catch (...) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return d;
}

#else  // an engine-only build without libpng (bench/gpu_check.sh on a bare machine)

namespace {
[[noreturn]] void no_png() {
  throw std::runtime_error("png: this build has no libpng (an engine-only build without libpng-dev); rebuild with "
                           "libpng to read or write PNG files");
}
}  // namespace

std::vector<uint8_t> encode_png(const uint8_t*, int, int, int, const PngText&) { no_png(); }
DecodedPng decode_png(const std::vector<uint8_t>&) { no_png(); }

#endif

void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels,
               const PngText& text) {
  const auto bytes = encode_png(pixels, width, height, channels, text);
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace qdm
