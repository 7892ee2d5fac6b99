#include "engine/eval/fid.h"

#include <gtest/gtest.h>
#include <torch/utils.h>

namespace qdm {
namespace {

GaussianStats stats(at::Tensor mean, at::Tensor cov) {
  GaussianStats s;
  s.mean = mean.to(at::kDouble);
  s.cov = cov.to(at::kDouble);
  s.count = 1000;
  return s;
}

TEST(Fid, DiagonalGaussiansHaveTheClosedForm) {
  const auto a = stats(torch::tensor({0.0, 1.0, 2.0}), torch::diag(torch::tensor({1.0, 4.0, 9.0})));
  const auto b = stats(torch::tensor({1.0, 1.0, 0.0}), torch::diag(torch::tensor({4.0, 1.0, 1.0})));
  // |mu|^2 = 1 + 0 + 4; sum (sqrt(va) - sqrt(vb))^2 = 1 + 1 + 4
  EXPECT_NEAR(frechet_distance(a, b), 11.0, 1e-9);
  EXPECT_NEAR(frechet_distance(b, a), 11.0, 1e-9);
  EXPECT_NEAR(frechet_distance(a, a), 0.0, 1e-9);
}

TEST(Fid, RotatedCovariancesGiveTheSameDistance) {
  // Rotating both covariances by the same orthogonal matrix leaves FID unchanged.
  const double c = std::cos(0.7), s = std::sin(0.7);
  const at::Tensor r = torch::tensor({c, -s, s, c}, at::kDouble).reshape({2, 2});
  const at::Tensor da = torch::diag(torch::tensor({2.0, 0.5}, at::kDouble));
  const at::Tensor db = torch::diag(torch::tensor({0.5, 3.0}, at::kDouble));
  const auto a = stats(torch::zeros({2}), r.matmul(da).matmul(r.t()));
  const auto b = stats(torch::tensor({3.0, 4.0}), r.matmul(db).matmul(r.t()));
  const double expect = 25.0 + std::pow(std::sqrt(2.0) - std::sqrt(0.5), 2) + std::pow(std::sqrt(0.5) - std::sqrt(3.0), 2);
  EXPECT_NEAR(frechet_distance(a, b), expect, 1e-9);
}

TEST(Fid, NonCommutingCovariances) {
  // 2x2 case against the trace formula tr sqrt(A B) = sqrt(tr(AB) + 2 sqrt(det(AB))).
  const at::Tensor A = torch::tensor({2.0, 0.3, 0.3, 1.0}, at::kDouble).reshape({2, 2});
  const at::Tensor B = torch::tensor({1.0, -0.4, -0.4, 0.5}, at::kDouble).reshape({2, 2});
  const at::Tensor AB = A.matmul(B);
  const double tr_sqrt = std::sqrt(AB.trace().item<double>() + 2 * std::sqrt(at::det(AB).item<double>()));
  const double expect = A.trace().item<double>() + B.trace().item<double>() - 2 * tr_sqrt;
  EXPECT_NEAR(frechet_distance(stats(torch::zeros({2}), A), stats(torch::zeros({2}), B)), expect, 1e-9);
}

TEST(Fid, StatsOfSamplesApproachTheTruth) {
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({20000, 4}, at::kDouble) * torch::tensor({1.0, 2.0, 0.5, 1.0}, at::kDouble) + 3.0;
  const auto s = feature_stats(x);
  EXPECT_NEAR(s.mean[0].item<double>(), 3.0, 0.05);
  EXPECT_NEAR(s.cov[1][1].item<double>(), 4.0, 0.15);
  EXPECT_NEAR(s.cov[0][1].item<double>(), 0.0, 0.05);
  const auto t = stats(torch::full({4}, 3.0), torch::diag(torch::tensor({1.0, 4.0, 0.25, 1.0})));
  EXPECT_LT(frechet_distance(s, t), 0.01);
  EXPECT_THROW(feature_stats(torch::zeros({1, 4})), std::invalid_argument);
}

}  // namespace
}  // namespace qdm
