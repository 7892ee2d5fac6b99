// Fine-tuning against the fp32 model: it lowers the held-out error, moves only what is continuous
// (every integer code, scalar and vq, stays; vq codebooks stay integers whose sums fit int8),
// never leaves the held-out error above where it started, travels with the artifact to the integer
// kernels, and runs on an existing artifact (its eps bias measured again).
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "engine/quant/finetune.h"
#include "engine/quant/uniform_quant.h"
#include "engine/runtime/loaded_model.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

struct Fixture {
  std::string dir;
  DiffusionModel model;
};

Fixture tiny_model(const std::string& name) {
  torch::manual_seed(23);
  const std::string dir = testing::temp_dir(name);
  UNetConfig c = testing::tiny_config();
  c.block_out_channels = {16, 32};
  return {dir, testing::tiny_conditional_model(dir, c)};
}

RecipeOptions options(const std::string& recipe) {
  RecipeOptions o;
  o.recipe = recipe;
  o.spec.weight_bits = recipe == "vq" ? 4 : 3;
  o.sampler.steps = 5;
  o.calib_samples = 8;
  o.recon.iters = 0;
  o.vq.codebooks = 2;
  o.vq.codebook_bits = 4;
  o.vq.max_rounds = 2;
  o.vq.adam_steps = 10;
  o.finetune.samples = 8;
  o.finetune.holdout = 4;
  o.finetune.batch = 4;
  o.finetune.lr = 0.01;
  o.finetune.evals = 4;
  return o;
}

// Each quantized layer's integer codes: scalar codes, or the vq codes.
std::map<std::string, at::Tensor> codes_of(const QuantizedUNet& q) {
  std::map<std::string, at::Tensor> codes;
  for (const auto& l : q.layers) {
    if (q.has_temporal_cache() && is_temporal_layer(l->name)) continue;
    if (l->vq) {
      codes[l->name] = l->vq->codes.clone();
      continue;
    }
    const at::Tensor w = l->fake_weight;
    codes[l->name] = quantize_codes(w.reshape({w.size(0), -1}), l->weight_params);
  }
  return codes;
}

TEST(Finetune, LowersTheHeldOutErrorWithEveryCodeKept) {
  Fixture f = tiny_model("finetune");
  for (const std::string recipe : {"rtn", "vq"}) {
    RecipeOptions o = options(recipe);
    const QuantizeResult plain = quantize_model(f.model, o);
    o.finetune.iters = 40;
    std::vector<std::string> stages;
    const QuantizeResult tuned = quantize_model(f.model, o, [&](const QuantizeProgress& p) {
      if (stages.empty() || stages.back() != p.stage) stages.push_back(p.stage);
      return true;
    });
    EXPECT_NE(std::find(stages.begin(), stages.end(), "fine-tuning"), stages.end()) << recipe;
    const auto& rep = tuned.report["finetune"];
    ASSERT_TRUE(rep.is_object()) << recipe;
    EXPECT_LT(rep["holdout_mse_after"].get<double>(), 0.9 * rep["holdout_mse_before"].get<double>()) << recipe;
    EXPECT_GT(rep["best_iter"].get<int>(), 0) << recipe;
    EXPECT_TRUE(tuned.timings.contains("finetune"));

    // Codes identical to the recipe's without fine-tuning; scales and biases moved.
    const auto before = codes_of(*plain.model), after = codes_of(*tuned.model);
    ASSERT_EQ(before.size(), after.size());
    double scale_change = 0;
    int vq_layers = 0;
    for (const auto& [name, codes] : before) {
      EXPECT_TRUE(at::equal(codes, after.at(name))) << recipe << " " << name;
      const auto l0 = plain.model->layer(name), l1 = tuned.model->layer(name);
      scale_change = std::max(scale_change, (l1->weight_params.scale - l0->weight_params.scale).abs().max().item<double>());
      if (!l1->vq) continue;
      ++vq_layers;
      // Integer codebooks whose M-term sums fit int8; the decode on the int8 grid of the row scales.
      const at::Tensor cb = l1->vq->codebooks;
      EXPECT_TRUE(at::equal(cb, cb.round())) << name;
      EXPECT_LE(cb.abs().reshape({cb.size(0), -1}).amax(1).sum().item<double>(), 127) << name;
      EXPECT_TRUE(at::equal(fake_quant(l1->fake_weight, l1->weight_params), l1->fake_weight)) << name;
    }
    EXPECT_GT(scale_change, 0) << recipe;
    if (recipe == "vq") EXPECT_GE(vq_layers, 4);
    auto p0 = plain.model->unet->named_parameters(), p1 = tuned.model->unet->named_parameters();
    EXPECT_FALSE(at::equal(p0["conv_out.bias"], p1["conv_out.bias"])) << recipe;
    for (const auto& p : p1) EXPECT_FALSE(p.value().requires_grad()) << p.key();

    // The artifact carries it to the integer kernels: they agree with the simulation.
    const std::string path = f.dir + "/" + recipe + ".safetensors";
    save_artifact(path, *tuned.model, testing::artifact_info(f.model, tuned, o));
    LoadedArtifact a = load_artifact(path);
    for (const auto& [name, codes] : codes_of(*a.model)) EXPECT_TRUE(at::equal(codes, after.at(name))) << name;
    const at::Tensor x = torch::randn({2, 1, 8, 8});
    const at::Tensor labels = torch::tensor({0, 3}, at::kLong);
    torch::NoGradGuard g;
    const at::Tensor sim = tuned.model->forward(x, tuned.timesteps[1], 1, labels);
    const at::Tensor loaded = a.model->forward(x, tuned.timesteps[1], 1, labels);
    EXPECT_LT((sim - loaded).abs().max().item<double>(), 1e-4) << recipe;
    const at::Tensor integer = quantized_denoiser(*a.model, a.info.timesteps)(x, tuned.timesteps[1], 1, labels);
    EXPECT_LT((integer - sim).abs().max().item<double>(), 0.05 * sim.abs().max().item<double>()) << recipe;
  }
  std::filesystem::remove_all(f.dir);
}

