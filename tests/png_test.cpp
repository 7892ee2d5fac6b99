#include "format/png.h"

#include <gtest/gtest.h>

namespace qdm {
namespace {

TEST(Png, RoundTripKeepsPixelsAndText) {
  std::vector<uint8_t> pixels(5 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 17);
  const auto bytes = encode_png(pixels.data(), 5, 3, 1, {{"qdm:seed", "42"}, {"qdm:steps", "100"}});
  const DecodedPng d = decode_png(bytes);
  EXPECT_EQ(d.width, 5);
  EXPECT_EQ(d.height, 3);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.pixels, pixels);
  ASSERT_EQ(d.text.size(), 2u);
  EXPECT_EQ(d.text[0].first, "qdm:seed");
  EXPECT_EQ(d.text[0].second, "42");
}

TEST(Png, RejectsGarbage) {
  EXPECT_THROW(decode_png({1, 2, 3}), std::runtime_error);
  const uint8_t px[4] = {0, 1, 2, 3};
  auto bytes = encode_png(px, 2, 2, 1);
  bytes.resize(bytes.size() / 2);
  EXPECT_THROW(decode_png(bytes), std::runtime_error);
  EXPECT_THROW(encode_png(px, 2, 2, 2), std::invalid_argument);
}

}  // namespace
}  // namespace qdm
