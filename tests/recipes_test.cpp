#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "format/safetensors.h"
#include "engine/quant/adaround.h"
#include "engine/quant/recipe.h"
#include "engine/quant/recipe_table.h"
#include "engine/quant/reconstruction.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/quantized_weights.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

TEST(AdaRound, StartsAtTheWeightAndEndsWithinOneStepOfNearest) {
  torch::manual_seed(2);
  const at::Tensor w = torch::randn({6, 10});
  const QuantParams p = minmax_weight_params(w, 4);
  AdaRound ada(w, p);
  // h(a) = fractional part: the soft weight is w itself except where the grid clamps it.
  const at::Tensor start_err = (ada.soft_weight() - w).abs();
  EXPECT_LT(start_err.mean().item<double>(), 0.02);
  EXPECT_TRUE((start_err <= p.scale.reshape({6, 1}) / 2 + 1e-5).all().item<bool>());
  {
    torch::NoGradGuard g;
    ada.alpha.add_(torch::randn_like(ada.alpha) * 5);  // any learned state
  }
  const at::Tensor hard = ada.hard_weight();
  const at::Tensor nearest = fake_quant(w, p);
  const at::Tensor step = p.scale.reshape({6, 1});
  EXPECT_TRUE(((hard - nearest).abs() <= step + 1e-6).all().item<bool>());
  // Hard weights lie on the grid.
  EXPECT_TRUE(torch::allclose(fake_quant(hard, p), hard, 1e-6, 1e-6));
  EXPECT_EQ(adaround_beta(0, 100, 0.2), 0.0);
  EXPECT_NEAR(adaround_beta(20, 100, 0.2), 20.0, 1e-9);
  EXPECT_NEAR(adaround_beta(100, 100, 0.2), 2.0, 1e-9);
}

TEST(TemporalInformationBlock, FoundForAnyConfig) {
  for (auto [cfg, resnets] : {std::pair{testing::tiny_config(), 8}, std::pair{UNetConfig::from_json(testing::ddpm_cifar10_config_json()), 22}}) {
    QuantizedUNet q(UNet2DModel(cfg), QuantSpec{});
    const auto tib = temporal_block_layers(q);
    // time_embedding.linear_1 (fp32 input, 8-bit weights) and linear_2, one time_emb_proj per resnet.
    EXPECT_EQ(tib.size(), static_cast<size_t>(resnets + 2));
    EXPECT_EQ(tib.front(), "time_embedding.linear_1");
    QuantSpec fp32_kept;
    fp32_kept.keep_bits = 0;  // TFMQ-DM's own choice: linear_1 stays fp32 and outside the block
    QuantizedUNet kept(UNet2DModel(cfg), fp32_kept);
    EXPECT_EQ(temporal_block_layers(kept).size(), static_cast<size_t>(resnets + 1));
  }
}

class Recipes : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    dir_ = testing::temp_dir("recipes");
    UNet2DModel unet(testing::tiny_config());
    save_model_folder(dir_ + "/model", *unet, SchedulerConfig{});
    model_ = std::make_unique<DiffusionModel>(load_model_folder(dir_ + "/model"));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  QuantizeResult run(const std::string& recipe, int abits = 8) {
    RecipeOptions o;
    o.recipe = recipe;
    o.spec.weight_bits = 4;
    o.spec.act_bits = abits;
    o.sampler.steps = 6;
    o.calib_samples = 4;
    o.recon.iters = 12;
    o.recon.act_iters = 6;
    o.recon.batch = 4;
    o.recon_step_stride = 2;
    options_ = o;
    return quantize_model(*model_, o);
  }
  LoadedArtifact save_and_load(QuantizeResult& r) {
    save_artifact(dir_ + "/a.safetensors", *r.model, testing::artifact_info(*model_, r, options_));
    return load_artifact(dir_ + "/a.safetensors");
  }

  std::string dir_;
  std::unique_ptr<DiffusionModel> model_;
  RecipeOptions options_;  // the last run's
};

