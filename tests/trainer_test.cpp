#include <gtest/gtest.h>

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

}  // namespace
}  // namespace qdm
