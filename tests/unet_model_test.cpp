#include <gtest/gtest.h>
#include <torch/utils.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "engine/model/model_folder.h"
#include "engine/model_io/tensor_io.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

namespace fs = std::filesystem;

std::string load_error(const std::string& dir) {
  try {
    load_model_folder(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

class TinyModelFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(3);
    dir_ = testing::temp_dir("unet");
    model_ = UNet2DModel(testing::tiny_config());
    save_model_folder(dir_, *model_, SchedulerConfig{});
    x_ = torch::randn({2, 1, 8, 8});
    t_ = torch::tensor({10.0f, 900.0f});
    torch::NoGradGuard g;
    ref_ = model_->forward(x_, t_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  TensorMap weights() { return load_tensors(dir_ + "/diffusion_pytorch_model.safetensors"); }
  void write_weights(const TensorMap& w) { save_tensors(dir_ + "/diffusion_pytorch_model.safetensors", w); }

  std::string dir_;
  UNet2DModel model_{nullptr};
  at::Tensor x_, t_, ref_;
};

TEST_F(TinyModelFolder, SaveLoadGivesIdenticalOutputs) {
  DiffusionModel m = load_model_folder(dir_);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(m.unet->forward(x_, t_), ref_));
  EXPECT_EQ(m.weights_dtype, "F32");
  EXPECT_EQ(m.weights_sha256.size(), 64u);
}

TEST_F(TinyModelFolder, AcceptsPre014AttentionNames) {
  TensorMap renamed;
  int old_names = 0;
  for (auto& [name, t] : weights()) {
    std::string n = name;
    for (auto [from, to] : {std::pair{".to_q.", ".query."}, std::pair{".to_k.", ".key."},
                            std::pair{".to_v.", ".value."}, std::pair{".to_out.0.", ".proj_attn."}}) {
      auto pos = n.find(from);
      if (pos != std::string::npos) {
        n = n.substr(0, pos) + to + n.substr(pos + std::strlen(from));
        ++old_names;
      }
    }
    renamed[n] = t;
  }
  ASSERT_EQ(old_names, 4 * 8);  // 4 attention blocks (down, mid, 2 up) x 4 projections x (weight, bias)
  write_weights(renamed);
  DiffusionModel m = load_model_folder(dir_);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(m.unet->forward(x_, t_), ref_));
}

TEST_F(TinyModelFolder, LoadsHalfAndBfloat16Weights) {
  for (auto dtype : {at::kHalf, at::kBFloat16}) {
    TensorMap w = weights();
    for (auto& [name, t] : w) t = t.to(dtype);
    write_weights(w);
    DiffusionModel m = load_model_folder(dir_);
    EXPECT_EQ(m.weights_dtype, dtype == at::kHalf ? "F16" : "BF16");
    torch::NoGradGuard g;
    const double err = (m.unet->forward(x_, t_) - ref_).abs().max().item<double>();
    EXPECT_LT(err, dtype == at::kHalf ? 0.01 : 0.1);
    EXPECT_GT(err, 0.0);
  }
}

TEST_F(TinyModelFolder, MissingTensorsAreNamed) {
  TensorMap w = weights();
  w.erase("mid_block.resnets.1.conv2.bias");
  write_weights(w);
  EXPECT_NE(load_error(dir_).find("missing tensor 'mid_block.resnets.1.conv2.bias'"), std::string::npos);
}

TEST_F(TinyModelFolder, ExtraAndMisshapenTensors) {
  TensorMap w = weights();
  w["down_blocks.9.resnets.0.conv1.weight"] = torch::zeros({1});
  write_weights(w);
  EXPECT_NE(load_error(dir_).find("unexpected tensor 'down_blocks.9.resnets.0.conv1.weight'"), std::string::npos);
  w.erase("down_blocks.9.resnets.0.conv1.weight");
  w["conv_in.weight"] = torch::zeros({8, 1, 5, 5});
  write_weights(w);
  const auto e = load_error(dir_);
  EXPECT_NE(e.find("tensor 'conv_in.weight' has shape [8, 1, 5, 5]"), std::string::npos) << e;
  w["conv_in.weight"] = torch::zeros({8, 1, 3, 3}, at::kLong);
  write_weights(w);
  EXPECT_NE(load_error(dir_).find("dtype I64"), std::string::npos);
}

TEST_F(TinyModelFolder, MissingFilesAndBadConfigAreReported) {
  EXPECT_NE(load_error(dir_ + "/nope").find("does not exist"), std::string::npos);
  std::ofstream(dir_ + "/config.json") << R"({"block_out_channels": [8, 16], "norm_num_groups": 3})";
  EXPECT_NE(load_error(dir_).find("'norm_num_groups'"), std::string::npos);
  fs::remove(dir_ + "/diffusion_pytorch_model.safetensors");
  EXPECT_NE(load_error(dir_).find("diffusion_pytorch_model.safetensors"), std::string::npos);
}

TEST_F(TinyModelFolder, ReadsSchedulerConfigFromEitherPlace) {
  std::ofstream(dir_ + "/scheduler/scheduler_config.json") << R"({"num_train_timesteps": 500, "clip_sample": false})";
  EXPECT_EQ(load_model_folder(dir_).scheduler.num_train_timesteps, 500);
  fs::remove_all(dir_ + "/scheduler");
  std::ofstream(dir_ + "/scheduler_config.json") << R"({"num_train_timesteps": 400})";
  EXPECT_EQ(load_model_folder(dir_).scheduler.num_train_timesteps, 400);
  std::ofstream(dir_ + "/scheduler_config.json") << R"({"prediction_type": "sample"})";
  EXPECT_NE(load_error(dir_).find("'prediction_type'"), std::string::npos);
}

TEST_F(TinyModelFolder, OutputsDoNotDependOnBatchComposition) {
  torch::NoGradGuard g;
  for (int i = 0; i < 2; ++i) {
    at::Tensor single = model_->forward(x_.narrow(0, i, 1), t_.narrow(0, i, 1));
    EXPECT_LT((single - ref_.narrow(0, i, 1)).abs().max().item<double>(), 1e-5);
  }
}

TEST_F(TinyModelFolder, CachedTemporalFeaturesReproduceForward) {
  torch::NoGradGuard g;
  auto features = model_->temporal_features(t_);
  EXPECT_EQ(features.size(), model_->temporal_feature_layers().size());
  EXPECT_EQ(features.size(), 2u + 2u + 4u);  // down 1+1, mid 2, up 2+2
  EXPECT_TRUE(torch::allclose(model_->forward_with_features(x_, t_, features), ref_, 1e-6, 1e-6));
}

TEST(UNet2DModel, DdpmCifar10HasThePublishedShape) {
  const UNetConfig c = UNetConfig::from_json(testing::ddpm_cifar10_config_json());
  UNet2DModel m(c);
  EXPECT_EQ(m->parameter_count(), 35746307);  // google/ddpm-cifar10-32
  EXPECT_EQ(m->temporal_feature_layers().size(), 22u);  // TFMQ-DM: 22 temporal features
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) names.insert(p.key());
  for (const char* n : {"down_blocks.1.attentions.0.to_q.weight", "down_blocks.0.downsamplers.0.conv.weight",
                        "up_blocks.2.attentions.2.to_out.0.bias", "up_blocks.0.upsamplers.0.conv.weight",
                        "mid_block.attentions.0.group_norm.weight", "time_embedding.linear_2.weight",
                        "up_blocks.3.resnets.2.conv_shortcut.weight", "conv_norm_out.bias"})
    EXPECT_TRUE(names.count(n)) << n;
  torch::NoGradGuard g;
  EXPECT_EQ(m->forward(torch::randn({1, 3, 32, 32}), torch::tensor({5.0f})).sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
}

TEST(UNet2DModel, Ddpm128Builds) {
  UNet2DModel m(UNetConfig::from_json(testing::ddpm_128_config_json()));
  EXPECT_TRUE(m->conv("up_blocks.5.resnets.0.conv1") && !m->conv("up_blocks.6.resnets.0.conv1"));  // 6 up blocks
  EXPECT_GT(m->parameter_count(), 100'000'000);
}

TEST(UNet2DModel, FourierLearnedAndScaleShiftVariantsRun) {
  torch::NoGradGuard g;
  for (int variant = 0; variant < 3; ++variant) {
    UNetConfig c = testing::tiny_config();
    if (variant == 0) c.time_embedding_type = "fourier";
    if (variant == 1) {
      c.time_embedding_type = "learned";
      c.num_train_timesteps = 1000;
    }
    if (variant == 2) c.resnet_time_scale_shift = "scale_shift";
    UNet2DModel m(c);
    at::Tensor y = m->forward(torch::randn({2, 1, 8, 8}), torch::tensor({3.0f, 700.0f}));
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << variant;
  }
}

TEST(TimestepEmbedding, MatchesTheFormula) {
  const at::Tensor e = sinusoidal_embedding(torch::tensor({10.0f}), 4, false, 1.0);
  // half = 2, freqs = exp(-ln(10000) * [0, 1] / (2 - 1)) = [1, 1e-4]
  const std::vector<double> expect = {std::sin(10.0), std::sin(1e-3), std::cos(10.0), std::cos(1e-3)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(e[0][i].item<double>(), expect[static_cast<size_t>(i)], 1e-6);
  const at::Tensor f = sinusoidal_embedding(torch::tensor({10.0f}), 4, true, 1.0);
  EXPECT_NEAR(f[0][0].item<double>(), std::cos(10.0), 1e-6);
  EXPECT_EQ(sinusoidal_embedding(torch::tensor({1.0f, 2.0f}), 5, true, 0).sizes(), (std::vector<int64_t>{2, 5}));
}


// diffusers' class conditioning, written out independently: emb = time_embedding(time_proj(t))
// + class_embedding(labels), where class_embedding is an nn.Embedding table (num_class_embeds)
// or, for class_embed_type "timestep", a TimestepEmbedding over time_proj(labels).
at::Tensor reference_embedding(UNet2DModelImpl& m, const at::Tensor& t, const at::Tensor& labels) {
  const UNetConfig& c = m.config();
  auto params = m.named_parameters();
  auto mlp = [&](const std::string& prefix, const at::Tensor& x) {
    const at::Tensor h = at::silu(at::linear(x, params[prefix + ".linear_1.weight"], params[prefix + ".linear_1.bias"]));
    return at::linear(h, params[prefix + ".linear_2.weight"], params[prefix + ".linear_2.bias"]);
  };
  const int half = c.block_out_channels[0] / 2;
  auto proj = [&](const at::Tensor& v) {  // flip_sin_to_cos true, freq_shift 0
    const at::Tensor freqs = at::exp(-std::log(10000.0) * at::arange(half, at::kFloat) / half);
    const at::Tensor args = v.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
    return at::cat({at::cos(args), at::sin(args)}, 1);
  };
  at::Tensor emb = mlp("time_embedding", proj(t));
  if (c.class_embed_type == "timestep") return emb + mlp("class_embedding", proj(labels));
  return emb + params["class_embedding.weight"].index_select(0, labels);
}

UNetConfig conditional_tiny(const std::string& type) {
  UNetConfig c = testing::tiny_config();
  if (type == "timestep") c.class_embed_type = "timestep";
  else c.num_class_embeds = 4;
  c.class_names = {"cat", "dog", "bird"};
  c.null_class = 3;
  return c;
}

TEST(ClassConditioning, EmbeddingMatchesDiffusersDefinition) {
  torch::NoGradGuard g;
  for (const std::string type : {"embedding", "timestep"}) {
    torch::manual_seed(5);
    UNet2DModel m(conditional_tiny(type));
    const at::Tensor t = torch::tensor({10.0f, 500.0f, 999.0f}), labels = torch::tensor({2, 0, 3}, at::kLong);
    const at::Tensor got = m->time_embed(t, labels), want = reference_embedding(*m, t, labels);
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << type;
    // The class changes the embedding, and each image's output depends on its own label only.
    const at::Tensor x = torch::randn({3, 1, 8, 8});
    const at::Tensor y = m->forward(x, t, labels);
    EXPECT_GT((y - m->forward(x, t, torch::tensor({1, 0, 3}, at::kLong))).narrow(0, 0, 1).abs().max().item<double>(), 1e-6);
    for (int i = 0; i < 3; ++i) {
      const at::Tensor one = m->forward(x.narrow(0, i, 1), t.narrow(0, i, 1), labels.narrow(0, i, 1));
      EXPECT_LT((one - y.narrow(0, i, 1)).abs().max().item<double>(), 1e-5) << type << " image " << i;
    }
  }
}

TEST(ClassConditioning, LabelsAreRequiredExactlyWhenConditional) {
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({1, 1, 8, 8}), t = torch::tensor({5.0f}), l = torch::tensor({1}, at::kLong);
  UNet2DModel plain(testing::tiny_config()), cond(conditional_tiny("embedding"));
  EXPECT_THROW(plain->forward(x, t, l), std::invalid_argument);
  EXPECT_THROW(cond->forward(x, t), std::invalid_argument);
  EXPECT_THROW(cond->forward(x, t, torch::tensor({4}, at::kLong)), std::invalid_argument);  // out of range
  UNetConfig identity = testing::tiny_config();
  identity.class_embed_type = "identity";
  UNet2DModel id(identity);
  const at::Tensor e = torch::randn({1, identity.time_embed_dim()});
  const at::Tensor plain_emb = id->linear("time_embedding.linear_2")->forward(
      at::silu(id->linear("time_embedding.linear_1")->forward(sinusoidal_embedding(t, identity.block_out_channels[0], true, 0))));
  EXPECT_TRUE(torch::allclose(id->time_embed(t, e), plain_emb + e));
  EXPECT_THROW(id->time_embed(t), std::invalid_argument);
  EXPECT_EQ(identity.label_count(), 0);
}

TEST(ClassConditioning, ConfigRoundTripsAndLoads) {
  const std::string dir = testing::temp_dir("cond");
  torch::manual_seed(2);
  UNet2DModel m(conditional_tiny("embedding"));
  save_model_folder(dir, *m, SchedulerConfig{});
  DiffusionModel loaded = load_model_folder(dir);
  EXPECT_EQ(loaded.config.num_class_embeds, 4);
  EXPECT_EQ(loaded.config.class_names, (std::vector<std::string>{"cat", "dog", "bird"}));
  EXPECT_EQ(loaded.config.null_class, 3);
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({2, 1, 8, 8}), t = torch::tensor({3.0f, 300.0f}), l = torch::tensor({0, 2}, at::kLong);
  EXPECT_TRUE(torch::equal(loaded.unet->forward(x, t, l), m->forward(x, t, l)));
  // Weights without the class embedding do not load against a conditional config.
  TensorMap w = load_tensors(dir + "/diffusion_pytorch_model.safetensors");
  w.erase("class_embedding.weight");
  save_tensors(dir + "/diffusion_pytorch_model.safetensors", w);
  EXPECT_NE(load_error(dir).find("class_embedding.weight"), std::string::npos);
  fs::remove_all(dir);
  for (const char* bad : {R"({"num_class_embeds": 0})", R"({"class_embed_type": "projection"})",
                          R"({"class_names": ["a"]})", R"({"num_class_embeds": 2, "null_class": 2})",
                          R"({"num_class_embeds": 3, "class_names": ["a", "b"], "null_class": 1})"}) {
    nlohmann::json j = testing::tiny_config().to_json();
    j.update(nlohmann::json::parse(bad));
    EXPECT_THROW(UNetConfig::from_json(j), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace qdm