// The recipe table: every registered recipe has exactly its engine row, a function and the
// stages its row names; an unknown name is refused with the list.
TEST(RecipeTable, EveryRecipeHasItsRowAndUnknownNamesAreRefused) {
  for (const RecipeInfo& info : recipes()) {
    const RecipeRow& row = recipe_row(info.name);
    EXPECT_EQ(row.info, &info);
    EXPECT_NE(row.quantize, nullptr) << info.name;
    // A recipe with an option section has stages of its own to cost.
    EXPECT_EQ(row.own_stages != nullptr, info.section != RecipeSection::kNone) << info.name;
  }
  try {
    recipe_row("fp8");
    ADD_FAILURE() << "fp8 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("use rtn, qdiffusion"), std::string::npos) << e.what();
  }
}

TEST_F(Recipes, EveryRecipeRoundTripsThroughItsArtifact) {
  for (const auto& recipe : recipe_names()) {
    QuantizeResult r = run(recipe);
    LoadedArtifact a = save_and_load(r);
    torch::NoGradGuard g;
    const at::Tensor x = torch::randn({2, 1, 8, 8});
    for (int step : {0, 5}) {
      const int t = r.timesteps[static_cast<size_t>(step)];
      EXPECT_TRUE(torch::equal(r.model->forward(x, t, step), a.model->forward(x, t, step))) << recipe << " step " << step;
    }
  }
}

TEST_F(Recipes, ReconstructionChangesRoundingAndLsqChangesRanges) {
  QuantizeResult rtn = run("rtn");
  QuantizeResult qd = run("qdiffusion");
  const auto a = rtn.model->layer("mid_block.resnets.0.conv1"), b = qd.model->layer("mid_block.resnets.0.conv1");
  // qdiffusion searches ranges and learns rounding: its grid weights differ from min-max nearest.
  EXPECT_FALSE(torch::equal(a->fake_weight, b->fake_weight));
  EXPECT_EQ(b->act.scale.size(), 1u);
  EXPECT_NE(a->act.scale[0], b->act.scale[0]);
}

TEST_F(Recipes, FscTablesDifferPerStepAndTheSamplerUsesThem) {
  QuantizeResult r = run("tfmq");
  const auto layer = r.model->layer("up_blocks.1.resnets.0.conv1");
  ASSERT_TRUE(layer->quant_input);
  ASSERT_EQ(layer->act.scale.size(), 6u);
  EXPECT_NE(layer->act.scale.front(), layer->act.scale.back());
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({2, 1, 8, 8});
  const int t = r.timesteps[2];
  EXPECT_FALSE(torch::equal(r.model->forward(x, t, 0), r.model->forward(x, t, 5)));  // same input, other table
  LoadedArtifact a = save_and_load(r);
  const NoiseSchedule schedule(model_->scheduler);
  SamplerOptions other;
  other.steps = 7;
  EXPECT_THROW(check_schedule(a, schedule, other), std::invalid_argument);
  other.steps = 6;
  EXPECT_NO_THROW(check_schedule(a, schedule, other));
  EXPECT_THROW(artifact_denoiser(a)(x, 3, 0, at::Tensor()), std::invalid_argument);  // t = 3 is not in the schedule
}

TEST_F(Recipes, CachedTemporalFeaturesReplaceTheQuantizedTib) {
  QuantizeResult r = run("tfmq+cache");
  save_and_load(r);
  const SafeTensors file = SafeTensors::read_file(dir_ + "/a.safetensors");
  EXPECT_EQ(file.find("time_embedding.linear_1.weight"), nullptr);
  EXPECT_EQ(file.find("mid_block.resnets.0.time_emb_proj.qweight"), nullptr);
  ASSERT_NE(file.find("temporal_cache.0"), nullptr);
  EXPECT_EQ(file.at("temporal_cache.0").shape[0], 6);
  EXPECT_EQ(file.at("temporal_cache.0").dtype, DType::F16);
  // The cache holds the fp32 features rounded to F16, and the artifact gives them back exactly.
  torch::NoGradGuard g;
  const auto fp = model_->unet->temporal_features(torch::full({1}, static_cast<float>(r.timesteps[3])));
  EXPECT_TRUE(torch::equal(fp[2].to(at::kHalf).to(at::kFloat), r.model->temporal_cache[3][2]));
  EXPECT_FALSE(torch::equal(fp[2], r.model->temporal_cache[3][2]));  // rounded: not the F32 values
  LoadedArtifact a = load_artifact(dir_ + "/a.safetensors");
  for (size_t s = 0; s < r.timesteps.size(); ++s)
    for (size_t k = 0; k < r.model->temporal_cache[s].size(); ++k)
      ASSERT_TRUE(torch::equal(a.model->temporal_cache[s][k], r.model->temporal_cache[s][k])) << s << " " << k;
}

