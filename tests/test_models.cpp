#include "tests/test_models.h"

#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <random>

#include "engine/quant/recipe.h"

namespace qdm::testing {

QuantSpec every_layer_quantized_spec(int steps) {
  QuantSpec spec;
  spec.keep_fp.clear();
  spec.keep_fp_input.clear();
  spec.fp32_layers.clear();
  spec.steps = steps;
  return spec;
}

DiffusionModel tiny_conditional_model(const std::string& dir, UNetConfig c) {
  c.num_class_embeds = 4;
  c.null_class = 3;
  UNet2DModel unet(c);
  {
    at::NoGradGuard g;
    unet->class_table().normal_();
  }
  save_model_folder(dir + "/model", *unet, SchedulerConfig{});
  return load_model_folder(dir + "/model");
}

ArtifactInfo artifact_info(const DiffusionModel& model, const QuantizeResult& r, const RecipeOptions& o) {
  ArtifactInfo info;
  info.config = model.config;
  info.scheduler = model.scheduler;
  info.sampler = r.sampler;
  info.timesteps = r.timesteps;
  info.recipe = o.to_json();
  info.source_sha256 = model.weights_sha256;
  return info;
}

UNetConfig tiny_config() {
  UNetConfig c;
  c.sample_size = 8;
  c.in_channels = c.out_channels = 1;
  c.block_out_channels = {8, 16};
  c.down_block_types = {"DownBlock2D", "AttnDownBlock2D"};
  c.up_block_types = {"AttnUpBlock2D", "UpBlock2D"};
  c.layers_per_block = 1;
  c.attention_head_dim = 8;
  c.norm_num_groups = 4;
  c.validate();
  return c;
}

nlohmann::json ddpm_cifar10_config_json() {
  return nlohmann::json::parse(R"({
    "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu",
    "attention_head_dim": null, "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": false,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
    "out_channels": 3, "resnet_num_groups": 32, "sample_size": 32, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]})");
}

nlohmann::json ddpm_128_config_json() {
  return nlohmann::json::parse(R"({
    "_class_name": "UNet2DModel", "_diffusers_version": "0.21.0", "sample_size": 128,
    "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"]})");
}

std::string temp_dir(const std::string& name) {
  std::random_device rd;
  const auto dir = std::filesystem::temp_directory_path() / ("qdm_test_" + name + "_" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace qdm::testing
