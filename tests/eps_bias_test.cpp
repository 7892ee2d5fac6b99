// The eps bias correction: the measured map is the mean error of the quantized predictor on the
// fp32 model's trajectories, subtracting it undoes an error shared by every sample, it applies to
// unconditional (null-label) images only, and it travels with the artifact to every sampling path.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "engine/model_io/tensor_io.h"
#include "engine/quant/bias_correction.h"
#include "engine/runtime/loaded_model.h"
#include "engine/sampling/tensor_sampling.h"
#include "format/safetensors.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

// The maps of a bias as a (steps, C, H, W) tensor.
at::Tensor maps(const EpsBias& b, int64_t size) { return eps_bias_maps(b, 1, size, size); }

// The exact predictor for data N(0, 0.25 I), whatever the labels.
ModelDenoiser gaussian_fp(const NoiseSchedule& s) {
  return [&s](const at::Tensor& x, int t, int, const at::Tensor&) {
    const double a = s.alphas_cumprod[static_cast<size_t>(t)];
    return x * (std::sqrt(1 - a) / (a * 0.25 + 1 - a));
  };
}

TEST(EpsBias, TheMeasuredMapIsTheSharedErrorAndSubtractingItUndoesIt) {
  torch::manual_seed(3);
  const NoiseSchedule s(SchedulerConfig{});
  SamplerOptions six;
  six.steps = 6;
  const at::Tensor pattern = torch::randn({1, 8, 8}) * 0.05;
  const ModelDenoiser fp = gaussian_fp(s);
  // A "quantized" predictor: fp plus an error map shared by every sample, growing with t.
  const ModelDenoiser q = [&](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
    return fp(x, t, step, labels) + pattern * (t / 1000.0);
  };
  for (std::optional<int> null_class : {std::optional<int>(), std::optional<int>(3)}) {
    const EpsBias bias = measure_eps_bias(s, fp, q, six, 1, 8, null_class, 10, 77, 4);
    ASSERT_EQ(bias.timesteps, sampler_timesteps(s, six));
    ASSERT_EQ(maps(bias, 8).sizes(), (std::vector<int64_t>{6, 1, 8, 8}));
    for (size_t i = 0; i < bias.timesteps.size(); ++i)
      EXPECT_LT((maps(bias, 8)[static_cast<int64_t>(i)] - pattern * (bias.timesteps[i] / 1000.0)).abs().max().item<double>(), 1e-6);

    SampleRequest req;
    req.num_images = 5;
    req.seed = 9;
    req.sampler = six;
    req.null_class = null_class;
    if (null_class) req.class_labels.assign(5, *null_class);
    const at::Tensor reference = sample_images(s, fp, 1, 8, req);
    const at::Tensor uncorrected = sample_images(s, q, 1, 8, req);
    req.eps_bias = std::make_shared<const EpsBias>(bias);
    const at::Tensor corrected = sample_images(s, q, 1, 8, req);
    EXPECT_GT((uncorrected - reference).abs().max().item<double>(), 1e-3);
    EXPECT_LT((corrected - reference).abs().max().item<double>(), 1e-5);
  }
}

TEST(EpsBias, AppliesToNullLabelledImagesAtTheNearestTimestep) {
  auto bias = std::make_shared<EpsBias>(
      make_eps_bias({900, 500, 100}, torch::tensor({1.0f, 2.0f, 3.0f}).reshape({3, 1, 1, 1}).expand({3, 1, 2, 2})));
  EXPECT_EQ(bias->at_timestep(480)[0], 2.0f);
  EXPECT_EQ(bias->at_timestep(0)[0], 3.0f);
  EXPECT_EQ(bias->at_timestep(999)[0], 1.0f);
  bias->check(1, 2, 2);
  EXPECT_THROW(bias->check(1, 4, 4), std::invalid_argument);

  const ModelDenoiser model = [](const at::Tensor& x, int, int, const at::Tensor& labels) {
    return 0.1 * x + labels.to(at::kFloat).reshape({-1, 1, 1, 1}) / 10.0;
  };
  at::Tensor x = torch::randn({3, 1, 2, 2});
  const std::vector<int64_t> labels = {0, 3, 1};
  auto run = [&](const DenoiseFn& d, int t) {
    at::Tensor eps = at::empty_like(x);
    d(x.data_ptr<float>(), 3, t, 1, eps.data_ptr<float>());
    return eps;
  };
  for (double guidance : {1.0, 2.5}) {
    const DenoiseFn plain = guided_denoiser(model_fn(model, 1, 2, 2), labels, 3, guidance, 4);
    const DenoiseFn corrected = bias_corrected(plain, bias, labels, 3);
    const at::Tensor d = run(plain, 480) - run(corrected, 480);
    EXPECT_TRUE(torch::allclose(d, torch::tensor({0.0f, 2.0f, 0.0f}).reshape({3, 1, 1, 1}).expand_as(d))) << guidance;
  }
  // An unconditional model (no labels): every image.
  const DenoiseFn plain = [](const float* in, int n, int, int, float* eps) { std::copy(in, in + 4 * n, eps); };
  EXPECT_TRUE(torch::allclose(run(bias_corrected(plain, bias, {}, std::nullopt), 100), x - 3.0));
}