// A cache that is not made of F16 values (an artifact written before the cache was rounded) is
// stored, loaded and served at F32, unchanged, by the simulation and the integer plan alike.
TEST_F(Recipes, AnF32FeatureCacheStaysF32) {
  QuantizeResult r = run("tfmq+cache");
  torch::NoGradGuard g;
  const auto fp = model_->unet->temporal_features(torch::full({1}, static_cast<float>(r.timesteps[0])));
  for (size_t s = 0; s < r.timesteps.size(); ++s)
    r.model->temporal_cache[s] = model_->unet->temporal_features(torch::full({1}, static_cast<float>(r.timesteps[s])));
  ASSERT_FALSE(QuantizedUNet::holds_f16_values(r.model->temporal_cache[0][0]));
  LoadedArtifact a = save_and_load(r);
  const SafeTensors file = SafeTensors::read_file(dir_ + "/a.safetensors");
  EXPECT_EQ(file.at("temporal_cache.0").dtype, DType::F32);
  EXPECT_TRUE(torch::equal(a.model->temporal_cache[0][1], fp[1]));
  ExecutionPlan f32_plan(a.model->unet->graph(), QuantizedWeights(*a.model), QGemmIsa::kScalar, 1);
  for (auto& step : a.model->temporal_cache)
    for (auto& f : step) f = f.to(at::kHalf).to(at::kFloat);
  ExecutionPlan f16_plan(a.model->unet->graph(), QuantizedWeights(*a.model), QGemmIsa::kScalar, 1);  // the same artifact with an F16 cache
  EXPECT_LT(f16_plan.weight_bytes(), f32_plan.weight_bytes());
}

}  // namespace
}  // namespace qdm

#include "engine/quant/quality.h"

namespace qdm {
namespace {

TEST(Quality, ImageAgreementHasTheKnownAnswer) {
  const at::Tensor ref = torch::zeros({2, 1, 4, 4});
  const at::Tensor img = ref + 0.2;  // [0, 1] pixels differ by 0.1 everywhere
  const ImageAgreement a = compare_images(img, ref);
  EXPECT_NEAR(a.mse, 0.01, 1e-7);
  EXPECT_NEAR(a.psnr, 20.0, 1e-4);
  EXPECT_EQ(a.max_abs_pixel, 25.0);  // 8-bit levels: round(153.0) - round(127.5) = 153 - 128
  EXPECT_EQ(compare_images(ref, ref).max_abs_pixel, 0.0);
}

TEST_F(Recipes, TemporalFeatureSimilarityIsOneForTheCacheAndBelowForQuantizedTib) {
  QuantizeResult cached = run("tfmq+cache");
  EXPECT_NEAR(temporal_feature_cosine(model_->unet, *cached.model, cached.timesteps), 1.0, 1e-6);
  QuantizeResult rtn = run("rtn");
  const double cos = temporal_feature_cosine(model_->unet, *rtn.model, rtn.timesteps);
  EXPECT_LT(cos, 1.0);
  EXPECT_GT(cos, 0.9);
}

}  // namespace
}  // namespace qdm

#include "engine/runtime/int_layers.h"
#include "engine/quant/calibration.h"

