// The torch-free tensor list (format/unet_tensors) against the modules LibTorch builds, over
// every config variant; and the weights check the scheduler runs on uploads.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/model/model_folder.h"
#include "format/safetensors.h"
#include "format/unet_tensors.h"
#include "engine/model_io/tensor_io.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

std::vector<UNetConfig> variants() {
  std::vector<UNetConfig> out = {testing::tiny_config(), UNetConfig::from_json(testing::ddpm_cifar10_config_json()),
                                 UNetConfig::from_json(testing::ddpm_128_config_json())};
  UNetConfig c = testing::tiny_config();
  c.time_embedding_type = "fourier";
  out.push_back(c);
  c = testing::tiny_config();
  c.time_embedding_type = "learned";
  c.num_train_timesteps = 1000;
  out.push_back(c);
  c = testing::tiny_config();
  c.resnet_time_scale_shift = "scale_shift";  // mid-block attention without a norm
  out.push_back(c);
  c.attn_norm_num_groups = 2;
  out.push_back(c);
  c = testing::tiny_config();
  c.num_class_embeds = 11;
  out.push_back(c);
  c = testing::tiny_config();
  c.class_embed_type = "timestep";
  out.push_back(c);
  c = testing::tiny_config();
  c.has_mid_block = false;
  c.layers_per_block = 3;
  c.time_embedding_dim = 24;
  out.push_back(c);
  return out;
}

TEST(UNetTensors, ListEqualsTheModulesLibTorchBuilds) {
  for (const UNetConfig& c : variants()) {
    UNet2DModel m(c);
    std::map<std::string, std::vector<int64_t>> built;
    for (const auto& p : m->named_parameters()) built[p.key()] = p.value().sizes().vec();
    for (const auto& b : m->named_buffers()) built[b.key()] = b.value().sizes().vec();
    std::map<std::string, std::vector<int64_t>> listed;
    for (const auto& t : expected_unet_tensors(c)) EXPECT_TRUE(listed.emplace(t.name, t.shape).second) << t.name;
    EXPECT_EQ(listed, built) << c.to_json().dump();
    EXPECT_EQ(parameter_count(expected_unet_tensors(c)), m->parameter_count() + (c.time_embedding_type == "fourier" ? c.block_out_channels[0] : 0));
  }
}

TEST(UNetTensors, WeightsCheckNamesTheTensorAtFault) {
  const UNetConfig c = testing::tiny_config();
  UNet2DModel m(c);
  const std::string dir = testing::temp_dir("tensors");
  save_model_folder(dir, *m, SchedulerConfig{});
  const std::string path = dir + "/diffusion_pytorch_model.safetensors";
  EXPECT_NO_THROW(check_unet_weights(c, SafeTensors::read_file(path)));
  auto error = [&](const TensorMap& w) {
    save_tensors(path, w);
    try {
      check_unet_weights(c, SafeTensors::read_file(path));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const TensorMap good = load_tensors(path);
  TensorMap w = good;
  w["conv_in.weight"] = at::zeros({1});
  EXPECT_NE(error(w).find("'conv_in.weight' has shape [1] but config.json implies"), std::string::npos);
  w = good;
  w.erase("conv_out.bias");
  EXPECT_NE(error(w).find("missing tensor 'conv_out.bias'"), std::string::npos);
  w = good;
  w["extra.weight"] = at::zeros({2});
  EXPECT_NE(error(w).find("unexpected tensor 'extra.weight'"), std::string::npos);
  w = good;
  w["conv_in.bias"] = w["conv_in.bias"].to(at::kInt);
  EXPECT_NE(error(w).find("dtype I32"), std::string::npos);
  w = good;
  w["conv_in.bias"] = w["conv_in.bias"].to(at::kHalf);  // F16 and BF16 are accepted
  EXPECT_EQ(error(w), "");
  std::filesystem::remove_all(dir);
}

TEST(UNetTensors, LimitsRefuseAbsurdConfigsByField) {
  const ModelLimits limits;
  auto error = [&](const char* patch) {
    nlohmann::json j = testing::tiny_config().to_json();
    j.update(nlohmann::json::parse(patch));
    try {
      check_model_limits(UNetConfig::from_json(j), limits);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("{}"), "");
  EXPECT_NE(error(R"({"block_out_channels": [8, 100000], "norm_num_groups": 4})").find("'block_out_channels'"), std::string::npos);
  EXPECT_NE(error(R"({"sample_size": 1073741824})").find("'sample_size'"), std::string::npos);
  EXPECT_NE(error(R"({"layers_per_block": 10000000})").find("'layers_per_block'"), std::string::npos);
  EXPECT_NE(error(R"({"in_channels": 2147483647})").find("'in_channels'"), std::string::npos);
  EXPECT_NE(error(R"({"block_out_channels": [4096, 4096, 4096, 4096], "layers_per_block": 16, "norm_num_groups": 4,
                      "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"],
                      "up_block_types": ["UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"]})")
                .find("parameters, over this service's limit"),
            std::string::npos);
}

}  // namespace
}  // namespace qdm