// The stage on a tiny class-conditional model: measured on the integer plan, stored in the
// artifact (F16), loaded, and applied by LoadedModel to null-class images only.
TEST(EpsBias, TheRecipeStageTravelsWithTheArtifact) {
  torch::manual_seed(12);
  const std::string dir = testing::temp_dir("eps-bias");
  const DiffusionModel model = testing::tiny_conditional_model(dir, testing::tiny_config());
  const UNetConfig& c = model.config;
  RecipeOptions o;
  o.recipe = "rtn";
  o.spec.weight_bits = 3;
  o.sampler.steps = 6;
  o.calib_samples = 4;
  o.bias_samples = 8;
  QuantizeResult r = quantize_model(model, o);
  ASSERT_TRUE(r.eps_bias);
  EXPECT_EQ(r.eps_bias->timesteps, r.timesteps);
  EXPECT_GT(maps(*r.eps_bias, 8).abs().max().item<double>(), 1e-4);  // a 3-bit model errs
  EXPECT_TRUE(r.timings.contains("eps_bias"));

  ArtifactInfo info = testing::artifact_info(model, r, o);
  const std::string path = dir + "/a.safetensors";
  save_artifact(path, *r.model, info, r.eps_bias.get());
  EXPECT_EQ(SafeTensors::read_file(path).at("eps_bias").shape, (std::vector<int64_t>{6, 1, 8, 8}));
  LoadedModel m = LoadedModel::from_artifact(path, KernelMode::kInt);
  ASSERT_TRUE(m.eps_bias());
  EXPECT_LT((maps(*m.eps_bias(), 8) - maps(*r.eps_bias, 8)).abs().max().item<double>(),
            1e-3 * maps(*r.eps_bias, 8).abs().max().item<double>());  // F16

  SampleRequest req;
  req.num_images = 2;
  req.seed = 5;
  req.sampler = m.default_sampler();
  req.class_labels = {3, 1};
  const at::Tensor corrected = m.sample(req);
  auto kept = m.eps_bias();
  m.set_eps_bias(nullptr);
  const at::Tensor plain = m.sample(req);
  EXPECT_GT((corrected[0] - plain[0]).abs().max().item<double>(), 1e-5);  // the null-class image
  EXPECT_TRUE(torch::equal(corrected[1], plain[1]));                      // a labelled one

  // An artifact whose recipe measured a bias but lacks the tensor is refused.
  save_artifact(dir + "/b.safetensors", *r.model, info);
  EXPECT_THROW(load_artifact(dir + "/b.safetensors"), ArtifactError);

  // The stage on an existing artifact: the same map (same trajectories, the same kernels), every
  // other tensor copied unchanged; another model's artifact is refused.
  info.recipe["bias_samples"] = 0;
  save_artifact(dir + "/c.safetensors", *r.model, info);
  ASSERT_FALSE(load_artifact(dir + "/c.safetensors").eps_bias);
  correct_artifact(model, dir + "/c.safetensors", dir + "/d.safetensors", 8, 64);
  const LoadedArtifact d = load_artifact(dir + "/d.safetensors");
  ASSERT_TRUE(d.eps_bias);
  EXPECT_EQ(d.info.recipe.value("bias_samples", 0), 8);
  EXPECT_LT((maps(*d.eps_bias, 8) - maps(*r.eps_bias, 8)).abs().max().item<double>(), 1e-3 * maps(*r.eps_bias, 8).abs().max().item<double>());
  const SafeTensors before = SafeTensors::read_file(dir + "/c.safetensors"), after = SafeTensors::read_file(dir + "/d.safetensors");
  EXPECT_EQ(after.tensors().size(), before.tensors().size() + 1);
  for (const auto& t : before.tensors()) EXPECT_TRUE(torch::equal(to_tensor(before, t), to_tensor(after, after.at(t.name)))) << t.name;
  correct_artifact(model, dir + "/d.safetensors", dir + "/d.safetensors", 4, 64);  // in place, measured again
  EXPECT_EQ(load_artifact(dir + "/d.safetensors").info.recipe.value("bias_samples", 0), 4);
  UNet2DModel other(c);
  save_model_folder(dir + "/other", *other, SchedulerConfig{});
  EXPECT_THROW(correct_artifact(load_model_folder(dir + "/other"), dir + "/c.safetensors", dir + "/e.safetensors", 8, 64),
               std::invalid_argument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qdm