namespace qdm {
namespace {

// Quantization of a class-conditional model: calibration covers every class and the null
// class, the temporal features are f(t, class) (TIAR, the cache and the cosine cover every
// pair), every recipe's artifact round-trips and runs on the integer kernels with labels.
class ConditionalRecipes : public Recipes {
 protected:
  void SetUp() override {
    torch::manual_seed(12);
    dir_ = testing::temp_dir("cond-recipes");
    UNetConfig c = testing::tiny_config();
    c.num_class_embeds = 4;
    c.class_names = {"a", "b", "c"};
    c.null_class = 3;
    UNet2DModel unet(c);
    {
      torch::NoGradGuard g;
      unet->class_table().normal_();
    }
    save_model_folder(dir_ + "/model", *unet, SchedulerConfig{});
    model_ = std::make_unique<DiffusionModel>(load_model_folder(dir_ + "/model"));
  }
};

TEST_F(ConditionalRecipes, CalibrationCoversEveryClassAndTheNullClass) {
  SamplerOptions six;
  six.steps = 6;
  const CalibrationSet calib = collect_calibration(model_->unet, NoiseSchedule(model_->scheduler), six, 8, 1);
  ASSERT_TRUE(calib.labels.defined());
  EXPECT_TRUE(torch::equal(calib.labels, torch::tensor({0, 1, 2, 3, 0, 1, 2, 3}, at::kLong)));
}

TEST_F(ConditionalRecipes, EveryRecipeRoundTripsAndLabelsReachTheKernels) {
  const at::Tensor x = torch::randn({3, 1, 8, 8});
  const at::Tensor labels = torch::tensor({0, 2, 3}, at::kLong);
  for (const auto& recipe : recipe_names()) {
    QuantizeResult r = run(recipe);
    LoadedArtifact a = save_and_load(r);
    torch::NoGradGuard g;
    const int t = r.timesteps[2];
    const at::Tensor sim = r.model->forward(x, t, 2, labels);
    EXPECT_TRUE(torch::equal(sim, a.model->forward(x, t, 2, labels))) << recipe;
    EXPECT_GT((sim - r.model->forward(x, t, 2, torch::tensor({1, 2, 3}, at::kLong))).narrow(0, 0, 1).abs().max().item<double>(), 1e-5)
        << recipe << ": the label does not reach the output";
    EXPECT_THROW(r.model->forward(x, t, 2), std::invalid_argument) << recipe;  // a conditional model needs labels
    use_integer_kernels(*a.model, QGemmIsa::kScalar);
    const at::Tensor integer = a.model->forward(x, t, 2, labels);
    // To float rounding, but for an occasional activation code on the other side of a boundary.
    EXPECT_LT((integer - sim).abs().max().item<double>(), 3e-2 * sim.abs().max().item<double>()) << recipe;
  }
}

TEST_F(ConditionalRecipes, TheFeatureCacheHoldsEveryStepAndClass) {
  QuantizeResult r = run("tfmq+cache");
  save_and_load(r);
  const SafeTensors file = SafeTensors::read_file(dir_ + "/a.safetensors");
  EXPECT_EQ(file.at("temporal_cache.0").shape, (std::vector<int64_t>{6, 4, 8}));
  QuantizeResult tfmq = run("tfmq");
  torch::NoGradGuard g;
  const at::Tensor t = torch::full({1}, static_cast<float>(r.timesteps[3]));
  const auto fp = model_->unet->temporal_features(t, torch::tensor({2}, at::kLong));
  // The fp32 features of that step and class, to F16 rounding (2^-11 relative; the cache is
  // computed for every step and class in one batch, this one alone, and the BLAS may sum a batch
  // in another order, so a value may round to the F16 neighbour).
  const at::Tensor cached = r.model->temporal_cache[3][2][2];
  EXPECT_TRUE(QuantizedUNet::holds_f16_values(cached));
  EXPECT_LT((fp[2][0] - cached).abs().max().item<double>(), 1e-3 * (1 + fp[2][0].abs().max().item<double>()))
      << "max difference " << (fp[2][0] - cached).abs().max().item<double>();
  EXPECT_NEAR(temporal_feature_cosine(model_->unet, *r.model, r.timesteps), 1.0, 1e-6);
  EXPECT_LT(temporal_feature_cosine(model_->unet, *tfmq.model, tfmq.timesteps), 1.0);
}

}  // namespace
}  // namespace qdm

