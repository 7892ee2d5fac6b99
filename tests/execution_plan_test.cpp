// The execution plan against the simulation it must reproduce: one UNet call at several steps
// for every recipe, 4- and 8-bit weights, every kernel path this machine has, unconditional and
// class-conditional; then a short trajectory.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>
#include <set>

#include "engine/artifact/artifact.h"
#include "engine/kernels/qconv.h"
#include "engine/model/model_folder.h"
#include "engine/quant/recipe.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/quantized_weights.h"
#include "engine/runtime/served_model.h"
#include "engine/runtime/thread_pool.h"
#include "format/recipes.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

class PlanVsSim : public ::testing::Test {
 protected:
  void make_model(bool conditional, bool wide = false) {
    torch::manual_seed(21);
    dir_ = testing::temp_dir("plan");
    UNetConfig c = testing::tiny_config();
    if (wide) {  // channels enough that small batches split output channels across threads
      c.block_out_channels = {32, 64};
      c.attention_head_dim = 16;
      c.norm_num_groups = 8;
    }
    if (conditional) {
      c.num_class_embeds = 4;
      c.null_class = 3;
    }
    UNet2DModel unet(c);
    if (conditional) {
      torch::NoGradGuard g;
      unet->class_table().normal_();
    }
    save_model_folder(dir_ + "/model", *unet, SchedulerConfig{});
    model_ = std::make_unique<DiffusionModel>(load_model_folder(dir_ + "/model"));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  LoadedArtifact quantize(const std::string& recipe, int wbits) {
    RecipeOptions o;
    o.recipe = recipe;
    if (recipe == "tmpq") {  // mixed precision: every layer's bits drawn by the search
      o.search.steps = 6;
      o.search.base_steps = 12;
      o.search.population = 4;
      o.search.top = 2;
      o.search.mutations = 2;
      o.search.crossovers = 1;
      o.search.generations = 2;
      o.search.fitness_images = 2;
      o.search.final_images = 0;
      // Bits named here, not the defaults: one code flipped at a boundary moves a layer by
      // 1/(2^bits - 1) of its range, which the tolerance below is sized for (6 bits and up).
      o.search.weight_bits = {4, 6, 8};
      o.search.act_bits = {6, 7, 8};
      o.sampler.steps = 12;
    }
    if (recipe_info(recipe).section == RecipeSection::kVq) {  // codebooks small enough to pay on these layers
      o.vq.codebooks = 2;
      o.vq.codebook_bits = 4;
      o.vq.max_rounds = 2;
      o.vq.adam_steps = 10;
      o.finetune.iters = 0;
      // A layer wide enough for vq to pay keeps its fp32 input: its codes are decoded onto the
      // 8-bit grid of an fp32-input layer (the default one has 8 channels here, too few to pay).
      o.spec.keep_fp_input = {"down_blocks.1.resnets.0.conv2"};
    }
    o.spec.weight_bits = wbits;
    o.sampler.steps = 6;
    o.calib_samples = 4;
    o.recon.iters = 4;
    o.recon.act_iters = 2;
    o.recon.batch = 4;
    QuantizeResult r = quantize_model(*model_, o);
    save_artifact(dir_ + "/a.safetensors", *r.model, testing::artifact_info(*model_, r, o));
    return load_artifact(dir_ + "/a.safetensors");
  }

  // Per step, max |plan - sim| relative to max |sim|. The plan's group norm, SiLU and time
  // projection round differently from LibTorch's in the last bit, so now and then an activation
  // lands on the other side of a quantization boundary and one code differs: a step then
  // differs by about one quantization step of one layer, where it otherwise agrees to float
  // rounding.
  std::vector<double> compare(LoadedArtifact& a, QGemmIsa isa, bool conditional, int images = 3) {
    ExecutionPlan plan(a.model->unet->graph(), QuantizedWeights(*a.model), isa, 2);
    torch::NoGradGuard g;
    // The same input for every kernel path, whichever tests ran before (and with it the same
    // code flips: every path computes the scalar path's outputs bit for bit).
    torch::manual_seed(17);
    const at::Tensor x = torch::randn({images, 1, 8, 8});
    const at::Tensor labels = torch::tensor({0, 2, 3}, at::kLong).narrow(0, 0, images);
    std::vector<double> errors;
    for (int step = 0; step < static_cast<int>(a.info.timesteps.size()); ++step) {
      const int t = a.info.timesteps[static_cast<size_t>(step)];
      const at::Tensor sim = a.model->forward(x, t, step, conditional ? labels : at::Tensor());
      at::Tensor out = at::empty_like(x);
      plan.run(x.data_ptr<float>(), images, t, step, conditional ? labels.data_ptr<int64_t>() : nullptr, out.data_ptr<float>());
      errors.push_back((out - sim).abs().max().item<double>() / sim.abs().max().item<double>());
      if (getenv("QDM_PLAN_DEBUG")) {
        const at::Tensor d = (out - sim).abs();
        printf("  step %d: max %g mean %g (sim max %g), elements over 1e-4: %ld of %ld\n", step, d.max().item<double>(),
               d.mean().item<double>(), sim.abs().max().item<double>(), (d > 1e-4).sum().item<int64_t>(), d.numel());
      }
    }
    return errors;
  }
  // Most steps agree to float rounding; none by more than a few code flips.
  void expect_agreement(const std::vector<double>& errors, const std::string& what) {
    int exact = 0;
    for (double e : errors) {
      exact += e < 1e-5;
      EXPECT_LT(e, 5e-2) << what;
    }
    EXPECT_GE(exact, static_cast<int>(errors.size()) / 2) << what << ": most steps should agree to float rounding";
  }

  std::string dir_;
  std::unique_ptr<DiffusionModel> model_;
};

TEST_F(PlanVsSim, OneCallMatchesTheSimulationOnEveryKernelPath) {
  make_model(false);
  for (const std::string recipe : {"rtn", "tfmq", "tfmq+cache"})
    for (int wbits : {4, 8}) {
      LoadedArtifact a = quantize(recipe, wbits);
      ASSERT_EQ(plan_unsupported(*a.model), "");
      for (QGemmIsa isa : supported_isas())
        expect_agreement(compare(a, isa, false), recipe + " W" + std::to_string(wbits) + " " + isa_name(isa));
    }
}

// A loaded artifact's simulation runs on its parameters, which hold the grid weights: one fp32
// copy, not a second beside them.
TEST_F(PlanVsSim, LoadedArtifactsKeepOneCopyOfTheGridWeights) {
  make_model(false);
  LoadedArtifact a = quantize("rtn", 4);
  int scalar = 0;
  for (const auto& l : a.model->layers) {
    if (l->vq || !l->fake_weight.defined()) continue;
    ++scalar;
    EXPECT_TRUE(l->fake_weight.is_alias_of(l->fp_weight())) << l->name;
  }
  EXPECT_GT(scalar, 5);
}

TEST_F(PlanVsSim, MixedPrecisionArtifactsOnEveryKernelPath) {
  make_model(false);
  LoadedArtifact a = quantize("tmpq", 4);
  std::set<int> wbits, abits;
  for (const auto& l : a.model->layers) {
    wbits.insert(l->weight_params.bits);
    if (l->quant_input) abits.insert(l->act.bits);
  }
  EXPECT_GT(wbits.size(), 2u);  // really mixed
  EXPECT_GT(abits.size(), 2u);
  for (QGemmIsa isa : supported_isas()) expect_agreement(compare(a, isa, false), std::string("tmpq ") + isa_name(isa));
}

TEST_F(PlanVsSim, OneImageSplitsChannelsAcrossThreads) {
  make_model(false, true);
  LoadedArtifact a = quantize("tfmq", 4);
  for (QGemmIsa isa : supported_isas()) expect_agreement(compare(a, isa, false, 1), std::string("one image ") + isa_name(isa));
}

TEST_F(PlanVsSim, VectorQuantizedArtifactsOnEveryKernelPath) {
  make_model(false);
  LoadedArtifact a = quantize("vq", 4);
  int vq_layers = 0, vq_int_input = 0;
  for (const auto& l : a.model->layers) {
    vq_layers += l->vq != nullptr;
    vq_int_input += l->vq != nullptr && l->quant_input;
  }
  EXPECT_GT(vq_int_input, 3);
  EXPECT_EQ(vq_layers, vq_int_input + 1);  // the fixture keeps one vq layer's input fp32
  for (QGemmIsa isa : supported_isas()) {
    expect_agreement(compare(a, isa, false), std::string("vq ") + isa_name(isa));
    // The vq layers with integer inputs run on the tile-decoding ops, whose resident weights are
    // the codes; the fp32-input one on the fp32 GEMM over its codes decoded onto the 8-bit grid.
    ExecutionPlan plan(a.model->unet->graph(), QuantizedWeights(*a.model), isa, 1);
    plan.set_profiling(true);
    const at::Tensor x = torch::randn({1, 1, 8, 8});
    at::Tensor out = at::empty_like(x);
    plan.run(x.data_ptr<float>(), 1, a.info.timesteps[0], 0, nullptr, out.data_ptr<float>());
    int vq_ops = 0;
    for (const auto& [name, ms] : plan.profile_ops()) vq_ops += name.find("[vq ") != std::string::npos;
    EXPECT_EQ(vq_ops, vq_int_input) << isa_name(isa);
  }
}

// Every kernel path computes the same integer sums and the same epilogues: a whole step gives
// the scalar path's outputs bit for bit (tfmq at 4 and 8 bits and vq, one image, whose
// convolutions split output channels across threads, and three).
TEST_F(PlanVsSim, EveryKernelPathGivesTheScalarPathsStepBitForBit) {
  make_model(false, true);
  for (const std::string recipe : {"tfmq", "vq"})
    for (int wbits : {4, 8}) {
      if (recipe == "vq" && wbits == 8) continue;
      LoadedArtifact a = quantize(recipe, wbits);
      for (int images : {1, 3}) {
        torch::manual_seed(9);
        const at::Tensor x = torch::randn({images, 1, 8, 8});
        auto run = [&](QGemmIsa isa, int step) {
          ExecutionPlan plan(a.model->unet->graph(), QuantizedWeights(*a.model), isa, 2);
          at::Tensor out = at::empty_like(x);
          plan.run(x.data_ptr<float>(), images, a.info.timesteps[static_cast<size_t>(step)], step, nullptr, out.data_ptr<float>());
          return out;
        };
        for (int step : {0, 3}) {
          const at::Tensor want = run(QGemmIsa::kScalar, step);
          for (QGemmIsa isa : supported_isas()) {
            const at::Tensor got = run(isa, step);
            EXPECT_TRUE(at::equal(got, want)) << recipe << " W" << wbits << " " << isa_name(isa) << ", " << images
                                              << " images, step " << step << ": max difference "
                                              << (got - want).abs().max().item<double>();
          }
        }
      }
    }
}

TEST_F(PlanVsSim, ClassConditionalModels) {
  make_model(true);
  for (const std::string recipe : {"tfmq", "tfmq+cache", "vq", "vq+cache"}) {
    LoadedArtifact a = quantize(recipe, 4);
    for (QGemmIsa isa : supported_isas()) expect_agreement(compare(a, isa, true), recipe + " " + isa_name(isa));
  }
}

// The runtime reads artifacts and model folders straight into a plan (no LibTorch module is
// built): the same resident bytes and the same outputs, bit for bit, as the plan lowered from
// the LibTorch model load_artifact / load_model_folder builds. Every recipe's layout: scalar
// codes at 4 and 8 bits, mixed precision, vq codes (and a vq layer with an fp32 input), per-label
// F16 feature caches, per-step tables.
TEST_F(PlanVsSim, ArtifactsAndFoldersReadStraightIntoThePlanGiveTheSameOutputs) {
  set_pool_threads(2);
  auto expect_same = [&](ExecutionPlan& file, ExecutionPlan& model, const std::vector<int>& timesteps, bool conditional,
                         const std::string& what) {
    EXPECT_EQ(file.weight_bytes(), model.weight_bytes()) << what;
    torch::manual_seed(5);
    const at::Tensor x = torch::randn({3, 1, 8, 8});
    const at::Tensor labels = torch::tensor({0, 2, 3}, at::kLong);
    for (size_t step = 0; step < timesteps.size(); step += 2) {
      at::Tensor a = at::empty_like(x), b = at::empty_like(x);
      const int64_t* l = conditional ? labels.data_ptr<int64_t>() : nullptr;
      file.run(x.data_ptr<float>(), 3, timesteps[step], static_cast<int>(step), l, a.data_ptr<float>());
      model.run(x.data_ptr<float>(), 3, timesteps[step], static_cast<int>(step), l, b.data_ptr<float>());
      EXPECT_TRUE(at::equal(a, b)) << what << ", step " << step << ": max difference " << (a - b).abs().max().item<double>();
    }
  };
  for (const bool conditional : {false, true}) {
    make_model(conditional);
    {
      const ServedModel served = ServedModel::from_folder(dir_ + "/model");
      ExecutionPlan model(model_->unet->graph(), ModuleWeights(model_->unet), served.plan()->isa(), 2);
      expect_same(*served.plan(), model, {999, 500, 1}, conditional, "fp32 folder");
      // The resident figure is the sum of its breakdown; an fp32 model's weights are fp32.
      EXPECT_EQ(served.resident().total(), served.plan()->weight_bytes());
      EXPECT_GT(served.resident().parts.count(resident::kFp32Weights), 0u);
      EXPECT_EQ(served.resident().parts.count(resident::kIntWeights), 0u);
    }
    for (const auto& [recipe, wbits] : std::vector<std::pair<std::string, int>>{
             {"rtn", 8}, {"tfmq", 4}, {"tfmq+cache", 4}, {"tmpq", 4}, {"vq", 4}, {"vq+cache", 4}}) {
      if (!conditional && (recipe == "tfmq" || recipe == "tmpq" || recipe == "vq+cache")) continue;  // one layout each is enough
      LoadedArtifact a = quantize(recipe, wbits);
      if (recipe_info(recipe).section == RecipeSection::kVq) {  // the fp32-input vq layer (decoded onto the 8-bit grid) is covered too
        bool fp32_input_vq = false;
        for (const auto& l : a.info.layers) fp32_input_vq |= l.vector_quantized() && l.act_bits == 0;
        EXPECT_TRUE(fp32_input_vq);
      }
      const ServedModel served = ServedModel::from_artifact(dir_ + "/a.safetensors");
      EXPECT_EQ(served.sha256(), a.sha256);
      EXPECT_EQ(served.per_step_tables(), a.per_step_tables) << recipe;
      ExecutionPlan model(a.model->unet->graph(), QuantizedWeights(*a.model), served.plan()->isa(), 2);
      // What holds the resident bytes: integer codes always, vq codes and a feature cache where
      // the recipe makes them, and nothing beside the breakdown.
      const ResidentBytes& r = served.resident();
      EXPECT_EQ(r.total(), served.weight_bytes()) << recipe;
      EXPECT_EQ(r.total(), served.plan()->weight_bytes()) << recipe;
      EXPECT_GT(r.parts.count(resident::kIntWeights), 0u) << recipe;
      EXPECT_EQ(r.parts.count(resident::kVqWeights), recipe_info(recipe).section == RecipeSection::kVq ? 1u : 0u) << r.summary();
      EXPECT_EQ(r.parts.count(resident::kFeatureCache), recipe_info(recipe).feature_cache ? 1u : 0u) << recipe << ": " << r.summary();
      expect_same(*served.plan(), model, a.info.timesteps, conditional,
                  recipe + " W" + std::to_string(wbits) + (conditional ? " conditional" : ""));
    }
    std::filesystem::remove_all(dir_);
  }
}

// A batch runs in chunks of 16 images; each image's result is the same bit for bit as when it
// runs alone (labels follow their images).
TEST_F(PlanVsSim, BatchesLargerThanAChunkEqualImagesRunAlone) {
  make_model(true);
  LoadedArtifact a = quantize("tfmq", 4);
  ExecutionPlan plan(a.model->unet->graph(), QuantizedWeights(*a.model), best_isa(), 2);
  const int n = 19;
  torch::manual_seed(9);
  const at::Tensor x = torch::randn({n, 1, 8, 8});
  const at::Tensor labels = torch::randint(0, 4, {n}, at::kLong);
  at::Tensor batch = at::empty_like(x);
  plan.run(x.data_ptr<float>(), n, a.info.timesteps[2], 2, labels.data_ptr<int64_t>(), batch.data_ptr<float>());
  for (int i = 0; i < n; ++i) {
    at::Tensor alone = at::empty({1, 1, 8, 8});
    const at::Tensor xi = x[i].unsqueeze(0).contiguous(), li = labels[i].unsqueeze(0).contiguous();
    plan.run(xi.data_ptr<float>(), 1, a.info.timesteps[2], 2, li.data_ptr<int64_t>(), alone.data_ptr<float>());
    EXPECT_TRUE(at::equal(alone[0], batch[i])) << "image " << i;
  }
}

// The upsamplers' 3x3 convolutions run as four 2x2 phases on the low-resolution codes with
// folded weights (upsample_fold.h): the same integer sums, so the same outputs bit for bit as
// the plan that upsamples the codes; 8-bit weights do not fit folded and run as before.
TEST_F(PlanVsSim, FoldedUpsamplersAreBitIdenticalToUpsampledCodes) {
  std::vector<QGemmIsa> isas;
  for (QGemmIsa isa : supported_isas())
    if (qconv_available(isa, 16)) isas.push_back(isa);
  if (isas.empty()) GTEST_SKIP() << "the fold runs on the lane convolution, which this CPU lacks";
  make_model(false, true);
  for (int wbits : {4, 8}) {
    LoadedArtifact a = quantize("tfmq", wbits);
    for (QGemmIsa isa : isas) {
    auto run = [&](bool fold, int images) {
      setenv("QDM_PLAN_FOLD", fold ? "1" : "0", 1);
      ExecutionPlan plan(a.model->unet->graph(), QuantizedWeights(*a.model), isa, 2);
      unsetenv("QDM_PLAN_FOLD");
      plan.set_profiling(true);
      torch::manual_seed(5);
      const at::Tensor x = torch::randn({images, 1, 8, 8});
      at::Tensor out = at::empty_like(x);
      plan.run(x.data_ptr<float>(), images, a.info.timesteps[1], 1, nullptr, out.data_ptr<float>());
      int folded = 0, copies = 0;
      for (const auto& [name, ms] : plan.profile_ops()) {
        folded += name.find("upsample folded") != std::string::npos;
        copies += name.find("[copy]") != std::string::npos;
      }
      // The skip connections' concatenations are written in place by their producers.
      EXPECT_EQ(copies, 0);
      return std::make_pair(out, folded);
    };
    for (int images : {1, 3}) {
      const auto [with, folded] = run(true, images);
      const auto [without, none] = run(false, images);
      EXPECT_EQ(folded, wbits == 4 ? 1 : 0) << "W" << wbits;  // the one upsampler of the tiny model
      EXPECT_EQ(none, 0);
      EXPECT_TRUE(at::equal(with, without)) << isa_name(isa) << " W" << wbits << ", " << images << " images: max difference "
                                            << (with - without).abs().max().item<double>();
    }
    }
  }
}

}  // namespace
}  // namespace qdm
