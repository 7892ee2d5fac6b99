// Additive vector quantization (engine/quant/vq): decode as defined, beam search never raises the
// objective, residual k-means and Adam reduce it towards a known optimum, bad shapes refused.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "engine/quant/vq/additive_quantizer.h"

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

}  // namespace
}  // namespace qdm::vq
