// The quantize job's memory estimate (format/job_memory.h) on the shipped model's description:
// the parts each recipe's stages hold, exact where the engine's sizes are exact, and the Submit
// the hardening review found (1,024 trajectories of 1,000 steps: about 8 GB) over any small limit.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "format/job_memory.h"
#include "format/recipes.h"

namespace qdm {
namespace {

UNetConfig shipped() {
  std::ifstream f(std::string(QDM_SOURCE_DIR) + "/models/fmnist-ddpm/config.json");
  return UNetConfig::from_json(nlohmann::json::parse(f));
}

int64_t part(const MemoryEstimate& m, const std::string& name) {
  for (const auto& [what, bytes] : m.parts)
    if (what == name) return bytes;
  return -1;
}

TEST(JobMemory, TheCalibrationSetIsEveryTrajectorysXtAndEps) {
  RecipeOptions o;  // tfmq, 32 trajectories of 100 steps
  const MemoryEstimate m = estimate_job_memory(o, shipped());
  EXPECT_EQ(part(m, "calibration set"), 32 * 100 * 2 * 1024 * 4);
  EXPECT_GT(part(m, "reconstruction pairs"), 0);
  EXPECT_EQ(part(m, "quantizer bank"), -1);
  EXPECT_EQ(part(m, "fine-tuning trajectories"), -1);
  // Against the peak RSS measured here (/usr/bin/time -v qdm quantize --model models/fmnist-ddpm,
  // report off): tfmq 1,042 MiB, rtn 663 MiB; the estimate within 10% of each.
  EXPECT_NEAR(static_cast<double>(m.total()) / (1 << 20), 1042, 104) << m.summary();
  o.recipe = "rtn";
  EXPECT_NEAR(static_cast<double>(estimate_job_memory(o, shipped()).total()) / (1 << 20), 663, 66);
  o.recipe = "tfmq";

  o.calib_samples = 1024;
  o.sampler.steps = 1000;
  const MemoryEstimate big = estimate_job_memory(o, shipped());
  EXPECT_EQ(part(big, "calibration set"), int64_t{1024} * 1000 * 2 * 1024 * 4);
  EXPECT_GT(big.total(), int64_t{8} << 30) << big.summary();
  EXPECT_EQ(big.summary().rfind(format_bytes(big.total()) + " (", 0), 0u) << big.summary();
  EXPECT_NE(big.summary().find("calibration set 7.8 GiB"), std::string::npos) << big.summary();
}

// A pipeline quantizing its VAE decoder (--components) counts the decoder's calibration: the fp32
// latents, a decoding batch's values at full image size, the sampled layer inputs; more for an
// SD-sized decoder than for the shipped one, nothing when the decoder is not quantized.
TEST(JobMemory, APipelinesVaeDecoderCalibrationIsCounted) {
  const std::string dir = std::string(QDM_SOURCE_DIR) + "/models/fmnist-t2i";
  std::ifstream uf(dir + "/unet/config.json");
  const UNetConfig unet = UNetConfig::from_json(nlohmann::json::parse(uf));
  const AutoencoderKLConfig vae = AutoencoderKLConfig::from_file(dir + "/vae/config.json");
  RecipeOptions o;
  o.recipe = "rtn";
  EXPECT_EQ(part(estimate_job_memory(o, unet, &vae), "VAE decoder calibration"), -1);
  o.components = {"unet", "vae_decoder"};
  const int64_t latents = int64_t{32} * unet.in_channels * unet.sample_size * unet.sample_size * 4;
  const int64_t small = part(estimate_job_memory(o, unet, &vae), "VAE decoder calibration");
  EXPECT_GT(small, latents);
  EXPECT_EQ(part(estimate_job_memory(o, unet), "VAE decoder calibration"), -1);  // no VAE config given
  AutoencoderKLConfig sd = vae;  // SD 1.x's decoder widths at a 64x64 latent
  sd.block_out_channels = {128, 256, 512, 512};
  sd.latent_channels = 4;
  sd.out_channels = 3;
  sd.norm_num_groups = 32;
  sd.layers_per_block = 2;
  UNetConfig sd_unet = unet;
  sd_unet.sample_size = 64;
  sd_unet.in_channels = 4;
  const int64_t large = part(estimate_job_memory(o, sd_unet, &sd), "VAE decoder calibration");
  EXPECT_GT(large, int64_t{1} << 30) << "four 512x512 decodes hold over a GiB of values";
  EXPECT_GT(large, 100 * small);
}

TEST(JobMemory, EachRecipesOwnStagesAddTheirParts) {
  for (const RecipeInfo& r : recipes()) {
    RecipeOptions o;
    o.recipe = r.name;
    const MemoryEstimate m = estimate_job_memory(o, shipped());
    EXPECT_EQ(part(m, "reconstruction pairs") > 0, r.reconstruction) << r.name;
    EXPECT_EQ(part(m, "quantizer bank") > 0, r.searches_schedule()) << r.name;
    EXPECT_EQ(part(m, "vq statistics") > 0, r.section == RecipeSection::kVq) << r.name;
    EXPECT_EQ(part(m, "fine-tuning batch") > 0, r.finetune_iters > 0) << r.name;  // vq fine-tunes by default
    int64_t sum = 0;
    for (const auto& [_, bytes] : m.parts) sum += bytes;
    EXPECT_EQ(m.total(), sum);
    o.calib_samples *= 2;  // more trajectories never cost less
    EXPECT_GT(estimate_job_memory(o, shipped()).total(), m.total()) << r.name;
  }
  EXPECT_EQ(parse_bytes("8Gi"), int64_t{8} << 30);
  EXPECT_EQ(parse_bytes("512Mi"), int64_t{512} << 20);
  EXPECT_EQ(parse_bytes("1.5GiB"), int64_t{3} << 29);
  EXPECT_EQ(parse_bytes("2G"), 2'000'000'000);
  EXPECT_EQ(parse_bytes("1073741824"), int64_t{1} << 30);
  for (const char* bad : {"", "eight", "8 Gi", "8Qi", "-1", "1e30"}) EXPECT_THROW(parse_bytes(bad), std::invalid_argument) << bad;
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
}

}  // namespace
}  // namespace qdm