// A learning rate far too high: the held-out error rises, and the start is what stays.
TEST(Finetune, NeverLeavesTheHeldOutErrorAboveTheStart) {
  Fixture f = tiny_model("finetune-bad-lr");
  RecipeOptions o = options("rtn");
  QuantizeResult r = quantize_model(f.model, o);
  const auto codes = codes_of(*r.model);
  const at::Tensor bias = r.model->unet->named_parameters()["conv_out.bias"].clone();
  const NoiseSchedule schedule(f.model.scheduler);
  const CalibrationSet train = collect_calibration(f.model.unet, schedule, r.sampler, 8, 100);
  const CalibrationSet holdout = collect_calibration(f.model.unet, schedule, r.sampler, 4, 200);
  o.finetune.iters = 8;
  o.finetune.lr = 0.1;
  o.finetune.evals = 8;
  const FinetuneReport rep = finetune_quantized(*r.model, train, holdout, o.finetune);
  ASSERT_EQ(rep.best_iter, 0);  // every evaluation after a step was worse
  EXPECT_EQ(rep.holdout_after, rep.holdout_before);
  EXPECT_TRUE(at::equal(r.model->unet->named_parameters()["conv_out.bias"], bias));
  for (const auto& [name, c] : codes_of(*r.model)) EXPECT_TRUE(at::equal(c, codes.at(name))) << name;
  // Trajectories over another schedule are refused.
  SamplerOptions other = r.sampler;
  other.steps = 4;
  const CalibrationSet wrong = collect_calibration(f.model.unet, schedule, other, 8, 100);
  EXPECT_THROW(finetune_quantized(*r.model, wrong, wrong, o.finetune), std::invalid_argument);
  std::filesystem::remove_all(f.dir);
}

// On an existing artifact: fine-tuned, options recorded, its eps bias measured again, the
// report marked as measured before; another model's artifact is refused.
TEST(Finetune, RunsOnAnExistingArtifact) {
  Fixture f = tiny_model("finetune-artifact");
  RecipeOptions o = options("rtn");
  o.bias_samples = 4;
  const QuantizeResult r = quantize_model(f.model, o);
  ArtifactInfo info = testing::artifact_info(f.model, r, o);
  info.report = {{"fid_fmnist", 1.0}};
  const std::string in = f.dir + "/a.safetensors", out = f.dir + "/b.safetensors";
  save_artifact(in, *r.model, info, r.eps_bias.get());
  FinetuneOptions fo = o.finetune;
  fo.iters = 20;
  const FinetuneReport rep = finetune_artifact(f.model, in, out, fo, 64);
  EXPECT_LT(rep.holdout_after, rep.holdout_before);
  const LoadedArtifact a = load_artifact(in), b = load_artifact(out);
  EXPECT_EQ(b.info.recipe["finetune"]["iters"].get<int>(), 20);
  EXPECT_TRUE(b.info.report.value("measured_before_finetune", false));
  EXPECT_TRUE(b.info.timings.contains("finetune"));
  ASSERT_TRUE(a.eps_bias && b.eps_bias);
  EXPECT_NE(a.eps_bias->maps, b.eps_bias->maps);
  for (const auto& [name, c] : codes_of(*a.model)) EXPECT_TRUE(at::equal(c, codes_of(*b.model).at(name))) << name;
  UNet2DModel other(f.model.config);
  save_model_folder(f.dir + "/other", *other, SchedulerConfig{});
  EXPECT_THROW(finetune_artifact(load_model_folder(f.dir + "/other"), in, f.dir + "/c.safetensors", fo, 64),
               std::invalid_argument);
  std::filesystem::remove_all(f.dir);
}

}  // namespace
}  // namespace qdm
