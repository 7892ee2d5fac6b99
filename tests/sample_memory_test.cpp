// A sample request's memory estimate (format/sample_memory.h) on the shipped models'
// descriptions: the parts grow as the engine's buffers do (images, the guided second pass, the
// square of the latent's pixels in attention), so one large image is refused where the pixel
// count alone would let it through.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "format/sample_memory.h"

namespace qdm {
namespace {

UNetConfig unet_of(const std::string& path) {
  std::ifstream f(std::string(QDM_SOURCE_DIR) + "/models/" + path);
  return UNetConfig::from_json(nlohmann::json::parse(f));
}

AutoencoderKLConfig t2i_vae() {
  return AutoencoderKLConfig::from_file(std::string(QDM_SOURCE_DIR) + "/models/fmnist-t2i/vae/config.json");
}

int64_t part(const MemoryEstimate& m, const std::string& name) {
  for (const auto& [what, bytes] : m.parts)
    if (what == name) return bytes;
  return -1;
}

TEST(SampleMemory, ValuesGrowWithImagesAndGuidanceDoublesTheUNetsShare) {
  const UNetConfig c = unet_of("fmnist-ddpm/config.json");
  const MemoryEstimate one = estimate_sample_memory(c, nullptr, {1, 0, 0, false});
  const MemoryEstimate many = estimate_sample_memory(c, nullptr, {8, 0, 0, false});
  const MemoryEstimate guided = estimate_sample_memory(c, nullptr, {8, 0, 0, true});
  EXPECT_GT(part(one, "UNet values"), 32 * 32 * 4);
  EXPECT_EQ(part(many, "UNet values"), 8 * part(one, "UNet values"));
  EXPECT_EQ(part(guided, "UNet values"), 2 * part(many, "UNet values"));
  EXPECT_EQ(part(many, "images"), 8 * 32 * 32 * 5);  // one channel, fp32 and its PNG
  EXPECT_EQ(part(one, "VAE decoder values"), -1);    // pixel space: no VAE
  EXPECT_GT(part(one, "UNet attention scores"), 0);
  EXPECT_EQ(many.total(), [&] {
    int64_t sum = 0;
    for (const auto& [_, b] : many.parts) sum += b;
    return sum;
  }());
}

TEST(SampleMemory, AttentionGrowsWithTheSquareOfTheImagesPixels) {
  const UNetConfig c = unet_of("fmnist-t2i/unet/config.json");
  const AutoencoderKLConfig vae = t2i_vae();
  const MemoryEstimate small = estimate_sample_memory(c, &vae, {1, 256, 256, true});
  const MemoryEstimate large = estimate_sample_memory(c, &vae, {1, 512, 512, true});
  // Twice the side: 4x the pixels, 16x each score matrix (the same heads in flight).
  EXPECT_EQ(part(large, "UNet attention scores"), 16 * part(small, "UNet attention scores"));
  EXPECT_EQ(part(large, "VAE decoder attention scores"), 16 * part(small, "VAE decoder attention scores"));
  EXPECT_EQ(part(large, "images"), 4 * part(small, "images"));
  // One 1024x1024 image is a quarter of the pixels 64 images of 512x512 are, yet needs more:
  // the self-attention over its 256x256 latent holds 2^32 scores per head.
  const MemoryEstimate huge = estimate_sample_memory(c, &vae, {1, 1024, 1024, false});
  EXPECT_GT(huge.total(), int64_t{16} << 30) << huge.summary();
  EXPECT_NE(huge.summary().find("UNet attention scores"), std::string::npos) << huge.summary();
  // The shipped size (0: the model's) is small.
  EXPECT_LT(estimate_sample_memory(c, &vae, {16, 0, 0, true}).total(), int64_t{256} << 20);
}

TEST(SampleMemory, ScoreMatricesHeldAtOnceAreBoundedByTheThreads) {
  const UNetConfig c = unet_of("fmnist-t2i/unet/config.json");
  const AutoencoderKLConfig vae = t2i_vae();
  // 4 heads a layer: one matrix per image and head, up to the threads (16: four images fill them).
  const int64_t unet_one = part(estimate_sample_memory(c, &vae, {1, 128, 128, false}), "UNet attention scores");
  EXPECT_EQ(part(estimate_sample_memory(c, &vae, {4, 128, 128, false}), "UNet attention scores"), 4 * unet_one);
  EXPECT_EQ(part(estimate_sample_memory(c, &vae, {32, 128, 128, false}), "UNet attention scores"), 4 * unet_one);
  EXPECT_EQ(part(estimate_sample_memory(c, &vae, {2, 128, 128, true}), "UNet attention scores"), 4 * unet_one);
  // The VAE's one head: one matrix per image, up to the threads.
  const int64_t one = part(estimate_sample_memory(c, &vae, {1, 128, 128, false}), "VAE decoder attention scores");
  EXPECT_EQ(part(estimate_sample_memory(c, &vae, {4, 128, 128, false}), "VAE decoder attention scores"), 4 * one);
  EXPECT_EQ(part(estimate_sample_memory(c, &vae, {64, 128, 128, false}), "VAE decoder attention scores"),
            kSampleEstimateThreads * one);
}

TEST(SampleMemory, ASizeTheModelCannotSampleIsRefused) {
  const UNetConfig c = unet_of("fmnist-t2i/unet/config.json");
  const AutoencoderKLConfig vae = t2i_vae();
  try {
    estimate_sample_memory(c, &vae, {1, 36, 32, false});
    FAIL() << "36 pixels high was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiples of 8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(estimate_sample_memory(c, &vae, {0, 0, 0, false}), std::invalid_argument);
}

}  // namespace
}  // namespace qdm
