// The device-generic integer layer (TensorIntLayer: ATen composition, the CUDA worker's path)
// against the CPU's integer layer, the nibble packing against qgemm.h's, and device names.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "engine/quant/recipe.h"
#include "engine/runtime/device.h"
#include "engine/runtime/int_layers.h"
#include "engine/runtime/loaded_model.h"
#include "engine/runtime/tensor_int_layer.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

TEST(TensorIntLayer, NibblePackingIsTheKRowsLayout) {
  torch::manual_seed(1);
  const int n = 5, k = 128;
  const at::Tensor codes = torch::randint(0, 16, {n, k}, at::kByte);
  std::vector<float> scale(n, 1.0f), zero(n, 3.0f);
  const PackedWeights w = pack_weights(codes.data_ptr<uint8_t>(), n, k, 4, scale.data(), zero.data(), WeightLayout::kRows);
  const at::Tensor packed = pack_nibbles(codes);
  ASSERT_EQ(packed.numel(), static_cast<int64_t>(w.data.size()));
  EXPECT_TRUE(std::equal(w.data.begin(), w.data.end(), packed.data_ptr<uint8_t>()));
}

// The same integer sums and epilogue as IntLayer: outputs agree to float rounding over 1x1 and
// 3x3 kernels, strides, paddings, linear layers, int4 and int8 weights and per-step tables.
TEST(TensorIntLayer, MatchesTheCpuIntegerLayer) {
  torch::manual_seed(2);
  for (int pad : {1, 0}) {
    UNetConfig cfg = testing::tiny_config();
    cfg.downsample_padding = pad;
    QuantizedUNet q(UNet2DModel(cfg), testing::every_layer_quantized_spec(2));
    for (const char* name : {"conv_in", "down_blocks.0.downsamplers.0.conv", "up_blocks.1.resnets.0.conv_shortcut",
                             "mid_block.resnets.0.conv2", "mid_block.attentions.0.to_q", "down_blocks.1.resnets.0.time_emb_proj"}) {
      auto layer = q.layer(name);
      ASSERT_NE(layer, nullptr) << name;
      for (int bits : {4, 8}) {
        layer->set_weight_quant(minmax_weight_params(layer->fp_weight().detach(), bits));
        layer->act.set_table({0.03f, 0.05f}, {117.0f, 30.0f});
        layer->act.mode = ActQuantizer::Mode::kQuantize;
        IntLayer cpu(*layer, QGemmIsa::kScalar);
        TensorIntLayer tensor(*layer, c10::kCPU);
        torch::NoGradGuard g;
        const at::Tensor x = layer->conv ? torch::randn({3, layer->conv->in_channels, 8, 7}) * 2
                                         : torch::randn({2, 5, layer->linear->in_features}) * 2;
        for (int step : {0, 1}) {
          q.step->step = step;
          const at::Tensor a = cpu.forward(x), b = tensor.forward(x);
          ASSERT_EQ(a.sizes(), b.sizes()) << name;
          EXPECT_LT((a - b).abs().max().item<double>(), 1e-5 * (1 + a.abs().max().item<double>()))
              << name << " W" << bits << " pad " << pad << " step " << step;
        }
      }
    }
  }
}

class TinyModel : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    dir_ = testing::temp_dir("tensor_int");
    UNet2DModel unet(testing::tiny_config());
    save_model_folder(dir_ + "/model", *unet, SchedulerConfig{});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // An rtn W4A8 artifact of the tiny model, calibrated for 5 DDIM steps.
  std::string artifact() {
    const DiffusionModel model = load_model_folder(dir_ + "/model");
    RecipeOptions o;
    o.recipe = "rtn";
    o.sampler.steps = 5;
    o.calib_samples = 4;
    QuantizeResult r = quantize_model(model, o);
    save_artifact(dir_ + "/a.safetensors", *r.model, testing::artifact_info(model, r, o));
    return dir_ + "/a.safetensors";
  }
  std::string dir_;
};

// A whole artifact on TensorIntLayers (attention in the simulation) samples what the CPU's
// integer kernels sample, within the occasional activation code a float rounding flips.
TEST_F(TinyModel, WholeArtifactMatchesTheCpuIntegerKernels) {
  const std::string path = artifact();
  LoadedArtifact cpu = load_artifact(path), tensor = load_artifact(path);
  use_integer_kernels(*cpu.model, QGemmIsa::kScalar);
  EXPECT_GT(use_tensor_integer_kernels(*tensor.model, c10::kCPU), 0u);
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({3, 1, 8, 8});
  for (int step : {0, 4}) {
    const int t = cpu.info.timesteps[static_cast<size_t>(step)];
    const at::Tensor a = cpu.model->forward(x, t, step), b = tensor.model->forward(x, t, step);
    const double scale = a.abs().max().item<double>();
    EXPECT_LT((a - b).abs().max().item<double>(), 0.05 * (1 + scale));
    EXPECT_LT((a - b).abs().mean().item<double>(), 2e-3 * (1 + scale));
  }
}

TEST_F(TinyModel, CudaIsRefusedWithWhatToDoWhereThisBuildHasNone) {
  if (at::hasCUDA()) GTEST_SKIP() << "this LibTorch has CUDA";
  EXPECT_EQ(parse_device("cpu"), c10::Device(c10::kCPU));
  EXPECT_EQ(parse_device("auto"), c10::Device(c10::kCPU));
  for (const char* name : {"cuda", "cuda:1"}) {
    try {
      parse_device(name);
      ADD_FAILURE() << name << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA support"), std::string::npos) << e.what();
    }
  }
  for (const char* name : {"gpu", "cuda:x", ""}) EXPECT_THROW(parse_device(name), std::invalid_argument) << name;
  // An integer artifact on a CUDA device needs the CUDA GEMM in the build: refused before loading.
  if (!cuda_int_kernels_built())
    EXPECT_THROW(LoadedModel::from_artifact(artifact(), KernelMode::kInt, c10::Device(c10::kCUDA, 0)), std::invalid_argument);
}

// Noise is drawn on the CPU whatever the device, and images come back on the CPU.
TEST_F(TinyModel, SamplesComeBackOnTheCpuAndFollowTheSeed) {
  LoadedModel model = LoadedModel::from_folder(dir_ + "/model", parse_device("cpu"));
  EXPECT_EQ(model.device(), c10::Device(c10::kCPU));
  SampleRequest r;
  r.num_images = 2;
  r.seed = 9;
  r.sampler.steps = 3;
  const at::Tensor a = model.sample(r);
  EXPECT_TRUE(a.device().is_cpu());
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{2, 1, 8, 8}));
  EXPECT_TRUE(torch::equal(model.sample(r), a));
  r.seed = 10;
  EXPECT_FALSE(torch::equal(model.sample(r), a));
}

}  // namespace
}  // namespace qdm
