// Additive vector quantization (engine/quant/vq): decode as defined, beam search never raises the
// objective, residual k-means and Adam reduce it towards a known optimum, bad shapes refused.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <torch/torch.h>

#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "engine/quant/recipe.h"
#include "engine/quant/vq/additive_quantizer.h"
#include "engine/quant/vq/layer_moments.h"
#include "engine/quant/vq/vq_layer.h"
#include "engine/quant/vq/vq_recipe.h"
#include "engine/runtime/loaded_model.h"
#include "tests/test_models.h"

namespace qdm::vq {
namespace {

// A PSD second moment with a spread of eigenvalues, as layer inputs give.
at::Tensor second_moment(int64_t cols, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const at::Tensor x = at::randn({4 * cols, cols}, gen) * at::linspace(0.2, 2.0, cols).unsqueeze(0);
  return at::matmul(x.t(), x) / (4 * cols);
}

TEST(AdditiveQuantizer, DecodeIsTheScaledSumOfCodewords) {
  AqCodes q;
  q.group = 2;
  q.codebooks = at::tensor({1.f, 2.f, 3.f, 4.f, 10.f, 20.f, 30.f, 40.f}).reshape({2, 2, 2});
  q.codes = at::tensor(std::vector<int64_t>{1, 0, 0, 1}).reshape({1, 2, 2});  // group 0: C1[1] + C2[0], group 1: C1[0] + C2[1]
  q.scales = at::tensor({0.5f});
  EXPECT_TRUE(at::allclose(decode(q), at::tensor({0.5f * (3 + 10), 0.5f * (4 + 20), 0.5f * (1 + 30), 0.5f * (2 + 40)}).reshape({1, 4})));
}

TEST(AdditiveQuantizer, BeamSearchNeverRaisesTheObjective) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor w = at::randn({24, 32}, gen), h = second_moment(32, 4);
  AqCodes q = init_residual_kmeans(w, 2, 4, 8, 5);
  q.codes = at::randint(16, q.codes.sizes(), gen, at::kLong);  // a poor start
  double prev = objective(w, q, h);
  for (int pass = 0; pass < 3; ++pass)
    for (int beam : {1, 4}) {
      beam_search(w, h, q, beam);
      const double now = objective(w, q, h);
      EXPECT_LE(now, prev * (1 + 1e-6)) << "pass " << pass << " beam " << beam;
      prev = now;
    }
  EXPECT_LT(prev, 0.5 * objective(w, init_residual_kmeans(w, 2, 4, 8, 5), h) + 1e9);  // finite and sane
}

TEST(AdditiveQuantizer, KmeansAndAdamReduceTowardsAKnownOptimum) {
  // W exactly representable: 2 codebooks of 16 codewords, groups of 8.
  at::Generator gen = at::detail::createCPUGenerator(7);
  AqCodes truth;
  truth.group = 8;
  truth.codebooks = at::randn({2, 16, 8}, gen);
  truth.codes = at::randint(16, {32, 6, 2}, gen, at::kLong);
  truth.scales = at::rand({32}, gen) + 0.5;
  const at::Tensor w = decode(truth), h = second_moment(48, 8);
  EXPECT_NEAR(objective(w, truth, h), 0.0, 1e-6);
  const double nothing = (at::matmul(w, h) * w).sum().item<double>();  // all-zero weights
  AqCodes q = init_residual_kmeans(w, 2, 4, 8, 1);
  const double after_kmeans = objective(w, q, h);
  EXPECT_LT(after_kmeans, 0.5 * nothing);
  adam_codebooks(w, h, q, 200, 1e-2);
  const double after_adam = objective(w, q, h);
  EXPECT_LT(after_adam, after_kmeans);
  AqOptions o;
  o.codebooks = 2, o.codebook_bits = 4, o.adam_steps = 100, o.lr = 1e-2, o.max_rounds = 15, o.min_gain = 0.001;
  std::vector<double> rounds;
  const AqCodes best = quantize(w, h, o, [&](int, double f) {
    rounds.push_back(f);
    return true;
  });
  ASSERT_FALSE(rounds.empty());
  for (size_t i = 1; i < rounds.size(); ++i) EXPECT_LE(rounds[i], rounds[i - 1] * (1 + 1e-9));
  // Not the optimum itself (codes are a combinatorial search from k-means), but far below the start.
  EXPECT_LT(objective(w, best, h), 0.5 * after_kmeans) << "rounds: " << ::testing::PrintToString(rounds) << " nothing " << nothing << " adam " << after_adam;
  EXPECT_LT(objective(w, best, h), 0.1 * nothing);
}

TEST(AdditiveQuantizer, IntegerCodebooksDecodeToExactInt8AndCostLittle) {
  at::Generator gen = at::detail::createCPUGenerator(11);
  const at::Tensor w = at::randn({32, 64}, gen), h = second_moment(64, 12);
  AqOptions o;
  o.codebooks = 3, o.codebook_bits = 6, o.max_rounds = 4, o.adam_steps = 50;
  AqCodes q = quantize(w, h, o);
  const double fp = objective(w, q, h);
  EXPECT_THROW(decode_int8(q), std::logic_error);  // float codebooks
  to_integer_codebooks(w, h, q, 8);
  const at::Tensor codes8 = decode_int8(q);
  EXPECT_EQ(codes8.scalar_type(), at::kChar);
  EXPECT_LE(q.codebooks.abs().reshape({3, -1}).amax(1).sum().item<double>(), 127);  // any sum of 3 fits int8
  // The served weights are the int8 values times the row scales, exactly the decode.
  EXPECT_TRUE(at::allclose(codes8.to(at::kFloat) * q.scales.unsqueeze(1), decode(q), 1e-6, 1e-6));
  EXPECT_LT(objective(w, q, h), 1.3 * fp) << "the integer grid cost too much: " << fp;
}

TEST(AdditiveQuantizer, RefusesShapesThatDoNotFit) {
  const at::Tensor w = at::randn({4, 12}), h = at::eye(12);
  AqOptions o;
  EXPECT_THROW(quantize(w, h, o), std::invalid_argument);  // 12 columns, groups of 8
  o.group = 4;
  EXPECT_THROW(quantize(w, at::eye(8), o), std::invalid_argument);
}

// The objective on H from InputMoments is the layer's output error: count * tr(dW H dW^T)
// equals || conv(x, dW) ||^2 summed over every output, so the group order of weights and
// unfolded inputs agree (padding and stride included).
TEST(LayerMoments, ObjectiveIsTheConvOutputError) {
  at::Generator gen = at::detail::createCPUGenerator(5);
  for (int stride : {1, 2}) {
    const at::Tensor x = at::randn({3, 8, 7, 6}, gen);
    const at::Tensor dw = at::randn({5, 8, 3, 3}, gen);
    InputMoments m(8 * 9, {3, stride, 1});
    m.add(x.narrow(0, 0, 2));
    m.add(x.narrow(0, 2, 1));
    const at::Tensor rows = to_group_order(dw);
    EXPECT_TRUE(at::equal(from_group_order(rows, dw.sizes()), dw));
    EXPECT_TRUE(at::equal(rows.reshape({5, 3, 3, 8})[2][1][0], dw[2].select(1, 1).select(1, 0)));  // (ky, kx, c) order
    const double direct = at::conv2d(x, dw, {}, {stride, stride}, {1, 1}).pow(2).sum().item<double>();
    const double via_h = static_cast<double>(m.count()) * (at::matmul(rows, m.h()) * rows).sum().item<double>();
    EXPECT_NEAR(via_h, direct, 1e-4 * direct) << "stride " << stride;
  }
  InputMoments lin(6, {0, 1, 0});
  const at::Tensor x = at::randn({4, 3, 6}, gen), dw = at::randn({2, 6}, gen);
  lin.add(x);
  EXPECT_EQ(lin.count(), 12);
  const double direct = at::linear(x, dw).pow(2).sum().item<double>();
  EXPECT_NEAR(12.0 * (at::matmul(dw, lin.h()) * dw).sum().item<double>(), direct, 1e-4 * direct);
  EXPECT_THROW(InputMoments(6, {0, 1, 0}).h(), std::logic_error);
  EXPECT_THROW(lin.add(at::randn({2, 5})), std::invalid_argument);
}

TEST(VqLayer, ArtifactTensorsRoundTripAndBadOnesAreRefused) {
  at::Generator gen = at::detail::createCPUGenerator(9);
  const at::Tensor w = at::randn({6, 16}, gen), h = second_moment(16, 10);
  AqOptions o;
  o.codebooks = 2, o.codebook_bits = 3, o.max_rounds = 2, o.adam_steps = 10;
  AqCodes q = quantize(w, h, o);
  to_integer_codebooks(w, h, q, 4);
  TensorMap t;
  add_tensors(t, "l", q);
  const AqCodes back = from_tensors(t["l.vq_codes"], t["l.vq_codebooks"], t["l.vq_scales"], 2, 3, 8, 6, 16);
  EXPECT_TRUE(at::equal(back.codes, q.codes));
  EXPECT_TRUE(at::equal(back.codebooks, q.codebooks));
  EXPECT_TRUE(at::equal(decode(back), decode(q)));
  auto refused = [&](at::Tensor codes, at::Tensor books, at::Tensor scales, const std::string& says) {
    try {
      from_tensors(codes, books, scales, 2, 3, 8, 6, 16);
      ADD_FAILURE() << "accepted: " << says;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused(t["l.vq_codes"].narrow(0, 0, 5), t["l.vq_codebooks"], t["l.vq_scales"], "vq_codes must be U8 of shape [6, 2, 2]");
  refused(t["l.vq_codes"].clone().fill_(8), t["l.vq_codebooks"], t["l.vq_scales"], "beyond the 8 codewords");
  refused(t["l.vq_codes"], t["l.vq_codebooks"].clone().fill_(100), t["l.vq_scales"], "exceeds 127");
  refused(t["l.vq_codes"], t["l.vq_codebooks"].to(at::kFloat), t["l.vq_scales"], "vq_codebooks must be I8");
  refused(t["l.vq_codes"], t["l.vq_codebooks"], t["l.vq_scales"].clone().fill_(NAN), "finite");
}

// A tiny model with layers wide enough for codebooks to pay, saved and loaded from `dir`.
DiffusionModel tiny_vq_model(const std::string& dir) {
  UNetConfig c = testing::tiny_config();
  c.block_out_channels = {16, 32};
  UNet2DModel unet(c);
  save_model_folder(dir + "/model", *unet, SchedulerConfig{});
  return load_model_folder(dir + "/model");
}

// A VQDM recipe on it: 5 steps, 4 trajectories, two codebooks of 2^4.
RecipeOptions tiny_vq_options(const std::string& recipe) {
  RecipeOptions o;
  o.recipe = recipe;
  o.sampler.steps = 5;
  o.calib_samples = 4;
  o.vq.codebooks = 2;
  o.vq.codebook_bits = 4;
  return o;
}

// Recipe vq on a tiny model: layers where codebooks pay are vector-quantized (the others stay
// scalar), the report counts every byte, the artifact round-trips the codes exactly and samples
// on the integer kernels and the simulation.
TEST(VqRecipe, QuantizesWhereItPaysAndTheArtifactSamples) {
  torch::manual_seed(41);
  const std::string dir = testing::temp_dir("vq");
  const DiffusionModel model = tiny_vq_model(dir);
  RecipeOptions o = tiny_vq_options("vq");
  o.vq.max_rounds = 3;
  o.vq.adam_steps = 20;
  o.recon.iters = 10;
  o.recon.batch = 4;
  o.finetune.samples = 4;  // vq fine-tunes by default: a few steps here
  o.finetune.holdout = 2;
  o.finetune.batch = 2;
  o.finetune.iters = 5;
  std::vector<std::string> stages;
  QuantizeResult r = quantize_model(model, o, [&](const QuantizeProgress& p) {
    if (stages.empty() || stages.back() != p.stage) stages.push_back(p.stage);
    return true;
  });
  // The temporal information block is quantized as tfmq quantizes it (TIAR), not cached: its
  // layers are scalar at the weight bits, and their bytes count.
  EXPECT_FALSE(r.model->has_temporal_cache());
  EXPECT_TRUE(r.timings.contains("tiar"));
  int vq_layers = 0, temporal_layers = 0;
  int64_t bytes = 0, weights = 0;
  for (const auto& l : r.model->layers) {
    if (is_temporal_layer(l->name)) {
      ++temporal_layers;
      EXPECT_FALSE(l->vq) << l->name;
      // time_embedding.linear_1 is kept with an fp32 input at the keep bits, as in tfmq.
      if (l->name != "time_embedding.linear_1") EXPECT_EQ(l->weight_bits, o.spec.weight_bits) << l->name;
    }
    const int64_t rows = l->fp_weight().size(0), cols = l->fp_weight().numel() / rows;
    weights += rows * cols;
    if (l->vq) {
      ++vq_layers;
      EXPECT_LT(vq_layer_bytes(rows, cols, o.vq), scalar_layer_bytes(rows, cols, o.spec.weight_bits)) << l->name;
      bytes += vq_layer_bytes(rows, cols, o.vq);
      // The decode lies on the int8 grid the kernels read.
      EXPECT_TRUE(at::equal(fake_quant(l->fake_weight, l->weight_params), l->fake_weight)) << l->name;
    } else {
      bytes += scalar_layer_bytes(rows, cols, l->weight_bits);
    }
  }
  // The output conv stays fp32 (fp32_layers): every one of its bytes counts too.
  ASSERT_EQ(r.model->layer("conv_out"), nullptr);
  const at::Tensor out_w = r.model->unet->named_parameters()["conv_out.weight"];
  weights += out_w.numel();
  bytes += 4 * out_w.numel();
  EXPECT_GE(vq_layers, 4);
  EXPECT_GE(temporal_layers, 3);  // the time embedding's two linears and every time_emb_proj
  const auto& rep = r.report["vq"];
  EXPECT_EQ(rep["vq_layers"].get<int>(), vq_layers);
  EXPECT_EQ(rep["weight_bytes"].get<int64_t>(), bytes);
  EXPECT_NEAR(rep["bits_per_weight"].get<double>(), 8.0 * bytes / weights, 1e-9);
  EXPECT_DOUBLE_EQ(rep["nominal_bits"].get<double>(), 1.0);
  for (const auto& l : rep["layers"]) EXPECT_LT(l["relative_error"].get<double>(), 1.0) << l.dump();
  auto stage_seen = [&](const std::string& prefix) {
    return std::find_if(stages.begin(), stages.end(), [&](const std::string& s) { return s.rfind(prefix, 0) == 0; }) != stages.end();
  };
  EXPECT_TRUE(stage_seen("vq: "));
  EXPECT_TRUE(stage_seen("reconstruction: "));  // the scalar layers' AdaRound

  save_artifact(dir + "/a.safetensors", *r.model, testing::artifact_info(model, r, o));
  LoadedArtifact a = load_artifact(dir + "/a.safetensors");
  int listed = 0;
  for (const auto& e : a.info.layers) listed += e.vector_quantized();
  EXPECT_EQ(listed, vq_layers);
  for (const auto& l : r.model->layers) {
    if (!l->vq) continue;
    auto loaded = a.model->layer(l->name);
    ASSERT_TRUE(loaded && loaded->vq) << l->name;
    EXPECT_TRUE(at::equal(loaded->vq->codes, l->vq->codes)) << l->name;
    EXPECT_TRUE(at::equal(loaded->fake_weight, l->fake_weight)) << l->name;
  }
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::equal(r.model->forward(x, r.timesteps[2], 2), a.model->forward(x, r.timesteps[2], 2)));
  for (KernelMode mode : {KernelMode::kInt, KernelMode::kSim}) {
    LoadedModel m = LoadedModel::from_artifact(dir + "/a.safetensors", mode);
    SampleRequest req;
    req.num_images = 2;
    req.sampler = m.default_sampler();
    const at::Tensor images = m.sample(req);
    EXPECT_EQ(images.sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
    EXPECT_TRUE(at::isfinite(images).all().item<bool>());
  }
  std::filesystem::remove_all(dir);
}

// Recipe vq+cache: the fp32 temporal features of every step replace the temporal block, whose
// layers are then neither quantized nor counted (vq's report and resident bytes say so).
TEST(VqRecipe, VqCacheStoresTheTemporalFeaturesInsteadOfTheBlock) {
  torch::manual_seed(43);
  const std::string dir = testing::temp_dir("vq-cache");
  const DiffusionModel model = tiny_vq_model(dir);
  RecipeOptions o = tiny_vq_options("vq+cache");
  o.vq.max_rounds = 2;
  o.vq.adam_steps = 10;
  o.recon.iters = 5;
  o.recon.batch = 4;
  o.finetune.iters = 0;
  QuantizeResult cached = quantize_model(model, o, nullptr);
  EXPECT_TRUE(cached.model->has_temporal_cache());
  EXPECT_FALSE(cached.timings.contains("tiar"));
  o.recipe = "vq";
  QuantizeResult quantized = quantize_model(model, o, nullptr);
  int64_t temporal = 0;
  for (const auto& l : quantized.model->layers)
    if (is_temporal_layer(l->name)) temporal += l->fp_weight().numel();
  ASSERT_GT(temporal, 0);
  EXPECT_EQ(quantized.report["vq"]["weights"].get<int64_t>() - cached.report["vq"]["weights"].get<int64_t>(), temporal);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qdm::vq
