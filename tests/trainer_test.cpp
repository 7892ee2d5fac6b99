#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include <filesystem>
#include <fstream>

#include "engine/data/fashion_mnist.h"
#include "engine/model/model_folder.h"
#include "engine/train/diffusion_trainer.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

TEST(FashionMnist, LoadsDebianFiles) {
  const FashionMnist test = FashionMnist::load(default_fashion_mnist_dir(), "test");
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(test.labels.bincount().min().item<int64_t>(), 1000);  // balanced classes
  const at::Tensor x = to_model_range(test.images.narrow(0, 0, 4), 32);
  EXPECT_EQ(x.size(-1), 32);
  EXPECT_EQ(x.min().item<float>(), -1.0f);
  EXPECT_LE(x.max().item<float>(), 1.0f);
  EXPECT_THROW(FashionMnist::load("/nonexistent", "train"), std::runtime_error);
}

TEST(DiffusionTrainer, CheckpointsAndResumes) {
  const std::string dir = testing::temp_dir("train");
  DiffusionTrainOptions o;
  o.out_dir = dir;
  o.data_dir = default_fashion_mnist_dir();
  o.config = testing::tiny_config();
  o.config.sample_size = 32;
  o.iterations = 3;
  o.batch_size = 4;
  o.checkpoint_every = 2;
  o.log_every = 1;
  EXPECT_EQ(train_diffusion(o), 3);
  EXPECT_TRUE(std::filesystem::exists(dir + "/checkpoint.safetensors"));
  const DiffusionModel first = load_model_folder(dir);
  o.iterations = 5;
  int64_t first_logged = -1;
  EXPECT_EQ(train_diffusion(o, [&](const TrainProgress& p) {
              if (first_logged < 0) first_logged = p.step;
              EXPECT_TRUE(std::isfinite(p.loss));
              return true;
            }),
            5);
  EXPECT_EQ(first_logged, 4);  // resumed after step 3
  const DiffusionModel second = load_model_folder(dir);
  EXPECT_FALSE(torch::equal(first.unet->conv("conv_in")->weight, second.unet->conv("conv_in")->weight));
  std::ifstream log(dir + "/train_log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  EXPECT_EQ(lines, 5);
  std::filesystem::remove_all(dir);
}

// A run stopped at a checkpoint and resumed ends with the weights of the run that never stopped
// (model, EMA, optimizer state and the data order all resume); and training lowers the loss.
TEST(DiffusionTrainer, AResumedRunEqualsAnUninterruptedOneAndTheLossFalls) {
  auto options = [](const std::string& dir, int iterations) {
    DiffusionTrainOptions o;
    o.out_dir = dir;
    o.data_dir = default_fashion_mnist_dir();
    o.config = testing::tiny_config();
    o.config.sample_size = 32;
    o.iterations = iterations;
    o.batch_size = 8;
    o.warmup = 5;
    o.lr = 2e-3;
    o.checkpoint_every = 4;
    o.log_every = 4;
    o.threads = 2;
    return o;
  };
  const std::string straight = testing::temp_dir("train-straight"), resumed = testing::temp_dir("train-resumed");
  std::vector<double> losses;
  train_diffusion(options(straight, 40), [&](const TrainProgress& p) {
    losses.push_back(p.loss);
    return true;
  });
  train_diffusion(options(resumed, 20));
  train_diffusion(options(resumed, 40));
  const DiffusionModel a = load_model_folder(straight), b = load_model_folder(resumed);
  const auto pb = b.unet->named_parameters();
  for (const auto& item : a.unet->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  ASSERT_EQ(losses.size(), 10u);
  EXPECT_LT(losses.back(), 0.7 * losses.front()) << "first interval " << losses.front() << ", last " << losses.back();
  std::filesystem::remove_all(straight);
  std::filesystem::remove_all(resumed);
}

// Min-SNR-gamma: each timestep's weight is min(SNR, gamma) / SNR with SNR = abar / (1 - abar);
// gamma 0 leaves every weight at one.
TEST(DiffusionTrainer, MinSnrWeightsFollowTheirDefinition) {
  const at::Tensor abar = torch::tensor({0.99, 0.9, 0.5, 0.1, 0.01}, at::kDouble).to(at::kFloat);
  const at::Tensor t = torch::tensor({0, 1, 2, 3, 4}, at::kLong);
  const at::Tensor w = min_snr_weights(abar, t, 5.0);
  const double want[] = {5.0 / 99.0, 5.0 / 9.0, 1.0, 1.0, 1.0};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(w[i].item<double>(), want[i], 1e-5) << i;
  EXPECT_TRUE(torch::equal(min_snr_weights(abar, t, 0.0), torch::ones({5})));
}

}  // namespace
TEST(DiffusionTrainer, LabelDropoutHoldsItsRate) {
  // 200,000 labels at rate 0.1: the null-class fraction within 4 standard deviations (0.27%
  // absolute) of the rate, every other label untouched, and the draw reproducible from the generator.
  at::Generator gen = at::detail::createCPUGenerator(7);
  const int64_t n = 200000;
  const at::Tensor labels = at::arange(n, at::kLong) % 10;
  const at::Tensor out = apply_label_dropout(labels, 0.1, 10, gen);
  const at::Tensor dropped = out == 10;
  const double rate = dropped.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(rate, 0.1, 4 * std::sqrt(0.1 * 0.9 / n));
  EXPECT_TRUE(at::equal(out.masked_select(~dropped), labels.masked_select(~dropped)));
  // Rates 0 and 1 are exact.
  EXPECT_TRUE(at::equal(apply_label_dropout(labels, 0.0, 10, gen), labels));
  EXPECT_TRUE((apply_label_dropout(labels, 1.0, 10, gen) == 10).all().item<bool>());
  at::Generator g1 = at::detail::createCPUGenerator(3), g2 = at::detail::createCPUGenerator(3);
  EXPECT_TRUE(at::equal(apply_label_dropout(labels, 0.3, 10, g1), apply_label_dropout(labels, 0.3, 10, g2)));
}

}  // namespace qdm