namespace qdm {
namespace {

// Eight fp32 trajectories of other seeds than calibration's, and a quantized model's noise
// predictions on them: squared error relative to the fp32 predictions', over every step.
CalibrationSet held_out(const DiffusionModel& model, const SamplerOptions& sampler, uint64_t seed) {
  torch::NoGradGuard g;
  return collect_calibration(model.unet, NoiseSchedule(model.scheduler), sampler, 8, seed);
}

double relative_error(QuantizedUNet& q, const CalibrationSet& held) {
  torch::NoGradGuard g;
  double se = 0, ref = 0;
  for (size_t s = 0; s < held.inputs.size(); ++s) {
    const at::Tensor got = q.forward(held.inputs[s], held.timesteps[s], static_cast<int>(s));
    se += (got - held.eps[s]).pow(2).sum().item<double>();
    ref += held.eps[s].pow(2).sum().item<double>();
  }
  return se / ref;
}

// The algorithms, not only their plumbing: on the same L2.4 weight ranges, AdaRound's learned
// rounding (BRECQ block by block) predicts the fp32 model's noise better than rounding to
// nearest, measured on held-out fp32 trajectories (other seeds) over every step; fp32
// activations, so only the weights' rounding differs.
TEST_F(Recipes, BlockReconstructionLowersTheErrorOfRoundingToNearest) {
  SamplerOptions sampler;
  sampler.steps = 6;
  const CalibrationSet held = held_out(*model_, sampler, 4242);
  auto error = [&](int iters) {
    RecipeOptions o;
    o.recipe = "qdiffusion";
    o.spec.weight_bits = 3;
    o.spec.act_bits = 0;
    o.sampler = sampler;
    o.calib_samples = 8;
    o.recon.iters = iters;
    o.recon.batch = 8;
    o.recon_step_stride = 1;
    QuantizeResult r = quantize_model(*model_, o);
    return relative_error(*r.model, held);
  };
  const double nearest = error(0), learned = error(200);
  EXPECT_LT(learned, 0.9 * nearest) << "relative squared error: nearest " << nearest << ", AdaRound " << learned;
}

// LSQ: Q-Diffusion's learned activation step sizes (weights at 8 bits, activations at 4, where
// the activation ranges decide the error) lower the held-out error of the searched ranges.
TEST_F(Recipes, LsqStepSizesLowerTheErrorOfTheSearchedRanges) {
  SamplerOptions sampler;
  sampler.steps = 6;
  const CalibrationSet held = held_out(*model_, sampler, 4243);
  auto error = [&](int act_iters) {
    RecipeOptions o;
    o.recipe = "qdiffusion";
    o.spec.weight_bits = 8;
    o.spec.act_bits = 4;
    o.sampler = sampler;
    o.calib_samples = 8;
    o.recon.iters = 1;
    o.recon.act_iters = act_iters;
    o.recon.batch = 8;
    o.recon_step_stride = 1;
    QuantizeResult r = quantize_model(*model_, o);
    return relative_error(*r.model, held);
  };
  const double searched = error(0), learned = error(200);
  EXPECT_LT(learned, 0.9 * searched) << "relative squared error: searched ranges " << searched << ", LSQ " << learned;
}

// TIAR: TFMQ-DM's temporal information block reconstructed on its own (every step's time
// embedding) brings its features closer to the fp32 model's than rounding its weights to nearest.
TEST_F(Recipes, TiarBringsTheTemporalFeaturesCloserThanRoundingToNearest) {
  auto cosine = [&](int iters) {
    RecipeOptions o;
    o.recipe = "tfmq";
    o.spec.weight_bits = 3;
    o.spec.act_bits = 8;
    o.sampler.steps = 6;
    o.calib_samples = 4;
    o.recon.iters = iters;
    o.recon.batch = 4;
    o.recon_step_stride = 2;
    QuantizeResult r = quantize_model(*model_, o);
    return temporal_feature_cosine(model_->unet, *r.model, r.timesteps);
  };
  const double nearest = cosine(0), tiar = cosine(200);
  EXPECT_LT(1 - tiar, 0.9 * (1 - nearest)) << "temporal feature cosine: nearest " << nearest << ", TIAR " << tiar;
}

}  // namespace
}  // namespace qdm
