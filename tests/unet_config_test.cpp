#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "format/unet_config.h"
#include "format/noise_schedule.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

std::string config_error(const nlohmann::json& j) {
  try {
    UNetConfig::from_json(j);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(UNetConfig, MissingFieldsTakeDiffusersDefaults) {
  const UNetConfig c = UNetConfig::from_json(nlohmann::json::object());
  EXPECT_EQ(c.block_out_channels, (std::vector<int>{224, 448, 672, 896}));
  EXPECT_EQ(c.layers_per_block, 2);
  EXPECT_TRUE(c.flip_sin_to_cos);
  EXPECT_EQ(c.freq_shift, 0);
  EXPECT_EQ(c.attention_head_dim, 8);
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.downsample_padding, 1);
  EXPECT_EQ(c.time_embed_dim(), 4 * 224);
}

TEST(UNetConfig, ReadsDdpmCifar10) {
  const UNetConfig c = UNetConfig::from_json(testing::ddpm_cifar10_config_json());
  EXPECT_FALSE(c.attention_head_dim.has_value());
  EXPECT_EQ(c.head_dim_for(256), 256);
  EXPECT_FALSE(c.flip_sin_to_cos);
  EXPECT_EQ(c.freq_shift, 1);
  EXPECT_EQ(c.downsample_padding, 0);
  EXPECT_EQ(c.norm_eps, 1e-6);
}

TEST(UNetConfig, ReadsDdpm128AndSquareSampleSizeLists) {
  auto j = testing::ddpm_128_config_json();
  EXPECT_EQ(UNetConfig::from_json(j).block_out_channels.size(), 6u);
  j["sample_size"] = {128, 128};
  EXPECT_EQ(UNetConfig::from_json(j).sample_size, 128);
  j["sample_size"] = {128, 64};
  EXPECT_NE(config_error(j).find("'sample_size'"), std::string::npos);
}

TEST(UNetConfig, RefusesUnsupportedFieldsByName) {
  auto j = testing::ddpm_cifar10_config_json();
  auto with = [&](const char* key, nlohmann::json v) {
    auto k = j;
    k[key] = v;
    return config_error(k);
  };
  EXPECT_NE(with("down_block_types", {"DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"})
                .find("'down_block_types' contains 'CrossAttnDownBlock2D'"),
            std::string::npos);
  EXPECT_NE(with("num_class_embeds", 0).find("'num_class_embeds' must be positive"), std::string::npos);
  EXPECT_NE(with("class_embed_type", "projection").find("'class_embed_type'"), std::string::npos);
  EXPECT_NE(with("act_fn", "gelu").find("'act_fn'"), std::string::npos);
  EXPECT_NE(with("norm_num_groups", 7).find("'norm_num_groups'"), std::string::npos);
  EXPECT_NE(with("layers_per_block", "two").find("'layers_per_block' has the wrong type"), std::string::npos);
  EXPECT_NE(with("time_embedding_type", "learned").find("'num_train_timesteps'"), std::string::npos);
  EXPECT_NE(with("_class_name", "UNet2DConditionTransformer").find("'_class_name'"), std::string::npos);
  // A UNet2DModel's attention blocks are not a text model's: UNet2DConditionModel takes CrossAttn blocks.
  EXPECT_NE(with("_class_name", "UNet2DConditionModel").find("'down_block_types' contains 'AttnDownBlock2D'"), std::string::npos);
  EXPECT_NE(with("up_block_types", {"UpBlock2D"}).find("'up_block_types'"), std::string::npos);
}

TEST(UNetConfig, JsonRoundTrip) {
  const UNetConfig c = UNetConfig::from_json(testing::ddpm_cifar10_config_json());
  const UNetConfig d = UNetConfig::from_json(c.to_json());
  EXPECT_EQ(d.to_json(), c.to_json());
}

TEST(SchedulerConfig, BetaSchedules) {
  SchedulerConfig c;
  NoiseSchedule lin(c);
  EXPECT_NEAR(lin.betas.front(), 1e-4, 1e-12);
  EXPECT_NEAR(lin.betas.back(), 0.02, 1e-12);
  EXPECT_NEAR(lin.alphas_cumprod.back(), 4.0358e-05, 1e-8);  // known value for T = 1000 linear
  c.beta_schedule = "scaled_linear";
  c.beta_start = 0.00085;
  c.beta_end = 0.012;
  NoiseSchedule sl(c);
  EXPECT_NEAR(sl.betas.front(), 0.00085, 1e-12);
  EXPECT_NEAR(sl.betas[500], std::pow(std::sqrt(0.00085) + 500.0 / 999 * (std::sqrt(0.012) - std::sqrt(0.00085)), 2), 1e-12);
  c.beta_schedule = "squaredcos_cap_v2";
  NoiseSchedule cos(c);
  EXPECT_NEAR(cos.alphas_cumprod[0], 1 - cos.betas[0], 1e-15);
  EXPECT_LE(cos.betas.back(), 0.999);
  EXPECT_LT(cos.alphas_cumprod.back(), 1e-4);
}

TEST(SchedulerConfig, RefusesUnsupported) {
  auto err = [](nlohmann::json j) {
    try {
      SchedulerConfig::from_json(j);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err({{"prediction_type", "v_prediction"}}).find("'prediction_type'"), std::string::npos);
  EXPECT_NE(err({{"beta_schedule", "sigmoid"}}).find("'beta_schedule'"), std::string::npos);
  EXPECT_NE(err({{"trained_betas", {0.1, 0.2}}}).find("'trained_betas'"), std::string::npos);
  EXPECT_EQ(err({{"_class_name", "DDIMScheduler"}, {"clip_sample", false}}), "");
}

}  // namespace
}  // namespace qdm
