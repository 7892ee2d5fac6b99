// TMPQ-DM on a tiny model: the timestep groups, genes that stay in their groups, the quantizer
// bank against calibrating a candidate directly, a reproducible and resumable search, budgets,
// and the mixed-precision artifact with its own schedule.
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "engine/quant/bitops.h"
#include "engine/quant/calibration.h"
#include "engine/quant/tmpq/latency_table.h"
#include "engine/quant/tmpq/quantizer_bank.h"
#include "engine/quant/tmpq/search.h"
#include "engine/quant/uniform_quant.h"
#include "engine/runtime/loaded_model.h"
#include "tests/test_models.h"

namespace qdm::tmpq {
namespace {

TEST(TimestepGroups, FollowThePapersFormula) {
  // (linspace(0, sqrt(800), 4))^2 without the first point: 88.9, 355.6, 800.
  const auto g = timestep_groups(1000, 4);
  const std::vector<std::pair<int, int>> want = {{0, 88}, {88, 355}, {355, 800}, {800, 1000}};
  EXPECT_EQ(g, want);
  for (int n : {1, 5, 10, 20}) {
    const auto groups = timestep_groups(1000, n);
    ASSERT_EQ(static_cast<int>(groups.size()), n);
    EXPECT_EQ(groups.front().first, 0);
    EXPECT_EQ(groups.back().second, 1000);
    if (n > 1) EXPECT_EQ(groups.back().first, 800);
    for (size_t i = 1; i < groups.size(); ++i) EXPECT_EQ(groups[i].first, groups[i - 1].second);
    for (size_t i = 1; i + 2 < groups.size(); ++i)  // dense near t = 0: widths grow up to [.., 0.8 T)
      EXPECT_LE(groups[i].second - groups[i].first, groups[i + 1].second - groups[i + 1].first);
  }
}

TEST(TimestepGroups, PowerOneSpacesThemEvenly) {
  // linspace(0, 800, 5): 200, 400, 600, 800, then [800, 1000).
  const std::vector<std::pair<int, int>> want = {{0, 200}, {200, 400}, {400, 600}, {600, 800}, {800, 1000}};
  EXPECT_EQ(timestep_groups(1000, 5, 1.0), want);
  EXPECT_EQ(timestep_groups(1000, 4, 2.0), timestep_groups(1000, 4));
  EXPECT_THROW(timestep_groups(1000, 4, 0.5), std::invalid_argument);
  SearchOptions o;
  o.group_power = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

TEST(Candidates, GenesStayInTheirGroupsAndLists) {
  GeneSpace space;
  space.group_timesteps = {{0, 5}, {10, 20, 30}, {40, 50, 60, 70}};
  space.weight_bits = {4, 6};
  space.act_bits = {6, 8};
  space.layers = 5;
  std::mt19937_64 rng(3);
  Candidate c = random_candidate(space, rng);
  ASSERT_TRUE(valid(c, space));
  EXPECT_GE(c.timesteps[0], 40);  // descending: the noisiest group first
  for (int i = 0; i < 2000; ++i) {
    const Candidate d = random_candidate(space, rng);
    c = (i % 2) ? mutate(c, space, 0.5, rng) : crossover(c, d, rng);
    ASSERT_TRUE(valid(c, space)) << c.key();
  }
  EXPECT_EQ(Candidate::from_json(c.to_json()).key(), c.key());
}

class Tmpq : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(31);
    dir_ = testing::temp_dir("tmpq");
    UNet2DModel unet(testing::tiny_config());
    save_model_folder(dir_ + "/model", *unet, SchedulerConfig{});
    model_ = std::make_unique<DiffusionModel>(load_model_folder(dir_ + "/model"));
    o_.recipe = "tmpq";
    o_.calib_samples = 4;
    o_.batch = 4;
    o_.search.steps = 4;
    o_.search.base_steps = 20;
    o_.search.weight_bits = {4, 6, 8};
    o_.search.act_bits = {6, 8};
    o_.search.population = 6;
    o_.search.top = 2;
    o_.search.mutations = 2;
    o_.search.crossovers = 2;
    o_.search.generations = 3;
    o_.search.fitness_images = 2;
    o_.search.final_images = 0;
    o_.sampler.steps = 20;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<QuantizedUNet> working() {
    QuantSpec spec = o_.spec;
    spec.steps = o_.search.steps;
    auto q = std::make_unique<QuantizedUNet>(clone_unet(*model_), spec);
    for (auto& p : q->unet->parameters()) p.set_requires_grad(false);
    return q;
  }
  QuantizerBank bank(QuantizedUNet& q) { return build_bank(*model_, q, o_, [](const std::string&, int, int) { return true; }); }

  std::string dir_;
  std::unique_ptr<DiffusionModel> model_;
  RecipeOptions o_;
};

// Sampling starts from pure noise: the first step of every candidate is the base schedule's first.
TEST_F(Tmpq, TheFirstStepIsTheBaseSchedulesFirst) {
  auto q = working();
  const QuantizerBank b = bank(*q);
  ASSERT_EQ(b.space.group_timesteps.back().size(), 1u);
  EXPECT_EQ(b.space.group_timesteps.back().front(), b.base.front());
  std::mt19937_64 rng(9);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(random_candidate(b.space, rng).timesteps.front(), b.base.front());
}

// With the evaluator's classifier (a 32x32 one-channel model) candidates are scored in its
// features and the best few re-ranked by FID.
TEST_F(Tmpq, TheProxyIsInClassifierFeaturesWhenTheClassifierIsThere) {
  UNetConfig cfg = testing::tiny_config();
  cfg.sample_size = 32;
  UNet2DModel unet(cfg);
  save_model_folder(dir_ + "/model32", *unet, SchedulerConfig{});
  const DiffusionModel m32 = load_model_folder(dir_ + "/model32");
  o_.search.generations = 2;
  o_.search.fitness_images = 4;
  o_.search.final_images = 4;
  o_.search.final_candidates = 2;
  RecipeEnvironment env;
  env.classifier_dir = std::string(QDM_SOURCE_DIR) + "/models/fmnist-classifier";
  const QuantizeResult r = quantize_model(m32, o_, nullptr, env);
  const auto& s = r.report["search"];
  EXPECT_EQ(s["fitness_proxy"], "classifier features");
  EXPECT_TRUE(s["fid_fmnist_final_ranking"].is_number());
  EXPECT_GT(s["fitness"].get<double>(), 0);
  env.classifier_dir = dir_ + "/none";
  EXPECT_EQ(quantize_model(m32, o_, nullptr, env).report["search"]["fitness_proxy"], "pixels");
}

// Assembling a candidate from the bank gives the model that calibrating that candidate
// directly gives: its timesteps' calibration data observed into tables of its bits, its layers'
// weights at its bits.
TEST_F(Tmpq, BankAssemblesWhatDirectCalibrationGives) {
  auto q = working();
  const QuantizerBank b = bank(*q);
  std::mt19937_64 rng(5);
  const Candidate c = random_candidate(b.space, rng);
  assemble(b, c, *q);

  QuantSpec spec = o_.spec;
  spec.steps = static_cast<int>(c.timesteps.size());
  for (size_t i = 0; i < b.layers.size(); ++i) spec.layer_bits[b.layers[i].name] = {c.wbits[i], b.layers[i].act ? c.abits[i] : 0};
  QuantizedUNet direct(clone_unet(*model_), spec);
  SamplerOptions base;
  base.steps = o_.search.base_steps;
  const CalibrationSet full = collect_calibration(model_->unet, NoiseSchedule(model_->scheduler), base, o_.calib_samples, o_.calib_seed, o_.batch);
  CalibrationSet mine;
  for (int t : c.timesteps) {
    mine.timesteps.push_back(t);
    mine.inputs.push_back(full.inputs[b.index.at(t)]);
  }
  // Observed as the bank observes: 8-bit min-max weights, min/max EMA ranges, exact TIB.
  for (auto& l : direct.layers) l->set_weight_quant(minmax_weight_params(l->fp_weight().detach(), 8));
  direct.cache_temporal_features(model_->unet, c.timesteps);
  for (auto& l : direct.layers)
    if (l->quant_input) l->act.mse_init = false;
  observe_activations(direct, mine, o_.batch);
  for (auto& l : direct.layers) {
    if (is_temporal_layer(l->name)) continue;
    const bool kept = std::find(direct.kept_fp.begin(), direct.kept_fp.end(), l->name) != direct.kept_fp.end();
    l->set_weight_quant(mse_weight_params(l->fp_weight().detach(), l->weight_bits));
    if (l->quant_input && !kept) l->act.finalize_per_step();
  }
  for (auto& a : direct.attention)
    for (ActQuantizer* x : {&a->q, &a->k, &a->v}) x->finalize_per_step();
  direct.set_act_mode(ActQuantizer::Mode::kQuantize);

  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({2, 1, 8, 8});
  for (int step = 0; step < 4; ++step) {
    const int t = c.timesteps[static_cast<size_t>(step)];
    EXPECT_TRUE(torch::allclose(q->forward(x, t, step), direct.forward(x, t, step), 1e-5, 1e-6)) << "step " << step;
  }
}

TEST_F(Tmpq, SearchIsReproducibleAndResumesAfterAKill) {
  auto q1 = working();
  const QuantizerBank b1 = bank(*q1);
  const LatencyTable lat = measure_latency(b1, *q1, model_->weights_sha256, "");
  const SearchOutcome a = search(*model_, b1, *q1, lat, o_, {}, nullptr);
  const SearchOutcome again = search(*model_, b1, *q1, lat, o_, {}, nullptr);
  EXPECT_EQ(a.best.key(), again.best.key());
  EXPECT_EQ(a.history.dump(), again.history.dump());
  ASSERT_EQ(a.history.size(), 3u);

  // Killed in generation 3 (the state of generation 2 saved), then run again: the same result.
  RecipeOptions killed = o_;
  killed.search.state_dir = dir_ + "/state";
  int calls = 0;
  EXPECT_THROW(search(*model_, b1, *q1, lat, killed, {}, [&](const std::string& stage, int, int, double) {
                 return stage.find("generation 3") == std::string::npos || ++calls < 2;
               }),
               QuantizeCancelled);
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/state/search.json"));
  const SearchOutcome resumed = search(*model_, b1, *q1, lat, killed, {}, nullptr);
  EXPECT_EQ(resumed.resumed_from, 2);
  EXPECT_EQ(resumed.best.key(), a.best.key());
  EXPECT_EQ(resumed.history.dump(), a.history.dump());
}

TEST_F(Tmpq, BudgetsRejectWhatTheyShould) {
  auto q = working();
  const QuantizerBank b = bank(*q);
  const LatencyTable lat = measure_latency(b, *q, model_->weights_sha256, "");
  EXPECT_NEAR(uniform_bitops(b, 6) / uniform_bitops(b, 8), 0.6, 0.15);  // the searched layers dominate
  // Weights 4 or 6 bits at 6-bit activations: random candidates spread around 0.83 of the all-6-bit
  // BitOPs; a cap of 0.85 rejects about half of them, and every candidate kept fits.
  RecipeOptions tight = o_;
  tight.search.bitops_cap = 0.85;
  tight.search.weight_bits = {4, 6};
  tight.search.act_bits = {6};
  auto q2 = working();
  RecipeOptions bank_options = tight;
  const QuantizerBank b2 = build_bank(*model_, *q2, bank_options, [](const std::string&, int, int) { return true; });
  // A bank without 8-bit activation tables is measured at a width it has.
  std::mt19937_64 rng0(2);
  EXPECT_GT(measure_latency(b2, *q2, model_->weights_sha256, "").ms(random_candidate(b2.space, rng0)), 0);
  std::mt19937_64 rng(1);
  int over = 0;
  for (int i = 0; i < 200; ++i) over += bitops(b2, random_candidate(b2.space, rng)) > 0.85 * uniform_bitops(b2, 6);
  EXPECT_GT(over, 20);
  EXPECT_LT(over, 180);
  const SearchOutcome s = search(*model_, b2, *q2, lat, tight, {}, nullptr);
  for (const auto& [c, f] : s.final_population) EXPECT_LE(bitops(b2, c), tight.search.bitops_cap * uniform_bitops(b2, 6) * (1 + 1e-9));
  RecipeOptions impossible = o_;
  impossible.search.bitops_cap = 0.01;
  EXPECT_THROW(search(*model_, b, *q, lat, impossible, {}, nullptr), std::invalid_argument);
  RecipeOptions timed = o_;
  timed.search.ms_cap = 1e-6;  // no candidate is that fast
  EXPECT_THROW(search(*model_, b, *q, lat, timed, {}, nullptr), std::invalid_argument);
  EXPECT_GT(lat.ms(s.best), 0);
}

TEST_F(Tmpq, ArtifactKeepsItsBitsAndScheduleAndSamples) {
  const QuantizeResult r = quantize_model(*model_, o_);
  ASSERT_EQ(r.sampler.timesteps, r.timesteps);
  ArtifactInfo info;
  info.config = model_->config;
  info.scheduler = model_->scheduler;
  info.sampler = r.sampler;
  info.timesteps = r.timesteps;
  info.figure_png = r.figure_png;
  save_artifact(dir_ + "/t.safetensors", *r.model, info);
  LoadedArtifact a = load_artifact(dir_ + "/t.safetensors");
  EXPECT_EQ(a.info.sampler.timesteps, r.timesteps);
  EXPECT_EQ(a.info.figure_png, r.figure_png);
  // inspect's count of the loaded artifact is the search's count of its best candidate.
  const CallCost cost = call_cost(*a.model);
  EXPECT_NEAR(cost.bitops, r.report["search"]["bitops"].get<double>(), 1e-9 * cost.bitops);
  EXPECT_GT(cost.macs, 0);
  for (const auto& l : r.model->layers) {
    if (!l->weight_params.scale.defined()) continue;
    auto loaded = a.model->layer(l->name);
    ASSERT_NE(loaded, nullptr) << l->name;
    EXPECT_EQ(loaded->weight_params.bits, l->weight_params.bits) << l->name;
    if (l->quant_input) EXPECT_EQ(loaded->act.bits, l->act.bits) << l->name;
  }
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::equal(r.model->forward(x, r.timesteps[1], 1), a.model->forward(x, r.timesteps[1], 1)));
  // Sampling uses the artifact's own schedule by default; another schedule is refused.
  LoadedModel m = LoadedModel::from_artifact(dir_ + "/t.safetensors", KernelMode::kInt);
  EXPECT_EQ(m.default_sampler().timesteps, r.timesteps);
  SampleRequest req;
  req.num_images = 2;
  req.sampler = m.default_sampler();
  EXPECT_EQ(m.sample(req).sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
  SamplerOptions other;
  other.steps = 4;
  EXPECT_THROW(m.check(other), std::invalid_argument);
}

}  // namespace
}  // namespace qdm::tmpq
